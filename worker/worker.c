/*
 * worker.c - the worker process. See worker.h.
 *
 * Loop: heartbeat; take a request (rm_req_take: dequeue, claim, show the
 * run in the scoreboard); run the handler with the request in shared memory
 * and the answer written straight into the slot's response area; publish it
 * (rm_req_finish) and wake the slot's gateway. When the ring is empty, sleep
 * on the pool's futex doorbell (rm_req_wait) for at most heartbeat_interval,
 * which is also the heartbeat tick. The protocol steps are shm/request.c.
 */
#include "worker/worker.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "shm/clock.h"
#include "shm/request.h"
#include "shm/stream.h"
#include "core/log.h"
#include "worker/handler.h"
#include "core/proctitle.h"
#include "core/config.h"
#include "core/exitcodes.h"

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void wake_gateway(const struct rm_worker_ctx *ctx, int gw)
{
    if (gw < 0 || (unsigned)gw >= ctx->ngw_wake_fds || ctx->gw_wake_fds[gw] < 0)
        return; /* bounds-checked: the index comes from shared memory */
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the gateway will wake. */
    ssize_t r = write(ctx->gw_wake_fds[gw], &one, sizeof one);
    (void)r;
}

static void heartbeat(struct rm_sb_entry *me)
{
    /* relaxed: the master only compares it with its clock; no data rides on it. */
    atomic_store_explicit(&me->heartbeat_ns, rm_now_ns(), memory_order_relaxed);
}

/* What emit() and cancelled() of the request being run reach through
 * rm_request.priv. */
struct run {
    const struct rm_worker_ctx *ctx;
    int gw;           /* the gateway to wake per chunk (request meta; bounds-checked at use) */
    struct rm_stream_w sw;
    struct rm_sb_entry *me;
    struct rm_response *resp;
    uint64_t tick_ns;
    bool failed;      /* an emit failed: the client is gone or the queue is spoilt */
    uint64_t chunks;
};

static struct run *run_of(const struct rm_request *req)
{
    return req ? (struct run *)req->priv : NULL;
}

/* rm_request.emit: queue one chunk; wait (heart-beating, on a futex) while
 * the queue is full. */
static int run_emit(const struct rm_request *req, const void *data, size_t len)
{
    struct run *ru = run_of(req);
    if (!ru || ru->failed || (len && !data))
        return -1;
    size_t done = 0;
    for (;;) {
        uint64_t now = rm_now_ns();
        enum rm_emit e = rm_stream_put(&ru->sw, (unsigned)ru->resp->status, ru->resp->content_type, data, len,
                                       &done, now);
        if (e == RM_EMIT_CANCELLED) {
            ru->failed = true;
            return -1;
        }
        if (ru->sw.wake) /* the gateway waits for this chunk (it is not reading already) */
            wake_gateway(ru->ctx, ru->gw);
        if (e == RM_EMIT_OK) {
            ru->chunks++;
            return 0;
        }
        heartbeat(ru->me);
        rm_stream_wait(&ru->sw, ru->tick_ns, now);
    }
}

static int run_cancelled(const struct rm_request *req)
{
    struct run *ru = run_of(req);
    return !ru || ru->failed || rm_stream_cancelled(&ru->sw);
}

/* Run one taken request through the handler and publish the answer. */
static void run_job(const struct rm_worker_ctx *ctx, const struct rm_handler *h, void *state,
                    const struct rm_pool_view *v, struct rm_sb_entry *me, const struct rm_req_job *job)
{
    struct rm_response resp = {
        .status = 200,
        .body = job->resp,
        .body_cap = job->resp_cap,
        .body_len = 0,
    };
    snprintf(resp.content_type, sizeof resp.content_type, "application/octet-stream");
    struct run ru = {.ctx = ctx, .gw = (int)(v->req_meta[job->slot].gw & 0x7fffffff), .me = me, .resp = &resp,
                     .tick_ns = ctx->heartbeat_ns};
    rm_stream_w_init(&ru.sw, v, ctx->sb_index, job, job->start_ns);
    struct rm_request req = {
        .body = job->body,
        .body_len = job->len,
        .content_type = job->ctype,
        .attempt = job->attempt,
        .deadline_ns = job->deadline_ns,
        .pool = ctx->pool_name,
        .emit = run_emit,
        .cancelled = run_cancelled,
        .priv = &ru,
    };

    int r = h->process(state, &req, &resp);

    /* A failed handler's body is its error message (500); an answer larger
     * than its buffer is a 500 without a body. A streamed answer is in its
     * chunks: the answer area is the queue, and its status and type went
     * out with the first chunk; a failure after it ends the stream with an
     * error. */
    struct rm_req_result res = {
        .error = r < 0 ? 500 : 0,
        .status = (unsigned)resp.status,
        .len = resp.body_len,
        .ctype = resp.content_type,
    };

    int wake = rm_req_finish(v, me, job, &res, rm_now_ns());
    if (wake >= 0)
        wake_gateway(ctx, wake);
    else if (wake == RM_FINISH_TAKEN)
        rm_warn("slot %u of pool %s was taken from us while we ran it (shared memory scribbled on)", job->slot,
                ctx->pool_name);
}

