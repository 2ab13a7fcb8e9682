/*
 * test_gateway.c - the gateway process (gateway/) against a real segment:
 * each test forks rm_gateway_main() on a listening socket on 127.0.0.1,
 * talks HTTP to it, and plays the worker itself (dequeue, QUEUED -> RUNNING,
 * answer, RUNNING -> DONE, eventfd) in between.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway/gateway.h"
#include "gateway/internal.h"
#include "gateway/stats.h"
#include "shm/clock.h"
#include "shm/request.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "shm/stream.h"
#include "core/log.h"
#include "core/names.h"
#include "tests/cunit_util.h"
#include "tests/helpers.h"

#define NGW 2
#define NPROCS 8
#define WORKER_SB 2   /* scoreboard entry of the fake worker of pool 0 */
#define WORKER2_SB 3  /* ... of pool 1 */

/* ------------------------------------------------------------------ fixture */

struct opts {
    uint32_t nslots;
    uint64_t max_req;
    uint64_t timeout_ms;        /* request_timeout */
    uint64_t header_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t max_header_size;
    unsigned max_connections;
    bool second_pool;           /* pool 1 "ocr" with handler ocr */
    pid_t master_pid;           /* 0: this process */
};

static struct rm_seg seg;
static struct rm_config cfg;
static pid_t gw_pid = -1;
static int lfd = -1;
static int wake_fd = -1;
static int port;

static struct rm_shm_pool *pool0(void)
{
    return rm_seg_pool(&seg, 0);
}

static struct rm_sb_entry *worker_entry(void)
{
    return rm_seg_sb(&seg, WORKER_SB);
}

static void start_with(const struct opts *o)
{
    struct rm_pool_spec spec[2] = {{
        .name = "echo", .nslots = o->nslots ? o->nslots : 8,
        .max_req = o->max_req ? o->max_req : 4096, .max_resp = 65536, .max_attempts = 2,
        .request_timeout_ns = (o->timeout_ms ? o->timeout_ms : 10000) * 1000000u, .handler = "echo",
    }};
    spec[1] = spec[0];
    spec[1].name = "ocr";
    spec[1].handler = "ocr";
    /* the tensors the master declares for the ocr built-in (supervisor/pools.c) */
    spec[1].io_json = "\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[1]}],"
                      "\"outputs\":[{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[1]}]";
    seg_with_pools(&seg, NPROCS, NGW, spec, o->second_pool ? 2 : 1);
    atomic_store(&sb_set(&seg, WORKER_SB, RM_ROLE_WORKER, 0, RM_PROC_READY)->pid, getpid());
    if (o->second_pool)
        atomic_store(&sb_set(&seg, WORKER2_SB, RM_ROLE_WORKER, 1, RM_PROC_READY)->pid, getpid());
    struct rm_sb_entry *g = sb_set(&seg, 0, RM_ROLE_GATEWAY, 0, RM_PROC_STARTING);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(lfd, 128) == 0);
    socklen_t alen = sizeof a;
    CU_ASSERT_FATAL(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    port = ntohs(a.sin_port);
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CU_ASSERT_FATAL(wake_fd >= 0);

    rm_config_defaults(&cfg);
    cfg.shutdown_timeout = 3000;
    if (o->header_timeout_ms)
        cfg.header_timeout = o->header_timeout_ms;
    if (o->idle_timeout_ms)
        cfg.idle_timeout = o->idle_timeout_ms;
    if (o->max_header_size)
        cfg.max_header_size = o->max_header_size;
    if (o->max_connections)
        cfg.max_connections = o->max_connections;

    pid_t master = o->master_pid ? o->master_pid : getpid();
    fflush(NULL);
    gw_pid = fork();
    CU_ASSERT_FATAL(gw_pid >= 0);
    if (gw_pid == 0) {
        rm_log_init("gateway 0");
        struct rm_gw_ctx ctx = {
            .seg = &seg, .limits = rm_gw_limits_from(&cfg), .index = 0, .listen_fds = &lfd, .nlisten = 1,
            .wake_fd = wake_fd, .chan_fd = -1, .access_fd = -1, .master_pid = master,
        };
        rm_gateway_main(&ctx);
        _exit(99);
    }
    if (o->master_pid)
        return;
    CU_ASSERT_FATAL(WAIT_UNTIL(atomic_load(&g->state) == RM_PROC_READY, 3000));
}

static void start(void)
{
    struct opts o = {0};
    start_with(&o);
}

/* Wait for the gateway to exit; its exit code, or CHILD_TIMED_OUT (-1) if
 * it had to be killed. */
static int wait_gateway(unsigned ms)
{
    int code = exit_code_of(wait_child(gw_pid, ms));
    gw_pid = -1;
    return code;
}

/* Until the gateway has run n whole ticks begun after this call (its
 * heartbeat is stored first thing in a tick, so n + 1 heartbeats): what it
 * caches per tick (pool readiness) has been read again since. */
static bool gateway_ticks(unsigned n)
{
    struct rm_sb_entry *g = rm_seg_sb(&seg, 0);
    for (unsigned i = 0; i <= n; i++) {
        uint64_t h = atomic_load(&g->heartbeat_ns);
        if (!WAIT_UNTIL(atomic_load(&g->heartbeat_ns) != h, 2000))
            return false;
    }
    return true;
}

static void stop(void)
{
    if (gw_pid > 0) {
        kill(gw_pid, SIGTERM);
        CU_ASSERT_EQUAL(wait_gateway(5000), 0);
    }
    close(lfd);
    close(wake_fd);
    lfd = wake_fd = -1;
    rm_seg_close(&seg);
}

/* ------------------------------------------------------------------ the fake worker */

enum { W_ECHO, W_ERROR, W_CRASHED, W_204, W_EVIL_CTYPE, W_STREAM, W_STREAM_SCRIBBLE };
static int worker_mode = W_ECHO;

/* The worker's side of the shipped protocol (shm/request.c) on pool 0. */
static struct rm_pool_view *view0(void)
{
    static struct rm_pool_view v;
    CU_ASSERT_FATAL(rm_pool_view_open(&seg, 0, &v) == 0);
    return &v;
}

/* Run everything on pool 0's ring. Returns how many requests it answered. */
static int worker_serve(void)
{
    struct rm_pool_view *v = view0();
    struct rm_sb_entry *me = worker_entry();
    int n = 0;
    for (;;) {
        struct rm_req_job job;
        enum rm_take r = rm_req_take(v, me, WORKER_SB, rm_now_ns(), &job);
        if (r == RM_TAKE_EMPTY)
            break;
        if (r != RM_TAKE_OK)
            continue;
        struct rm_req_result res = {.status = 200};
        if (worker_mode == W_STREAM || worker_mode == W_STREAM_SCRIBBLE) {
            /* three chunks through the slot's queue (shm/stream.c) */
            struct rm_stream_w sw;
            rm_stream_w_init(&sw, v, WORKER_SB, &job, rm_now_ns());
            static const char *const chunks[] = {"one", "two\nlines", "three"};
            for (int k = 0; k < 3; k++) {
                size_t done = 0;
                CU_ASSERT(rm_stream_put(&sw, 201, "text/x-stream", chunks[k], strlen(chunks[k]), &done,
                                        rm_now_ns()) == RM_EMIT_OK);
            }
            if (worker_mode == W_STREAM_SCRIBBLE) {
                /* a worker scribbling on its queue: a position far ahead,
                 * then a record header claiming more than the area */
                struct rm_resp_meta *m = &v->resp_meta[job.slot];
                uint32_t bad[2] = {0xfffffff0u, 0};
                memcpy(job.resp + sw.wpos % rm_stream_cap(v), bad, sizeof bad);
                atomic_store(&m->s_wpos, sw.wpos + 16);
            }
            res.len = 0;
        } else if (worker_mode == W_ECHO) {
            memcpy(job.resp, job.body, job.len);
            res.len = job.len;
            res.ctype = job.ctype;
        } else if (worker_mode == W_ERROR) {
            static const char msg[] = "boom: \"bad\" input";
            memcpy(job.resp, msg, sizeof msg - 1);
            res.len = sizeof msg - 1;
            res.error = 500;
        } else if (worker_mode == W_204) {
            memcpy(job.resp, "junk", 4);
            res.len = 4;
            res.status = 204;
        } else if (worker_mode == W_EVIL_CTYPE) {
            memcpy(job.resp, "ok", 2);
            res.len = 2;
            res.status = 201;
            res.ctype = "text/plain\r\nX-Evil: 1";
        } else {
            res.error = 502;
        }
        if (rm_req_finish(v, me, &job, &res, rm_now_ns()) >= 0) {
            uint64_t one = 1;
            ssize_t wr = write(wake_fd, &one, sizeof one);
            (void)wr;
        }
        n++;
    }
    return n;
}

static unsigned slots_in(unsigned state)
{
    return slots_in_state(view0(), state);
}

static bool wait_slots(unsigned state, unsigned count, unsigned ms)
{
    return WAIT_UNTIL(slots_in(state) == count, ms);
}

