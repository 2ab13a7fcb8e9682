/*
 * config.c - ringmaster's INI configuration: defaults, parsing, validation.
 *
 * Every key lives in the X-macro tables of config.h. They are expanded here
 * exactly once, into a descriptor table per section (key name, type, field
 * offset and size, default, min/max). Everything else is table driven: the
 * defaults are applied by running each default string through the same
 * parser as a user's value (so a bad default cannot hide), the type picks
 * the parser, and the range check uses the table's bounds.
 *
 * Parsing uses inih, fed through our own line reader (ini_parse_stream)
 * rather than ini_parse()/ini_parse_string(), because inih on its own gets
 * three things wrong for us:
 *   - it truncates section names to 49 bytes, so "[pool NAME]" with a long
 *     but legal NAME would silently become another pool;
 *   - it never tells the handler about a section without keys, so an empty
 *     "[pool echo]" (all defaults) or a misspelled empty section would vanish;
 *   - an indented line is glued onto the previous value (multi-line values),
 *     so "  workers = 4" after "handler = echo" would set handler to
 *     "echo\nworkers = 4" instead of setting workers.
 * The reader sees every line before inih does: it counts lines (inih counts
 * one per reader call too, so both numbers agree), strips leading blanks and
 * handles section headers itself. inih still does key/value splitting,
 * comments, inline comments, the UTF-8 BOM and syntax errors.
 *
 * Errors: the first one wins. Its text "FILE:LINE: message" goes into the
 * caller's buffer; this file never logs. The ini handler returns 0 on error
 * so inih records the line as well, and the reader stops feeding lines.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <ini.h>

#include "core/config.h"

/* workers + spares of one pool: the slot table of a pool is sized for this. */
#define RM_POOL_MAX_PROCS 256u

/* A config file is a few KiB; refuse to slurp something absurd (/dev/zero). */
#define RM_CONFIG_MAX_BYTES (1024u * 1024u)

#define KiB UINT64_C(1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)

/* ------------------------------------------------------------------ tables */

enum cfg_type { CT_STR, CT_UINT, CT_DUR, CT_SIZE, CT_BOOL };

struct key_desc {
    const char *key;
    enum cfg_type type;
    size_t off;        /* offsetof the field in its struct */
    size_t size;       /* sizeof the field (STR: the buffer) */
    const char *def;   /* default, as the user would write it */
    uint64_t lo, hi;   /* UINT/DUR/SIZE bounds, inclusive */
};

#define RM_DESC(strct, type, field, key, def, lo, hi)                           \
    { key, CT_##type, offsetof(struct strct, field),                            \
      sizeof(((struct strct *)0)->field), def, lo, hi },
#define RM_GLOBAL_DESC(type, field, key, def, lo, hi)                           \
    RM_DESC(rm_config, type, field, key, def, lo, hi)
#define RM_POOL_DESC(type, field, key, def, lo, hi)                             \
    RM_DESC(rm_pool_config, type, field, key, def, lo, hi)

static const struct key_desc global_keys[] = { RM_GLOBAL_KEYS(RM_GLOBAL_DESC) };
static const struct key_desc pool_keys[] = { RM_POOL_KEYS(RM_POOL_DESC) };

/* Index of every key in its table (GK_listen, PK_workers, ...), for the
 * "set on which line" bookkeeping and the cross-key checks. */
#define RM_GLOBAL_INDEX(type, field, key, def, lo, hi) GK_##field,
#define RM_POOL_INDEX(type, field, key, def, lo, hi) PK_##field,
enum { RM_GLOBAL_KEYS(RM_GLOBAL_INDEX) GK_COUNT };
enum { RM_POOL_KEYS(RM_POOL_INDEX) PK_COUNT };

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* What a value of each type looks like, for "bad value" messages. */
static const char *const type_expect[] = {
    [CT_STR] = "text",
    [CT_UINT] = "a whole decimal number",
    [CT_DUR] = "a duration like 100ms, 2s or 1m",
    [CT_SIZE] = "a size like 512, 16KiB, 1MiB or 1GiB",
    [CT_BOOL] = "yes or no (also true/false, on/off, 1/0)",
};

/* ------------------------------------------------------------ value parsers */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static const char *skip_blanks(const char *s)
{
    while (is_blank(*s))
        s++;
    return s;
}

/* Decimal digits at *sp into *out, advancing *sp. No sign, no hex: -1 when
 * there is no digit or the number does not fit in 64 bits. */
static int scan_u64(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;

    if (!is_digit(*s))
        return -1;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *sp = s;
    *out = v;
    return 0;
}

/* A whole string that is one decimal number, blanks around allowed. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v;

    s = skip_blanks(s);
    if (scan_u64(&s, &v) < 0)
        return -1;
    if (*skip_blanks(s) != '\0')
        return -1;
    *out = v;
    return 0;
}

struct unit {
    const char *name;  /* matched case-insensitively; "" = no unit */
    uint64_t mult;
};

