/*
 * internal.h - what the gateway's files share (nothing outside gateway/
 * includes this, except its unit test).
 *
 * One process, one epoll loop, no threads:
 *   gateway.c  the loop: accept, signals, the tick (heartbeat, timeouts,
 *              drain), connection table
 *   http.c     reading, parsing (llhttp callbacks, strict RFC 9112 checks),
 *              writing answers, the Date header
 *   routes.c   which endpoint, health/metadata answers, JSON errors
 *   submit.c   pools seen in shared memory, slot claim/fill/queue, pending
 *              requests and their completion, statistics
 *   metrics.c  Prometheus text
 *   buf.c      growable byte buffer
 *
 * A connection handles one request at a time: the parser is paused after
 * each message and resumed once that message's answer is queued, so
 * pipelined requests are answered in order without a queue of answers. It
 * is also paused when the headers are complete, so that their size is
 * known exactly and the request is checked before any body byte is read.
 * A request answered with an error that closes the connection leaves the
 * parser where it stopped: nothing after it is parsed.
 * Connections are registered edge-triggered once for in and out; `readable`
 * and `writable` remember what the last edge said.
 */
#ifndef RM_GW_INTERNAL_H
#define RM_GW_INTERNAL_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gateway.h"
#include "shm/layout.h"
#include "shm/request.h"

/* epoll data: the top 4 bits say what the fd is; a connection's event also
 * carries the connection's index and generation, so an event still queued
 * for a connection closed earlier in the same batch is ignored. */
enum { EVK_CONN = 0, EVK_LISTEN = 1, EVK_WAKE = 2, EVK_TIMER = 3, EVK_SIGNAL = 4, EVK_CHAN = 5 };
#define EV_SHIFT 60
#define EV_KIND(u) ((unsigned)((u) >> EV_SHIFT))
#define EV_MAKE(kind, v) (((uint64_t)(kind) << EV_SHIFT) | (uint64_t)(v))
#define GEN_MASK 0x0fffffffu
#define EV_CONN(c) EV_MAKE(EVK_CONN, ((uint64_t)((c)->gen & GEN_MASK) << 32) | (c)->idx)

#define GW_TICK_NS (20u * 1000000u)          /* heartbeat, deadlines, lost wakes */
#define GW_TIMEOUT_TICKS 5                   /* connection timeouts every 5 ticks */
#define GW_IN_CAP 16384                      /* per-connection input buffer */
#define GW_URL_MAX 2048                      /* longer: 414 */
#define GW_HOST_MAX 256                      /* Host values this long or longer: 400 */
#define GW_OUT_HIGH (256u * 1024u)           /* stop parsing while this much waits */
#define GW_DISCARD_LIMIT (64u * 1024u)       /* body allowed on a non-inference request */
#define GW_BUF_KEEP (64u * 1024u)            /* larger buffers freed after the request */
#define GW_LINGER_NS (2000ull * 1000000u)    /* read-and-discard after our close */
#define GW_STUCK_GRACE_NS (10000ull * 1000000u) /* RUNNING this long past deadline: give up */
#define GW_DRAIN_FRESH_NS (1000ull * 1000000u) /* draining: wait this long for a first request */
#define GW_MAX_EVENTS 256
#define GW_SPARE_FDS 4                       /* descriptors kept in reserve (EMFILE: health still answers) */
#define GW_OVERFLOW_CONNS 64                 /* over max_connections: answered (health, or 503), then closed */
#define GW_ACCEPT_BURST 64
#define GW_ERRMSG_MAX 1024                   /* handler message bytes put in a 500 */
#define GW_STREAM_HIGH (64u * 1024u)         /* a stream's unsent output: read no more records past it */
#define GW_GEN_MAX (64u * 1024u * 1024u)     /* generate: largest answer collected from a stream */
#define GW_STREAM_PUMPS 4                    /* a stream's reads per gw_conn_run: then the others' turn */

/* ------------------------------------------------------------------ buffer */