static uint64_t outcome(enum rm_outcome o)
{
    return atomic_load(&rm_seg_gw_stats(&seg, 0, 0)->outcomes[o]);
}

/* Answers gateway 0 counted with code in block (a pool, or RM_GW_SERVER). */
static uint64_t answered(unsigned block, enum rm_code code)
{
    return atomic_load(&rm_seg_gw_stats(&seg, 0, block)->codes[code]);
}

/* ------------------------------------------------------------------ HTTP client */

struct resp {
    int status;
    char headers[4096];   /* "name: value\n" lines, names lower-cased */
    size_t hlen;
    char body[1 << 17];
    size_t body_len;
};

struct client {
    int fd;
    llhttp_t p;
    llhttp_settings_t s;
    char buf[1 << 17];
    size_t off, len;
    bool eof;
    bool head;            /* the next answer is to a HEAD request */
    bool done;
    struct resp *cur;
    char field[64];
    size_t field_len;
    bool in_value;
};

static int c_begin(llhttp_t *p)
{
    struct client *c = p->data;
    c->cur->status = 0;
    c->cur->hlen = 0;
    c->cur->body_len = 0;
    c->cur->headers[0] = '\0';
    c->field_len = 0;
    c->in_value = false;
    return 0;
}

static void hput(struct resp *r, const char *s, size_t n)
{
    if (n > sizeof r->headers - 1 - r->hlen)
        n = sizeof r->headers - 1 - r->hlen;
    memcpy(r->headers + r->hlen, s, n);
    r->hlen += n;
    r->headers[r->hlen] = '\0';
}

static int c_field(llhttp_t *p, const char *at, size_t n)
{
    struct client *c = p->data;
    if (c->in_value) {
        hput(c->cur, "\n", 1);
        c->in_value = false;
        c->field_len = 0;
    }
    for (size_t i = 0; i < n && c->field_len < sizeof c->field; i++)
        c->field[c->field_len++] = (char)((at[i] >= 'A' && at[i] <= 'Z') ? at[i] + 32 : at[i]);
    return 0;
}

static int c_value(llhttp_t *p, const char *at, size_t n)
{
    struct client *c = p->data;
    if (!c->in_value) {
        hput(c->cur, c->field, c->field_len);
        hput(c->cur, ": ", 2);
        c->in_value = true;
    }
    hput(c->cur, at, n);
    return 0;
}

static int c_headers_done(llhttp_t *p)
{
    struct client *c = p->data;
    if (c->in_value)
        hput(c->cur, "\n", 1);
    c->cur->status = (int)p->status_code;
    return (c->head && p->status_code >= 200) ? 1 : 0;  /* 1: no body follows */
}

static int c_body(llhttp_t *p, const char *at, size_t n)
{
    struct client *c = p->data;
    struct resp *r = c->cur;
    if (n > sizeof r->body - 1 - r->body_len)
        n = sizeof r->body - 1 - r->body_len;
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

static int c_done(llhttp_t *p)
{
    struct client *c = p->data;
    c->cur->body[c->cur->body_len] = '\0';
    c->done = true;
    return HPE_PAUSED;
}

static struct client *client_open(void)
{
    struct client *c = calloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CU_ASSERT(connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0);
    llhttp_settings_init(&c->s);
    c->s.on_message_begin = c_begin;
    c->s.on_header_field = c_field;
    c->s.on_header_value = c_value;
    c->s.on_headers_complete = c_headers_done;
    c->s.on_body = c_body;
    c->s.on_message_complete = c_done;
    llhttp_init(&c->p, HTTP_RESPONSE, &c->s);
    c->p.data = c;
    return c;
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void client_send(struct client *c, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            CU_FAIL("send to the gateway failed");
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void client_sends(struct client *c, const char *s)
{
    client_send(c, s, strlen(s));
}

static bool date_is_now(const struct resp *r);

/*
 * Read the next answer into r, serving the ring meanwhile if serve.
 * 100 Continue is skipped unless keep_1xx. Returns 0, or -1 on EOF/timeout.
 */
static int client_read_x(struct client *c, struct resp *r, bool serve, bool keep_1xx, unsigned ms)
{
    uint64_t until = ms_now() + ms;
    c->cur = r;
    for (;;) {
        if (c->off < c->len) {
            const char *at = c->buf + c->off;
            llhttp_errno_t e = llhttp_execute(&c->p, at, c->len - c->off);
            size_t n = c->len - c->off;
            if (e != HPE_OK && llhttp_get_error_pos(&c->p) >= at)
                n = (size_t)(llhttp_get_error_pos(&c->p) - at);
            c->off += n;
            if (c->done) {
                c->done = false;
                llhttp_resume(&c->p);
                if (r->status == 100 && !keep_1xx)
                    continue;
                c->head = false;
                if (r->status >= 200 && !date_is_now(r)) {
                    fprintf(stderr, "\nanswer %d without a current IMF-fixdate Date: %s\n", r->status, r->headers);
                    CU_FAIL("every answer carries Date: IMF-fixdate, now");
                }
                return 0;
            }
            if (e != HPE_OK) {
                CU_FAIL("answer does not parse");
                return -1;
            }
            continue;
        }
        if (c->eof || ms_now() > until)
            return -1;
        if (serve)
            worker_serve();
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 2) > 0) {
            ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
            if (n <= 0) {
                c->eof = true;
                continue;
            }
            c->off = 0;
            c->len = (size_t)n;
        }
    }
}

static int client_read(struct client *c, struct resp *r, bool serve)
{
    return client_read_x(c, r, serve, false, 3000);
}

/* True when the gateway closed the connection (EOF or reset) within ms. */
static bool client_sees_close(struct client *c, unsigned ms)
{
    if (c->eof)
        return true;
    uint64_t until = ms_now() + ms;
    while (ms_now() <= until) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 10) > 0) {
            char tmp[4096];
            ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
            if (n <= 0)
                return true;
        }
    }
    return false;
}

static const char *header(const struct resp *r, const char *name)
{
    static char val[512];
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl + 1 && strncmp(p, name, nl) == 0 && p[nl] == ':') {
            size_t v = len - nl - 2;
            if (v >= sizeof val)
                v = sizeof val - 1;
            memcpy(val, p + nl + 2, v);
            val[v] = '\0';
            return val;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return NULL;
}

static bool header_is(const struct resp *r, const char *name, const char *want)
{
    const char *v = header(r, name);
    return v && strcasecmp(v, want) == 0;
}

/* The answer's Date as seconds since the epoch if it is an IMF-fixdate
 * (RFC 9110 5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT"), else -1. */
static long long date_of(const struct resp *r)
{
    static const char days[] = "SunMonTueWedThuFriSat", months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    const char *v = header(r, "date");
    if (!v || strlen(v) != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
        v[19] != ':' || v[22] != ':' || strcmp(v + 25, " GMT") != 0)
        return -1;
    const char *d = strstr(days, (char[4]){v[0], v[1], v[2], 0});
    const char *m = strstr(months, (char[4]){v[8], v[9], v[10], 0});
    int digits[] = {5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24};
    for (size_t i = 0; i < sizeof digits / sizeof digits[0]; i++)
        if (v[digits[i]] < '0' || v[digits[i]] > '9')
            return -1;
    if (!d || (d - days) % 3 || !m || (m - months) % 3)
        return -1;
    struct tm tm = {
        .tm_mday = atoi(v + 5), .tm_mon = (int)(m - months) / 3, .tm_year = atoi(v + 12) - 1900,
        .tm_hour = atoi(v + 17), .tm_min = atoi(v + 20), .tm_sec = atoi(v + 23),
    };
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_wday != (int)(d - days) / 3 || back.tm_mday != tm.tm_mday)
        return -1;  /* the weekday must be the date's, the day must exist */
    return (long long)t;
}

static bool date_is_now(const struct resp *r)
{
    long long t = date_of(r);
    long long now = (long long)time(NULL);
    return t >= 0 && t <= now + 1 && t >= now - 2;
}

static char req[1 << 17];