static const struct unit duration_units[] = {
    { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { NULL, 0 },
};

/* Sizes are powers of 1024 whatever the spelling: "16KB" in a config file
 * means 16384 to everybody who writes one. */
static const struct unit size_units[] = {
    { "", 1 },     { "b", 1 },
    { "k", KiB },  { "kb", KiB }, { "kib", KiB },
    { "m", MiB },  { "mb", MiB }, { "mib", MiB },
    { "g", GiB },  { "gb", GiB }, { "gib", GiB },
    { NULL, 0 },
};

/* "<number> [unit]", blanks around and between allowed. */
static int parse_with_unit(const char *s, const struct unit *units, uint64_t *out)
{
    uint64_t v;

    s = skip_blanks(s);
    if (scan_u64(&s, &v) < 0)
        return -1;
    s = skip_blanks(s);
    const char *u = s;
    while (is_alpha(*s))
        s++;
    size_t ulen = (size_t)(s - u);
    if (*skip_blanks(s) != '\0')
        return -1;

    for (const struct unit *x = units; x->name; x++) {
        if (strlen(x->name) != ulen || strncasecmp(x->name, u, ulen) != 0)
            continue;
        if (v > UINT64_MAX / x->mult)
            return -1;
        *out = v * x->mult;
        return 0;
    }
    return -1;
}

int rm_parse_duration_ms(const char *s, uint64_t *out)
{
    return parse_with_unit(s, duration_units, out);
}

int rm_parse_size(const char *s, uint64_t *out)
{
    return parse_with_unit(s, size_units, out);
}

int rm_parse_bool(const char *s, bool *out)
{
    static const struct {
        const char *word;
        bool value;
    } words[] = {
        { "yes", true }, { "true", true },   { "on", true },  { "1", true },
        { "no", false }, { "false", false }, { "off", false }, { "0", false },
    };

    s = skip_blanks(s);
    size_t len = strlen(s);
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    for (size_t i = 0; i < ARRAY_LEN(words); i++)
        if (strlen(words[i].word) == len && strncasecmp(words[i].word, s, len) == 0) {
            *out = words[i].value;
            return 0;
        }
    return -1;
}

/* Bounds in the units a user would write them in: 60000 ms is "1m". Only
 * units the parser accepts back, so the message can be copied as is. */
static void format_value(enum cfg_type type, uint64_t v, char *buf, size_t len)
{
    if (type == CT_DUR) {
        if (v != 0 && v % 60000 == 0)
            snprintf(buf, len, "%" PRIu64 "m", v / 60000);
        else if (v != 0 && v % 1000 == 0)
            snprintf(buf, len, "%" PRIu64 "s", v / 1000);
        else
            snprintf(buf, len, "%" PRIu64 "ms", v);
    } else if (type == CT_SIZE) {
        if (v != 0 && v % GiB == 0)
            snprintf(buf, len, "%" PRIu64 "GiB", v / GiB);
        else if (v != 0 && v % MiB == 0)
            snprintf(buf, len, "%" PRIu64 "MiB", v / MiB);
        else if (v != 0 && v % KiB == 0)
            snprintf(buf, len, "%" PRIu64 "KiB", v / KiB);
        else
            snprintf(buf, len, "%" PRIu64, v);
    } else {
        snprintf(buf, len, "%" PRIu64, v);
    }
}

/*
 * Parse value by d's type into the field at base + d->off, with the range
 * check. On error writes the reason (no FILE:LINE prefix) into msg and leaves
 * the field as it was.
 */
static int set_value(void *base, const struct key_desc *d, const char *value,
                     char *msg, size_t msglen)
{
    char *field = (char *)base + d->off;
    uint64_t v = 0;
    int rc = -1;

    switch (d->type) {
    case CT_STR:
        if (strlen(value) >= d->size) {
            snprintf(msg, msglen, "value for %s is too long: at most %zu characters",
                     d->key, d->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case CT_BOOL: {
        bool b;
        if (rm_parse_bool(value, &b) < 0)
            break;
        *(bool *)(void *)field = b;
        return 0;
    }
    case CT_UINT:
        rc = parse_u64(value, &v);
        if (rc == 0 && v > UINT_MAX)
            rc = -1;
        break;
    case CT_DUR:
        rc = rm_parse_duration_ms(value, &v);
        break;
    case CT_SIZE:
        rc = rm_parse_size(value, &v);
        break;
    }
    if (rc < 0) {
        snprintf(msg, msglen, "bad value \"%s\" for %s: expected %s", value, d->key,
                 type_expect[d->type]);
        return -1;
    }

    if (v < d->lo || v > d->hi) {
        char lo[32], hi[32];
        format_value(d->type, d->lo, lo, sizeof lo);
        format_value(d->type, d->hi, hi, sizeof hi);
        snprintf(msg, msglen, "value \"%s\" for %s is out of range: expected %s..%s",
                 value, d->key, lo, hi);
        return -1;
    }
    if (d->type == CT_UINT)
        *(unsigned *)(void *)field = (unsigned)v;
    else
        *(uint64_t *)(void *)field = v;
    return 0;
}

static void apply_defaults(void *base, const struct key_desc *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* A default that fails its own parser or range is a bug in config.h;
         * the defaults test catches it, the assert points at it. */
        int rc = set_value(base, &keys[i], keys[i].def, NULL, 0);
        assert(rc == 0);
        (void)rc;
    }
}

static int find_key(const struct key_desc *keys, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].key, name) == 0)
            return (int)i;
    return -1;
}

/* --------------------------------------------------------------- listen */

static bool is_host_char(char c)
{
    return is_digit(c) || is_alpha(c) || c == '.' || c == '-' || c == '_';
}

static const char listen_expect[] =
    "expected host:port, [v6]:port, unix:/path or :port";

