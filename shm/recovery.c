/* recovery.c - repair after a process death. See recovery.h. */
#include "shm/recovery.h"

#include <string.h>

#include "shm/doorbell.h"
#include "shm/request.h"
#include "shm/ring.h"
#include "shm/slot.h"

/* Every CAS loop here is bounded: a live process of the pool that keeps
 * changing a word under us (a scribbler) must never make the master spin.
 * Past the bound the slot is left alone (its pool may be healed). */
#define RECOVERY_TRIES 64

/* Put slot on its ring (or the pending list) and ring the doorbell. */
static void post(const struct rm_pool_view *v, uint32_t slot, uint32_t gen, const struct rm_recovery_ops *ops,
                 struct rm_recovery_result *res)
{
    if (rm_ring_enqueue_n(v->ring, v->ring_cells, slot) == RM_RING_OK) {
        rm_doorbell_ring(v->bell);
    } else {
        res->pending++;
        if (ops && ops->pending)
            ops->pending(ops->arg, v->index, slot, gen);
    }
}

/* gw is a live gateway: its scoreboard entry (gateways and the master
 * write it; workers do not map it) says so. */
static int gateway_alive(const struct rm_seg *seg, uint32_t gw)
{
    if (gw >= seg->max_gateways || gw >= seg->nprocs)
        return 0;
    const struct rm_sb_entry *e = rm_seg_sb(seg, gw);
    /* acquire: pairs with the gateway's release stores of its state */
    unsigned st = atomic_load_explicit(&((struct rm_sb_entry *)e)->state, memory_order_acquire);
    return e->role == RM_ROLE_GATEWAY && st != RM_PROC_DEAD && st != RM_PROC_EMPTY;
}

/* End a RUNNING slot of a dead worker: re-queue, or DONE with an error. */
static void recover_running(struct rm_seg *seg, const struct rm_pool_view *v, uint32_t s, uint64_t w,
                            uint64_t now_ns, const struct rm_recovery_ops *ops, struct rm_recovery_result *res)
{
    _Atomic uint64_t *word = &v->states[s];
    const struct rm_req_meta *rq = &v->req_meta[s]; /* R area: gateways wrote it, workers cannot */
    struct rm_resp_meta *m = &v->resp_meta[s];

    for (int tries = 0; tries < RECOVERY_TRIES; tries++) {
        unsigned st = RM_SLOT_STATE(w);
        if (st == RM_SLOT_ABORTED) {
            /* Its client is gone (gateway aborted it): free it. */
            if (rm_slot_cas(word, &w, RM_SLOT_FREE, 0) == 1) {
                res->freed++;
                return;
            }
            continue;
        }
        if (st != RM_SLOT_RUNNING)
            return; /* someone else moved it on */
        uint32_t gw = rq->gw;
        if (!gateway_alive(seg, gw)) {
            /* Its gateway died too: nobody will read an answer. Now
             * ABORTED: freed on the next turn. */
            rm_slot_cas(word, &w, RM_SLOT_ABORTED, 0);
            continue;
        }
        unsigned status = 0;
        /* A stream whose first chunk was written is never re-run: its
         * client may have it already. It ends DONE with an error, after the
         * chunks written so far (the gateway delivers them first). Why it
         * ended: the dead worker's last beat and the pool's stream limits.
         * acquire: pairs with the worker's release store (it is reaped). */
        uint64_t wpos = atomic_load_explicit(&m->s_wpos, memory_order_acquire);
        uint16_t end = RM_STREAM_END_NONE;
        if (wpos > 0) {
            /* relaxed: policy values and a timestamp, compared only */
            uint64_t cap = atomic_load_explicit(&v->desc->stream_timeout_ns, memory_order_relaxed);
            uint64_t idle = atomic_load_explicit(&v->desc->stream_idle_ns, memory_order_relaxed);
            uint64_t beat = atomic_load_explicit(&m->s_beat_ns, memory_order_relaxed);
            uint64_t acc = rq->accept_ns;
            if (cap && now_ns > acc && now_ns - acc >= cap)
                end = RM_STREAM_END_CAP;
            else if (idle && now_ns > beat && now_ns - beat >= idle)
                end = RM_STREAM_END_IDLE;
            else
                end = RM_STREAM_END_CRASHED;
            status = end == RM_STREAM_END_CRASHED ? 502 : 504;
        } else if (now_ns >= rq->deadline_ns)
            status = 504;
        /* relaxed: a reload may change it; one value, nothing rides on it */
        else if (RM_SLOT_ATTEMPTS(w) >= atomic_load_explicit(&v->desc->max_attempts, memory_order_relaxed))
            status = 502;
        if (status) {
            /* The owner is dead, so the master owns the run phase's fields
             * now; the CAS's release publishes them to the gateway. */
            m->error = (uint16_t)status;
            m->s_end = end;
            m->resp_len = 0;
            m->run_end_ns = now_ns;
            if (rm_slot_cas(word, &w, RM_SLOT_DONE, 0) == 1) {
                if (status == 504)
                    res->timed_out++;
                else
                    res->crashed++;
                if (ops && ops->failed)
                    ops->failed(ops->arg, v->index, s, status);
                if (ops && ops->notify_gateway)
                    ops->notify_gateway(ops->arg, gw);
                return;
            }
            continue;
        }
        uint64_t old = w;
        if (rm_slot_cas(word, &w, RM_SLOT_QUEUED, 0) == 1) {
            res->requeued++;
            if (ops && ops->requeued)
                ops->requeued(ops->arg, v->index, s, old);
            post(v, s, RM_SLOT_GEN(old) + 1, ops, res);
            return;
        }
    }
}

