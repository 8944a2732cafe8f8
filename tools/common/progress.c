/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tools' progress display (progress.h). */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "progress.h"

#define BAR_WIDTH 40

void progress_begin(struct progress *p, const char *label, enum progress_mode mode)
{
  p->label = label;
  p->tty = isatty(STDERR_FILENO);
  p->shown = mode == PROGRESS_ALWAYS || (mode == PROGRESS_AUTO && p->tty);
  p->drawn = false;
  p->last = -1;
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
  if (!p->shown)
    return;
  if (done > total)
    done = total;
  /* Tenths of a percent; an empty job is complete. */
  int permille = total ? (int)((long double)done * 1000 / total) : 1000;
  if (!p->tty) {
    if (permille / 10 != p->last)
      fprintf(stderr, "%s: %d%% (%" PRIu64 "/%" PRIu64 ")\n", p->label, permille / 10, done,
              total);
    p->last = permille / 10;
    return;
  }
  if (permille == p->last)
    return;
  char bar[BAR_WIDTH + 1];
  int fill = permille * BAR_WIDTH / 1000;
  for (int i = 0; i < BAR_WIDTH; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[BAR_WIDTH] = '\0';
  fprintf(stderr, "\r%s [%s] %5.1f%% %" PRIu64 "/%" PRIu64, p->label, bar, permille / 10.0,
          done, total);
  fflush(stderr);
  p->drawn = true;
  p->last = permille;
}

void progress_end(struct progress *p)
{
  if (p->shown && p->tty && p->drawn)
    fputc('\n', stderr);
  p->drawn = false;
}