/* Growable byte buffer. Appends never fail loudly: on allocation failure
 * oom is set and further appends do nothing; check oom once at the end. */
struct gw_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
    size_t *account;  /* if set, kept equal to the sum of the caps it covers */
};

/* Request bodies waiting in one gateway's memory (before they go into a
 * slot) and answers waiting for clients that do not read are capped in
 * total: past it, new uploads get 503, and a connection whose answer would
 * go past it is closed (its client was not reading). Without a cap, many
 * slow uploads, or clients that never read, could hold gigabytes. */
#define GW_BODY_BUDGET (256u * 1024u * 1024u)

bool gw_buf_reserve(struct gw_buf *b, size_t extra);
void gw_buf_put(struct gw_buf *b, const void *p, size_t n);
void gw_buf_puts(struct gw_buf *b, const char *s);
void gw_buf_put_u64(struct gw_buf *b, uint64_t v);
void gw_buf_printf(struct gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_buf_free(struct gw_buf *b);
/* Empty it; free the memory if it grew past keep bytes. */
void gw_buf_reset(struct gw_buf *b, size_t keep);

/* JSON string contents (no quotes) with every needed escape; invalid UTF-8
 * becomes U+FFFD. */
void gw_json_escape(struct gw_buf *b, const char *s, size_t n);

/* ------------------------------------------------------------------ connections */

enum gw_phase {
    GW_IDLE = 0,   /* between requests (keep-alive), no byte of the next yet */
    GW_HEADERS,    /* first byte seen, headers not complete */
    GW_BODY,       /* headers done, reading the body */
    GW_WAIT,       /* request in a slot, waiting for the worker's answer */
    GW_LINGER,     /* answered and shut down for writing: read and discard */
};

enum gw_route {
    GW_R_NONE = 0,
    GW_R_BAD,           /* request-target not in origin form: 400 (and close) */
    GW_R_URL_TOO_LONG,  /* 414 */
    GW_R_NOT_FOUND,
    GW_R_LIVE,
    GW_R_READY,
    GW_R_SERVER_META,
    GW_R_METRICS,
    GW_R_MODEL_META,
    GW_R_MODEL_READY,
    GW_R_INFER,
    GW_R_GENERATE,         /* Triton generate extension: JSON in, one JSON answer */
    GW_R_GENERATE_STREAM,  /* the same as server-sent events, one per chunk */
};

/* How a streamed answer goes to the client (docs/streaming.md). */
enum gw_smode {
    GW_SM_CHUNKED = 0,  /* /infer: Transfer-Encoding: chunked, a chunk per record */
    GW_SM_SSE,          /* generate_stream: text/event-stream, a data: event per chunk */
    GW_SM_COLLECT,      /* generate: collected, answered as one JSON object */
};

struct gw;

struct gw_conn {
    struct gw *gw;
    int fd;                   /* -1: free */
    uint32_t idx;             /* in gw->conns */
    uint32_t gen;             /* bumped on close: stale epoll events are ignored */
    enum gw_phase phase;
    bool readable;            /* the last edge said input; no EAGAIN since */
    bool writable;
    bool rdhup;               /* peer shut down its side (EPOLLRDHUP seen) */
    bool eof;                 /* read returned 0 */
    bool broken;              /* write error: close at the next chance */
    bool close_after;         /* close once the output is flushed */
    bool keepalive;           /* of the current message */
    bool msg_done;            /* parser reached the end of a message */
    bool hdrs_done;           /* parser paused at the end of the headers */
    bool head;                /* HEAD request: no body in the answer */
    bool overflow;            /* over max_connections: health answered, anything else 503, then closed */
    bool metrics_port;        /* accepted on a metrics_listen socket */
    uint64_t phase_start_ns;  /* when phase began (header timeout, idle timeout) */
    uint64_t req_start_ns;    /* first byte of the current request (access log) */
    unsigned attempt;         /* runs of the answered request (access log; 0: not an inference) */
    char peer[64];            /* the client's address, for the access log */
    uint64_t last_read_ns;
    uint64_t last_write_ns;   /* last write progress (stalled readers) */
    uint64_t linger_until_ns;
    uint32_t answers;         /* answers queued on this connection */

    llhttp_t parser;
    size_t in_off;            /* parsed up to here */
    size_t in_len;
    const char *exec_base;    /* what llhttp_execute was given (callbacks locate their spans) */
    char tail[8];             /* the last bytes parsed before exec_base (protocol name check) */
    size_t tail_len;
    struct gw_buf out;        /* answers not yet written: out.data[out_off..len) */
    size_t out_off;
    struct gw_buf body;       /* body of an inference request */

    /* the request being parsed */
    unsigned method;
    bool method_known;        /* the request line got as far as the URL */
    uint64_t head_bytes;      /* request line and headers parsed so far (max_header_size: 431) */
    uint64_t meta_bytes;      /* chunk extensions and trailers parsed so far (same limit) */
    char url[GW_URL_MAX];
    size_t url_len;
    bool url_too_long;
    bool version_seen;        /* the protocol name before the version was checked */
    char hfield[32];          /* current header name (longer ones: uninteresting) */
    size_t hfield_len;
    bool hfield_long;
    int cur_hdr;              /* GW_H_* of the header whose value is coming */
    unsigned host_count;      /* Host header lines */
    char host[GW_HOST_MAX];
    size_t host_len;
    bool host_long;
    bool has_te;              /* a Transfer-Encoding line, even an empty one */
    char te[64];              /* the Transfer-Encoding lines' values, joined by ',' */
    size_t te_len;
    bool te_long;             /* longer than te holds */
    char ctype[RM_SHM_CTYPE];
    size_t ctype_len;
    bool ctype_bad;           /* longer than RM_SHM_CTYPE - 1, or sent twice */
    bool has_ctype;
    char expect[32];
    size_t expect_len;
    unsigned early_status;    /* answer now and close (413, 505, ...) */
    const char *early_msg;

    /* routing, decided when the headers are complete */
    enum gw_route route;
    int pool;                 /* shm pool index, -1 unknown */
    bool store_body;
    uint64_t body_limit;
    uint64_t body_seen;

    /* the pending request (phase GW_WAIT) */
    struct rm_req_ticket ticket;
    /* its stream, once the first chunk came (submit.c) */
    bool streaming;           /* headers sent (or collecting): the answer is the stream's */
    bool stream_more;         /* records left in the queue while the output was full */
    bool sse_mid;             /* an SSE event is open (its chunk's later pieces follow) */
    bool s_raw;               /* HTTP/1.0 client: no chunked coding, the body ends with the connection */
    enum gw_smode smode;
    uint64_t srpos;           /* our private read position in the slot's queue */
    uint64_t schunks;         /* chunks delivered */
    unsigned sstatus;         /* the stream's status (access log) */
    uint64_t sbytes;          /* body bytes sent, framing excluded (access log) */
    struct gw_buf coll;       /* generate: the chunks, concatenated */
    size_t coll_start;        /* where the current chunk began in coll */
    void *genj;               /* generate: the chunks merged (json_t *), NULL once one was not an object */
    bool gen_plain;           /* a chunk was not a JSON object: answer coll as it is */

    struct gw_conn *next, *prev;    /* gw->active */
    struct gw_conn *pnext, *pprev;  /* gw->pending */
    uint32_t free_next;             /* free list of conns (index) */

    char in[GW_IN_CAP];
};

/* ------------------------------------------------------------------ pools */

/* What the gateway last saw of a shared-memory pool (refreshed each tick). */
struct gw_pool {
    bool active;
    bool valid;               /* view opened: geometry copied and checked */
    bool said_invalid;        /* logged that the descriptor is out of bounds */
    struct rm_pool_view view; /* private geometry (shm/request.h) */
    uint32_t epoch;           /* heal_epoch whose requests this gateway holds */
    bool has_worker;          /* a worker READY or BUSY (as of the last tick) */
    char name[RM_SHM_POOL_NAME];
    size_t name_len;
    uint32_t cursor;          /* where the next free-slot scan starts */
};

/* ------------------------------------------------------------------ the process */

struct gw {
    const struct rm_gw_ctx *ctx;
    struct rm_seg *seg;
    unsigned index;
    struct rm_sb_entry *sb;
    int epfd;
    int tfd;                  /* timerfd: the tick */
    int sfd;                  /* signalfd */
    int chan_fd;              /* the master's channel (new pools' memfds), -1 none */
    int access_fd;            /* access log, -1 off */
    int *lfds;                /* our copies of the listening sockets, -1 closed */
    unsigned char *lmetrics;  /* per socket, 1: a metrics_listen socket */
    bool metrics_apart;       /* metrics_listen set: /metrics only there, only /metrics and health there */
    size_t nlisten;
    bool accept_paused;       /* EMFILE: listening sockets out of epoll until the tick */
    int spare_fds[GW_SPARE_FDS]; /* held back: given up to take a health probe when descriptors run out */
    bool draining;
    uint64_t drain_start_ns;
    unsigned stop_signals;
    uint64_t now;             /* CLOCK_MONOTONIC, refreshed per epoll batch */
    unsigned ticks;
    bool wake;                /* wake_fd fired: scan pending after this batch */
    bool stream_backlog;      /* a stream stopped for fairness with records left: scan again at once */

    uint64_t header_timeout_ns;
    uint64_t idle_timeout_ns;
    uint64_t shutdown_timeout_ns;
    unsigned max_connections;

    struct gw_conn **conns;   /* every conn ever allocated, by idx */
    uint32_t nconns;
    uint32_t conns_cap;
    uint32_t free_head;       /* UINT32_MAX: none */
    struct gw_conn *active;   /* open connections */
    uint32_t nactive;
    struct gw_conn *pending;  /* connections in GW_WAIT */
    uint32_t npending;
    size_t body_bytes;        /* request bodies and unsent answers, all connections (GW_BODY_BUDGET) */
    uint64_t budget_log_ns;   /* last "closed a client that does not read" line */

    struct gw_pool pools[RM_SHM_MAX_POOLS];
    uint64_t req_seq;

    llhttp_settings_t settings;
    uint64_t max_header_size; /* request line and headers; also chunk extensions and trailers */
    char date[32];            /* IMF-fixdate of date_sec, for the Date header */
    int64_t date_sec;
    struct gw_buf scratch;    /* metrics and JSON bodies */
};

/* conn.c */
struct sockaddr;
/* Accepted: set up, or refuse. reserve: taken with a spare descriptor
 * (health only, then closed). */
void gw_conn_open(struct gw *gw, int fd, const struct sockaddr *peer, unsigned peerlen, bool reserve,
                  bool metrics_port);
void gw_conn_start(struct gw *gw, struct gw_conn *c);   /* reset for a new connection */
void gw_conn_close(struct gw *gw, struct gw_conn *c);
/* Keep GW_SPARE_FDS descriptors in reserve (after a connection closed). */
void gw_spares_refill(struct gw *gw);

/* gateway.c: the event loop in steps. gw_open sets a gateway up in the
 * calling process without confining it or taking its signals (only for
 * tests/fuzz/fuzz_gateway.c, which plays the master and the worker
 * itself); gw_poll is one turn of the loop rm_gateway_main runs. */
struct gw *gw_open(const struct rm_gw_ctx *ctx);
void gw_poll(struct gw *gw, int timeout_ms);

/* http.c */
void gw_http_settings(llhttp_settings_t *s);
/* The current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"),
 * formatted again only when the second changed. */
const char *gw_http_date(struct gw *gw);
void gw_req_reset(struct gw_conn *c);                    /* forget the last request's parse state */
void gw_conn_run(struct gw *gw, struct gw_conn *c);     /* make all progress possible */
void gw_conn_linger_or_close(struct gw *gw, struct gw_conn *c);
/* Queue a whole answer. ctype NULL: no Content-Type. extra: header lines,
 * each ending in \r\n, or NULL. Then the connection moves on (keep-alive:
 * next request; else close after the write). */
void gw_respond(struct gw *gw, struct gw_conn *c, unsigned status, const char *ctype,
                const void *body, size_t len, const char *extra);
/* {"error":msg} with msg escaped; adds Retry-After to 503, Allow given. */
void gw_respond_error(struct gw *gw, struct gw_conn *c, unsigned status,
                      const char *msg, size_t msglen, const char *allow);
void gw_respond_error_s(struct gw *gw, struct gw_conn *c, unsigned status, const char *msg);

/* Streams (http.c): the headers with the first chunk (status, type; the
 * framing is c->smode's), one piece of a chunk, and the end (err NULL:
 * completed; else the reason it failed, as an SSE error event, or a
 * chunked body left unterminated). gw_stream_end then moves the
 * connection on like gw_respond. */
void gw_stream_head(struct gw *gw, struct gw_conn *c, unsigned status, const char *ctype);
void gw_stream_piece(struct gw *gw, struct gw_conn *c, const unsigned char *data, size_t len, bool chunk_end);
void gw_stream_end(struct gw *gw, struct gw_conn *c, const char *err);

/* routes.c */
void gw_route_classify(struct gw *gw, struct gw_conn *c);
void gw_dispatch(struct gw *gw, struct gw_conn *c);

/* pools.c */
void gw_pools_refresh(struct gw *gw);
int gw_pool_find(const struct gw *gw, const char *name, size_t len);
/* Map the pools the master sent over its channel (non-blocking). */
void gw_chan_drain(struct gw *gw);
/* The per-tick snapshot said no worker: look again (fresh scan). */
bool gw_pool_has_worker_now(struct gw *gw, unsigned pool);
/* Worker count per pool and scoreboard state (fresh scan). */
void gw_scan_workers(const struct gw *gw, unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES]);
/* A stop was asked (drain_delay: still serving, but unready) or this
 * gateway drains: readiness answers 503. */
