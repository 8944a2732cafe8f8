/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* udmd's log (see log.h). */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "log.h"

/*
 * Process-wide configuration.  verbose is set before any thread starts;
 * to_syslog when udmd detaches, after the control threads may have begun
 * logging (ThreadSanitizer saw the race), hence atomic.
 */
static atomic_bool to_syslog;
static bool verbose;

void udmd_log_set_verbose(void)
{
  verbose = true;
}

void udmd_log_use_syslog(void)
{
  openlog("udmd", LOG_PID, LOG_DAEMON);
  atomic_store(&to_syslog, true);
}

void udmd_log(int priority, const char *fmt, ...)
{
  va_list ap;
  bool sys = atomic_load(&to_syslog);
  if (!sys && !verbose && priority > LOG_WARNING)
    return;
  va_start(ap, fmt);
  if (sys) {
    vsyslog(priority, fmt, ap);
  } else {
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "udmd: %s\n", line);
  }
  va_end(ap);
}
