/*
 * http.c - a connection's input and output: http_parser callbacks, reading,
 * parsing, queueing and writing answers, lingering close.
 *
 * All HTTP syntax is http_parser's; this file only collects what the
 * callbacks hand over (URL, Content-Type, Expect, body) and enforces limits.
 * Callbacks never do I/O: they fill the connection, append to its output
 * buffer at most, and pause the parser at the end of a message. The
 * caller (conn_parse) then dispatches the message. The parser stays paused
 * until its answer is queued (gw_respond), which keeps pipelined answers in
 * order.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/internal.h"
#include "shm/segment.h"

enum { GW_H_NONE = 0, GW_H_CTYPE, GW_H_EXPECT };

#define ZEROCOPY_MIN 16384  /* bodies this large go out by writev, not copied first */

void gw_req_reset(struct gw_conn *c)
{
    c->url_len = 0;
    c->url_too_long = false;
    c->hfield_len = 0;
    c->hfield_long = false;
    c->in_value = false;
    c->cur_hdr = GW_H_NONE;
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
    if (c->route == GW_R_INFER && c->store_body && c->pool >= 0)
        gw_count(c->gw, (unsigned)c->pool, RM_OUT_TOO_LARGE);
    return early(c, 413, c->store_body ? "request body larger than the model's max_request_size"
                                       : "request body too large");
}

/* ------------------------------------------------------------------ callbacks */

static int cb_message_begin(http_parser *p)
{
    struct gw_conn *c = p->data;
    gw_req_reset(c);
    c->phase = GW_HEADERS;
    c->phase_start_ns = c->gw->now;
    c->req_start_ns = c->gw->now;
    c->attempt = 0;
    return 0;
}

