/*
 * worker.c - the worker process. See worker.h.
 *
 * Loop: heartbeat; take a slot index from the pool's ring (dequeue intent
 * recorded by the ring); claim it QUEUED -> RUNNING; run the handler with the
 * request in shared memory and the answer written straight into the slot's
 * response area; RUNNING -> DONE; wake the slot's gateway. When the ring is
 * empty, sleep on the pool's futex doorbell for at most heartbeat_interval,
 * which is also the heartbeat tick.
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
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/slot.h"
#include "core/log.h"
#include "worker/handler.h"
#include "core/proctitle.h"
#include "core/exitcodes.h"
#include "core/names.h"

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static bool ring_has_work(void *arg)
{
    return rm_ring_count(arg) > 0;
}

static void wake_gateway(const struct rm_worker_ctx *ctx, uint32_t gw)
{
    if (gw >= ctx->ngw_wake_fds || ctx->gw_wake_fds[gw] < 0)
        return; /* bounds-checked: meta.gw comes from shared memory */
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

/* Run one claimed slot and publish the answer. */
static void run_slot(const struct rm_worker_ctx *ctx, const struct rm_handler *h, void *state,
                     struct rm_shm_pool *p, uint32_t s, uint64_t w)
{
    struct rm_seg *seg = ctx->seg;
    struct rm_sb_entry *me = rm_seg_sb(seg, ctx->sb_index);
    _Atomic uint64_t *word = rm_pool_state(seg, p, s);
    struct rm_slot_meta *m = rm_pool_meta(seg, p, s);

    uint64_t start = rm_now_ns();
    atomic_store_explicit(&me->cur_start_ns, start, memory_order_relaxed);
    /* release: the master reading cur_slot (acquire) sees cur_start_ns. */
    atomic_store_explicit(&me->cur_slot, s, memory_order_release);
    atomic_store_explicit(&me->state, RM_PROC_BUSY, memory_order_release);
    m->run_start_ns = start;

    char ctype[RM_SHM_CTYPE];
    memcpy(ctype, m->req_ctype, sizeof ctype);
    ctype[sizeof ctype - 1] = '\0';
    uint32_t len = m->req_len;
    if (len > p->max_req)
        len = 0; /* scribbled meta: never read past the request area */

    struct rm_request req = {
        .body = rm_pool_req(seg, p, s),
        .body_len = len,
        .content_type = ctype,
        .attempt = RM_SLOT_ATTEMPTS(w),
        .deadline_ns = m->deadline_ns,
        .pool = ctx->pool_name,
    };
    struct rm_response resp = {
        .status = 200,
        .body = rm_pool_resp(seg, p, s),
        .body_cap = p->max_resp,
        .body_len = 0,
    };
    snprintf(resp.content_type, sizeof resp.content_type, "application/octet-stream");

    int r = h->process(state, &req, &resp);

    if (r < 0 || resp.body_len > resp.body_cap) {
        m->error = 500;
        m->resp_len = resp.body_len <= resp.body_cap ? (uint32_t)resp.body_len : 0;
        snprintf(m->resp_ctype, sizeof m->resp_ctype, "%s", resp.content_type);
    } else {
        m->error = 0;
        m->resp_status = (uint16_t)(resp.status >= 100 && resp.status <= 599 ? resp.status : 500);
        m->resp_len = (uint32_t)resp.body_len;
        snprintf(m->resp_ctype, sizeof m->resp_ctype, "%s", resp.content_type);
    }
    m->run_end_ns = rm_now_ns();

