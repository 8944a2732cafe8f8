/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One progress display for the tools' long jobs (udm wait --progress, udm
 * image convert and verify, and every later one): a bar redrawn in place on
 * standard error when it is a terminal, a line per whole percent when asked
 * for on a non-terminal, nothing in scripts unless asked.
 */
#ifndef UDM_TOOLS_PROGRESS_H
#define UDM_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

enum progress_mode {
  PROGRESS_AUTO,   /* a bar on a terminal, silent otherwise (the default) */
  PROGRESS_ALWAYS, /* a bar on a terminal, else a line per whole percent (--progress) */
  PROGRESS_NEVER,
};

struct progress {
  const char *label; /* "udm-image convert: disk.udmz", a device name */
  bool shown;        /* drawing at all */
  bool tty;          /* in place on a terminal */
  bool drawn;        /* something is on the terminal's line */
  int last;          /* tenths of a percent last drawn (tty) or percent (lines) */
};

/* Decides from MODE and whether standard error is a terminal. */
void progress_begin(struct progress *p, const char *label, enum progress_mode mode);
/* DONE of TOTAL (units are the caller's); redraws only when the figure changes. */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
/* Ends the bar's line on a terminal. */
void progress_end(struct progress *p);

#endif
