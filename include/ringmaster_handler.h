/*
 * ringmaster_handler.h - the handler plug-in ABI of ringmaster.
 *
 * A handler is a shared object that a worker process loads once, after fork.
 * It exports one function:
 *
 *     const struct rm_handler *ringmaster_handler(void);
 *
 * which returns a pointer to a static descriptor. The worker checks
 * abi_version against RM_HANDLER_ABI_VERSION and refuses a mismatch.
 *
 * Life cycle, all in the worker process (never in the master):
 *   init()     once, after fork: load the model. May take long (up to the
 *              pool's startup_timeout). Return 0, or fill err and return
 *              RM_INIT_FAILED (the pool is marked failed, no respawn storm).
 *   process()  once per request attempt. The same request may be run again on
 *              another worker when a worker dies under it (attempt > 1), so
 *              process() must be safe to re-run. Return 0 with resp filled;
 *              a negative return is a handler error (HTTP 500 with resp's body
 *              as the message when it has one).
 *   fini()     once before a clean exit (drain, recycle, stop).
 *
 * Build a handler:  cc -shared -fPIC -o myhandler.so myhandler.c
 * and set `handler = /path/to/myhandler.so` in a pool section.
 */
#ifndef RINGMASTER_HANDLER_H
#define RINGMASTER_HANDLER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ABI versions: 3 (this header) added, at the end of struct rm_request,
 * emit(), cancelled() and a private pointer: streaming answers. 2 added, at the end of the structs,
 * rm_handler_config.config_dir and .log, rm_handler.atfork and .keys. A handler
 * built against version 1 still loads: ringmaster reads only the fields
 * version 1 had from its descriptor.
 */
#define RM_HANDLER_ABI_VERSION 3u
#define RM_HANDLER_ABI_MIN 1u
#define RM_HANDLER_SYMBOL "ringmaster_handler"

/* init() return value for a permanent failure (bad model path, ...). */
#define RM_INIT_FAILED (-1)

/* One extra key of the pool section (any key ringmaster does not know). */
struct rm_handler_kv {
    const char *key;
    const char *value;
};

/* Log levels for rm_handler_config.log (syslog's). */
#define RM_LOG_LEVEL_ERR 3
#define RM_LOG_LEVEL_WARNING 4
#define RM_LOG_LEVEL_INFO 6
#define RM_LOG_LEVEL_DEBUG 7

struct rm_handler_config {
    const char *pool;                  /* pool name, e.g. "ocr" */
    unsigned worker_index;             /* 0..workers-1 (spares count on) */
    const struct rm_handler_kv *kv;    /* pool keys for the handler */
    size_t nkv;
    /* ABI 2 */
    const char *config_dir;            /* folder of the configuration file: relative paths start here */
    /* One line in ringmaster's log, from this worker ("worker POOL N"). */
    void (*log)(int level, const char *msg);
};

/* Value of a handler key, or def when the pool section does not set it. */
static inline const char *rm_handler_get(const struct rm_handler_config *cfg,
                                         const char *key, const char *def)
{
    for (size_t i = 0; i < cfg->nkv; i++)
        if (strcmp(cfg->kv[i].key, key) == 0)
            return cfg->kv[i].value;
    return def;
}

struct rm_request {
    const void *body;          /* request body (in shared memory, read-only) */
    size_t body_len;
    const char *content_type;  /* "" when the client sent none */
    unsigned attempt;          /* 1 on the first run, 2.. on re-runs */
    uint64_t deadline_ns;      /* CLOCK_MONOTONIC deadline of the request */
    const char *pool;
    /*
     * ABI 3: streaming (docs/streaming.md). emit() sends one chunk of the
     * answer to the client now, while process() goes on. The first emit
     * sends the status and content type that resp holds at that moment;
     * after it, resp's body is no longer used (the answer area carries the
     * chunks) and process() returns 0 to end the stream well, or < 0 to
     * end it with an error the client sees (an SSE error event, or a
     * chunked body cut short). A chunk may be up to max_response_size; the
     * stream is not limited. emit() blocks while the client reads slower
     * than the handler writes (the worker heart-beats meanwhile). Returns
     * 0, or -1 when the client is gone (cancelled) or the stream failed:
     * stop and return. cancelled() says the same without emitting: 1 when
     * the client went away. Both are for use inside process() only, on
     * the req given to it. ringmaster fills these for every handler; a
     * handler built against ABI 1 or 2 never sees them.
     */
    int (*emit)(const struct rm_request *req, const void *data, size_t len);
    int (*cancelled)(const struct rm_request *req);
    void *priv;                /* ringmaster's: do not touch */
};

#define RM_CONTENT_TYPE_MAX 128

struct rm_response {
    int status;                              /* HTTP status, default 200 */
    char content_type[RM_CONTENT_TYPE_MAX];  /* default "application/octet-stream" */
    void *body;        /* buffer to write the answer into (shared memory) */
    size_t body_cap;   /* its size: the pool's max_response_size */
    size_t body_len;   /* bytes written */
};

/* Copy an answer into resp. Returns 0, or -1 when it does not fit. */
static inline int rm_response_set(struct rm_response *resp, int status,
                                  const char *content_type,
                                  const void *data, size_t len)
{
    if (len > resp->body_cap)
        return -1;
    resp->status = status;
    if (content_type) {
        size_t n = strlen(content_type);
        if (n >= sizeof resp->content_type)
            n = sizeof resp->content_type - 1;
        memcpy(resp->content_type, content_type, n);
        resp->content_type[n] = '\0';
    }
    if (len)
        memcpy(resp->body, data, len);
    resp->body_len = len;
    return 0;
}

struct rm_handler {
    uint32_t abi_version;  /* RM_HANDLER_ABI_VERSION */
    const char *name;
    int (*init)(void **state, const struct rm_handler_config *cfg,
                char *err, size_t errlen);
    int (*process)(void *state, const struct rm_request *req,
                   struct rm_response *resp);
    void (*fini)(void *state);
    /* ABI 2, may be NULL. With preload = yes the model is loaded once in a
     * preloader that fork()s the workers: called with RM_FORK_PREPARE just
     * before each fork in the preloader, RM_FORK_PARENT after it there, and
     * RM_FORK_CHILD first thing in the new worker (an embedded interpreter
     * resets its locks here). */
    void (*atfork)(void *state, int phase);
    /* ABI 2: the pool keys this handler reads, NULL-terminated; "*" in the
     * list means any other key is the model's too (it gets them all). A key
     * of a pool section that neither ringmaster nor the handler knows is a
     * configuration error (`ringmaster -t` names its line). NULL: the
     * handler declares nothing, and gets every unknown key (with a
     * warning), as with ABI 1. */
    const char *const *keys;
};
#define RM_FORK_PREPARE 0
#define RM_FORK_PARENT 1
#define RM_FORK_CHILD 2

typedef const struct rm_handler *(*rm_handler_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