/* One address of the list, item[0..len) with blanks already trimmed. */
static int parse_listen_one(const char *item, size_t len, struct rm_listen_addr *out,
                            char *err, size_t errlen)
{
    char buf[512];
    struct rm_listen_addr a;
    const char *port;

    memset(&a, 0, sizeof a);
    if (len >= sizeof buf) {
        snprintf(err, errlen, "listen address \"%.40s...\" is too long", item);
        return -1;
    }
    memcpy(buf, item, len);
    buf[len] = '\0';

    if (strncmp(buf, "unix:", 5) == 0) {
        const char *path = buf + 5;
        /* Relative paths would depend on the daemon's working directory. */
        if (path[0] != '/') {
            snprintf(err, errlen,
                     "bad listen address \"%s\": expected an absolute path after unix:, "
                     "like unix:/run/ringmaster/http.sock", buf);
            return -1;
        }
        if (strlen(path) >= sizeof a.path) {
            snprintf(err, errlen,
                     "bad listen address \"%s\": socket path is too long: at most %zu "
                     "characters", buf, sizeof a.path - 1);
            return -1;
        }
        a.kind = RM_LISTEN_UNIX;
        memcpy(a.path, path, strlen(path) + 1);
        *out = a;
        return 0;
    }

    a.kind = RM_LISTEN_TCP;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "bad listen address \"%s\": %s", buf, listen_expect);
            return -1;
        }
        *close = '\0';
        const char *host = buf + 1;
        port = close + 2;
        /* Numeric IPv6 only (a name has no business in brackets); a zone
         * ("fe80::1%eth0") is kept for the resolver but not checked here. */
        char addr[64];
        struct in6_addr in6;
        size_t alen = strcspn(host, "%");
        bool empty_zone = host[alen] == '%' && host[alen + 1] == '\0';
        bool ok = alen > 0 && alen < sizeof addr && !empty_zone &&
                  strlen(host) < sizeof a.host;
        if (ok) {
            memcpy(addr, host, alen);
            addr[alen] = '\0';
            ok = inet_pton(AF_INET6, addr, &in6) == 1;
        }
        *close = ']';
        if (!ok) {
            snprintf(err, errlen, "bad listen address \"%s\": expected an IPv6 address "
                     "in the brackets, like [::1]:8080", buf);
            return -1;
        }
        *close = '\0';
        memcpy(a.host, host, strlen(host) + 1);
        *close = ']';
    } else {
        char *colon = strrchr(buf, ':');
        if (!colon) {
            snprintf(err, errlen, "bad listen address \"%s\": no port: %s", buf,
                     listen_expect);
            return -1;
        }
        size_t hlen = (size_t)(colon - buf);
        if (memchr(buf, ':', hlen)) {
            snprintf(err, errlen, "bad listen address \"%s\": an IPv6 address needs "
                     "brackets, like [::1]:8080", buf);
            return -1;
        }
        /* "" and "*" both mean any address. */
        if (!(hlen == 1 && buf[0] == '*')) {
            for (size_t i = 0; i < hlen; i++)
                if (!is_host_char(buf[i])) {
                    snprintf(err, errlen, "bad listen address \"%s\": bad character in "
                             "host name: %s", buf, listen_expect);
                    return -1;
                }
            if (hlen >= sizeof a.host) {
                snprintf(err, errlen, "bad listen address \"%.40s...\": host name is "
                         "too long", buf);
                return -1;
            }
            memcpy(a.host, buf, hlen);
            a.host[hlen] = '\0';
        }
        port = colon + 1;
    }

    /* Port 0 is legal: the kernel picks one (tests use it). */
    uint64_t p;
    const char *ps = port;
    if (scan_u64(&ps, &p) < 0 || *ps != '\0' || p > 65535) {
        snprintf(err, errlen, "bad listen address \"%s\": port \"%s\" is not a number "
                 "in 0..65535", buf, port);
        return -1;
    }
    a.port = (unsigned)p;
    *out = a;
    return 0;
}

int rm_parse_listen(const char *s, struct rm_listen_addr *out, size_t max, size_t *n,
                    char *err, size_t errlen)
{
    /* Two passes, validate everything then store, so out and *n only change
     * when the whole list is good. */
    for (int store = 0; store <= 1; store++) {
        size_t count = 0;
        const char *p = s;
        for (;;) {
            const char *comma = strchr(p, ',');
            const char *end = comma ? comma : p + strlen(p);
            const char *b = skip_blanks(p);
            const char *e = end;
            while (e > b && is_blank(e[-1]))
                e--;
            if (b == e) {
                if (!comma && count == 0)
                    snprintf(err, errlen, "listen is empty: expected at least one "
                             "address like 127.0.0.1:8080");
                else
                    snprintf(err, errlen, "empty address in the listen list "
                             "(a stray comma?): %s", listen_expect);
                return -1;
            }
            if (count == max) {
                snprintf(err, errlen, "too many listen addresses: at most %zu", max);
                return -1;
            }
            struct rm_listen_addr a;
            if (parse_listen_one(b, (size_t)(e - b), &a, err, errlen) < 0)
                return -1;
            if (store)
                out[count] = a;
            count++;
            if (!comma)
                break;
            p = comma + 1;
        }
        if (store)
            *n = count;
    }
    return 0;
}

/* ----------------------------------------------------------------- parser */

enum section { SEC_NONE, SEC_GLOBAL, SEC_POOL };

struct parser {
    struct rm_config *cfg;
    const char *name;           /* file name, for messages */
    const char *text;           /* whole input, for the syntax error hint */
    const char *pos, *end;      /* what the reader has not handed out yet */
    unsigned lineno;            /* line the reader handed to inih last */

    enum section section;
    char section_label[64];     /* "[ringmaster]" or "[pool NAME]" */
    size_t pool_idx;            /* SEC_POOL: index into cfg->pools */
    unsigned global_line;       /* line of [ringmaster], 0 if none */

    /* Line each key was set on (0: not set), to refuse a key given twice and
     * to point cross-key errors at the right line. */
    unsigned global_seen[GK_COUNT];
    unsigned pool_seen[RM_MAX_POOLS][PK_COUNT];
    unsigned kv_line[RM_MAX_POOLS][RM_MAX_HANDLER_KEYS];

    char *err;
    size_t errlen;
    bool failed;
    unsigned err_line;          /* line of the recorded error */
};

