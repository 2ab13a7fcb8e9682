/* buf.c - growable byte buffer and JSON string escaping. See internal.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"

bool gw_buf_reserve(struct gw_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra <= b->cap - b->len)
        return true;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    if (b->account)
        *b->account += cap - b->cap;
    b->cap = cap;
    return true;
}

void gw_buf_put(struct gw_buf *b, const void *p, size_t n)
{
    if (n == 0 || !gw_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void gw_buf_puts(struct gw_buf *b, const char *s)
{
    gw_buf_put(b, s, strlen(s));
}

void gw_buf_put_u64(struct gw_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    gw_buf_put(b, tmp + i, sizeof tmp - i);
}

void gw_buf_printf(struct gw_buf *b, const char *fmt, ...)
{
    if (!gw_buf_reserve(b, 128))
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (!gw_buf_reserve(b, (size_t)n + 1))
            return;
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= b->cap - b->len) {
            b->oom = true;
            return;
        }
    }
    b->len += (size_t)n;
}

void gw_buf_free(struct gw_buf *b)
{
    size_t *account = b->account;
    if (account)
        *account -= b->cap;
    free(b->data);
    memset(b, 0, sizeof *b);
    b->account = account; /* the buffer keeps counting toward the same total */
}

void gw_buf_reset(struct gw_buf *b, size_t keep)
{
    if (b->cap > keep)
        gw_buf_free(b);
    b->len = 0;
    b->oom = false;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates and code points past U+10FFFF refused). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void gw_json_escape(struct gw_buf *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* copy the longest run that needs no escape in one go */
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\')
            j++;
        gw_buf_put(b, s + i, j - i);
        i = j;
        if (i >= n)
            break;
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t len = utf8_seq(s + i, n - i);
            if (len) {
                gw_buf_put(b, s + i, len);
                i += len;
            } else {
                gw_buf_put(b, "\\ufffd", 6);
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': gw_buf_put(b, "\\\"", 2); break;
        case '\\': gw_buf_put(b, "\\\\", 2); break;
        case '\n': gw_buf_put(b, "\\n", 2); break;
        case '\r': gw_buf_put(b, "\\r", 2); break;
        case '\t': gw_buf_put(b, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            gw_buf_put(b, u, sizeof u);
        }
        }
        i++;
    }
}
