/*
 * log.h - one line per write(2) to stderr. With stderr connected to the
 * journal ($JOURNAL_STREAM names its device:inode), lines get the <N>
 * priority prefix journald understands; otherwise they read
 * "2026-11-29T15:03:23.123Z ringmaster[PID]: ROLE: LEVEL: message" (RFC 3339, UTC).
 */
#ifndef RM_LOG_H
#define RM_LOG_H

#include <errno.h>
#include <string.h>

enum rm_log_level { RM_LOG_ERR = 3, RM_LOG_WARNING = 4, RM_LOG_NOTICE = 5, RM_LOG_INFO = 6, RM_LOG_DEBUG = 7 };

/* Call once per process (after fork too): decides on the journal prefix and
 * remembers the role shown in each line ("master", "gateway 0", ...). */
void rm_log_init(const char *role);
void rm_log_set_level(enum rm_log_level max);

void rm_log(enum rm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rm_err(...) rm_log(RM_LOG_ERR, __VA_ARGS__)
#define rm_warn(...) rm_log(RM_LOG_WARNING, __VA_ARGS__)
#define rm_notice(...) rm_log(RM_LOG_NOTICE, __VA_ARGS__)
#define rm_info(...) rm_log(RM_LOG_INFO, __VA_ARGS__)
#define rm_debug(...) rm_log(RM_LOG_DEBUG, __VA_ARGS__)

#endif