static void write_err(char *err, size_t errlen, const char *file, unsigned line,
                      const char *msg)
{
    if (!err || errlen == 0)
        return;
    if (line)
        snprintf(err, errlen, "%s:%u: %s", file, line, msg);
    else
        snprintf(err, errlen, "%s: %s", file, msg);
}

/* Record an error (the first one only; line 0: about the whole file).
 * Returns 0, which is what inih wants from a handler that failed. */
__attribute__((format(printf, 3, 4)))
static int fail(struct parser *p, unsigned line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (p->failed)
        return 0;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->failed = true;
    p->err_line = line;
    write_err(p->err, p->errlen, p->name, line, msg);
    return 0;
}

static bool valid_pool_name(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len >= RM_POOL_NAME_MAX)
        return false;
    /* The name is a URL path segment (/v2/models/NAME): "." and ".." would
     * be folded away by every HTTP client. */
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; *s; s++)
        if (!is_host_char(*s))
            return false;
    return true;
}

static int open_pool(struct parser *p, const char *name)
{
    struct rm_config *cfg = p->cfg;

    if (*name == '\0')
        return fail(p, p->lineno, "[pool] needs a name, like [pool echo]"), -1;
    if (!valid_pool_name(name))
        return fail(p, p->lineno, "bad pool name \"%s\": expected 1..%d characters of "
                    "A-Z a-z 0-9 _ . -", name, RM_POOL_NAME_MAX - 1), -1;
    for (size_t i = 0; i < cfg->npools; i++)
        if (strcmp(cfg->pools[i].name, name) == 0)
            return fail(p, p->lineno, "duplicate [pool %s] (first at line %u)", name,
                        cfg->pools[i].line), -1;
    if (cfg->npools == RM_MAX_POOLS)
        return fail(p, p->lineno, "too many pools: at most %d", RM_MAX_POOLS), -1;

    struct rm_pool_config *pool = &cfg->pools[cfg->npools];
    memset(pool, 0, sizeof *pool);
    apply_defaults(pool, pool_keys, ARRAY_LEN(pool_keys));
    memcpy(pool->name, name, strlen(name) + 1);
    pool->line = p->lineno;

    p->pool_idx = cfg->npools++;
    p->section = SEC_POOL;
    snprintf(p->section_label, sizeof p->section_label, "[pool %s]", name);
    return 0;
}

/* A "[...]" line, before inih sees it. Returns 0, or -1 after fail(). */
static int on_section_line(struct parser *p, const char *line)
{
    const char *close = strchr(line, ']');
    if (!close)
        return 0;  /* inih reports it as a syntax error */

    /* inih ignores anything after ']'; "[pool a] workers = 2" is a mistake. */
    const char *t = skip_blanks(close + 1);
    if (*t != '\0' && *t != ';')
        return fail(p, p->lineno, "unexpected text \"%s\" after the section header", t),
               -1;

    char name[256];
    const char *b = skip_blanks(line + 1);
    size_t len = (size_t)(close - b);
    while (len > 0 && is_blank(b[len - 1]))
        len--;
    if (len >= sizeof name)
        len = sizeof name - 1;  /* cannot happen: a line is shorter than that */
    memcpy(name, b, len);
    name[len] = '\0';

    if (strcmp(name, "ringmaster") == 0) {
        if (p->global_line)
            return fail(p, p->lineno, "duplicate [ringmaster] section (first at line %u)",
                        p->global_line), -1;
        p->global_line = p->lineno;
        p->section = SEC_GLOBAL;
        snprintf(p->section_label, sizeof p->section_label, "[ringmaster]");
        return 0;
    }
    if (strncmp(name, "pool", 4) == 0 && (name[4] == '\0' || is_blank(name[4])))
        return open_pool(p, skip_blanks(name + 4));
    return fail(p, p->lineno, "unknown section [%s]: expected [ringmaster] or "
                "[pool NAME]", name), -1;
}

