/* proctitle.c - process titles: overwrite argv's contiguous area, like nginx. See proctitle.h. */
#include "core/proctitle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

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