static const char *infer(const char *pool, const char *ctype, const char *body)
{
    snprintf(req, sizeof req,
             "POST /v2/models/%s/infer HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             pool, ctype, strlen(body), body);
    return req;
}

static const char *get(const char *path)
{
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    return req;
}

/* JSON body's string member, or NULL. */
static bool json_str_is(const struct resp *r, const char *key, const char *want)
{
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (!j)
        return false;
    const char *v = json_string_value(json_object_get(j, key));
    bool ok = v && (!want || strcmp(v, want) == 0);
    json_decref(j);
    return ok;
}

static bool json_error_contains(const struct resp *r, const char *part)
{
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (!j)
        return false;
    const char *v = json_string_value(json_object_get(j, "error"));
    bool ok = v && strstr(v, part);
    json_decref(j);
    return ok;
}

static struct resp r1, r2, r3, r4;

/* ------------------------------------------------------------------ tests */

static void test_echo_round_trip_keepalive(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "hello"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "hello");
    CU_ASSERT(header_is(&r1, "content-type", "text/plain"));
    CU_ASSERT(header_is(&r1, "connection", "keep-alive"));
    client_sends(c, infer("echo", "application/x-thing", "world!"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r2, true), 0);
    CU_ASSERT_EQUAL(r2.status, 200);
    CU_ASSERT_STRING_EQUAL(r2.body, "world!");
    CU_ASSERT(header_is(&r2, "content-type", "application/x-thing"));
    CU_ASSERT(wait_slots(RM_SLOT_FREE, pool0()->nslots, 1000));
    CU_ASSERT_EQUAL(outcome(RM_OUT_OK), 2);
    struct rm_gw_stats *st = rm_seg_gw_stats(&seg, 0, 0);
    uint64_t total = 0;
    for (unsigned i = 0; i <= RM_HIST_BUCKETS; i++)
        total += atomic_load(&st->dur_hist[i]);
    CU_ASSERT_EQUAL(total, 2);
    client_close(c);
    stop();
}

static void test_large_answer_goes_out_whole(void)
{
    struct opts o = {.max_req = 65536};
    start_with(&o);
    static char big[40001];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (char)('a' + i % 26);
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", big));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_EQUAL(r1.body_len, sizeof big - 1);
    CU_ASSERT(memcmp(r1.body, big, sizeof big - 1) == 0);
    client_close(c);
    stop();
}

static void test_streamed_answer_chunked_sse_and_generate(void)
{
    start();
    worker_mode = W_STREAM;
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 201);
    CU_ASSERT(header_is(&r1, "transfer-encoding", "chunked"));
    CU_ASSERT(header_is(&r1, "content-type", "text/x-stream"));
    CU_ASSERT_EQUAL(r1.body_len, 17);
    CU_ASSERT(memcmp(r1.body, "onetwo\nlinesthree", 17) == 0);
    /* generate_stream: one event per chunk, a chunk's lines each data: */
    static char rq[512];
    snprintf(rq, sizeof rq, "POST /v2/models/echo/generate_stream HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 2\r\n\r\n{}");
    client_sends(c, rq);
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r2, true), 0);
    CU_ASSERT_EQUAL(r2.status, 201);
    CU_ASSERT(header_is(&r2, "content-type", "text/event-stream"));
    static const char sse[] = "data: one\n\ndata: two\ndata: lines\n\ndata: three\n\n";
    CU_ASSERT_EQUAL(r2.body_len, sizeof sse - 1);
    CU_ASSERT(r2.body_len == sizeof sse - 1 && memcmp(r2.body, sse, sizeof sse - 1) == 0);
    /* generate: not a JSON object is 400 before any worker sees it */
    snprintf(rq, sizeof rq, "POST /v2/models/echo/generate HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 3\r\n\r\n[1]");
    client_sends(c, rq);
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r3, true), 0);
    CU_ASSERT_EQUAL(r3.status, 400);
    CU_ASSERT(json_error_contains(&r3, "JSON object"));
    CU_ASSERT(wait_slots(RM_SLOT_FREE, pool0()->nslots, 1000));
    struct rm_gw_stats *st = rm_seg_gw_stats(&seg, 0, 0);
    CU_ASSERT_EQUAL(atomic_load(&st->streams[RM_STREAMS_STARTED]), 2);
    CU_ASSERT_EQUAL(atomic_load(&st->streams[RM_STREAMS_COMPLETED]), 2);
    worker_mode = W_ECHO;
    client_close(c);
    stop();
}

static void test_scribbled_stream_queue_ends_the_stream_not_the_gateway(void)
{
    start();
    worker_mode = W_STREAM_SCRIBBLE;
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "x"));
    /* the body is cut (no last chunk): the client sees the connection close */
    CU_ASSERT_NOT_EQUAL(client_read(c, &r1, true), 0);
    CU_ASSERT(client_sees_close(c, 2000));
    client_close(c);
    worker_mode = W_ECHO;
    /* the gateway serves on, and the slot was freed */
    CU_ASSERT(wait_slots(RM_SLOT_FREE, pool0()->nslots, 2000));
    c = client_open();
    client_sends(c, infer("echo", "text/plain", "still here"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r2, true), 0);
    CU_ASSERT_STRING_EQUAL(r2.body, "still here");
    struct rm_gw_stats *st = rm_seg_gw_stats(&seg, 0, 0);
    CU_ASSERT_EQUAL(atomic_load(&st->streams[RM_STREAMS_FAILED]), 1);
    client_close(c);
    stop();
}

static void test_pipelined_requests_answered_in_order(void)
{
    start();
    struct client *c = client_open();
    char all[4096];
    size_t n = 0;
    n += (size_t)snprintf(all + n, sizeof all - n, "%s", infer("echo", "text/a", "one"));
    n += (size_t)snprintf(all + n, sizeof all - n, "%s", get("/v2/health/live"));
    n += (size_t)snprintf(all + n, sizeof all - n, "%s", infer("echo", "text/b", "two"));
    n += (size_t)snprintf(all + n, sizeof all - n, "%s", infer("echo", "text/c", "three"));
    client_send(c, all, n);
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_STRING_EQUAL(r1.body, "one");
    CU_ASSERT(header_is(&r1, "content-type", "text/a"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r2, true), 0);
    CU_ASSERT_STRING_EQUAL(r2.body, "{\"live\":true}");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r3, true), 0);
    CU_ASSERT_STRING_EQUAL(r3.body, "two");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r4, true), 0);
    CU_ASSERT_STRING_EQUAL(r4.body, "three");
    CU_ASSERT(header_is(&r4, "content-type", "text/c"));
    client_close(c);
    stop();
}