/* inih's reader: one line per call, like fgets. See the top of the file. */
static char *read_line(char *buf, int num, void *stream)
{
    struct parser *p = stream;

    if (p->failed || p->pos >= p->end || num < 2)
        return NULL;

    const char *line = p->pos;
    const char *nl = memchr(line, '\n', (size_t)(p->end - line));
    const char *eol = nl ? nl : p->end;
    p->pos = nl ? nl + 1 : p->end;
    p->lineno++;

    if (memchr(line, '\0', (size_t)(eol - line))) {
        fail(p, p->lineno, "line contains a NUL byte");
        return NULL;
    }
    if (p->lineno == 1 && eol - line >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3;  /* UTF-8 BOM, so "[ringmaster]" is seen as a section */
    /* Dropping leading blanks turns off inih's multi-line values. */
    while (line < eol && (*line == ' ' || *line == '\t'))
        line++;

    size_t len = (size_t)(eol - line);
    if (len > (size_t)num - 1) {
        fail(p, p->lineno, "line is too long: at most %d characters", num - 1);
        return NULL;
    }
    memcpy(buf, line, len);
    buf[len] = '\0';

    if (buf[0] == '[' && on_section_line(p, buf) < 0)
        return NULL;
    return buf;
}

/* A known key: refuse it twice, parse it, remember the line. */
static int set_known(struct parser *p, void *base, const struct key_desc *d,
                     unsigned *seen, const char *value)
{
    char msg[768];

    if (*seen)
        return fail(p, p->lineno, "%s is given twice in %s (first at line %u)", d->key,
                    p->section_label, *seen);
    if (set_value(base, d, value, msg, sizeof msg) < 0)
        return fail(p, p->lineno, "%s", msg);
    *seen = p->lineno;
    return 1;
}

static int set_global(struct parser *p, const char *name, const char *value)
{
    struct rm_config *cfg = p->cfg;
    int i = find_key(global_keys, ARRAY_LEN(global_keys), name);

    if (i < 0) {
        if (find_key(pool_keys, ARRAY_LEN(pool_keys), name) >= 0)
            return fail(p, p->lineno, "unknown key \"%s\" in [ringmaster]: %s is a pool "
                        "key, it belongs in a [pool NAME] section", name, name);
        char known[512] = "";
        size_t off = 0;
        for (size_t k = 0; k < ARRAY_LEN(global_keys) && off < sizeof known; k++)
            off += (size_t)snprintf(known + off, sizeof known - off, "%s%s",
                                    k ? ", " : "", global_keys[k].key);
        return fail(p, p->lineno, "unknown key \"%s\" in [ringmaster]: expected one of %s",
                    name, known);
    }
    if (!set_known(p, cfg, &global_keys[i], &p->global_seen[i], value))
        return 0;

    if (i == GK_listen) {
        char msg[768];
        if (rm_parse_listen(cfg->listen, cfg->listen_addrs, RM_MAX_LISTEN, &cfg->nlisten,
                            msg, sizeof msg) < 0)
            return fail(p, p->lineno, "%s", msg);
    }
    if (i == GK_metrics_listen) {
        char msg[768];
        cfg->nmetrics = 0;
        if (strcmp(cfg->metrics_listen, "off") != 0 &&
            rm_parse_listen(cfg->metrics_listen, cfg->metrics_addrs, RM_MAX_LISTEN, &cfg->nmetrics,
                            msg, sizeof msg) < 0)
            return fail(p, p->lineno, "metrics_listen (addresses or off): %s", msg);
    }
    return 1;
}

static int set_pool(struct parser *p, const char *name, const char *value)
{
    struct rm_pool_config *pool = &p->cfg->pools[p->pool_idx];
    int i = find_key(pool_keys, ARRAY_LEN(pool_keys), name);

    if (i >= 0)
        return set_known(p, pool, &pool_keys[i], &p->pool_seen[p->pool_idx][i], value);

    /* Not ours: the handler's (model path, language, ...). */
    for (size_t k = 0; k < pool->nkv; k++)
        if (strcmp(pool->kv_store[k][0], name) == 0)
            return fail(p, p->lineno, "%s is given twice in %s (first at line %u)", name,
                        p->section_label, p->kv_line[p->pool_idx][k]);
    if (pool->nkv == RM_MAX_HANDLER_KEYS)
        return fail(p, p->lineno, "too many handler keys in %s: at most %d (\"%s\" is not "
                    "a ringmaster key, so it would go to the handler)", p->section_label,
                    RM_MAX_HANDLER_KEYS, name);
    if (strlen(name) >= sizeof pool->kv_store[0][0] ||
        strlen(value) >= sizeof pool->kv_store[0][1])
        return fail(p, p->lineno, "handler key %s in %s is too long: at most %zu "
                    "characters for the key and for the value", name, p->section_label,
                    sizeof pool->kv_store[0][0] - 1);

    size_t k = pool->nkv++;
    memcpy(pool->kv_store[k][0], name, strlen(name) + 1);
    memcpy(pool->kv_store[k][1], value, strlen(value) + 1);
    pool->kv[k].key = pool->kv_store[k][0];
    pool->kv[k].value = pool->kv_store[k][1];
    p->kv_line[p->pool_idx][k] = p->lineno;
    pool->kv_line[k] = p->lineno;
    return 1;
}

/* inih's handler. section is ignored: the reader tracks sections (inih's
 * copy may be truncated). Returns 1, or 0 after fail(). */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;

    (void)section;
    if (p->failed)
        return 0;
    if (*name == '\0')
        return fail(p, p->lineno, "missing key name before '='");
    switch (p->section) {
    case SEC_GLOBAL:
        return set_global(p, name, value);
    case SEC_POOL:
        return set_pool(p, name, value);
    case SEC_NONE:
        break;
    }
    return fail(p, p->lineno, "key \"%s\" is outside any section: put it under "
                "[ringmaster] or a [pool NAME] section", name);
}

/* First line that is set, for errors about a value that may be a default. */
static unsigned first_set(unsigned a, unsigned b, unsigned fallback)
{
    return a ? a : b ? b : fallback;
}

/*
 * Resolve user/group into id. A user alone runs as that user's primary
 * group. Changing identity needs root: refused otherwise, unless it is
 * the identity we already have. Returns NULL or a message (static).
 */
static const char *resolve_identity(const char *user, const char *group, struct rm_identity *id, char *msg,
                                    size_t len)
{
    memset(id, 0, sizeof *id);
    if (!user[0] && !group[0])
        return NULL;
    id->uid = geteuid();
    id->gid = getegid();
    if (user[0]) {
        errno = 0;
        const struct passwd *pw = getpwnam(user);
        if (!pw) {
            snprintf(msg, len, "user \"%s\": %s", user, errno ? strerror(errno) : "no such user");
            return msg;
        }
        id->uid = pw->pw_uid;
        id->gid = pw->pw_gid;
    }
    if (group[0]) {
        errno = 0;
        const struct group *gr = getgrnam(group);
        if (!gr) {
            snprintf(msg, len, "group \"%s\": %s", group, errno ? strerror(errno) : "no such group");
            return msg;
        }
        id->gid = gr->gr_gid;
    }
    if (geteuid() != 0 && (id->uid != geteuid() || id->gid != getegid())) {
        snprintf(msg, len, "user/group \"%s\"/\"%s\" needs ringmaster to start as root", user, group);
        return msg;
    }
    id->drop = true;
    return NULL;
}

