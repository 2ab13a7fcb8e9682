/*
 * http.c - a connection's input and output: llhttp callbacks, reading,
 * parsing, the strict checks of RFC 9112, queueing and writing answers,
 * lingering close.
 *
 * The HTTP syntax is llhttp's (built in strict mode: docs/http.md); this
 * file collects what the callbacks hand over (URL, Host, Content-Type,
 * Expect, body), enforces the limits and the rules llhttp leaves to its
 * user (Host, the version, Transfer-Encoding on HTTP/1.0, the size of the
 * headers). Callbacks never do I/O: they fill the connection and pause the
 * parser at the end of the headers and at the end of a message. The caller
 * (conn_parse) then checks the headers (request_checked) or dispatches the
 * message. The parser stays paused until the message's answer is queued
 * (gw_respond), which keeps pipelined answers in order; after an answer
 * that closes the connection it is never resumed, so nothing pipelined
 * behind a rejected request is parsed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/internal.h"
#include "shm/segment.h"

enum { GW_H_NONE = 0, GW_H_CTYPE, GW_H_EXPECT, GW_H_HOST, GW_H_TE };

#define ZEROCOPY_MIN 16384  /* bodies this large go out by writev, not copied first */

void gw_req_reset(struct gw_conn *c)
{
    c->method_known = false;
    c->head_bytes = 0;
    c->meta_bytes = 0;
    c->url_len = 0;
    c->url_too_long = false;
    c->version_seen = false;
    c->hfield_len = 0;
    c->hfield_long = false;
    c->cur_hdr = GW_H_NONE;
    c->host_count = 0;
    c->host_len = 0;
    c->host_long = false;
    c->has_te = false;
    c->te_len = 0;
    c->te_long = false;
    c->ctype_len = 0;
    c->ctype[0] = '\0';
    c->ctype_bad = false;
    c->has_ctype = false;
    c->expect_len = 0;
    c->early_status = 0;
    c->early_msg = NULL;
    c->route = GW_R_NONE;
    c->pool = -1;
    c->store_body = false;
    c->body_limit = 0;
    c->body_seen = 0;
    c->body.len = 0;
    c->keepalive = false;
    c->head = false;
    c->msg_done = false;
    c->hdrs_done = false;
}