bool gw_server_stopping(const struct gw *gw);
/* Is pool i serving? NULL, or a reason ("draining", "failed", ...). */
const char *gw_pool_not_ready(const struct gw *gw, unsigned i,
                              const unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES]);

/* submit.c */
void gw_submit(struct gw *gw, struct gw_conn *c);
void gw_pending_scan(struct gw *gw);
void gw_pending_abandon(struct gw *gw, struct gw_conn *c);
/* The pool's memory is being rebuilt (heal): answer every request of it
 * that waits with 502, touching none of its slots. */
void gw_pending_fail_pool(struct gw *gw, unsigned pool);
/* Read more of c's stream into its output (after the client took some).
 * True if anything was queued or the request ended. */
bool gw_stream_pump(struct gw *gw, struct gw_conn *c);
/* Forget c's generate buffers (request ended or connection closed). */
void gw_stream_free(struct gw *gw, struct gw_conn *c);

/* stats.c */
void gw_count(struct gw *gw, unsigned pool, enum rm_outcome o);
void gw_count_stream(struct gw *gw, unsigned pool, enum rm_stream_result r);
/* An answer with this status was queued on c: counted in c's pool if it
 * answers that pool's inference endpoint, else in RM_GW_SERVER's block. */
void gw_count_answer(struct gw *gw, const struct gw_conn *c, unsigned status);
/* The same for block (a pool, or RM_GW_SERVER) directly. */
void gw_count_status(struct gw *gw, unsigned block, unsigned status);
void gw_observe(struct gw *gw, unsigned pool, uint64_t accept_ns, uint64_t run_start_ns, uint64_t end_ns);

/* metrics.c */
void gw_metrics_render(struct gw *gw, struct gw_buf *b);

#endif