/* The folder of a configuration file (absolute when it exists). */
static void config_dir_of(const char *path, char *dir, size_t len)
{
    char abs[PATH_MAX];
    const char *p = realpath(path, abs) ? abs : path;
    const char *slash = strrchr(p, '/');
    if (!slash)
        snprintf(dir, len, ".");
    else if (slash == p)
        snprintf(dir, len, "/");
    else
        snprintf(dir, len, "%.*s", (int)(slash - p), p);
}

/* Levenshtein distance, for "did you mean" (short keys only). */
static unsigned edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    unsigned d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            unsigned c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            unsigned x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
            d[i][j] = c < x ? (c < y ? c : y) : (x < y ? x : y);
        }
    return d[la][lb];
}

int rm_config_check_handler_keys(const struct rm_config *cfg, size_t pi, const char *handler_name,
                                 const char *const *keys, char *err, size_t errlen)
{
    const struct rm_pool_config *pool = &cfg->pools[pi];
    return rm_check_handler_keys(cfg->path, pool->name, pool->kv, pool->kv_line, pool->nkv, handler_name, keys,
                                 err, errlen);
}

int rm_check_handler_keys(const char *file, const char *pool_name, const struct rm_handler_kv *kv,
                          const unsigned *kv_line, size_t nkv, const char *handler_name,
                          const char *const *keys, char *err, size_t errlen)
{
    if (!keys)
        return 0;
    bool any = false;
    for (const char *const *k = keys; *k; k++)
        any |= strcmp(*k, "*") == 0;
    for (size_t i = 0; i < nkv; i++) {
        const char *name = kv[i].key;
        bool declared = false;
        for (const char *const *k = keys; *k; k++)
            declared |= strcmp(*k, name) == 0;
        if (declared)
            continue;
        const char *near = NULL;
        unsigned best = 3;
        for (size_t k = 0; k < ARRAY_LEN(pool_keys); k++) {
            unsigned dist = edit_distance(name, pool_keys[k].key);
            if (dist < best && dist * 3 <= strlen(pool_keys[k].key)) {
                best = dist;
                near = pool_keys[k].key;
            }
        }
        if (any && !near)
            continue;
        for (const char *const *k = keys; *k; k++) {
            unsigned dist = strcmp(*k, "*") ? edit_distance(name, *k) : 99;
            if (dist < best && dist * 3 <= strlen(*k)) {
                best = dist;
                near = *k;
            }
        }
        char takes[512] = "";
        size_t off = 0;
        for (const char *const *k = keys; *k && off < sizeof takes; k++)
            if (strcmp(*k, "*") != 0)
                off += (size_t)snprintf(takes + off, sizeof takes - off, "%s%s", off ? ", " : "", *k);
        char known[768] = "";
        off = 0;
        for (size_t k = 0; k < ARRAY_LEN(pool_keys) && off < sizeof known; k++)
            off += (size_t)snprintf(known + off, sizeof known - off, "%s%s", k ? ", " : "", pool_keys[k].key);
        char hint[96] = "";
        if (near)
            snprintf(hint, sizeof hint, "did you mean \"%s\"? ", near);
        char msg[1536];
        snprintf(msg, sizeof msg,
                 "unknown key \"%s\" in [pool %s]: %sit is neither a pool key (%s) nor one that handler %s "
                 "takes (%s)", name, pool_name, hint, known, handler_name, takes[0] ? takes : "none");
        write_err(err, errlen, file, kv_line ? kv_line[i] : 0, msg);
        return -1;
    }
    return 0;
}

int rm_tensor_spec_json(const char *spec, char *out, size_t outlen, char *err, size_t errlen)
{
    static const char *const types[] = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                                        "INT64", "FP16", "FP32", "FP64", "BYTES"};
    size_t used = 0;
    int n = snprintf(out, outlen, "[");
    used = n > 0 ? (size_t)n : 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    int count = 0;
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char name[64], type[16], dims[64], extra[8];
        int k = sscanf(item, " %63s %15s %63s %7s", name, type, dims, extra);
        if (k != 3) {
            snprintf(err, errlen, "\"%s\": expected \"name DATATYPE dims\" (e.g. \"image FP32 -1x64\")", item);
            return -1;
        }
        for (const char *c = name; *c; c++)
            if (!(*c == '_' || *c == '-' || *c == '.' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                  (*c >= 'A' && *c <= 'Z'))) {
                snprintf(err, errlen, "tensor name \"%s\": letters, digits, '_', '-', '.' only", name);
                return -1;
            }
        bool known = false;
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            known |= strcmp(types[t], type) == 0;
        if (!known) {
            snprintf(err, errlen, "tensor %s: unknown datatype %s (BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, "
                     "FP64, BYTES)", name, type);
            return -1;
        }
        char shape[128] = "";
        size_t sl = 0;
        for (char *s2 = NULL, *d = strtok_r(dims, "x", &s2); d; d = strtok_r(NULL, "x", &s2)) {
            char *end;
            long v = strtol(d, &end, 10);
            if (*end || end == d || v < -1 || v > 1000000000L) {
                snprintf(err, errlen, "tensor %s: dimension \"%s\" is not a number >= -1", name, d);
                return -1;
            }
            sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%s%ld", sl ? "," : "", v);
            if (sl >= sizeof shape) {
                snprintf(err, errlen, "tensor %s: too many dimensions", name);
                return -1;
            }
        }
        n = snprintf(out + used, outlen - used, "%s{\"name\":\"%s\",\"datatype\":\"%s\",\"shape\":[%s]}",
                     count ? "," : "", name, type, shape);
        if (n < 0 || (size_t)n >= outlen - used) {
            snprintf(err, errlen, "tensor list too long");
            return -1;
        }
        used += (size_t)n;
        count++;
    }
    if (!count) {
        snprintf(err, errlen, "no tensor given");
        return -1;
    }
    if (used + 2 > outlen) {
        snprintf(err, errlen, "tensor list too long");
        return -1;
    }
    out[used++] = ']';
    out[used] = '\0';
    return 0;
}

