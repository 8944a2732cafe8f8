/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm wait --progress NAME: watch a device's status until the work it
 * reports is done, with a progress bar.  A target reports progress as a
 * "<done>/<total>" word in its status line (a mirror's in-sync regions, as
 * dm-raid1 prints them); the device's progress is the sum over its
 * segments.  The display is the tools' one (tools/common/progress.h): on a
 * terminal a bar redrawn in place on stderr, otherwise a line each time the
 * percentage changes (--progress asks for it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "protocol.h"

#define PROGRESS_POLL_MS 200

/* Sum the first "<done>/<total>" word after the target name of each line. */
static bool parse_progress(const char *text, uint64_t *done, uint64_t *total)
{
  bool found = false;
  *done = *total = 0;
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    unsigned word = 0;
    for (const char *p = line; p < line + len;) {
      while (p < line + len && *p == ' ')
        p++;
      const char *w = p;
      while (p < line + len && *p != ' ')
        p++;
      if (p == w || ++word <= 3) /* <start> <length> <target> */
        continue;
      uint64_t d, t;
      char tail;
      char buf[64];
      size_t n = (size_t)(p - w) < sizeof buf - 1 ? (size_t)(p - w) : sizeof buf - 1;
      memcpy(buf, w, n);
      buf[n] = '\0';
      if (sscanf(buf, "%" SCNu64 "/%" SCNu64 "%c", &d, &t, &tail) == 2 && d <= t) {
        *done += d;
        *total += t;
        found = true;
        break;
      }
    }
    line += len + (nl ? 1 : 0);
  }
  return found;
}

int cli_wait_progress(struct cli *c, const char *name)
{
  struct progress bar;
  progress_begin(&bar, name, PROGRESS_ALWAYS);
  for (;;) {
    struct udm_msg req, resp;
    udm_msg_init(&req);
    udm_msg_init(&resp);
    if (udm_msg_add(&req, "op", "status") < 0 || udm_msg_add(&req, "name", name) < 0) {
      udm_msg_free(&req);
      cli_error("out of memory");
      return EXIT_FAIL;
    }
    int r = c->fd < 0 && cli_connect(c) < 0 ? -1 : cli_call(c, &req, &resp);
    udm_msg_free(&req);
    if (r < 0) {
      udm_msg_free(&resp);
      progress_end(&bar);
      return EXIT_FAIL;
    }
    /* The device's record starts at its name= (the reply's own fields come first). */
    const char *text = NULL;
    for (unsigned k = 0; k < resp.count && !text; k++)
      if (!strcmp(resp.fields[k].key, "name"))
        for (unsigned j = k + 1; j < resp.count && !text; j++)
          if (!strcmp(resp.fields[j].key, "status"))
            text = resp.fields[j].value;
    uint64_t done, total;
    bool found = text && parse_progress(text, &done, &total);
    udm_msg_free(&resp);
    if (!found) {
      progress_end(&bar);
      cli_error("wait --progress: the status of %s reports no progress (a <done>/<total> "
                "word, as a mirror's in-sync regions)",
                name);
      return EXIT_FAIL;
    }
    progress_update(&bar, done, total);
    if (done == total) {
      progress_end(&bar);
      return EXIT_OK;
    }
    struct timespec ts = {0, PROGRESS_POLL_MS * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
      ;
  }
}