/* rm_handler_config.log: a handler's line in ringmaster's log. */
static void handler_log(int level, const char *msg)
{
    if (level < RM_LOG_ERR)
        level = RM_LOG_ERR;
    if (level > RM_LOG_DEBUG)
        level = RM_LOG_DEBUG;
    rm_log((enum rm_log_level)level, "%s", msg ? msg : "");
}

void rm_worker_handler_config(const struct rm_worker_ctx *ctx, struct rm_handler_config *hc)
{
    *hc = (struct rm_handler_config){
        .pool = ctx->pool_name,
        .worker_index = ctx->worker_index,
        .kv = ctx->kv,
        .nkv = ctx->nkv,
        .config_dir = ctx->config_dir ? ctx->config_dir : ".",
        .log = handler_log,
    };
}

int rm_worker_main(const struct rm_worker_ctx *ctx)
{
    struct rm_seg *seg = ctx->seg;
    struct rm_sb_entry *me = rm_seg_sb(seg, ctx->sb_index);
    const uint64_t tick_ns = ctx->heartbeat_ns;
    struct rm_pool_view view;

    rm_proctitle_set("ringmaster: worker %s %u", ctx->pool_name, ctx->worker_index);
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    heartbeat(me);

    /* Inference libraries (OpenMP in Tesseract, BLAS) must not spawn a thread
     * per core in every worker: the pool is the parallelism. */
    setenv("OMP_THREAD_LIMIT", "1", 0);
    setenv("OMP_NUM_THREADS", "1", 0);

    /* Before any handler code runs: only this pool's memory stays mapped,
     * its requests read-only, the master's memory read-only. */
    char cerr[256];
    if (rm_seg_confine_worker(seg, ctx->pool, ctx->sb_first, ctx->sb_count, cerr, sizeof cerr) < 0) {
        rm_err("pool %s: confining the worker to its pool's memory: %s", ctx->pool_name, cerr);
        return RM_EXIT_FAILURE;
    }
    if (rm_pool_view_open(seg, ctx->pool, &view) < 0) {
        rm_err("pool %s: its shared-memory descriptor is out of bounds: not serving", ctx->pool_name);
        return RM_EXIT_FAILURE;
    }
    const struct rm_handler *h = ctx->preloaded;
    void *dl = NULL, *state = ctx->preloaded_state;
    char err[RM_HANDLER_ERR_MAX] = "";
    if (h) {
        /* Forked by the preloader: the model is loaded already (shared). */
    } else if (rm_handler_resolve(ctx->handler, &h, &dl, err, sizeof err) < 0) {
        rm_err("pool %s: handler %s: %s", ctx->pool_name, ctx->handler, err);
        return RM_EXIT_INIT_FAILED;
    }
    struct rm_handler_config hc;
    rm_worker_handler_config(ctx, &hc);
    /* A reload's .so was not loaded by the master: check its keys here. */
    if (!ctx->preloaded &&
        rm_check_handler_keys(ctx->config_path ? ctx->config_path : "config", ctx->pool_name, ctx->kv, NULL, ctx->nkv,
                              h->name, h->keys, err, sizeof err) < 0) {
        rm_err("pool %s: %s", ctx->pool_name, err);
        return RM_EXIT_INIT_FAILED;
    }
    if (!ctx->preloaded && h->init && h->init(&state, &hc, err, sizeof err) != 0) {
        rm_err("pool %s: handler %s init failed: %s", ctx->pool_name, h->name, err[0] ? err : "no reason given");
        return RM_EXIT_INIT_FAILED;
    }
    heartbeat(me);
    /* release: the master and gateways that see READY see a loaded model. */
    atomic_store_explicit(&me->state, RM_PROC_READY, memory_order_release);

    for (;;) {
        heartbeat(me);
        /* acquire: pairs with the master's release store of RM_SBF_DRAIN */
        if (stop_requested || (atomic_load_explicit(&me->flags, memory_order_acquire) & RM_SBF_DRAIN))
            break;
        if (getppid() != ctx->master_pid)
            break; /* orphaned: PR_SET_PDEATHSIG normally got us first */
        struct rm_req_job job;
        switch (rm_req_take(&view, me, ctx->sb_index, rm_now_ns(), &job)) {
        case RM_TAKE_OK:
            run_job(ctx, h, state, &view, me, &job);
            break;
        case RM_TAKE_EMPTY:
            rm_req_wait(&view, me, tick_ns);
            break;
        case RM_TAKE_STALE:
            break;
        }
    }

    /* release: pairs with the acquire loads of state by the master and gateways */
    atomic_store_explicit(&me->state, RM_PROC_DRAINING, memory_order_release);
    if (h->fini)
        h->fini(state);
    if (dl)
        rm_handler_unload(dl);
    return RM_EXIT_OK;
}