/* Checks across keys, once the whole file is read. Returns 0 or -1. */
static int validate(struct parser *p)
{
    struct rm_config *cfg = p->cfg;
    char a[32], b[32];

    if (cfg->npools == 0)
        return fail(p, 0, "no [pool NAME] section: at least one pool is needed, "
                    "e.g. [pool echo] with handler = echo"), -1;

    /* A timeout at or below the interval kills every worker between two
     * heartbeats. */
    if (cfg->heartbeat_timeout <= cfg->heartbeat_interval) {
        format_value(CT_DUR, cfg->heartbeat_timeout, a, sizeof a);
        format_value(CT_DUR, cfg->heartbeat_interval, b, sizeof b);
        return fail(p, first_set(p->global_seen[GK_heartbeat_timeout],
                                 p->global_seen[GK_heartbeat_interval], p->global_line),
                    "heartbeat_timeout (%s) must be greater than heartbeat_interval (%s)",
                    a, b), -1;
    }
    /* The daemon does not chdir anywhere meaningful: a relative runtime_dir
     * would land wherever it was started from. */
    if (cfg->runtime_dir[0] != '/')
        return fail(p, first_set(p->global_seen[GK_runtime_dir], 0, p->global_line),
                    "runtime_dir must be an absolute path, got \"%s\"", cfg->runtime_dir),
               -1;

    /* metrics_listen must not take an address of listen: the split would
     * be a lie (rm_listen_check also compares resolved addresses). */
    for (size_t m = 0; m < cfg->nmetrics; m++)
        for (size_t l = 0; l < cfg->nlisten; l++) {
            const struct rm_listen_addr *ma = &cfg->metrics_addrs[m], *la = &cfg->listen_addrs[l];
            if (ma->kind == la->kind && (ma->kind == RM_LISTEN_UNIX ? strcmp(ma->path, la->path) == 0
                                       : ma->port == la->port && strcmp(ma->host, la->host) == 0))
                return fail(p, p->global_seen[GK_metrics_listen],
                            "metrics_listen repeats an address of listen: give /metrics its own address, "
                            "or metrics_listen = off to serve it on listen"),
                       -1;
        }

    /* access_log: a path (relative to the file's folder) or off */
    if (strcmp(cfg->access_log, "off") != 0 && cfg->access_log[0] != '/') {
        if (!cfg->access_log[0])
            return fail(p, p->global_seen[GK_access_log], "access_log is empty: a file or off"), -1;
        char dir[4096], full[sizeof cfg->access_log];
        config_dir_of(cfg->path, dir, sizeof dir);
        int n = snprintf(full, sizeof full, "%s/%s", dir, cfg->access_log);
        if (n < 0 || (size_t)n >= sizeof full)
            return fail(p, p->global_seen[GK_access_log], "access_log path too long"), -1;
        memcpy(cfg->access_log, full, (size_t)n + 1);
    }
    char idmsg[320];
    if (resolve_identity(cfg->user, cfg->group, &cfg->gw_id, idmsg, sizeof idmsg))
        return fail(p, first_set(p->global_seen[GK_user], p->global_seen[GK_group], p->global_line), "%s",
                    idmsg), -1;

    for (size_t i = 0; i < cfg->npools; i++) {
        struct rm_pool_config *pool = &cfg->pools[i];
        const unsigned *seen = p->pool_seen[i];
        char tj[512], terr[256];
        if (pool->inputs[0] && rm_tensor_spec_json(pool->inputs, tj, sizeof tj, terr, sizeof terr) < 0)
            return fail(p, first_set(seen[PK_inputs], 0, pool->line), "[pool %s]: inputs: %s", pool->name, terr), -1;
        if (pool->outputs[0] && rm_tensor_spec_json(pool->outputs, tj, sizeof tj, terr, sizeof terr) < 0)
            return fail(p, first_set(seen[PK_outputs], 0, pool->line), "[pool %s]: outputs: %s", pool->name, terr),
                   -1;
        if (resolve_identity(pool->user, pool->group, &pool->id, idmsg, sizeof idmsg))
            return fail(p, first_set(seen[PK_user], seen[PK_group], pool->line), "[pool %s]: %s", pool->name,
                        idmsg), -1;

        if (pool->handler[0] == '\0')
            return fail(p, first_set(seen[PK_handler], 0, pool->line),
                        "handler is missing or empty in [pool %s]: expected a built-in handler name "
                        "(echo, chaos, ocr, python) or the path to a handler .so", pool->name), -1;
        /* A relative path to a handler .so starts at the file's folder,
         * wherever ringmaster was started. */
        if (strchr(pool->handler, '/') && pool->handler[0] != '/') {
            char dir[4096];
            config_dir_of(cfg->path, dir, sizeof dir);
            char full[sizeof pool->handler];
            int n = snprintf(full, sizeof full, "%s/%s", dir, pool->handler);
            if (n < 0 || (size_t)n >= sizeof full)
                return fail(p, seen[PK_handler], "handler path too long in [pool %s]", pool->name), -1;
            memcpy(pool->handler, full, (size_t)n + 1);
        }
        if (pool->workers + pool->spares > RM_POOL_MAX_PROCS)
            return fail(p, first_set(seen[PK_spares], seen[PK_workers], pool->line),
                        "workers + spares is %u in [pool %s]: at most %u", 
                        pool->workers + pool->spares, pool->name, RM_POOL_MAX_PROCS), -1;
    }
    return 0;
}

