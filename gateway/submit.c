/*
 * submit.c - the gateway's side of the slot protocol (shm/slot.h):
 *
 *   FREE -> FILLING      claim (scan from a per-pool cursor)
 *   FILLING -> QUEUED    accepted: meta and body are in the slot
 *   ring enqueue, doorbell
 *   ... worker: QUEUED -> RUNNING -> DONE, then a write to our wake_fd
 *   DONE -> FREE         after the answer is copied out
 *
 * and the ways a request ends without an answer from a worker: deadline
 * while QUEUED (QUEUED -> FREE, 504), client gone (QUEUED -> FREE,
 * RUNNING -> ABORTED, DONE -> FREE). A slot stays ours from the claim until
 * we free it (the master only touches the slots of a dead gateway), so the
 * pending list needs no locking, only a re-read of the state word when a CAS
 * loses to a worker.
 *
 * Also here: the per-tick snapshot of the pools, the scoreboard scan, and
 * the statistics counters (single writer: this gateway, relaxed adds).
 */
#include <stdio.h>
#include <string.h>

#include "gateway/internal.h"
#include "gateway/stats.h"
#include "shm/clock.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "core/log.h"
#include "core/names.h"

/* ------------------------------------------------------------------ pools */


void gw_scan_workers(const struct gw *gw, unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES])
{
    memset(counts, 0, sizeof(unsigned) * RM_SHM_MAX_POOLS * RM_PROC_NSTATES);
    const struct rm_shm_header *h = gw->seg->hdr;
    uint32_t n = h->nprocs;
    for (uint32_t i = h->max_gateways; i < n; i++) {
        const struct rm_sb_entry *e = rm_seg_sb(gw->seg, i);
        if (e->role != RM_ROLE_WORKER || e->pool >= RM_SHM_MAX_POOLS)
            continue;
        /* acquire: pairs with the worker's release store of its state */
        unsigned st = atomic_load_explicit(&e->state, memory_order_acquire);
        if (st < RM_PROC_NSTATES)
            counts[e->pool][st]++;
    }
}

const char *gw_pool_not_ready(const struct gw *gw, unsigned i,
                              const unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES])
{
    if (i >= RM_SHM_MAX_POOLS || !gw->pools[i].active || !gw->pools[i].valid)
        return "not available";
    const struct rm_shm_pool *p = rm_seg_pool(gw->seg, i);
    /* acquire: pairs with the master's release store of failed */
    if (atomic_load_explicit(&p->failed, memory_order_acquire))
        return "failed to load";
    if (counts[i][RM_PROC_READY] + counts[i][RM_PROC_BUSY] == 0)
        return "no ready worker";
    return NULL;
}

void gw_pools_refresh(struct gw *gw)
{
    unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES];
    gw_scan_workers(gw, counts);
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct rm_shm_pool *p = rm_seg_pool(gw->seg, i);
        struct gw_pool *gp = &gw->pools[i];
        /* acquire: pairs with the master's release store of active
         * (rm_seg_pool_add), so the descriptor below is complete. */
        if (!atomic_load_explicit(&p->active, memory_order_acquire)) {
            /* Removed (or never configured). A removed pool's entry is never
             * reused, so requests already in flight in it keep their
             * geometry (valid) and are answered; new ones get 404. */
            gp->active = gp->has_worker = false;
            if (gp->valid && !rm_pool_valid(gw->seg, p))
                gp->valid = false;
            continue;
        }
        gp->active = true;
        memcpy(gp->name, p->name, sizeof gp->name);
        gp->name[sizeof gp->name - 1] = '\0';
        gp->name_len = strlen(gp->name);
        bool was_valid = gp->valid;
        gp->valid = rm_pool_valid(gw->seg, p);
        if (!gp->valid && was_valid)
            rm_err("pool %u (%s): descriptor out of bounds of the shared memory, not served", i, gp->name);
        if (gp->valid && gp->cursor >= p->nslots)
            gp->cursor = 0;
        gp->has_worker = counts[i][RM_PROC_READY] + counts[i][RM_PROC_BUSY] > 0;
    }
}