static void test_unknown_pool_is_404(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, infer("nope", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 404);
    CU_ASSERT(json_str_is(&r1, "error", NULL));
    CU_ASSERT(header_is(&r1, "content-type", "application/json"));
    client_sends(c, get("/v2/models/nope"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 404);
    client_sends(c, get("/v2/models/nope/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 404);
    client_sends(c, get("/no/such/path"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 404);
    /* the connection survives client errors */
    client_sends(c, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    client_close(c);
    stop();
}

static void test_wrong_method_is_405(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, get("/v2/models/echo/infer"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 405);
    CU_ASSERT(header_is(&r1, "allow", "POST"));
    CU_ASSERT(json_str_is(&r1, "error", NULL));
    client_sends(c, "POST /v2/health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 405);
    CU_ASSERT(header_is(&r1, "allow", "GET, HEAD"));
    client_sends(c, "DELETE /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 405);
    client_close(c);
    stop();
}

static void test_body_over_limit_is_413(void)
{
    start();  /* max_request_size 4096 */
    struct client *c = client_open();
    /* answered from the headers alone, before any body byte */
    client_sends(c, "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 413);
    CU_ASSERT(header_is(&r1, "connection", "close"));
    CU_ASSERT(json_str_is(&r1, "error", NULL));
    CU_ASSERT(client_sees_close(c, 3000));
    client_close(c);
    CU_ASSERT_EQUAL(outcome(RM_OUT_TOO_LARGE), 1);

    /* chunked: counted as it arrives */
    c = client_open();
    client_sends(c, "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char chunk[2100];
    for (int i = 0; i < 3; i++) {
        int n = snprintf(chunk, sizeof chunk, "%x\r\n", 2000);
        memset(chunk + n, 'z', 2000);
        memcpy(chunk + n + 2000, "\r\n", 2);
        client_send(c, chunk, (size_t)n + 2002);
    }
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 413);
    CU_ASSERT(client_sees_close(c, 3000));
    client_close(c);
    CU_ASSERT_EQUAL(slots_in(RM_SLOT_FREE), pool0()->nslots);
    stop();
}

static void test_chunked_body_within_limit_is_served(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "hello world");
    client_close(c);
    stop();
}

static void test_malformed_request_is_400(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, "G@RBAGE / HTTP/1.1\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 400);
    CU_ASSERT(json_str_is(&r1, "error", NULL));
    CU_ASSERT(client_sees_close(c, 3000));
    client_close(c);

    c = client_open();
    client_sends(c, "GET /v2/health/live HTTP/1.1\r\nHost: t\r\nBad Header Line\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 400);
    CU_ASSERT(client_sees_close(c, 3000));
    client_close(c);

    c = client_open();
    client_sends(c, "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 12x\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 400);
    client_close(c);
    stop();
}

/* ------------------------------------------------------------------ strict HTTP (RFC 9112) */

/*
 * Send req (and, in the same write, a good request after it) on a fresh
 * connection: exactly one answer comes, with status want, a JSON error and
 * Connection: close, and then the connection closes without another byte.
 * Returns false (after saying which input) when anything else happened.
 */
static bool rejected_alone(const char *input, int want)
{
    struct client *c = client_open();
    char both[8192];
    snprintf(both, sizeof both, "%s%s", input, "GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n");
    client_sends(c, both);
    bool answered = client_read(c, &r1, false) == 0;
    bool ok = answered && r1.status == want && json_str_is(&r1, "error", NULL) &&
              header_is(&r1, "connection", "close");
    if (ok) {
        /* nothing more: not the second request's answer, not a byte */
        bool more = c->off < c->len;
        uint64_t until = ms_now() + 3000;
        bool closed = false;
        while (!more && !closed && ms_now() <= until) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            if (poll(&pfd, 1, 10) > 0) {
                char tmp[512];
                ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
                if (n > 0)
                    more = true;
                else
                    closed = true;
            }
        }
        ok = !more && closed;
        if (!ok)
            fprintf(stderr, "\n%s after the answer to: %.200s\n", more ? "more bytes" : "no close", input);
    } else {
        fprintf(stderr, "\nexpected one %d and close, got %d (%s) for: %.200s\n", want, answered ? r1.status : 0,
                answered ? r1.body : "no answer", input);
    }
    client_close(c);
    return ok;
}

static void test_space_between_header_name_and_colon_is_400(void)
{
    start();
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.1\r\nHost\t: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.1\r\nHost: t\r\n: empty name\r\n\r\n", 400));
    CU_ASSERT_EQUAL(slots_in(RM_SLOT_FREE), pool0()->nslots);
    stop();
}

#define CHUNKED_HEAD "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"

static void test_chunk_data_not_followed_by_crlf_is_400(void)
{
    start();
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "5\r\nhelloXX0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "5\r\nhello\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "5\r\nhello\rX0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "3\r\nhello\r\n0\r\n\r\n", 400));  /* the data is longer than its size */
    CU_ASSERT_EQUAL(slots_in(RM_SLOT_FREE), pool0()->nslots);
    CU_ASSERT_EQUAL(worker_serve(), 0);  /* nothing reached a worker */
    stop();
}

static void test_chunk_size_line_with_cr_not_followed_by_lf_is_400(void)
{
    start();
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "5\rXhello\r\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "5\r\r\nhello\r\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "5\r\nhello\r\n0\rX\r\n\r\n", 400));   /* the last chunk too */
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "5;ext=1\rXhello\r\n0\r\n\r\n", 400));  /* after an extension */
    CU_ASSERT_EQUAL(worker_serve(), 0);
    stop();
}

static void test_bad_protocol_or_version_is_400_unsupported_version_505(void)
{
    start();
    CU_ASSERT(rejected_alone("GET /v2/health/live HTXP/1.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live RTSP/1.0\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live http/1.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.x\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/11.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.23\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.1x\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/2.0\r\nHost: t\r\n\r\n", 505));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.2\r\nHost: t\r\n\r\n", 505));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/3.0\r\n\r\n", 505));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/0.9\r\n\r\n", 505));
    CU_ASSERT(rejected_alone("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505));
    stop();
}

/* The protocol name is checked by the gateway (llhttp also parses RTSP/ and
 * ICE/ request lines), also when a read ends inside it. */
static void test_request_line_split_anywhere_still_parses(void)
{
    start();
    static const char good[] = "GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char bad[] = "GET /v2/health/live RTSP/1.0\r\nHost: t\r\n\r\n";
    for (size_t cut = 1; cut < 36; cut++) {
        struct client *c = client_open();
        client_send(c, good, cut);
        sleep_ms(5);  /* two reads for the gateway */
        client_send(c, good + cut, sizeof good - 1 - cut);
        CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
        if (r1.status != 200)
            fprintf(stderr, "\ncut at %zu: %d %s\n", cut, r1.status, r1.body);
        CU_ASSERT_EQUAL(r1.status, 200);
        client_close(c);
        c = client_open();
        client_send(c, bad, cut);
        sleep_ms(5);
        client_send(c, bad + cut, sizeof bad - 1 - cut);
        CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
        CU_ASSERT_EQUAL(r1.status, 400);
        client_close(c);
    }
    /* one byte per read */
    struct client *c = client_open();
    for (size_t i = 0; i < sizeof good - 1; i++) {
        client_send(c, good + i, 1);
        sleep_ms(3);
    }
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    client_close(c);
    stop();
}

static void test_transfer_encoding_in_http10_is_400(void)
{
    start();
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                             "Content-Length: 5\r\n\r\nhello", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.0\r\nTransfer-Encoding:\r\n\r\n", 400));
    CU_ASSERT_EQUAL(worker_serve(), 0);
    /* HTTP/1.0 with a Content-Length is fine */
    struct client *c = client_open();
    client_sends(c, "POST /v2/models/echo/infer HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "hello");
    client_close(c);
    stop();
}

/* RFC 9112 6.1: a coding the server does not know is 501; chunked is the
 * only one ringmaster decodes, so "gzip, chunked" would hand the handler a
 * gzip body it never asked for. */
static void test_transfer_coding_other_than_chunked_is_501(void)
{
    start();
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                             "5\r\nhello\r\n0\r\n\r\n", 501));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501));
    char longte[256];
    snprintf(longte, sizeof longte, "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: %s"
             "chunked\r\n\r\n0\r\n\r\n", "x-first-coding-of-a-long-list, x-second-coding-of-a-long-list, ");
    CU_ASSERT(rejected_alone(longte, 501));
    CU_ASSERT_EQUAL(worker_serve(), 0);
    /* chunked alone, in any case, is served */
    struct client *c = client_open();
    client_sends(c, "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                    "Transfer-Encoding: ChUnKeD \r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "hello");
    client_close(c);
    stop();
}

static void test_host_missing_twice_or_malformed_is_400(void)
{
    start();
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.1\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.1\r\nHost: a\r\nhOsT: b\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400));
    static const char *const bad[] = {
        "a b", "a:b", "a:80x", "a:99999", "a::80", "a:-1", "a/b", "a@b", "a%2", "a%zz", "a\"b", "[::1", "[::1]x",
        "[::g]", "[1.2.3.4]", "[v1]", "[vx.a]", "a:80:80", "a,b ,c", "\xc3\xa9", "a\tb",
    };
    char line[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, "GET /v2/health/live HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
        CU_ASSERT(rejected_alone(line, 400));
    }
    /* A Host value longer than any name is refused too. */
    char longhost[400];
    memset(longhost, 'h', 300);
    longhost[300] = '\0';
    snprintf(line, sizeof line, "GET /v2/health/live HTTP/1.1\r\nHost: %s\r\n\r\n", longhost);
    CU_ASSERT(rejected_alone(line, 400));
    /* Valid ones, and HTTP/1.0 without Host, are served on one connection. */
    static const char *const good[] = {
        "a", "localhost:8080", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8080", "[v1.x:y]", "a.b-c_d~e",
        "a%20b", "!$&'()*+,;=", "a:", "", "host:65535", "a   ",
    };
    struct client *c = client_open();
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(line, sizeof line, "GET /v2/health/live HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        client_sends(c, line);
        CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
        if (r1.status != 200)
            fprintf(stderr, "\nHost: %s -> %d %s\n", good[i], r1.status, r1.body);
        CU_ASSERT_EQUAL(r1.status, 200);
    }
    client_sends(c, "GET /v2/health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    client_close(c);
    stop();
}

static void test_ambiguous_body_length_is_400(void)
{
    start();
    /* CL.TE and TE.CL: the classic request smuggling pair */
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                             "Content-Length: 5\r\n\r\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                             "Transfer-Encoding:\r\n\r\nhello", 400));
    /* two Content-Lengths, different or not */
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                             "Content-Length: 6\r\n\r\nhello!", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                             "Content-Length: 5\r\n\r\nhello", 400));
    /* the last transfer coding is not chunked */
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhello", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                             "5\r\nhello\r\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                             "Transfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n\r\n", 400));
    CU_ASSERT_EQUAL(worker_serve(), 0);
    CU_ASSERT_EQUAL(slots_in(RM_SLOT_FREE), pool0()->nslots);
    stop();
}

