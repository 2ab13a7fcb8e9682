/* log.c - stderr logging and process titles. See log.h. */
#include "supervisor/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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
    if (to_journal)
        n = snprintf(line, sizeof line, "<%d>%s: ", (int)level, role);
    else
        n = snprintf(line, sizeof line, "ringmaster[%d]: %s: %s: ", (int)getpid(), role, level_names[level & 7]);
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

/* ---- process titles: overwrite argv's contiguous area, like nginx ---- */
static char *title_start;
static size_t title_len;

void rm_proctitle_init(int argc, char **argv)
{
    if (argc <= 0 || !argv[0])
        return;
    /* argv strings are laid out back to back: find the end of the area. */
    char *start = argv[0];
    char *end = argv[0] + strlen(argv[0]);
    for (int i = 1; i < argc; i++)
        if (argv[i] == end + 1)
            end = argv[i] + strlen(argv[i]);
    /* Move argv out of the way so callers keep valid strings. */
    for (int i = 0; i < argc; i++) {
        char *copy = strdup(argv[i]);
        if (!copy)
            return;
        argv[i] = copy;
    }
    title_start = start;
    title_len = (size_t)(end - start) + 1;
}

void rm_proctitle_set(const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* comm (what ps -o comm and top show): at most 15 bytes. */
    prctl(PR_SET_NAME, buf, 0, 0, 0);
    if (title_start && title_len > 1) {
        size_t n = strlen(buf);
        if (n >= title_len)
            n = title_len - 1;
        memcpy(title_start, buf, n);
        memset(title_start + n, 0, title_len - n);
    }
}