/* The per-tick cache said no worker: look again before refusing, so that an
 * inference sent right after a readiness 200 (which scans fresh) is not
 * refused. Only the refusal path pays for the scan. */
static bool pool_has_worker_now(struct gw *gw, unsigned pi)
{
    unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES];
    gw_scan_workers(gw, counts);
    gw->pools[pi].has_worker = counts[pi][RM_PROC_READY] + counts[pi][RM_PROC_BUSY] > 0;
    return gw->pools[pi].has_worker;
}

int gw_pool_find(const struct gw *gw, const char *name, size_t len)
{
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct gw_pool *gp = &gw->pools[i];
        if (gp->active && gp->valid && gp->name_len == len && memcmp(gp->name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

/* ------------------------------------------------------------------ statistics */

/* One writer per counter (this gateway): a relaxed load and store, no
 * locked read-modify-write on the request path. Readers only sum. */
static inline void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

void gw_count(struct gw *gw, unsigned pool, enum rm_outcome o)
{
    if (pool >= RM_SHM_MAX_POOLS || (unsigned)o >= RM_OUT_N)
        return;
    struct rm_gw_stats *st = rm_seg_gw_stats(gw->seg, gw->index, pool);
    bump(&st->outcomes[o], 1);
}

static void observe(struct gw *gw, unsigned pool, uint64_t accept_ns, uint64_t run_start_ns,
                    uint64_t end_ns)
{
    if (pool >= RM_SHM_MAX_POOLS)
        return;
    struct rm_gw_stats *st = rm_seg_gw_stats(gw->seg, gw->index, pool);
    uint64_t dur_us = end_ns > accept_ns ? (end_ns - accept_ns) / 1000 : 0;
    bump(&st->dur_hist[rm_hist_bucket(dur_us)], 1);
    bump(&st->dur_sum_us, dur_us);
    if (run_start_ns && run_start_ns >= accept_ns && run_start_ns <= end_ns) {
        uint64_t wait_us = (run_start_ns - accept_ns) / 1000;
        bump(&st->wait_hist[rm_hist_bucket(wait_us)], 1);
        bump(&st->wait_sum_us, wait_us);
    }
}

/* ------------------------------------------------------------------ pending list */

static void pending_add(struct gw *gw, struct gw_conn *c)
{
    c->pprev = NULL;
    c->pnext = gw->pending;
    if (gw->pending)
        gw->pending->pprev = c;
    gw->pending = c;
    gw->npending++;
    c->phase = GW_WAIT;
}

static void pending_remove(struct gw *gw, struct gw_conn *c)
{
    if (c->pprev)
        c->pprev->pnext = c->pnext;
    else if (gw->pending == c)
        gw->pending = c->pnext;
    if (c->pnext)
        c->pnext->pprev = c->pprev;
    c->pnext = c->pprev = NULL;
    gw->npending--;
    c->phase = GW_BODY;  /* message read, answer not yet queued */
}

static void reject(struct gw *gw, struct gw_conn *c, unsigned pool, const char *why)
{
    gw_count(gw, pool, RM_OUT_REJECTED);
    gw_respond_error_s(gw, c, 503, why);
}

/* ------------------------------------------------------------------ submit */

void gw_submit(struct gw *gw, struct gw_conn *c)
{
    struct rm_seg *seg = gw->seg;
    unsigned pi = (unsigned)c->pool;
    struct gw_pool *gp = &gw->pools[pi];
    struct rm_shm_pool *p = rm_seg_pool(seg, pi);

    /* acquire: pairs with the master's release store of active. A pool
     * removed since the last tick is unknown now, like any other. */
    if (!atomic_load_explicit(&p->active, memory_order_acquire)) {
        gw_respond_error_s(gw, c, 404, "unknown model");
        return;
    }
    if (!gp->valid) {
        reject(gw, c, pi, "model not available");
        return;
    }
    if (c->ctype_bad) {
        gw_respond_error_s(gw, c, 400, "Content-Type longer than 127 bytes or sent twice");
        return;
    }
    if (c->body.oom) {
        reject(gw, c, pi, "out of memory");
        return;
    }
    if (c->body.len > p->max_req) {
        gw_count(gw, pi, RM_OUT_TOO_LARGE);
        gw_respond_error_s(gw, c, 413, "request body larger than the model's max_request_size");
        return;
    }
    /* acquire: pairs with the master's release stores of draining/failed */
    if (atomic_load_explicit(&seg->hdr->draining, memory_order_acquire)) {
        reject(gw, c, pi, "draining");
        return;
    }
    if (atomic_load_explicit(&p->failed, memory_order_acquire)) {
        reject(gw, c, pi, "model failed to load");
        return;
    }
    if (!gp->has_worker && !pool_has_worker_now(gw, pi)) {
        reject(gw, c, pi, "no ready worker");
        return;
    }

    /* Claim: FREE -> FILLING. */
    uint32_t n = p->nslots;
    uint32_t start = gp->cursor < n ? gp->cursor : 0;
    unsigned owner = RM_OWNER(gw->index);
    uint32_t slot = RM_NO_SLOT;
    uint64_t filling = 0;
    _Atomic uint64_t *word = NULL;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t s = start + k < n ? start + k : start + k - n;
        _Atomic uint64_t *wp = rm_pool_state(seg, p, s);
        /* relaxed peek; the CAS (acq_rel) is what counts */
        uint64_t w = atomic_load_explicit(wp, memory_order_relaxed);
        if (RM_SLOT_STATE(w) != RM_SLOT_FREE)
            continue;
        if (rm_slot_cas(wp, &w, RM_SLOT_FILLING, owner) == 1) {
            slot = s;
            word = wp;
            filling = rm_slot_next(w, RM_SLOT_FILLING, owner);
            break;
        }
    }
    if (slot == RM_NO_SLOT) {
        reject(gw, c, pi, "queue full");
        return;
    }
    gp->cursor = slot + 1 < n ? slot + 1 : 0;

    /* Fill: the whole meta is ours while FILLING. */
    struct rm_slot_meta *m = rm_pool_meta(seg, p, slot);
    uint64_t now = rm_now_ns();
    uint64_t timeout = p->request_timeout_ns;
    m->gw = gw->index;
    m->req_id = ++gw->req_seq;
    m->accept_ns = now;
    m->deadline_ns = (timeout && timeout < UINT64_MAX - now) ? now + timeout : UINT64_MAX;
    m->run_start_ns = 0;
    m->run_end_ns = 0;
    m->resp_len = 0;
    m->resp_status = 0;
    m->error = 0;
    m->resp_ctype[0] = '\0';
    m->req_len = (uint32_t)c->body.len;
    memcpy(m->req_ctype, c->ctype, c->ctype_len);
    m->req_ctype[c->ctype_len] = '\0';
    if (c->body.len)
        memcpy(rm_pool_req(seg, p, slot), c->body.data, c->body.len);

    c->slot = slot;
    c->req_id = m->req_id;
    c->accept_ns = now;
    c->deadline_ns = m->deadline_ns;

    /* Accept: FILLING -> QUEUED (release: publishes meta and body to the
     * worker's acquire in its QUEUED -> RUNNING CAS). */
    uint64_t w = filling;
    if (rm_slot_cas(word, &w, RM_SLOT_QUEUED, 0) != 1) {
        /* Only the master changes a FILLING slot, and only of a dead gateway. */
        rm_err("pool %s slot %u: FILLING slot changed under us (now %s): request refused",
               gp->name, slot, rm_slot_state_name(RM_SLOT_STATE(w)));
        reject(gw, c, pi, "internal error: slot lost");
        return;
    }
    uint64_t queued = rm_slot_next(filling, RM_SLOT_QUEUED, 0);
    if (rm_ring_enqueue(rm_pool_ring(seg, p), slot) != RM_RING_OK) {
        uint64_t q = queued;
        if (rm_slot_cas(word, &q, RM_SLOT_FREE, 0) == 1) {
            reject(gw, c, pi, "queue full");
            return;
        }
        /* A worker took it already (through a stale ring entry): wait. */
    } else {
        rm_doorbell_ring(p);
    }
    pending_add(gw, c);
}

/* ------------------------------------------------------------------ completion */

static const char *safe_ctype(const char *shm, char *buf, size_t buflen)
{
    size_t n = strnlen(shm, RM_SHM_CTYPE - 1);
    if (n == 0 || n >= buflen)
        return "application/octet-stream";
    memcpy(buf, shm, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return "application/octet-stream";  /* no header injection */
    }
    return buf;
}

/* DONE: copy the answer out, then DONE -> FREE. */
static void deliver(struct gw *gw, struct gw_conn *c, struct rm_shm_pool *p,
                    _Atomic uint64_t *word, uint64_t w)
{
    unsigned pi = (unsigned)c->pool;
    struct rm_slot_meta *m = rm_pool_meta(gw->seg, p, c->slot);
    pending_remove(gw, c);
    if (m->gw != gw->index || m->req_id != c->req_id) {
        rm_err("pool %s slot %u: DONE slot holds request %llu of gateway %u, expected %llu: answer lost",
               gw->pools[pi].name, c->slot, (unsigned long long)m->req_id, m->gw,
               (unsigned long long)c->req_id);
        gw_respond_error_s(gw, c, 500, "internal error: answer lost");
        return;
    }
    unsigned err = m->error;
    uint32_t rlen = m->resp_len;
    unsigned rstatus = m->resp_status;
    uint64_t run_start = m->run_start_ns;
    const unsigned char *body = rm_pool_resp(gw->seg, p, c->slot);
    bool len_ok = rlen <= p->max_resp;
    enum rm_outcome outcome;

    if (err) {
        unsigned status = (err >= 400 && err <= 599) ? err : 500;
        if (err == 502) {
            outcome = RM_OUT_CRASHED;
            gw_respond_error_s(gw, c, 502, "every attempt's worker died");
        } else if (err == 504) {
            outcome = RM_OUT_TIMEOUT;
            gw_respond_error_s(gw, c, 504, "deadline exceeded");
        } else {
            outcome = RM_OUT_HANDLER_ERROR;
            if (rlen > 0 && len_ok)
                gw_respond_error(gw, c, status, (const char *)body,
                                 rlen < GW_ERRMSG_MAX ? rlen : GW_ERRMSG_MAX, NULL);
            else
                gw_respond_error_s(gw, c, status, "handler error");
        }
    } else {
        unsigned status = rstatus ? rstatus : 200;
        if (status < 200 || status > 599) {
            outcome = RM_OUT_HANDLER_ERROR;
            gw_respond_error_s(gw, c, 500, "handler returned an invalid HTTP status");
        } else if (!len_ok) {
            outcome = RM_OUT_HANDLER_ERROR;
            gw_respond_error_s(gw, c, 500, "handler answer larger than max_response_size");
        } else {
            char ct[RM_SHM_CTYPE];
            outcome = RM_OUT_OK;
            gw_respond(gw, c, status, safe_ctype(m->resp_ctype, ct, sizeof ct), body, rlen, NULL);
        }
    }
    /* The answer is copied (or written): the slot may go. DONE belongs to
     * us, so the CAS only fails on a torn read; re-read and retry. */
    for (int tries = 0; tries < 16; tries++) {
        int r = rm_slot_cas(word, &w, RM_SLOT_FREE, 0);
        if (r != 0 || RM_SLOT_STATE(w) != RM_SLOT_DONE)
            break;
    }
    gw->now = rm_now_ns();
    gw_count(gw, pi, outcome);
    observe(gw, pi, c->accept_ns, run_start, gw->now);
}

static void end_with_error(struct gw *gw, struct gw_conn *c, unsigned status, const char *msg,
                           enum rm_outcome o)
{
    unsigned pi = (unsigned)c->pool;
    pending_remove(gw, c);
    gw_respond_error_s(gw, c, status, msg);
    gw_count(gw, pi, o);
    observe(gw, pi, c->accept_ns, 0, gw->now);
}

/* Look at one pending request; true if it ended (answer queued). */
static bool check_one(struct gw *gw, struct gw_conn *c)
{
    unsigned pi = (unsigned)c->pool;
    if (pi >= RM_SHM_MAX_POOLS || !gw->pools[pi].valid) {
        pending_remove(gw, c);
        gw_respond_error_s(gw, c, 500, "internal error: model removed");
        return true;
    }
    struct rm_shm_pool *p = rm_seg_pool(gw->seg, pi);
    if (c->slot >= p->nslots) {
        pending_remove(gw, c);
        gw_respond_error_s(gw, c, 500, "internal error: model changed");
        return true;
    }
    _Atomic uint64_t *word = rm_pool_state(gw->seg, p, c->slot);
    uint64_t w = rm_slot_load(word);  /* acquire: pairs with the worker's DONE CAS */
    for (int tries = 0; tries < 16; tries++) {
        switch (RM_SLOT_STATE(w)) {
        case RM_SLOT_DONE:
            deliver(gw, c, p, word, w);
            return true;
        case RM_SLOT_QUEUED:
            if (gw->now < c->deadline_ns)
                return false;
            if (rm_slot_cas(word, &w, RM_SLOT_FREE, 0) == 1) {
                end_with_error(gw, c, 504, "deadline exceeded", RM_OUT_TIMEOUT);
                return true;
            }
            continue;  /* a worker took it meanwhile: look again */
        case RM_SLOT_RUNNING:
            /* Past the deadline the master kills the worker and recovery
             * makes it DONE 504. Only if that never happens, give up. */
            if (c->deadline_ns > UINT64_MAX - GW_STUCK_GRACE_NS ||
                gw->now < c->deadline_ns + GW_STUCK_GRACE_NS)
                return false;
            if (rm_slot_cas(word, &w, RM_SLOT_ABORTED, 0) == 1) {
                rm_warn("pool %s slot %u: still running %llu ms past its deadline: answered 504, slot left to its worker",
                        gw->pools[pi].name, c->slot,
                        (unsigned long long)((gw->now - c->deadline_ns) / 1000000));
                end_with_error(gw, c, 504, "deadline exceeded", RM_OUT_TIMEOUT);
                return true;
            }
            continue;
        default:
            rm_err("pool %s slot %u: request %llu lost (slot %s)", gw->pools[pi].name, c->slot,
                   (unsigned long long)c->req_id,
                   rm_slot_state_name(RM_SLOT_STATE(w)));
            pending_remove(gw, c);
            gw_respond_error_s(gw, c, 500, "internal error: request lost");
            return true;
        }
    }
    return false;
}

void gw_pending_scan(struct gw *gw)
{
    gw->now = rm_now_ns();
    struct gw_conn *c = gw->pending;
    while (c) {
        struct gw_conn *next = c->pnext;
        /* gw_conn_run may queue c's next request: it goes to the head of
         * the list, behind us, and closing c touches no other entry. */
        if (check_one(gw, c))
            gw_conn_run(gw, c);
        c = next;
    }
}

void gw_pending_abandon(struct gw *gw, struct gw_conn *c)
{
    unsigned pi = (unsigned)c->pool;
    pending_remove(gw, c);
    c->phase = GW_IDLE;
    if (pi >= RM_SHM_MAX_POOLS || !gw->pools[pi].valid)
        return;
    struct rm_shm_pool *p = rm_seg_pool(gw->seg, pi);
    if (c->slot >= p->nslots)
        return;
    const struct rm_slot_meta *m = rm_pool_meta(gw->seg, p, c->slot);
    if (m->gw != gw->index || m->req_id != c->req_id)
        return;  /* not ours any more */
    _Atomic uint64_t *word = rm_pool_state(gw->seg, p, c->slot);
    uint64_t w = rm_slot_load(word);
    for (int tries = 0; tries < 16; tries++) {
        unsigned st = RM_SLOT_STATE(w), to;
        if (st == RM_SLOT_QUEUED || st == RM_SLOT_DONE)
            to = RM_SLOT_FREE;
        else if (st == RM_SLOT_RUNNING)
            to = RM_SLOT_ABORTED;  /* the worker frees it when it finishes */
        else
            break;
        if (rm_slot_cas(word, &w, to, 0) != 0)
            break;
    }
    gw_count(gw, pi, RM_OUT_CLIENT_GONE);
}