static int cb_url(http_parser *p, const char *at, size_t len)
{
    struct gw_conn *c = p->data;
    if (c->url_too_long || len >= sizeof c->url - c->url_len) {
        c->url_too_long = true;
        return 0;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int cb_header_field(http_parser *p, const char *at, size_t len)
{
    struct gw_conn *c = p->data;
    if (c->phase != GW_HEADERS)
        return 0; /* a chunked trailer: never taken for a request header */
    if (c->in_value) {  /* a new header begins */
        c->in_value = false;
        c->hfield_len = 0;
        c->hfield_long = false;
    }
    if (c->hfield_long || len >= sizeof c->hfield - c->hfield_len) {
        c->hfield_long = true;
        return 0;
    }
    memcpy(c->hfield + c->hfield_len, at, len);
    c->hfield_len += len;
    return 0;
}

static int cb_header_value(http_parser *p, const char *at, size_t len)
{
    struct gw_conn *c = p->data;
    if (c->phase != GW_HEADERS)
        return 0; /* trailer */
    if (!c->in_value) {  /* first piece of this header's value */
        c->in_value = true;
        c->cur_hdr = GW_H_NONE;
        if (!c->hfield_long && eq_ci(c->hfield, c->hfield_len, "content-type")) {
            if (c->has_ctype)
                c->ctype_bad = true;  /* sent twice */
            c->has_ctype = true;
            c->ctype_len = 0;
            c->cur_hdr = GW_H_CTYPE;
        } else if (!c->hfield_long && eq_ci(c->hfield, c->hfield_len, "expect")) {
            c->expect_len = 0;
            c->cur_hdr = GW_H_EXPECT;
        }
    }
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
    default:
        break;
    }
    return 0;
}

static int cb_headers_complete(http_parser *p)
{
    struct gw_conn *c = p->data;
    struct gw *gw = c->gw;
    c->method = p->method;
    c->head = p->method == HTTP_HEAD;
    c->phase = GW_BODY;
    c->last_read_ns = gw->now;
    if (p->http_major != 1)
        return early(c, 505, "HTTP version not supported");
    while (c->ctype_len && (c->ctype[c->ctype_len - 1] == ' ' || c->ctype[c->ctype_len - 1] == '\t'))
        c->ctype_len--;
    c->ctype[c->ctype_len] = '\0';

    gw_route_classify(gw, c);
    /* Over max_connections: health probes are answered, nothing else. */
    if (c->overflow && c->route != GW_R_LIVE && c->route != GW_R_READY && c->route != GW_R_MODEL_READY)
        return early(c, 503, "too many connections");

    bool chunked = p->flags & F_CHUNKED;
    uint64_t declared = p->content_length;  /* ULLONG_MAX: no Content-Length */
    bool has_body = chunked || (declared != ULLONG_MAX && declared > 0);
    /* An unknown path or model is 404 whatever its body: answer before
     * reading (or asking for, with 100-continue) a body nobody will use. */
    bool expects_continue = p->http_minor >= 1 && c->expect_len < sizeof c->expect &&
                            eq_ci(c->expect, c->expect_len, "100-continue");
    bool big = chunked || (declared != ULLONG_MAX && declared > c->body_limit) || expects_continue;
    if (has_body && big && !c->store_body &&
        (c->route == GW_R_NOT_FOUND ||
         ((c->route == GW_R_INFER || c->route == GW_R_MODEL_META || c->route == GW_R_MODEL_READY) && c->pool < 0)))
        return early(c, 404, c->route == GW_R_NOT_FOUND ? "not found" : "unknown model");
    if (!chunked && declared != ULLONG_MAX && declared > c->body_limit)
        return too_large(c);
    if (c->store_body && !chunked && declared != ULLONG_MAX && declared > GW_BUF_KEEP &&
        gw->body_bytes + declared > GW_BODY_BUDGET)
        return early(c, 503, "too many uploads in progress");
    if (c->store_body && !chunked && declared != ULLONG_MAX && declared > 0 &&
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

static int cb_body(http_parser *p, const char *at, size_t len)
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

static int cb_message_complete(http_parser *p)
{
    struct gw_conn *c = p->data;
    c->msg_done = true;
    c->keepalive = http_should_keep_alive(p) && !p->upgrade;
    /* Hold the next pipelined message until this one is answered. */
    http_parser_pause(p, 1);
    return 0;
}

void gw_http_settings(http_parser_settings *s)
{
    http_parser_settings_init(s);
    s->on_message_begin = cb_message_begin;
    s->on_url = cb_url;
    s->on_header_field = cb_header_field;
    s->on_header_value = cb_header_value;
    s->on_headers_complete = cb_headers_complete;
    s->on_body = cb_body;
    s->on_message_complete = cb_message_complete;
}

/* ------------------------------------------------------------------ answers */

static const char *reason_phrase(unsigned status)
{
    const char *r = http_status_str((enum http_status)status);
    return (r && r[0] != '<') ? r : "Status";
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
                     http_method_str((enum http_method)c->method), u ? url : "-", pool[0] ? pool : "-", status, len,
                     (gw->now - start) / 1e9, c->attempt);
    if (n > 0) {
        ssize_t w = write(gw->access_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w; /* a full disk must not stop answering */
    }
}

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
    http_parser_pause(&c->parser, 0);
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

static void conn_parse(struct gw *gw, struct gw_conn *c)
{
    size_t avail = c->in_len - c->in_off;
    size_t n = http_parser_execute(&c->parser, &gw->settings, c->in + c->in_off, avail);
    if (n > avail)
        n = avail;
    c->in_off += n;
    if (c->msg_done) {
        c->msg_done = false;
        gw_dispatch(gw, c);
        return;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_OK) {
        c->in_off = c->in_len;  /* all consumed (or an upgrade we ignore) */
        return;
    }
    c->keepalive = false;
    c->head = false;
    if (c->early_status) {
        gw_respond_error_s(gw, c, c->early_status, c->early_msg ? c->early_msg : "bad request");
    } else if (e == HPE_HEADER_OVERFLOW) {
        gw_respond_error_s(gw, c, 431, "request headers too large");
    } else {
        char msg[160];
        int m = snprintf(msg, sizeof msg, "malformed request: %s", http_errno_description(e));
        gw_respond_error(gw, c, 400, msg, m > 0 && (size_t)m < sizeof msg ? (size_t)m : strlen(msg), NULL);
    }
    c->close_after = true;
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