static void recover_worker(struct rm_seg *seg, unsigned idx, struct rm_sb_entry *e, unsigned pool,
                           uint64_t now_ns, const struct rm_recovery_ops *ops, struct rm_recovery_result *res)
{
    struct rm_pool_view v;
    /* A removed pool (inactive) still has its slots: recover them too. A
     * descriptor that does not validate: lose its requests, never crash. */
    if (rm_pool_view_open(seg, pool, &v) < 0)
        return;
    const unsigned me = RM_OWNER(idx);

    /* First the intent. acquire: the process is reaped; pairs with its
     * release stores. */
    uint64_t intent = atomic_load_explicit(&e->intent, memory_order_acquire);
    switch (RM_INTENT_OP(intent)) {
    case RM_INTENT_DEQ: {
        uint32_t s = RM_INTENT_SLOT(intent);
        if (RM_INTENT_POOL(intent) == pool && s < v.nslots) {
            uint64_t w = rm_slot_load(&v.states[s]);
            /* Still QUEUED: it may have taken the cell and died before
             * claiming the slot. Put it back; if it had not taken the cell
             * after all, the ring holds a harmless duplicate. */
            if (RM_SLOT_STATE(w) == RM_SLOT_QUEUED) {
                res->reposted++;
                post(&v, s, RM_SLOT_GEN(w), ops, res);
            }
        }
        break;
    }
    case RM_INTENT_SLEEP:
        if (RM_INTENT_POOL(intent) == pool) {
            /* Counted as a sleeper when it died: un-count it. relaxed load,
             * seq_cst CAS: the CAS orders the un-count like the waiter's own
             * decrement would (doorbell.c W1/P1). */
            uint32_t n = atomic_load_explicit(&v.bell->sleepers, memory_order_relaxed);
            for (int tries = 0; n > 0 && tries < RECOVERY_TRIES; tries++)
                if (atomic_compare_exchange_weak_explicit(&v.bell->sleepers, &n, n - 1, memory_order_seq_cst,
                                                          memory_order_relaxed))
                    break;
        }
        break;
    default:
        break;
    }

    /* After the intent: a slot it had claimed is RUNNING, not QUEUED, so the
     * intent step above skipped it, and a re-queue below is not doubled. */
    for (uint32_t s = 0; s < v.nslots; s++) {
        uint64_t w = rm_slot_load(&v.states[s]);
        unsigned st = RM_SLOT_STATE(w);
        if ((st == RM_SLOT_RUNNING || st == RM_SLOT_ABORTED) && RM_SLOT_OWNER(w) == me)
            recover_running(seg, &v, s, w, now_ns, ops, res);
    }
}