/* The syntax errors inih finds itself, with a hint from the line's text. */
static void syntax_error(struct parser *p, unsigned line)
{
    const char *s = p->text, *end = p->end;

    for (unsigned n = 1; n < line && s < end; n++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        s = nl ? nl + 1 : end;
    }
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    int len = (int)((nl ? nl : end) - s);
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    if (len > 60)
        len = 60;

    p->failed = false;  /* it comes first: replace what we had */
    if (len > 0 && s[0] == '[')
        fail(p, line, "syntax error in \"%.*s\": a section header needs a closing ']' "
             "(before any ';' comment)", len, s);
    else
        fail(p, line, "syntax error in \"%.*s\": expected \"key = value\", \"[section]\" "
             "or a comment", len, s);
}

/* Parse text into cfg (from the defaults up). cfg is scratch. */
static int parse_text(struct rm_config *cfg, const char *name, const char *text,
                      size_t len, char *err, size_t errlen)
{
    struct parser *p = calloc(1, sizeof *p);  /* ~6 KiB of bookkeeping */
    if (!p) {
        write_err(err, errlen, name, 0, "out of memory");
        return -1;
    }
    p->cfg = cfg;
    p->name = name;
    p->text = text;
    p->pos = text;
    p->end = text + len;
    p->err = err;
    p->errlen = errlen;

    rm_config_defaults(cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", name);

    /* Lines of any length: inih's line buffer on the heap, as large as the
     * whole file (at most RM_CONFIG_MAX_BYTES). Values keep their own
     * limits, each with its message. */
    ini_use_stack = false;
    ini_allow_realloc = false;
    ini_max_line = (int)(len + 4 > 256 ? len + 4 : 256);
    ini_initial_alloc = ini_max_line;
    int r = ini_parse_stream(read_line, p, on_key, p);
    if (r < 0) {
        p->failed = false;
        fail(p, 0, "the INI parser failed (error %d)", r);
    } else if (r > 0 && (!p->failed || (unsigned)r < p->err_line)) {
        syntax_error(p, (unsigned)r);
    }
    int rc = (p->failed || validate(p) < 0) ? -1 : 0;
    free(p);
    return rc;
}

/* Parse into a private scratch copy and only copy it out when it is good,
 * so a bad file leaves cfg exactly as it was (stronger than config.h
 * promises). */
static int load_text(struct rm_config *cfg, const char *name, const char *text,
                     size_t len, char *err, size_t errlen)
{
    struct rm_config *scratch = malloc(sizeof *scratch);
    if (!scratch) {
        write_err(err, errlen, name, 0, "out of memory");
        return -1;
    }
    int rc = parse_text(scratch, name, text, len, err, errlen);
    if (rc == 0)
        rm_config_copy(cfg, scratch);
    free(scratch);
    return rc;
}

/* ------------------------------------------------------------- public API */

void rm_config_defaults(struct rm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    apply_defaults(cfg, global_keys, ARRAY_LEN(global_keys));
    int rc = rm_parse_listen(cfg->listen, cfg->listen_addrs, RM_MAX_LISTEN,
                             &cfg->nlisten, NULL, 0);
    assert(rc == 0);
    (void)rc;
}

void rm_config_copy(struct rm_config *dst, const struct rm_config *src)
{
    if (dst == src)
        return;
    memcpy(dst, src, sizeof *dst);
    for (size_t i = 0; i < dst->npools; i++) {
        struct rm_pool_config *pool = &dst->pools[i];
        for (size_t k = 0; k < pool->nkv; k++) {
            pool->kv[k].key = pool->kv_store[k][0];
            pool->kv[k].value = pool->kv_store[k][1];
        }
    }
}

int rm_config_load_string(struct rm_config *cfg, const char *name, const char *text,
                          char *err, size_t errlen)
{
    if (!name)
        name = "<string>";
    return load_text(cfg, name, text, strlen(text), err, errlen);
}

int rm_config_load(struct rm_config *cfg, const char *path, char *err, size_t errlen)
{
    char msg[256];
    /* O_NONBLOCK: a FIFO must not hang the check; only a regular file is
     * a configuration. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(msg, sizeof msg, "cannot open: %s", strerror(errno));
        write_err(err, errlen, path, 0, msg);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(msg, sizeof msg, "not a regular file (%s)",
                 S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" :
                 S_ISCHR(st.st_mode) ? "a character device" : S_ISSOCK(st.st_mode) ? "a socket" : "special");
        write_err(err, errlen, path, 0, msg);
        close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        snprintf(msg, sizeof msg, "fdopen: %s", strerror(errno));
        write_err(err, errlen, path, 0, msg);
        close(fd);
        return -1;
    }

    /* Slurp it: the reader and the syntax error hint work on memory. */
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    int rc = -1;
    if (!text) {
        write_err(err, errlen, path, 0, "out of memory");
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (len > RM_CONFIG_MAX_BYTES) {
                snprintf(msg, sizeof msg, "file is too large: at most %u bytes",
                         RM_CONFIG_MAX_BYTES);
                write_err(err, errlen, path, 0, msg);
                goto out;
            }
            char *bigger = realloc(text, cap * 2);
            if (!bigger) {
                write_err(err, errlen, path, 0, "out of memory");
                goto out;
            }
            text = bigger;
            cap *= 2;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {  /* e.g. EISDIR: fopen() accepts a directory */
                snprintf(msg, sizeof msg, "cannot read: %s", strerror(errno));
                write_err(err, errlen, path, 0, msg);
                goto out;
            }
            break;
        }
    }
    rc = load_text(cfg, path, text, len, err, errlen);
out:
    free(text);
    fclose(f);
    return rc;
}

const struct rm_pool_config *rm_config_pool(const struct rm_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->npools; i++)
        if (strcmp(cfg->pools[i].name, name) == 0)
            return &cfg->pools[i];
    return NULL;
}