    /* RUNNING -> DONE publishes the answer (release in rm_slot_cas); if the
     * client went away meanwhile (ABORTED), we free the slot instead. */
    uint64_t cur = rm_slot_load(word);
    for (;;) {
        unsigned st = RM_SLOT_STATE(cur);
        if (st == RM_SLOT_RUNNING) {
            if (rm_slot_cas(word, &cur, RM_SLOT_DONE, 0) == 1) {
                wake_gateway(ctx, m->gw);
                break;
            }
        } else if (st == RM_SLOT_ABORTED) {
            if (rm_slot_cas(word, &cur, RM_SLOT_FREE, 0) == 1)
                break;
        } else {
            /* Only the owner may end a RUNNING slot; anything else means the
             * shared memory was scribbled on. Leave it to the master. */
            rm_warn("slot %u of pool %s in state %s while we ran it", s, ctx->pool_name,
                    rm_slot_state_name(RM_SLOT_STATE(cur)));
            break;
        }
    }
    atomic_store_explicit(&me->cur_slot, RM_NO_SLOT, memory_order_release);
    /* single writer (this worker): no locked RMW; readers only look */
    atomic_store_explicit(&me->served, atomic_load_explicit(&me->served, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&me->state, RM_PROC_READY, memory_order_release);
}

int rm_worker_main(const struct rm_worker_ctx *ctx)
{
    struct rm_seg *seg = ctx->seg;
    struct rm_sb_entry *me = rm_seg_sb(seg, ctx->sb_index);
    struct rm_shm_pool *p = rm_seg_pool(seg, ctx->pool);
    struct rm_ring *ring = rm_pool_ring(seg, p);
    const uint64_t tick_ns = ctx->heartbeat_ns;

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

    const struct rm_handler *h = ctx->preloaded;
    void *dl = NULL, *state = ctx->preloaded_state;
    char err[512] = "";
    if (h) {
        /* Forked by the preloader: the model is loaded already (shared). */
    } else if (rm_handler_resolve(ctx->handler, &h, &dl, err, sizeof err) < 0) {
        rm_err("pool %s: handler %s: %s", ctx->pool_name, ctx->handler, err);
        return RM_EXIT_INIT_FAILED;
    }
    struct rm_handler_config hc = {
        .pool = ctx->pool_name,
        .worker_index = ctx->worker_index,
        .kv = ctx->kv,
        .nkv = ctx->nkv,
    };
    if (!ctx->preloaded && h->init && h->init(&state, &hc, err, sizeof err) != 0) {
        rm_err("pool %s: handler %s init failed: %s", ctx->pool_name, h->name, err[0] ? err : "no reason given");
        return RM_EXIT_INIT_FAILED;
    }
    heartbeat(me);
    /* release: the master and gateways that see READY see a loaded model. */
    atomic_store_explicit(&me->state, RM_PROC_READY, memory_order_release);

    for (;;) {
        heartbeat(me);
        if (stop_requested || (atomic_load_explicit(&me->flags, memory_order_acquire) & RM_SBF_DRAIN))
            break;
        if (getppid() != ctx->master_pid)
            break; /* orphaned: PR_SET_PDEATHSIG normally got us first */
        uint32_t s;
        if (rm_ring_dequeue(ring, &s, &me->intent, ctx->pool) != RM_RING_OK) {
            rm_doorbell_wait(p, tick_ns, ring_has_work, ring, &me->intent, ctx->pool);
            continue;
        }
        if (s >= p->nslots) {
            atomic_store_explicit(&me->intent, 0, memory_order_release);
            continue; /* not a slot of ours: scribbled ring, skip it */
        }
        _Atomic uint64_t *word = rm_pool_state(seg, p, s);
        uint64_t w = rm_slot_load(word);
        int claimed = 0;
        while (RM_SLOT_STATE(w) == RM_SLOT_QUEUED) {
            if (rm_slot_cas(word, &w, RM_SLOT_RUNNING, RM_OWNER(ctx->sb_index)) == 1) {
                claimed = 1;
                break;
            }
        }
        /* The claim (or its failure) settles the dequeue: clear the intent.
         * release: ordered after the claim CAS. */
        atomic_store_explicit(&me->intent, 0, memory_order_release);
        if (!claimed)
            continue; /* stale duplicate: another worker has it */
        w = rm_slot_load(word);
        run_slot(ctx, h, state, p, s, w);
    }

    atomic_store_explicit(&me->state, RM_PROC_DRAINING, memory_order_release);
    if (h->fini)
        h->fini(state);
    if (dl)
        rm_handler_unload(dl);
    return RM_EXIT_OK;
}
