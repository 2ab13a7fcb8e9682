/* log.c - stderr logging. See log.h. */
#include "core/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool to_journal;
static char role[48] = "ringmaster";
static enum rm_log_level max_level = RM_LOG_INFO;

static const char *const level_names[8] = {"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"};

void rm_log_init(const char *r)
{
    snprintf(role, sizeof role, "%s", r);
    to_journal = false;
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
        to_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void rm_log_set_level(enum rm_log_level max) { max_level = max; }

void rm_log(enum rm_log_level level, const char *fmt, ...)
{
    if (level > max_level)
        return;
    int saved = errno;
    char line[2048];
    int n;
    if (to_journal) {
        /* journald stamps its own time */
        n = snprintf(line, sizeof line, "<%d>%s: ", (int)level, role);
    } else {
        /* RFC 3339, UTC, milliseconds: lines of every process sort */
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ringmaster[%d]: %s: %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, (int)getpid(), role, level_names[level & 7]);
    }
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n')
            line[i] = ' ';  /* one record per line */
    line[len++] = '\n';
    /* One write(2): lines of concurrent processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved;
}
