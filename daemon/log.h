/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udmd's log: stderr in the foreground, syslog once daemonised.  Never pass
 * table text here: tables may hold key material.
 */
#ifndef UDMD_LOG_H
#define UDMD_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* Switch to syslog (process-wide, like openlog() itself).  Call before threads. */
void udmd_log_use_syslog(void);
/* In the foreground, show LOG_INFO and LOG_DEBUG too (else warnings and worse). */
void udmd_log_set_verbose(void);
void udmd_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