static void test_request_target_not_in_origin_form_is_400(void)
{
    start();
    CU_ASSERT(rejected_alone("GET http://t/v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live#frag HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    /* bytes outside ASCII or controls in the target (llhttp's strict mode) */
    CU_ASSERT(rejected_alone("GET /v2/health/live\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/\x01live HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    /* the path is what precedes '?' */
    struct client *c = client_open();
    client_sends(c, "GET /v2/health/live?probe=1&x=/y HTTP/1.1\r\nHost: t\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    client_sends(c, "GET /v2/health/live/?x HTTP/1.1\r\nHost: t\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 404);
    client_close(c);
    stop();
}

/* Whatever comes behind a rejected request in the same write is never
 * parsed nor answered (rejected_alone sends a good request after each). */
static void test_nothing_after_a_rejected_request_is_answered(void)
{
    start();
    CU_ASSERT(rejected_alone("G@RBAGE / HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET /v2/health/live HTTP/1.1\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("GET http://t/ HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400));
    CU_ASSERT(rejected_alone(CHUNKED_HEAD "5\r\nhelloXX0\r\n\r\n", 400));
    /* a smuggled request inside a body that is rejected is not served either */
    CU_ASSERT(rejected_alone("POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                             "Content-Length: 4\r\n\r\n5c\r\nGPOST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\n"
                             "Content-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n", 400));
    CU_ASSERT_EQUAL(worker_serve(), 0);
    CU_ASSERT_EQUAL(outcome(RM_OUT_OK), 0);
    stop();
}

/* llhttp has no header limit: the gateway counts the request line and the
 * headers (through the empty line) itself, to the byte. */
static void test_headers_of_exactly_max_header_size_pass_one_more_byte_is_431(void)
{
    struct opts o = {.max_header_size = 1024};
    start_with(&o);
    char big[2048];
    for (int extra = 0; extra <= 1; extra++) {
        int n = snprintf(big, sizeof big, "GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Pad: ");
        size_t pad = 1024 - (size_t)n - 4 + (size_t)extra;  /* then "\r\n\r\n" */
        memset(big + n, 'p', pad);
        memcpy(big + n + pad, "\r\n\r\n", 5);
        CU_ASSERT_EQUAL(strlen(big), 1024u + (size_t)extra);
        struct client *c = client_open();
        client_sends(c, big);
        CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
        CU_ASSERT_EQUAL(r1.status, extra ? 431 : 200);
        client_close(c);
    }
    /* chunk extensions and trailers count against the same limit */
    struct client *c = client_open();
    client_sends(c, CHUNKED_HEAD "1;");
    memset(big, 'e', 1100);
    client_send(c, big, 1100);
    client_sends(c, "\r\nx\r\n0\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 431);
    client_close(c);
    c = client_open();
    client_sends(c, CHUNKED_HEAD "1\r\nx\r\n0\r\nX-Trailer: ");
    client_send(c, big, 1100);
    client_sends(c, "\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 431);
    client_close(c);
    CU_ASSERT_EQUAL(worker_serve(), 0);
    stop();
}

/* Every answer has a Date (client_read checks each one); here: errors too,
 * and the cached string moves on with the clock. */
static void test_every_answer_has_a_date_that_follows_the_clock(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT(date_is_now(&r1));
    client_sends(c, get("/nope"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r2, false), 0);
    CU_ASSERT_EQUAL(r2.status, 404);
    CU_ASSERT(date_is_now(&r2));
    long long t0 = date_of(&r1);
    sleep_ms(2100);
    client_sends(c, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r3, false), 0);
    CU_ASSERT(date_of(&r3) >= t0 + 2);
    client_close(c);
    c = client_open();
    client_sends(c, "BAD\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r4, false), 0);
    CU_ASSERT_EQUAL(r4.status, 400);
    CU_ASSERT(date_is_now(&r4));
    client_close(c);
    stop();
}

static void test_header_over_limit_is_431(void)
{
    struct opts o = {.max_header_size = 1024};
    start_with(&o);
    struct client *c = client_open();
    static char big[4096];
    int n = snprintf(big, sizeof big, "GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(big + n, 'a', 2000);
    memcpy(big + n + 2000, "\r\n\r\n", 4);
    client_send(c, big, (size_t)n + 2004);
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 431);
    CU_ASSERT(client_sees_close(c, 3000));
    client_close(c);
    stop();
}

static void test_content_type_over_127_bytes_is_400(void)
{
    start();
    char ct[200];
    memset(ct, 'x', 150);
    memcpy(ct, "text/", 5);
    ct[150] = '\0';
    struct client *c = client_open();
    client_sends(c, infer("echo", ct, "abc"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 400);
    CU_ASSERT(json_error_contains(&r1, "Content-Type"));
    CU_ASSERT_EQUAL(slots_in(RM_SLOT_FREE), pool0()->nslots);
    client_close(c);
    stop();
}

static void test_queue_full_is_503_with_retry_after(void)
{
    struct opts o = {.nslots = 2};
    start_with(&o);
    struct client *a = client_open(), *b = client_open(), *x = client_open();
    client_sends(a, infer("echo", "text/plain", "A"));
    client_sends(b, infer("echo", "text/plain", "B"));
    CU_ASSERT_FATAL(wait_slots(RM_SLOT_QUEUED, 2, 2000));
    client_sends(x, infer("echo", "text/plain", "X"));
    CU_ASSERT_EQUAL_FATAL(client_read(x, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 503);
    CU_ASSERT(header_is(&r1, "retry-after", "1"));
    CU_ASSERT(json_str_is(&r1, "error", "queue full"));
    CU_ASSERT_EQUAL(outcome(RM_OUT_REJECTED), 1);
    /* the accepted ones still get their answers */
    CU_ASSERT_EQUAL_FATAL(client_read(a, &r2, true), 0);
    CU_ASSERT_STRING_EQUAL(r2.body, "A");
    CU_ASSERT_EQUAL_FATAL(client_read(b, &r3, true), 0);
    CU_ASSERT_STRING_EQUAL(r3.body, "B");
    /* and the queue takes requests again */
    client_sends(x, infer("echo", "text/plain", "again"));
    CU_ASSERT_EQUAL_FATAL(client_read(x, &r1, true), 0);
    CU_ASSERT_STRING_EQUAL(r1.body, "again");
    client_close(a);
    client_close(b);
    client_close(x);
    stop();
}

static void test_infer_right_after_worker_ready_is_served(void)
{
    start();
    atomic_store(&worker_entry()->state, RM_PROC_STARTING);
    publish_worker_counts(&seg);
    CU_ASSERT_FATAL(gateway_ticks(1));  /* the gateway's per-tick cache now says: no worker */
    atomic_store(&worker_entry()->state, RM_PROC_READY);
    publish_worker_counts(&seg);
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "at once"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "at once");
    client_close(c);
    stop();
}

static void test_no_ready_worker_or_draining_is_503(void)
{
    start();
    struct client *c = client_open();
    atomic_store(&worker_entry()->state, RM_PROC_STARTING);
    publish_worker_counts(&seg);
    CU_ASSERT_FATAL(gateway_ticks(1));  /* readiness for inference is cached per tick */
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 503);
    CU_ASSERT(header_is(&r1, "retry-after", "1"));
    CU_ASSERT(json_error_contains(&r1, "worker"));

    atomic_store(&worker_entry()->state, RM_PROC_BUSY);
    publish_worker_counts(&seg);
    CU_ASSERT_FATAL(gateway_ticks(1));
    atomic_store(&seg.hdr->draining, 1);
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 503);
    CU_ASSERT(json_error_contains(&r1, "draining"));

    atomic_store(&seg.hdr->draining, 0);
    atomic_store(&pool0()->failed, 1);
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 503);
    CU_ASSERT_EQUAL(outcome(RM_OUT_REJECTED), 3);
    CU_ASSERT_EQUAL(slots_in(RM_SLOT_FREE), pool0()->nslots);
    client_close(c);
    stop();
}

static void test_health_live_and_ready_from_shm(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "{\"live\":true}");
    client_sends(c, get("/v2/health/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "{\"ready\":true}");
    client_sends(c, get("/v2/models/echo/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);

    /* answered from shared memory: no worker involved, state read fresh */
    atomic_store(&worker_entry()->state, RM_PROC_STARTING);
    publish_worker_counts(&seg);
    client_sends(c, get("/v2/health/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 503);
    CU_ASSERT(strstr(r1.body, "\"ready\":false") != NULL);
    CU_ASSERT(json_str_is(&r1, "reason", NULL));
    CU_ASSERT(strstr(r1.body, "echo") != NULL);
    client_sends(c, get("/v2/models/echo/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 503);

    atomic_store(&worker_entry()->state, RM_PROC_BUSY);
    publish_worker_counts(&seg);
    client_sends(c, get("/v2/health/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);

    atomic_store(&pool0()->failed, 1);
    client_sends(c, get("/v2/health/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 503);
    CU_ASSERT(strstr(r1.body, "echo") != NULL);
    atomic_store(&pool0()->failed, 0);

    atomic_store(&seg.hdr->draining, 1);
    client_sends(c, get("/v2/health/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 503);
    CU_ASSERT(json_str_is(&r1, "reason", "draining"));
    client_sends(c, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    atomic_store(&seg.hdr->draining, 0);
    client_close(c);
    stop();
}

static void test_server_and_model_metadata_json_and_head_has_no_body(void)
{
    struct opts o = {.second_pool = true};
    start_with(&o);
    struct client *c = client_open();
    client_sends(c, get("/v2"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT(json_str_is(&r1, "name", "ringmaster"));
    CU_ASSERT(json_str_is(&r1, "version", PACKAGE_VERSION));
    CU_ASSERT(strstr(r1.body, "\"extensions\":[]") != NULL);

    client_sends(c, get("/v2/models/echo"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    json_error_t je;
    json_t *j = json_loadb(r1.body, r1.body_len, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "name")), "echo");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "handler")), "echo");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "platform")), "ringmaster");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(json_object_get(j, "versions"), 0)), "1");
    json_t *in0 = json_array_get(json_object_get(j, "inputs"), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(in0, "name")), "body");
    CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_object_get(in0, "shape"), 0)), -1);
    json_decref(j);

    client_sends(c, get("/v2/models/ocr"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    j = json_loadb(r1.body, r1.body_len, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    in0 = json_array_get(json_object_get(j, "inputs"), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(in0, "name")), "image");
    json_t *out0 = json_array_get(json_object_get(j, "outputs"), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(out0, "name")), "text");
    json_decref(j);

    /* HEAD: same headers, no body */
    c->head = true;
    client_sends(c, "HEAD /v2/models/echo HTTP/1.1\r\nHost: t\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r2, false), 0);
    CU_ASSERT_EQUAL(r2.status, 200);
    CU_ASSERT_EQUAL(r2.body_len, 0);
    CU_ASSERT(header(&r2, "content-length") && atoi(header(&r2, "content-length")) > 0);
    client_sends(c, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_STRING_EQUAL(r1.body, "{\"live\":true}");
    client_close(c);
    stop();
}

static bool promtool_accepts(const char *text, size_t len)
{
    FILE *f = popen("/usr/bin/promtool check metrics >&2", "w");
    if (!f)
        return false;
    fwrite(text, 1, len, f);
    return pclose(f) == 0;
}

static void test_metrics_has_every_family_counts_the_request_and_passes_promtool(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "count me"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    client_sends(c, get("/metrics"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT(strncmp(header(&r1, "content-type") ? header(&r1, "content-type") : "", "text/plain", 10) == 0);
    static const char *const want[] = {
        "ringmaster_up 1\n",
        "ringmaster_draining 0\n",
        "# TYPE ringmaster_requests_total counter\n",
        "ringmaster_requests_total{pool=\"echo\",outcome=\"ok\"} 1\n",
        "ringmaster_requests_total{pool=\"echo\",outcome=\"client_gone\"} 0\n",
        "# TYPE ringmaster_responses_total counter\n",
        "ringmaster_responses_total{pool=\"echo\",code=\"200\"} 1\n",
        "ringmaster_responses_total{pool=\"echo\",code=\"5xx\"} 0\n",
        "# TYPE ringmaster_other_responses_total counter\n",
        "ringmaster_other_responses_total{code=\"404\"} 0\n",
        "# TYPE ringmaster_request_duration_seconds histogram\n",
        "ringmaster_request_duration_seconds_bucket{pool=\"echo\",le=\"+Inf\"} 1\n",
        "ringmaster_request_duration_seconds_count{pool=\"echo\"} 1\n",
        "ringmaster_queue_wait_seconds_count{pool=\"echo\"} 1\n",
        "ringmaster_queue_wait_seconds_bucket{pool=\"echo\",le=\"0.001\"}",
        "ringmaster_queue_depth{pool=\"echo\"} 0\n",
        "ringmaster_workers{pool=\"echo\",state=\"ready\"} 1\n",
        "ringmaster_workers{pool=\"echo\",state=\"starting\"} 0\n",
        "ringmaster_restarts_total{pool=\"echo\",reason=\"init_failed\"} 0\n",
        "ringmaster_retried_requests_total{pool=\"echo\"} 0\n",
        "ringmaster_gateway_restarts_total 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(r1.body, want[i]))
            fprintf(stderr, "\nmissing from /metrics: %s", want[i]);
        CU_ASSERT(strstr(r1.body, want[i]) != NULL);
    }
    if (access("/usr/bin/promtool", X_OK) == 0)
        CU_ASSERT(promtool_accepts(r1.body, r1.body_len));
    client_close(c);
    stop();
}

static void test_answers_counted_by_status_in_their_pool_or_the_server_block(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "fine"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    worker_mode = W_ERROR;
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 500);
    worker_mode = W_204;
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 204);
    worker_mode = W_ECHO;
    client_sends(c, get("/v2/models/echo/infer"));        /* the pool's endpoint, wrong method */
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 405);
    client_sends(c, infer("nope", "text/plain", "x"));     /* no such pool: the server's */
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 404);
    client_sends(c, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    client_sends(c, "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 413);
    client_close(c);
    c = client_open();
    client_sends(c, "G@RBAGE / HTTP/1.1\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 400);
    client_close(c);

    /* the pool's: its inference endpoint only */
    CU_ASSERT_EQUAL(answered(0, RM_CODE_200), 1);
    CU_ASSERT_EQUAL(answered(0, RM_CODE_500), 1);
    CU_ASSERT_EQUAL(answered(0, RM_CODE_2XX), 1);
    CU_ASSERT_EQUAL(answered(0, RM_CODE_405), 1);
    CU_ASSERT_EQUAL(answered(0, RM_CODE_413), 1);
    CU_ASSERT_EQUAL(answered(0, RM_CODE_404), 0);
    CU_ASSERT_EQUAL(answered(0, RM_CODE_400), 0);
    /* the server's: everything else */
    CU_ASSERT_EQUAL(answered(RM_GW_SERVER, RM_CODE_404), 1);
    CU_ASSERT_EQUAL(answered(RM_GW_SERVER, RM_CODE_200), 1);
    CU_ASSERT_EQUAL(answered(RM_GW_SERVER, RM_CODE_400), 1);
    CU_ASSERT_EQUAL(answered(RM_GW_SERVER, RM_CODE_405), 0);
    CU_ASSERT_EQUAL(answered(RM_GW_SERVER, RM_CODE_413), 0);

    /* and /metrics says the same (its own answer is counted after it) */
    c = client_open();
    client_sends(c, get("/metrics"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    static const char *const want[] = {
        "ringmaster_responses_total{pool=\"echo\",code=\"200\"} 1\n",
        "ringmaster_responses_total{pool=\"echo\",code=\"2xx\"} 1\n",
        "ringmaster_responses_total{pool=\"echo\",code=\"405\"} 1\n",
        "ringmaster_responses_total{pool=\"echo\",code=\"413\"} 1\n",
        "ringmaster_responses_total{pool=\"echo\",code=\"500\"} 1\n",
        "ringmaster_responses_total{pool=\"echo\",code=\"404\"} 0\n",
        "ringmaster_other_responses_total{code=\"200\"} 1\n",
        "ringmaster_other_responses_total{code=\"400\"} 1\n",
        "ringmaster_other_responses_total{code=\"404\"} 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(r1.body, want[i]))
            fprintf(stderr, "\nmissing from /metrics: %s", want[i]);
        CU_ASSERT(strstr(r1.body, want[i]) != NULL);
    }
    CU_ASSERT_EQUAL(answered(RM_GW_SERVER, RM_CODE_200), 2);
    client_close(c);
    stop();
}

static void test_status_code_map_gives_each_code_its_entry_and_others_their_class(void)
{
    static const struct {
        unsigned status;
        const char *name;
    } cases[] = {
        {200, "200"}, {201, "2xx"}, {204, "2xx"}, {301, "3xx"}, {400, "400"}, {404, "404"}, {405, "405"},
        {408, "408"}, {413, "413"}, {414, "414"}, {431, "431"}, {418, "4xx"}, {429, "4xx"}, {500, "500"},
        {502, "502"}, {503, "503"}, {504, "504"}, {505, "5xx"}, {599, "5xx"}, {0, "5xx"}, {600, "5xx"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = rm_code_name(rm_code_of(cases[i].status));
        if (strcmp(got, cases[i].name) != 0)
            fprintf(stderr, "\nstatus %u: %s, expected %s", cases[i].status, got, cases[i].name);
        CU_ASSERT_STRING_EQUAL(got, cases[i].name);
    }
    /* every entry has a name of its own */
    for (unsigned a = 0; a < RM_CODE_N; a++) {
        CU_ASSERT_STRING_NOT_EQUAL(rm_code_name(a), "?");
        for (unsigned b = a + 1; b < RM_CODE_N; b++)
            CU_ASSERT_STRING_NOT_EQUAL(rm_code_name(a), rm_code_name(b));
    }
    CU_ASSERT_STRING_EQUAL(rm_code_name(RM_CODE_N), "?");
}

static void test_hist_quantile_interpolates_in_its_bucket_and_names_the_open_ends(void)
{
    uint64_t h[RM_HIST_BUCKETS + 1] = {0};
    CU_ASSERT_EQUAL(rm_hist_quantile(h, 0.5).kind, RM_Q_NONE);
    /* 100 answers in (2.5 ms, 5 ms]: taken as spread evenly over it */
    h[2] = 100;
    struct rm_quantile q = rm_hist_quantile(h, 0.5);
    CU_ASSERT_EQUAL(q.kind, RM_Q_IN);
    CU_ASSERT_DOUBLE_EQUAL(q.s, 0.00375, 1e-9);
    q = rm_hist_quantile(h, 0.99);
    CU_ASSERT_EQUAL(q.kind, RM_Q_IN);
    CU_ASSERT_DOUBLE_EQUAL(q.s, 0.0025 + 0.0025 * 0.99, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(rm_hist_quantile(h, 1).s, 0.005, 1e-9);
    /* half in the first bucket: no lower bound, "<= 1 ms"; the rest in (5, 10] ms */
    memset(h, 0, sizeof h);
    h[0] = 50;
    h[3] = 50;
    q = rm_hist_quantile(h, 0.5);
    CU_ASSERT_EQUAL(q.kind, RM_Q_LE);
    CU_ASSERT_DOUBLE_EQUAL(q.s, 0.001, 1e-12);
    q = rm_hist_quantile(h, 0.9);
    CU_ASSERT_EQUAL(q.kind, RM_Q_IN);
    CU_ASSERT_DOUBLE_EQUAL(q.s, 0.009, 1e-9);
    /* past the last bound: no upper bound, "> 30 s" */
    h[RM_HIST_BUCKETS] = 1000;
    q = rm_hist_quantile(h, 0.99);
    CU_ASSERT_EQUAL(q.kind, RM_Q_GT);
    CU_ASSERT_DOUBLE_EQUAL(q.s, 30, 1e-9);
    /* a rank at a bucket's top stays in it; empty buckets are skipped */
    memset(h, 0, sizeof h);
    h[5] = 10;
    h[9] = 10;
    q = rm_hist_quantile(h, 0.5);
    CU_ASSERT_EQUAL(q.kind, RM_Q_IN);
    CU_ASSERT_DOUBLE_EQUAL(q.s, 0.05, 1e-9);
    q = rm_hist_quantile(h, 0.75);  /* rank 15: halfway into (0.5 s, 1 s] */
    CU_ASSERT_EQUAL(q.kind, RM_Q_IN);
    CU_ASSERT_DOUBLE_EQUAL(q.s, 0.75, 1e-9);
}

static void test_client_gone_while_queued_frees_slot(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "bye"));
    CU_ASSERT_FATAL(wait_slots(RM_SLOT_QUEUED, 1, 2000));
    client_close(c);
    CU_ASSERT(wait_slots(RM_SLOT_FREE, pool0()->nslots, 2000));
    CU_ASSERT_EQUAL(outcome(RM_OUT_CLIENT_GONE), 1);
    /* the stale ring entry is harmless: the worker finds the slot FREE */
    CU_ASSERT_EQUAL(worker_serve(), 0);
    stop();
}

static void test_client_gone_while_running_aborts_slot(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "bye"));
    CU_ASSERT_FATAL(wait_slots(RM_SLOT_QUEUED, 1, 2000));
    /* a worker takes it... */
    struct rm_pool_view *v = view0();
    struct rm_req_job job;
    CU_ASSERT_FATAL(rm_req_take(v, worker_entry(), WORKER_SB, rm_now_ns(), &job) == RM_TAKE_OK);
    /* ... and the client hangs up */
    client_close(c);
    CU_ASSERT(wait_slots(RM_SLOT_ABORTED, 1, 2000));
    uint64_t w = rm_slot_load(&v->states[job.slot]);
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(w), RM_OWNER(WORKER_SB));
    /* the worker finishes: nobody to wake, the slot is freed */
    struct rm_req_result res = {.status = 200, .len = 3};
    CU_ASSERT_EQUAL(rm_req_finish(v, worker_entry(), &job, &res, rm_now_ns()), RM_FINISH_NOBODY);
    CU_ASSERT_EQUAL(slots_in(RM_SLOT_FREE), v->nslots);
    CU_ASSERT_EQUAL(outcome(RM_OUT_CLIENT_GONE), 1);
    stop();
}

static void test_deadline_in_queue_is_504(void)
{
    struct opts o = {.timeout_ms = 150};
    start_with(&o);
    struct client *c = client_open();
    uint64_t t0 = ms_now();
    client_sends(c, infer("echo", "text/plain", "late"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT(ms_now() - t0 >= 140);
    CU_ASSERT_EQUAL(r1.status, 504);
    CU_ASSERT(json_str_is(&r1, "error", "deadline exceeded"));
    CU_ASSERT_EQUAL(slots_in(RM_SLOT_FREE), pool0()->nslots);
    CU_ASSERT_EQUAL(outcome(RM_OUT_TIMEOUT), 1);
    CU_ASSERT_EQUAL(worker_serve(), 0);
    client_close(c);
    stop();
}

static void test_handler_error_is_500_with_message(void)
{
    start();
    worker_mode = W_ERROR;
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    worker_mode = W_ECHO;
    CU_ASSERT_EQUAL(r1.status, 500);
    CU_ASSERT(json_str_is(&r1, "error", "boom: \"bad\" input"));
    CU_ASSERT_EQUAL(outcome(RM_OUT_HANDLER_ERROR), 1);
    CU_ASSERT(wait_slots(RM_SLOT_FREE, pool0()->nslots, 1000));
    client_close(c);
    stop();
}

static void test_every_attempt_crashed_is_502(void)
{
    start();
    worker_mode = W_CRASHED;
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    worker_mode = W_ECHO;
    CU_ASSERT_EQUAL(r1.status, 502);
    CU_ASSERT(json_str_is(&r1, "error", "every attempt's worker died"));
    CU_ASSERT_EQUAL(outcome(RM_OUT_CRASHED), 1);
    client_close(c);
    stop();
}

static void test_handler_status_and_content_type_are_sanitized(void)
{
    start();
    struct client *c = client_open();
    worker_mode = W_204;
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 204);
    CU_ASSERT_EQUAL(r1.body_len, 0);
    CU_ASSERT_PTR_NULL(header(&r1, "content-length"));
    worker_mode = W_EVIL_CTYPE;
    client_sends(c, infer("echo", "text/plain", "x"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r2, true), 0);
    worker_mode = W_ECHO;
    CU_ASSERT_EQUAL(r2.status, 201);
    CU_ASSERT_STRING_EQUAL(r2.body, "ok");
    CU_ASSERT_PTR_NULL(header(&r2, "x-evil"));
    CU_ASSERT(header_is(&r2, "content-type", "application/octet-stream"));
    client_close(c);
    stop();
}

static void test_slowloris_cut_after_header_timeout(void)
{
    struct opts o = {.header_timeout_ms = 300};
    start_with(&o);
    /* t0 before the connect: header_timeout runs from the gateway's accept,
     * which may come before this thread runs again after connect() */
    uint64_t t0 = ms_now();
    struct client *c = client_open();
    client_sends(c, "GET /v2/health/live HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 3; i++) {  /* dribbling header lines does not help */
        sleep_ms(60);
        client_sends(c, "X-Slow: 1\r\n");
    }
    CU_ASSERT_EQUAL(client_read_x(c, &r1, false, false, 2000), 0);
    CU_ASSERT_EQUAL(r1.status, 408);
    CU_ASSERT(client_sees_close(c, 3000));
    uint64_t took = ms_now() - t0;
    CU_ASSERT(took >= 280 && took < 2500);
    client_close(c);
    stop();
}

static void test_idle_keepalive_closed_after_idle_timeout(void)
{
    struct opts o = {.idle_timeout_ms = 300};
    start_with(&o);
    struct client *c = client_open();
    /* t0 before the request: the idle time runs from the answer, which
     * may be sent well before this thread reads it */
    uint64_t t0 = ms_now();
    client_sends(c, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT(client_sees_close(c, 3000));
    uint64_t took = ms_now() - t0;
    CU_ASSERT(took >= 250 && took < 2500);
    client_close(c);
    stop();
}

static void test_expect_100_continue_gets_100_then_the_answer(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, "POST /v2/models/echo/infer HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read_x(c, &r1, false, true, 3000), 0);
    CU_ASSERT_EQUAL(r1.status, 100);
    client_sends(c, "12345");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r2, true), 0);
    CU_ASSERT_EQUAL(r2.status, 200);
    CU_ASSERT_STRING_EQUAL(r2.body, "12345");
    client_close(c);
    stop();
}

static void test_http10_or_connection_close_answer_then_closes(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, "GET /v2/health/live HTTP/1.0\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT(header_is(&r1, "connection", "close"));
    CU_ASSERT(client_sees_close(c, 3000));
    client_close(c);
    c = client_open();
    client_sends(c, "GET /v2/health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT(header_is(&r1, "connection", "close"));
    CU_ASSERT(client_sees_close(c, 3000));
    client_close(c);
    stop();
}

static void test_connections_over_max_get_503(void)
{
    struct opts o = {.max_connections = 2};
    start_with(&o);
    struct client *a = client_open(), *b = client_open();
    client_sends(a, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(a, &r1, false), 0);
    client_sends(b, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(b, &r1, false), 0);
    /* over the limit: an inference gets 503 with Retry-After... */
    struct client *x = client_open();
    client_sends(x, infer("echo", "text/plain", "hi"));
    CU_ASSERT_EQUAL_FATAL(client_read(x, &r2, false), 0);
    CU_ASSERT_EQUAL(r2.status, 503);
    CU_ASSERT(header_is(&r2, "retry-after", "1"));
    CU_ASSERT(client_sees_close(x, 3000));
    client_close(x);
    /* ...and a health probe its answer (a load balancer must not take an
     * overloaded gateway for a dead one); both connections are closed */
    x = client_open();
    client_sends(x, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(x, &r2, false), 0);
    CU_ASSERT_EQUAL(r2.status, 200);
    CU_ASSERT(header_is(&r2, "connection", "close"));
    CU_ASSERT(client_sees_close(x, 3000));
    client_close(x);
    /* a slot frees up when one closes (seen by the gateway's loop before
     * its second tick after the close) */
    client_close(a);
    CU_ASSERT_FATAL(gateway_ticks(1));
    x = client_open();
    client_sends(x, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(x, &r1, false), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    client_close(x);
    client_close(b);
    stop();
}

static void test_ready_gateway_heartbeat_advances_in_scoreboard(void)
{
    start();
    struct rm_sb_entry *g = rm_seg_sb(&seg, 0);
    CU_ASSERT_EQUAL(atomic_load(&g->state), RM_PROC_READY);
    uint64_t h1 = atomic_load(&g->heartbeat_ns);
    CU_ASSERT_FATAL(WAIT_UNTIL(atomic_load(&g->heartbeat_ns) > h1, 3000));
    uint64_t h2 = atomic_load(&g->heartbeat_ns);
    /* a time of the same clock, not in the future (how recent depends on
     * the scheduler: the advance itself is the liveness check) */
    CU_ASSERT(h2 > h1 && h2 <= rm_now_ns());
    stop();
}

static void test_sigterm_finishes_pending_then_exits(void)
{
    start();
    struct client *c = client_open();
    struct client *idle = client_open();
    client_sends(idle, get("/v2/health/live"));
    CU_ASSERT_EQUAL_FATAL(client_read(idle, &r2, false), 0);
    client_sends(c, infer("echo", "text/plain", "last one"));
    CU_ASSERT_FATAL(wait_slots(RM_SLOT_QUEUED, 1, 2000));
    kill(gw_pid, SIGTERM);
    CU_ASSERT(WAIT_UNTIL(atomic_load(&rm_seg_sb(&seg, 0)->state) == RM_PROC_DRAINING, 1000));
    CU_ASSERT(client_sees_close(idle, 2000));  /* idle keep-alive closed */
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "last one");
    CU_ASSERT(header_is(&r1, "connection", "close"));
    CU_ASSERT_EQUAL(wait_gateway(2000), 0);
    client_close(c);
    client_close(idle);
    stop();
}

static void test_graceful_stop_answers_new_connections_with_503(void)
{
    start();
    struct client *c = client_open();
    client_sends(c, infer("echo", "text/plain", "running"));
    CU_ASSERT_FATAL(wait_slots(RM_SLOT_QUEUED, 1, 2000));
    /* what the master does on SIGTERM */
    atomic_store(&seg.hdr->draining, 1);
    atomic_fetch_or(&rm_seg_sb(&seg, 0)->flags, RM_SBF_DRAIN);
    kill(gw_pid, SIGTERM);
    CU_ASSERT(WAIT_UNTIL(atomic_load(&rm_seg_sb(&seg, 0)->state) == RM_PROC_DRAINING, 1000));
    /* new connections are still answered, with 503 */
    struct client *probe = client_open();
    client_sends(probe, get("/v2/health/ready"));
    CU_ASSERT_EQUAL_FATAL(client_read(probe, &r2, false), 0);
    CU_ASSERT_EQUAL(r2.status, 503);
    CU_ASSERT(json_str_is(&r2, "reason", "draining"));
    CU_ASSERT(header_is(&r2, "connection", "close"));
    client_close(probe);
    probe = client_open();
    client_sends(probe, infer("echo", "text/plain", "late"));
    CU_ASSERT_EQUAL_FATAL(client_read(probe, &r3, false), 0);
    CU_ASSERT_EQUAL(r3.status, 503);
    CU_ASSERT(header_is(&r3, "retry-after", "1"));
    client_close(probe);
    /* the accepted request finishes, then the gateway exits */
    CU_ASSERT_EQUAL_FATAL(client_read(c, &r1, true), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_STRING_EQUAL(r1.body, "running");
    CU_ASSERT_EQUAL(wait_gateway(2000), 0);
    client_close(c);
    stop();
}

static void test_drain_flag_from_master_exits_0(void)
{
    start();
    atomic_fetch_or(&rm_seg_sb(&seg, 0)->flags, RM_SBF_DRAIN);
    CU_ASSERT_EQUAL(wait_gateway(2000), 0);
    stop();
}

static void test_exits_0_when_master_is_gone(void)
{
    struct opts o = {.master_pid = 1};  /* not our parent: "the master died" */
    start_with(&o);
    CU_ASSERT_EQUAL(wait_gateway(2000), 0);
    stop();
}

static void test_json_escape_quotes_controls_and_bad_utf8(void)
{
    struct gw_buf b = {0};
    static const char in[] = "a\"b\\c\n\x01 \xc3\xa9 \xff \xe2\x82";
    gw_buf_puts(&b, "{\"s\":\"");
    gw_json_escape(&b, in, sizeof in - 1);
    gw_buf_puts(&b, "\"}");
    json_error_t je;
    json_t *j = json_loadb(b.data, b.len, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "s")),
                           "a\"b\\c\n\x01 \xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
    gw_buf_free(&b);
}

static const rm_test tests[] = {
    RM_TEST(test_echo_round_trip_keepalive),
    RM_TEST(test_large_answer_goes_out_whole),
    RM_TEST(test_pipelined_requests_answered_in_order),
    RM_TEST(test_unknown_pool_is_404),
    RM_TEST(test_wrong_method_is_405),
    RM_TEST(test_body_over_limit_is_413),
    RM_TEST(test_chunked_body_within_limit_is_served),
    RM_TEST(test_malformed_request_is_400),
    RM_TEST(test_header_over_limit_is_431),
    RM_TEST(test_space_between_header_name_and_colon_is_400),
    RM_TEST(test_chunk_data_not_followed_by_crlf_is_400),
    RM_TEST(test_chunk_size_line_with_cr_not_followed_by_lf_is_400),
    RM_TEST(test_bad_protocol_or_version_is_400_unsupported_version_505),
    RM_TEST(test_request_line_split_anywhere_still_parses),
    RM_TEST(test_transfer_encoding_in_http10_is_400),
    RM_TEST(test_transfer_coding_other_than_chunked_is_501),
    RM_TEST(test_host_missing_twice_or_malformed_is_400),
    RM_TEST(test_ambiguous_body_length_is_400),
    RM_TEST(test_request_target_not_in_origin_form_is_400),
    RM_TEST(test_nothing_after_a_rejected_request_is_answered),
    RM_TEST(test_headers_of_exactly_max_header_size_pass_one_more_byte_is_431),
    RM_TEST(test_every_answer_has_a_date_that_follows_the_clock),
    RM_TEST(test_content_type_over_127_bytes_is_400),
    RM_TEST(test_queue_full_is_503_with_retry_after),
    RM_TEST(test_no_ready_worker_or_draining_is_503),
    RM_TEST(test_infer_right_after_worker_ready_is_served),
    RM_TEST(test_health_live_and_ready_from_shm),
    RM_TEST(test_server_and_model_metadata_json_and_head_has_no_body),
    RM_TEST(test_metrics_has_every_family_counts_the_request_and_passes_promtool),
    RM_TEST(test_answers_counted_by_status_in_their_pool_or_the_server_block),
    RM_TEST(test_status_code_map_gives_each_code_its_entry_and_others_their_class),
    RM_TEST(test_hist_quantile_interpolates_in_its_bucket_and_names_the_open_ends),
    RM_TEST(test_client_gone_while_queued_frees_slot),
    RM_TEST(test_client_gone_while_running_aborts_slot),
    RM_TEST(test_deadline_in_queue_is_504),
    RM_TEST(test_handler_error_is_500_with_message),
    RM_TEST(test_every_attempt_crashed_is_502),
    RM_TEST(test_handler_status_and_content_type_are_sanitized),
    RM_TEST(test_slowloris_cut_after_header_timeout),
    RM_TEST(test_idle_keepalive_closed_after_idle_timeout),
    RM_TEST(test_expect_100_continue_gets_100_then_the_answer),
    RM_TEST(test_http10_or_connection_close_answer_then_closes),
    RM_TEST(test_connections_over_max_get_503),
    RM_TEST(test_ready_gateway_heartbeat_advances_in_scoreboard),
    RM_TEST(test_sigterm_finishes_pending_then_exits),
    RM_TEST(test_graceful_stop_answers_new_connections_with_503),
    RM_TEST(test_drain_flag_from_master_exits_0),
    RM_TEST(test_exits_0_when_master_is_gone),
    RM_TEST(test_json_escape_quotes_controls_and_bad_utf8),
    RM_TEST(test_streamed_answer_chunked_sse_and_generate),
    RM_TEST(test_scribbled_stream_queue_ends_the_stream_not_the_gateway),
    {0},
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    rm_log_init("test");
    return rm_run_suite("gateway", tests);
}