static void recover_gateway(struct rm_seg *seg, unsigned idx, struct rm_recovery_result *res)
{
    const unsigned me = RM_OWNER(idx);
    for (unsigned pool = 0; pool < RM_SHM_MAX_POOLS; pool++) {
        struct rm_pool_view v;
        if (rm_pool_view_open(seg, pool, &v) < 0)
            continue;
        for (uint32_t s = 0; s < v.nslots; s++) {
            _Atomic uint64_t *word = &v.states[s];
            const struct rm_req_meta *m = &v.req_meta[s];
            uint64_t w = rm_slot_load(word);
            for (int tries = 0; tries < RECOVERY_TRIES; tries++) {
                unsigned st = RM_SLOT_STATE(w);
                int r = 0;
                if (st == RM_SLOT_FILLING) {
                    if (RM_SLOT_OWNER(w) != me)
                        break;
                    r = rm_slot_cas(word, &w, RM_SLOT_FREE, 0);
                } else if (st == RM_SLOT_QUEUED || st == RM_SLOT_DONE) {
                    /* meta.gw was written while FILLING, before QUEUED. */
                    if (m->gw != idx)
                        break;
                    r = rm_slot_cas(word, &w, RM_SLOT_FREE, 0);
                } else if (st == RM_SLOT_RUNNING) {
                    if (m->gw != idx)
                        break;
                    r = rm_slot_cas(word, &w, RM_SLOT_ABORTED, 0);
                    if (r == 1) {
                        res->aborted++;
                        break;
                    }
                } else {
                    break; /* FREE, or ABORTED (its worker frees it) */
                }
                if (r == 1) {
                    res->freed++;
                    break;
                }
                if (r < 0)
                    break; /* an illegal transition: nothing of ours to do */
                /* CAS lost to a worker: re-evaluate the new word. */
            }
        }
    }
}

void rm_recover_process(struct rm_seg *seg, unsigned idx, unsigned role, unsigned pool,
                        uint64_t now_ns, const struct rm_recovery_ops *ops,
                        struct rm_recovery_result *res)
{
    struct rm_recovery_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (idx >= seg->nprocs)
        return;
    struct rm_sb_entry *e = rm_seg_sb(seg, idx);
    if (role == RM_ROLE_WORKER)
        recover_worker(seg, idx, e, pool, now_ns, ops, res);
    else if (role == RM_ROLE_GATEWAY)
        recover_gateway(seg, idx, res);
    /* relaxed: published by the release store of DEAD below */
    atomic_store_explicit(&e->intent, 0, memory_order_relaxed);
    atomic_store_explicit(&e->cur_slot, RM_NO_SLOT, memory_order_relaxed);
    /* release: readers that see DEAD see the repaired slots. */
    atomic_store_explicit(&e->state, RM_PROC_DEAD, memory_order_release);
}

int rm_recovery_retry(struct rm_seg *seg, unsigned pool, uint32_t slot, uint32_t gen)
{
    struct rm_pool_view v;
    if (rm_pool_view_open(seg, pool, &v) < 0 || slot >= v.nslots)
        return 1;
    uint64_t w = rm_slot_load(&v.states[slot]);
    if (RM_SLOT_STATE(w) != RM_SLOT_QUEUED || RM_SLOT_GEN(w) != gen)
        return 1;
    if (rm_ring_enqueue_n(v.ring, v.ring_cells, slot) != RM_RING_OK)
        return 0;
    rm_doorbell_ring(v.bell);
    return 1;
}
