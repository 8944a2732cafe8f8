/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* udmd's log (see log.h). */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

/* Process-wide configuration, set before any thread starts. */
static bool to_syslog;
static bool verbose;

void udmd_log_set_verbose(void)
{
  verbose = true;
}

void udmd_log_use_syslog(void)
{
  openlog("udmd", LOG_PID, LOG_DAEMON);
  to_syslog = true;
}

void udmd_log(int priority, const char *fmt, ...)
{
  va_list ap;
  if (!to_syslog && !verbose && priority > LOG_WARNING)
    return;
  va_start(ap, fmt);
  if (to_syslog) {
    vsyslog(priority, fmt, ap);
  } else {
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "udmd: %s\n", line);
  }
  va_end(ap);
}