static bool eq_ci(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* An error found while parsing: answered (then closed) once the parser
 * returns. The callback returns -1 so the parser stops at once. */
static int early(struct gw_conn *c, unsigned status, const char *msg)
{
    c->early_status = status;
    c->early_msg = msg;
    return -1;
}

static int too_large(struct gw_conn *c)
{
    if (c->store_body && c->pool >= 0) /* store_body: an inference route (infer, generate) */
        gw_count(c->gw, (unsigned)c->pool, RM_OUT_TOO_LARGE);
    return early(c, 413, c->store_body ? "request body larger than the model's max_request_size"
                                       : "request body too large");
}

static bool version_supported(const llhttp_t *p)
{
    return p->http_major == 1 && (p->http_minor == 0 || p->http_minor == 1);
}

/* Chunk extensions and trailers are not stored, only counted: they get the
 * limit of the headers, so a body cannot be made of them endlessly. */
static int meta(struct gw_conn *c, size_t len)
{
    c->meta_bytes += len;
    if (c->meta_bytes > c->gw->max_header_size)
        return early(c, 431, "chunk extensions or trailers larger than max_header_size");
    return 0;
}

/* ------------------------------------------------------------------ callbacks */

static int cb_message_begin(llhttp_t *p)
{
    struct gw_conn *c = p->data;
    uint64_t head = c->head_bytes;  /* counted by conn_parse since the last message */
    gw_req_reset(c);
    c->head_bytes = head;
    c->phase = GW_HEADERS;
    c->phase_start_ns = c->gw->now;
    c->req_start_ns = c->gw->now;
    c->attempt = 0;
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t len)
{
    struct gw_conn *c = p->data;
    c->method = p->method;
    c->method_known = true;
    if (c->url_too_long || len >= sizeof c->url - c->url_len) {
        c->url_too_long = true;
        return 0;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

/*
 * The version's first bytes: the five before them must be "HTTP/". llhttp
 * also takes "RTSP/" and "ICE/" request lines (it parses those protocols
 * too) and has no callback for the protocol name, so it is read here from
 * the input (the bytes of an earlier llhttp_execute call from c->tail).
 */
static int cb_version(llhttp_t *p, const char *at, size_t len)
{
    struct gw_conn *c = p->data;
    if (c->version_seen)
        return 0;
    c->version_seen = true;
    char proto[5];
    size_t here = (size_t)(at - c->exec_base);  /* bytes of this call before the version */
    size_t from_here = here < sizeof proto ? here : sizeof proto;
    size_t from_tail = sizeof proto - from_here;
    if (from_tail > c->tail_len)
        return early(c, 400, "malformed request: the protocol is not HTTP");
    memcpy(proto, c->tail + c->tail_len - from_tail, from_tail);
    memcpy(proto + from_tail, at - from_here, from_here);
    if (memcmp(proto, "HTTP/", sizeof proto) != 0)
        return early(c, 400, "malformed request: the protocol is not HTTP");
    return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct gw_conn *c = p->data;
    if (c->phase != GW_HEADERS)
        return meta(c, len); /* a chunked trailer: never taken for a request header */
    /* The request line is complete (llhttp checked that the version is
     * DIGIT.DIGIT followed by CRLF): a version we do not speak is 505
     * before any header is looked at. */
    if (!version_supported(p))
        return early(c, 505, "HTTP version not supported");
    if (c->hfield_long || len >= sizeof c->hfield - c->hfield_len) {
        c->hfield_long = true;
        return 0;
    }
    memcpy(c->hfield + c->hfield_len, at, len);
    c->hfield_len += len;
    return 0;
}

static int cb_header_field_complete(llhttp_t *p)
{
    struct gw_conn *c = p->data;
    if (c->phase != GW_HEADERS)
        return 0;
    c->cur_hdr = GW_H_NONE;
    if (c->hfield_long)
        return 0;
    if (c->hfield_len == 0)  /* ": value": llhttp 8 lets an empty name through */
        return early(c, 400, "malformed request: empty header name");
    if (eq_ci(c->hfield, c->hfield_len, "content-type")) {
        if (c->has_ctype)
            c->ctype_bad = true;  /* sent twice */
        c->has_ctype = true;
        c->ctype_len = 0;
        c->cur_hdr = GW_H_CTYPE;
    } else if (eq_ci(c->hfield, c->hfield_len, "expect")) {
        c->expect_len = 0;
        c->cur_hdr = GW_H_EXPECT;
    } else if (eq_ci(c->hfield, c->hfield_len, "host")) {
        c->host_count++;
        c->host_len = 0;
        c->cur_hdr = GW_H_HOST;
    } else if (eq_ci(c->hfield, c->hfield_len, "transfer-encoding")) {
        if (c->has_te && c->te_len < sizeof c->te - 1)
            c->te[c->te_len++] = ',';  /* a second line continues the list */
        c->has_te = true;
        c->cur_hdr = GW_H_TE;
    }
    return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct gw_conn *c = p->data;
    if (c->phase != GW_HEADERS)
        return meta(c, len); /* trailer */
    switch (c->cur_hdr) {
    case GW_H_CTYPE:
        if (len > RM_SHM_CTYPE - 1 - c->ctype_len) {
            c->ctype_bad = true;
        } else {
            memcpy(c->ctype + c->ctype_len, at, len);
            c->ctype_len += len;
        }
        break;
    case GW_H_EXPECT:
        if (len >= sizeof c->expect - c->expect_len) {
            c->expect_len = sizeof c->expect;  /* too long: not 100-continue */
        } else {
            memcpy(c->expect + c->expect_len, at, len);
            c->expect_len += len;
        }
        break;
    case GW_H_HOST:
        if (c->host_long || len >= sizeof c->host - c->host_len) {
            c->host_long = true;
        } else {
            memcpy(c->host + c->host_len, at, len);
            c->host_len += len;
        }
        break;
    case GW_H_TE:
        if (c->te_long || len >= sizeof c->te - c->te_len) {
            c->te_long = true;
        } else {
            memcpy(c->te + c->te_len, at, len);
            c->te_len += len;
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Every coding of the Transfer-Encoding list is "chunked" (RFC 9112 7:
 * chunked is the only coding we decode; llhttp checks that it is the last
 * one). Empty list elements are allowed (RFC 9110 5.6.1). */
static bool te_only_chunked(const struct gw_conn *c)
{
    if (c->te_long)
        return false;
    size_t i = 0;
    while (i < c->te_len) {
        size_t j = i;
        while (j < c->te_len && c->te[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (c->te[a] == ' ' || c->te[a] == '\t'))
            a++;
        while (b > a && (c->te[b - 1] == ' ' || c->te[b - 1] == '\t'))
            b--;
        if (b > a && !eq_ci(c->te + a, b - a, "chunked"))
            return false;
        i = j + 1;
    }
    return true;
}

static int cb_header_value_complete(llhttp_t *p)
{
    struct gw_conn *c = p->data;
    c->cur_hdr = GW_H_NONE;
    c->hfield_len = 0;
    c->hfield_long = false;
    return 0;
}

/* Pause: conn_parse counts the header bytes and checks the request
 * (request_checked) before the parser reads on. */
static int cb_headers_complete(llhttp_t *p)
{
    struct gw_conn *c = p->data;
    c->phase = GW_BODY;
    c->hdrs_done = true;
    return HPE_PAUSED;
}

static int cb_chunk_extension(llhttp_t *p, const char *at, size_t len)
{
    return meta(p->data, len);
}

static int cb_body(llhttp_t *p, const char *at, size_t len)
{
    struct gw_conn *c = p->data;
    c->body_seen += len;
    if (c->body_seen > c->body_limit)
        return too_large(c);
    if (c->store_body) {
        gw_buf_put(&c->body, at, len);
        if (c->gw->body_bytes > GW_BODY_BUDGET)
            return early(c, 503, "too many uploads in progress"); /* chunked uploads */
    }
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    struct gw_conn *c = p->data;
    c->msg_done = true;
    c->keepalive = llhttp_should_keep_alive(p) && !p->upgrade;
    /* Hold the next pipelined message until this one is answered. */
    return HPE_PAUSED;
}

void gw_http_settings(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_message_begin = cb_message_begin;
    s->on_url = cb_url;
    s->on_version = cb_version;
    s->on_header_field = cb_header_field;
    s->on_header_field_complete = cb_header_field_complete;
    s->on_header_value = cb_header_value;
    s->on_header_value_complete = cb_header_value_complete;
    s->on_headers_complete = cb_headers_complete;
    s->on_chunk_extension_name = cb_chunk_extension;
    s->on_chunk_extension_value = cb_chunk_extension;
    s->on_body = cb_body;
    s->on_message_complete = cb_message_complete;
}

/* ------------------------------------------------------------------ the request, once its headers are in */

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static bool is_unreserved_or_sub_delim(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("-._~!$&'()*+,;=", ch) != NULL);
}

/*
 * Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): a bracketed
 * IPv6 address or IPvFuture, or a reg-name (unreserved, pct-encoded,
 * sub-delims; an IPv4 address is one); port: digits, at most 65535. An
 * empty value is valid (a target without authority).
 */
static bool host_valid(const char *h, size_t n)
{
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;  /* llhttp drops the leading whitespace of a value, not the trailing */
    size_t i = 0;
    if (n && h[0] == '[') {
        const char *end = memchr(h, ']', n);
        if (!end)
            return false;
        size_t alen = (size_t)(end - h) - 1;
        const char *a = h + 1;
        if (alen && (a[0] == 'v' || a[0] == 'V')) {  /* IPvFuture: "v" 1*HEXDIG "." 1*(unreserved / sub-delims / ":") */
            size_t k = 1;
            while (k < alen && is_hex(a[k]))
                k++;
            if (k == 1 || k >= alen || a[k] != '.' || k + 1 >= alen)
                return false;
            for (k++; k < alen; k++)
                if (!is_unreserved_or_sub_delim(a[k]) && a[k] != ':')
                    return false;
        } else {
            char addr[INET6_ADDRSTRLEN];
            struct in6_addr in6;
            if (alen == 0 || alen >= sizeof addr)
                return false;
            memcpy(addr, a, alen);
            addr[alen] = '\0';
            if (inet_pton(AF_INET6, addr, &in6) != 1)
                return false;
        }
        i = (size_t)(end - h) + 1;
    } else {
        for (; i < n && h[i] != ':'; i++) {
            if (h[i] == '%') {
                if (i + 2 >= n || !is_hex(h[i + 1]) || !is_hex(h[i + 2]))
                    return false;
                i += 2;
            } else if (!is_unreserved_or_sub_delim(h[i])) {
                return false;
            }
        }
    }
    if (i == n)
        return true;
    if (h[i] != ':')
        return false;
    unsigned long port = 0;
    for (i++; i < n; i++) {
        if (h[i] < '0' || h[i] > '9')
            return false;
        port = port * 10 + (unsigned long)(h[i] - '0');
        if (port > 65535)
            return false;
    }
    return true;
}

/*
 * The headers are complete (the parser is paused there): check the request
 * as RFC 9112 wants it, route it, and decide what its body is for before
 * any body byte is read. Returns 0 to read on, -1 with early_status set to
 * answer now and close.
 */
static int request_checked(struct gw *gw, struct gw_conn *c)
{
    llhttp_t *p = &c->parser;
    c->method = p->method;
    c->method_known = true;
    c->head = p->method == HTTP_HEAD;
    c->last_read_ns = gw->now;
    if (!version_supported(p))
        return early(c, 505, "HTTP version not supported");
    /* RFC 9112 3.2: Host exactly once in HTTP/1.1, at most once and valid in any request. */
    if (c->host_count > 1)
        return early(c, 400, "malformed request: more than one Host header");
    if (c->host_count == 0 && p->http_minor >= 1)
        return early(c, 400, "malformed request: HTTP/1.1 request without a Host header");
    if (c->host_count == 1 && (c->host_long || !host_valid(c->host, c->host_len)))
        return early(c, 400, "malformed request: invalid Host header");
    /* RFC 9112 6.1 and 6.3: a body's length must be certain. llhttp itself
     * refuses Content-Length with a Transfer-Encoding, two Content-Lengths,
     * and a request whose last transfer coding is not chunked, but takes
     * an empty Transfer-Encoding for none, and any on HTTP/1.0. */
    bool chunked = p->flags & F_CHUNKED;
    if (c->has_te && p->http_minor == 0)
        return early(c, 400, "malformed request: Transfer-Encoding in an HTTP/1.0 request");
    if (c->has_te && !chunked)
        return early(c, 400, "malformed request: the last transfer coding is not chunked");
    if (c->has_te && !te_only_chunked(c))
        return early(c, 501, "transfer coding not implemented: only chunked is");
    while (c->ctype_len && (c->ctype[c->ctype_len - 1] == ' ' || c->ctype[c->ctype_len - 1] == '\t'))
        c->ctype_len--;
    c->ctype[c->ctype_len] = '\0';

    gw_route_classify(gw, c);
    /* Over max_connections: health probes are answered, nothing else. */
    if (c->overflow && c->route != GW_R_LIVE && c->route != GW_R_READY && c->route != GW_R_MODEL_READY)
        return early(c, 503, "too many connections");

    uint64_t declared = (p->flags & F_CONTENT_LENGTH) ? p->content_length : UINT64_MAX;  /* MAX: none */
    bool has_body = chunked || (declared != UINT64_MAX && declared > 0);
    /* An unknown path or model is 404 whatever its body: answer before
     * reading (or asking for, with 100-continue) a body nobody will use. */
    bool expects_continue = p->http_minor >= 1 && c->expect_len < sizeof c->expect &&
                            eq_ci(c->expect, c->expect_len, "100-continue");
    bool big = chunked || (declared != UINT64_MAX && declared > c->body_limit) || expects_continue;
    if (has_body && big && !c->store_body &&
        (c->route == GW_R_NOT_FOUND ||
         ((c->route == GW_R_INFER || c->route == GW_R_GENERATE || c->route == GW_R_GENERATE_STREAM ||
           c->route == GW_R_MODEL_META || c->route == GW_R_MODEL_READY) && c->pool < 0)))
        return early(c, 404, c->route == GW_R_NOT_FOUND ? "not found" : "unknown model");
    if (!chunked && declared != UINT64_MAX && declared > c->body_limit)
        return too_large(c);
    if (c->store_body && !chunked && declared != UINT64_MAX && declared > GW_BUF_KEEP &&
        gw->body_bytes + declared > GW_BODY_BUDGET)
        return early(c, 503, "too many uploads in progress");
    if (c->store_body && !chunked && declared != UINT64_MAX && declared > 0 &&
        !gw_buf_reserve(&c->body, (size_t)declared))
        return early(c, 503, "out of memory");
    /* 100 Continue only where the body is wanted (an inference request). */
    if (has_body && c->store_body && expects_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (c->out_off == c->out.len && c->out.len) {
            c->out.len = 0;
            c->out_off = 0;
        }
        if (c->out.len == c->out_off)
            c->last_write_ns = gw->now;
        gw_buf_put(&c->out, cont, sizeof cont - 1);
    }
    return 0;
}

/* ------------------------------------------------------------------ answers */

const char *gw_http_date(struct gw *gw)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0)
        ts.tv_sec = time(NULL);
    if (gw->date[0] && (int64_t)ts.tv_sec == gw->date_sec)
        return gw->date;
    struct tm tm;
    if (!gmtime_r(&ts.tv_sec, &tm))
        return gw->date[0] ? gw->date : "Thu, 01 Jan 1970 00:00:00 GMT";
    /* by hand: strftime's names follow the locale, IMF-fixdate's do not */
    snprintf(gw->date, sizeof gw->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    gw->date_sec = (int64_t)ts.tv_sec;
    return gw->date;
}

/* RFC 9110's reason phrases (llhttp_status_name gives enum names, and
 * aborts on a status it does not know; a handler may choose any 100-599). */
static const char *reason_phrase(unsigned status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

static bool conn_keep(const struct gw *gw, const struct gw_conn *c)
{
    return c->keepalive && !c->close_after && !c->overflow && !gw->draining && !c->parser.upgrade;
}

/* Try to write pending output plus body in one writev; whatever is not
 * written lands in the output buffer. */
static void write_with_body(struct gw *gw, struct gw_conn *c, const void *body, size_t len)
{
    struct gw_buf *o = &c->out;
    size_t pending = o->len - c->out_off;
    struct iovec iov[2] = {
        {.iov_base = o->data + c->out_off, .iov_len = pending},
        {.iov_base = (void *)body, .iov_len = len},
    };
    ssize_t n;
    do
        n = writev(c->fd, iov, 2);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            c->writable = false;
        else
            c->broken = true;
        if (!c->broken)
            gw_buf_put(o, body, len);
        return;
    }
    c->last_write_ns = gw->now;
    size_t w = (size_t)n;
    if (w >= pending) {
        o->len = 0;
        c->out_off = 0;
        w -= pending;
        if (w < len)
            gw_buf_put(o, (const char *)body + w, len - w);
    } else {
        c->out_off += w;
        gw_buf_put(o, body, len);
    }
}

/*
 * One line per answer in the access log, written with one write(2) to a
 * descriptor opened O_APPEND (lines of several gateways never interleave):
 *   TIME CLIENT "METHOD URL" POOL STATUS BYTES SECONDS ATTEMPT
 * ATTEMPT is how many runs the request took (0: not an inference).
 */
static void access_line(struct gw *gw, const struct gw_conn *c, unsigned status, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char url[260];
    size_t u = 0;
    for (size_t i = 0; i < c->url_len && u < sizeof url - 4; i++) {
        unsigned char ch = (unsigned char)c->url[i];
        url[u++] = (ch < 0x21 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
    }
    if (c->url_len > u)
        url[u++] = '.', url[u++] = '.', url[u++] = '.';
    url[u] = '\0';
    const char *pool = c->pool >= 0 && (unsigned)c->pool < RM_SHM_MAX_POOLS ? gw->pools[c->pool].name : "-";
    uint64_t start = c->req_start_ns && c->req_start_ns <= gw->now ? c->req_start_ns : gw->now;
    char line[512];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s \"%s %s\" %s %u %zu %.6f %u\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, c->peer[0] ? c->peer : "-",
                     c->method_known ? llhttp_method_name((llhttp_method_t)c->method) : "-", u ? url : "-",
                     pool[0] ? pool : "-", status, len,
                     (gw->now - start) / 1e9, c->attempt);
    if (n > 0) {
        ssize_t w = write(gw->access_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w; /* a full disk must not stop answering */
    }
}

static void answer_queued(struct gw *gw, struct gw_conn *c, unsigned status, size_t len, bool keep);
static void budget_check(struct gw *gw, struct gw_conn *c);

void gw_respond(struct gw *gw, struct gw_conn *c, unsigned status, const char *ctype,
                const void *body, size_t len, const char *extra)
{
    /* Every answer passes here once (before the request's state is reset
     * below): the one place that counts them by status. */
    gw_count_answer(gw, c, status);
    bool keep = conn_keep(gw, c);
    struct gw_buf *o = &c->out;
    if (c->out_off == o->len) {
        o->len = 0;
        c->out_off = 0;
        c->last_write_ns = gw->now;  /* a stall is counted from now */
    }
    char line[64];
    int n = snprintf(line, sizeof line, "HTTP/1.1 %u ", status);
    gw_buf_put(o, line, (size_t)n);
    gw_buf_puts(o, reason_phrase(status));
    gw_buf_put(o, "\r\nDate: ", 8);
    gw_buf_puts(o, gw_http_date(gw));
    if (ctype) {
        gw_buf_put(o, "\r\nContent-Type: ", 16);
        gw_buf_puts(o, ctype);
    }
    /* 204 and 304 (a handler may choose them) carry neither body nor length */
    bool bodyless = status == 204 || status == 304;
    if (bodyless) {
        len = 0;
    } else {
        gw_buf_put(o, "\r\nContent-Length: ", 18);
        gw_buf_put_u64(o, len);
    }
    if (keep)
        gw_buf_put(o, "\r\nConnection: keep-alive\r\n", 26);
    else
        gw_buf_put(o, "\r\nConnection: close\r\n", 21);
    if (extra)
        gw_buf_puts(o, extra);
    gw_buf_put(o, "\r\n", 2);
    if (!c->head && len) {
        if (len >= ZEROCOPY_MIN && c->writable && !o->oom)
            write_with_body(gw, c, body, len);
        else
            gw_buf_put(o, body, len);
    }
    answer_queued(gw, c, status, len, keep);
}

/* An answer's bytes are queued (whole, or a stream's last): enforce the
 * memory cap, log it, and move the connection on. */
static void answer_queued(struct gw *gw, struct gw_conn *c, unsigned status, size_t len, bool keep)
{
    struct gw_buf *o = &c->out;
    budget_check(gw, c);
    if (o->oom) {
        gw_buf_reset(o, 0);
        c->out_off = 0;
        c->broken = true;
    }
    gw_buf_reset(&c->body, GW_BUF_KEEP);
    c->answers++;
    if (gw->access_fd >= 0)
        access_line(gw, c, status, len);
    if (!keep) {
        c->close_after = true;
        return;
    }
    /* On to the next request of this connection. */
    gw_req_reset(c);
    c->phase = GW_IDLE;
    c->phase_start_ns = gw->now;
    llhttp_resume(&c->parser);
}

/* The gateway's memory cap on unsent answers: past it, a client that does
 * not read loses its connection. */
static void budget_check(struct gw *gw, struct gw_conn *c)
{
    struct gw_buf *o = &c->out;
    if (gw->body_bytes > GW_BODY_BUDGET && o->len - c->out_off > GW_BUF_KEEP) {
        /* This client has not read what it was sent and the gateway's
         * memory cap is reached: it loses its connection, nobody else
         * loses anything. */
        if (gw->now - gw->budget_log_ns > 1000000000u) {
            rm_warn("closing a client (%s) that does not read its answers: %zu MiB of answers are waiting "
                    "(cap %u MiB per gateway)", c->peer[0] ? c->peer : "?", gw->body_bytes >> 20,
                    GW_BODY_BUDGET >> 20);
            gw->budget_log_ns = gw->now;
        }
        c->broken = true;
    }
}

/* ------------------------------------------------------------------ streams */

void gw_stream_head(struct gw *gw, struct gw_conn *c, unsigned status, const char *ctype)
{
    gw_count_answer(gw, c, status);
    /* HTTP/1.0 has no chunked coding: the body ends with the connection. */
    c->s_raw = c->parser.http_major == 1 && c->parser.http_minor == 0;
    if (c->s_raw)
        c->keepalive = false;
    bool keep = conn_keep(gw, c);
    struct gw_buf *o = &c->out;
    if (c->out_off == o->len) {
        o->len = 0;
        c->out_off = 0;
        c->last_write_ns = gw->now;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "HTTP/1.1 %u ", status);
    gw_buf_put(o, line, (size_t)n);
    gw_buf_puts(o, reason_phrase(status));
    gw_buf_put(o, "\r\nDate: ", 8);
    gw_buf_puts(o, gw_http_date(gw));
    gw_buf_put(o, "\r\nContent-Type: ", 16);
    gw_buf_puts(o, c->smode == GW_SM_SSE ? "text/event-stream" : ctype);
    if (c->smode == GW_SM_SSE)
        gw_buf_puts(o, "\r\nCache-Control: no-cache");
    if (!c->s_raw)
        gw_buf_puts(o, "\r\nTransfer-Encoding: chunked");
    gw_buf_puts(o, keep ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
    c->sse_mid = false;
    c->sstatus = status;
    c->sbytes = 0;
}

/* One HTTP chunk (or raw bytes for HTTP/1.0) of n bytes from up to two
 * parts. */
static void put_chunk(struct gw_conn *c, const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an + bn;
    c->sbytes += n;
    if (n == 0)
        return; /* a zero-length chunk would end the body */
    if (!c->s_raw) {
        char hex[24];
        int h = snprintf(hex, sizeof hex, "%zx\r\n", n);
        gw_buf_put(&c->out, hex, (size_t)h);
    }
    gw_buf_put(&c->out, a, an);
    gw_buf_put(&c->out, b, bn);
    if (!c->s_raw)
        gw_buf_put(&c->out, "\r\n", 2);
}

void gw_stream_piece(struct gw *gw, struct gw_conn *c, const unsigned char *data, size_t len, bool chunk_end)
{
    if (c->smode == GW_SM_CHUNKED) {
        put_chunk(c, data, len, NULL, 0);
    } else {
        /* SSE: "data: " before each line of the chunk, a blank line after
         * it (the event's end). A CR is dropped: lines end in LF. */
        struct gw_buf *e = &gw->scratch;
        e->len = 0;
        e->oom = false;
        if (!c->sse_mid)
            gw_buf_put(e, "data: ", 6);
        size_t from = 0;
        for (size_t i = 0; i < len; i++) {
            if (data[i] != '\n' && data[i] != '\r')
                continue;
            gw_buf_put(e, data + from, i - from);
            if (data[i] == '\n')
                gw_buf_put(e, "\ndata: ", 7);
            from = i + 1;
        }
        gw_buf_put(e, data + from, len - from);
        if (chunk_end)
            gw_buf_put(e, "\n\n", 2);
        c->sse_mid = !chunk_end;
        if (e->oom)
            c->out.oom = true;
        else
            put_chunk(c, e->data, e->len, NULL, 0);
        e->len = 0;
    }
    budget_check(gw, c);
}

void gw_stream_end(struct gw *gw, struct gw_conn *c, const char *err)
{
    bool keep = conn_keep(gw, c);
    if (err && c->smode == GW_SM_SSE) {
        /* The reason, as an event of its own after whatever chunk was cut. */
        struct gw_buf *e = &gw->scratch;
        e->len = 0;
        e->oom = false;
        if (c->sse_mid)
            gw_buf_put(e, "\n\n", 2);
        gw_buf_puts(e, "event: error\ndata: {\"error\":\"");
        gw_json_escape(e, err, strlen(err));
        gw_buf_puts(e, "\"}\n\n");
        if (e->oom)
            c->out.oom = true;
        else
            put_chunk(c, e->data, e->len, NULL, 0);
        e->len = 0;
    }
    if (err && c->smode == GW_SM_CHUNKED) {
        /* No last chunk: the client sees the body cut short, never a
         * complete-looking answer. The connection cannot go on. */
        keep = false;
    } else if (!c->s_raw) {
        gw_buf_put(&c->out, "0\r\n\r\n", 5);
    }
    if (c->s_raw)
        keep = false;
    answer_queued(gw, c, c->sstatus, (size_t)c->sbytes, keep);
}

void gw_respond_error(struct gw *gw, struct gw_conn *c, unsigned status,
                      const char *msg, size_t msglen, const char *allow)
{
    struct gw_buf *j = &gw->scratch;
    j->len = 0;
    j->oom = false;
    gw_buf_put(j, "{\"error\":\"", 10);
    gw_json_escape(j, msg, msglen);
    gw_buf_put(j, "\"}", 2);
    char extra[96];
    extra[0] = '\0';
    if (status == 503)
        snprintf(extra, sizeof extra, "Retry-After: 1\r\n");
    else if (allow)
        snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    if (j->oom) {
        c->broken = true;
        return;
    }
    gw_respond(gw, c, status, "application/json", j->data, j->len, extra[0] ? extra : NULL);
    j->len = 0;
}

void gw_respond_error_s(struct gw *gw, struct gw_conn *c, unsigned status, const char *msg)
{
    gw_respond_error(gw, c, status, msg, strlen(msg), NULL);
}

/* ------------------------------------------------------------------ I/O */

static void conn_flush(struct gw *gw, struct gw_conn *c)
{
    while (c->out_off < c->out.len && c->writable && !c->broken) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_write_ns = gw->now;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->writable = false;
        } else {
            c->broken = true;  /* EPIPE, ECONNRESET: the client is gone */
        }
    }
    if (c->out_off == c->out.len) {
        c->out_off = 0;
        gw_buf_reset(&c->out, GW_BUF_KEEP);
    }
}

static void conn_read(struct gw *gw, struct gw_conn *c)
{
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    size_t room = sizeof c->in - c->in_len;
    if (room == 0)
        return;
    ssize_t n = read(c->fd, c->in + c->in_len, room);
    if (n > 0) {
        c->in_len += (size_t)n;
        c->last_read_ns = gw->now;
        /* A short read emptied the socket: the next byte brings a new edge.
         * After EPOLLRDHUP keep reading until read() says 0. */
        if ((size_t)n < room && !c->rdhup)
            c->readable = false;
    } else if (n == 0) {
        c->eof = true;
        c->readable = false;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->readable = false;
    } else if (errno != EINTR) {
        c->broken = true;
    }
}

/* Remember the last bytes parsed: cb_version reads the protocol name from
 * them when the request line was split between two reads. */
static void keep_tail(struct gw_conn *c, const char *at, size_t n)
{
    if (n >= sizeof c->tail) {
        memcpy(c->tail, at + n - sizeof c->tail, sizeof c->tail);
        c->tail_len = sizeof c->tail;
        return;
    }
    size_t keep = c->tail_len + n > sizeof c->tail ? sizeof c->tail - n : c->tail_len;
    memmove(c->tail, c->tail + c->tail_len - keep, keep);
    memcpy(c->tail + keep, at, n);
    c->tail_len = keep + n;
}

/* The request cannot be read on: answer it and close. The parser is left
 * as it is, so whatever the client sent after it is never parsed. */
static void parse_failed(struct gw *gw, struct gw_conn *c, llhttp_errno_t e)
{
    c->keepalive = false;
    c->head = false;
    if (c->early_status) {
        gw_respond_error_s(gw, c, c->early_status, c->early_msg ? c->early_msg : "bad request");
    } else if (e == HPE_PAUSED_H2_UPGRADE) {
        gw_respond_error_s(gw, c, 505, "HTTP version not supported (an HTTP/2 connection preface)");
    } else {
        const char *why = llhttp_get_error_reason(&c->parser);
        char msg[160];
        int m = snprintf(msg, sizeof msg, "malformed request: %s", why && why[0] ? why : llhttp_errno_name(e));
        gw_respond_error(gw, c, 400, msg, m > 0 && (size_t)m < sizeof msg ? (size_t)m : strlen(msg), NULL);
    }
    c->close_after = true;
}

static void conn_parse(struct gw *gw, struct gw_conn *c)
{
    for (;;) {
        const char *at = c->in + c->in_off;
        size_t feed = c->in_len - c->in_off;
        /* llhttp has no limit on the size of the headers: they are counted
         * here. The parser is never given more than max_header_size still
         * allows, so headers that are too large stop short of their end
         * and are never looked at. */
        bool in_head = c->phase == GW_IDLE || c->phase == GW_HEADERS;
        if (in_head && feed > gw->max_header_size - c->head_bytes)
            feed = (size_t)(gw->max_header_size - c->head_bytes);
        c->exec_base = at;
        llhttp_errno_t e = llhttp_execute(&c->parser, at, feed);
        size_t n = feed;
        if (e != HPE_OK) {  /* paused or failed in this call: it stopped at error_pos */
            const char *pos = llhttp_get_error_pos(&c->parser);
            n = pos && pos >= at && pos <= at + feed ? (size_t)(pos - at) : 0;
        }
        c->in_off += n;
        keep_tail(c, at, n);
        if (in_head)
            c->head_bytes += n;  /* the call stopped at the end of the headers, if it got there */
        if (c->hdrs_done) {
            c->hdrs_done = false;
            if (request_checked(gw, c) != 0) {
                parse_failed(gw, c, e);
                return;
            }
            llhttp_resume(&c->parser);
            continue;  /* the body, or the end of a message without one (no byte needed) */
        }
        if (c->msg_done) {
            c->msg_done = false;
            gw_dispatch(gw, c);
            return;
        }
        if (e != HPE_OK) {
            parse_failed(gw, c, e);
            return;
        }
        if (in_head && c->head_bytes >= gw->max_header_size) {
            /* max_header_size bytes and the headers are not complete */
            c->early_status = 431;
            c->early_msg = "request headers too large";
            parse_failed(gw, c, e);
        }
        return;
    }
}

/* Answered for the last time: shut our side and read what the client still
 * sends (so that closing does not reset the connection under the answer),
 * or just close when nothing more can come. */
void gw_conn_linger_or_close(struct gw *gw, struct gw_conn *c)
{
    if (c->eof || c->broken) {
        gw_conn_close(gw, c);
        return;
    }
    if (shutdown(c->fd, SHUT_WR) < 0) {
        gw_conn_close(gw, c);
        return;
    }
    c->phase = GW_LINGER;
    c->linger_until_ns = gw->now + GW_LINGER_NS;
    c->readable = true;
}

static void linger_read(struct gw *gw, struct gw_conn *c)
{
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(c->fd, c->in, sizeof c->in);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->readable = false;
            return;
        }
        gw_conn_close(gw, c);  /* EOF or error */
        return;
    }
}

void gw_conn_run(struct gw *gw, struct gw_conn *c)
{
    unsigned pumps = 0;
    while (c->fd >= 0) {
        if (c->broken) {
            gw_conn_close(gw, c);
            return;
        }
        if (c->phase == GW_LINGER) {
            if (c->readable)
                linger_read(gw, c);
            return;
        }
        size_t out_pending = c->out.len - c->out_off;
        /* Flush before anything that stops the parsing here; pipelined
         * answers are thus written in one go. */
        if (out_pending && (c->close_after || c->phase == GW_WAIT || out_pending > GW_OUT_HIGH ||
                            c->in_off == c->in_len)) {
            conn_flush(gw, c);
            if (c->broken)
                continue;
            out_pending = c->out.len - c->out_off;
        }
        if (c->close_after) {
            if (!out_pending)
                gw_conn_linger_or_close(gw, c);
            else if (!c->writable)
                return;  /* EPOLLOUT continues */
            continue;
        }
        if (c->phase == GW_WAIT && c->streaming && c->stream_more && out_pending < GW_STREAM_HIGH / 2) {
            /* The client took what it had: the records left wait for it
             * (the worker waits for their room). A fast client of a fast
             * worker could keep this loop going for ever, the socket
             * taking all the worker writes: after a few reads, the other
             * connections' turn (and the tick's: the heartbeat); the loop
             * comes back at once (gw_poll). */
            if (pumps++ >= GW_STREAM_PUMPS) {
                gw->stream_backlog = true;
                return;
            }
            if (gw_stream_pump(gw, c))
                continue;
        }
        if (c->phase == GW_WAIT) {
            /* Only watch for the client going away (pipelined bytes wait).
             * End of input while the answer is pending counts as the client
             * gone, as in nginx (proxy_ignore_client_abort off): a FIN is
             * mostly a client that gave up, and its request is abandoned so
             * no worker time goes to nobody. A client that half-closes
             * (shutdown(SHUT_WR)) after its request is treated the same. */
            if (c->eof) {
                gw_conn_close(gw, c);
                return;
            }
            if (!c->readable || c->in_len - c->in_off >= sizeof c->in / 2 || c->in_len == sizeof c->in)
                return;
            conn_read(gw, c);
            continue;
        }
        if (out_pending > GW_OUT_HIGH)
            return;  /* back-pressure: resume on EPOLLOUT */
        if (c->in_off < c->in_len) {
            conn_parse(gw, c);
            continue;
        }
        if (c->eof) {
            c->close_after = true;  /* nothing more will come */
            continue;
        }
        if (!c->readable)
            return;
        conn_read(gw, c);
    }
}
