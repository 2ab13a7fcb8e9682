/*
 * request.c - the request protocol. See request.h for the life of a
 * request; slot.h for the state machine; docs/architecture.md for who
 * writes what.
 *
 * Memory orders: every slot transition is rm_slot_cas (acq_rel): its
 * release publishes what the previous owner of the phase wrote (meta, body,
 * answer), its acquire makes that visible to the next owner. Plain reads of
 * meta happen only after an acquire load or CAS of the state word shows the
 * phase that wrote them has ended. RM_CRASH_POINT() marks every point
 * between two shared-memory steps where the crash test kills the process.
 */
#include "shm/request.h"

#include <string.h>

#include "shm/clock.h"
#include "shm/crashpoint.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/slot.h"

int rm_pool_view_open(const struct rm_seg *seg, unsigned idx, struct rm_pool_view *v)
{
    memset(v, 0, sizeof *v);
    if (idx >= RM_SHM_MAX_POOLS || !seg->pool[idx].base)
        return -1;
    struct rm_shm_pool *p = rm_seg_pool(seg, idx);
    /* One copy, then validate and use only the copy: a descriptor changed
     * between the check and the use cannot get past the check. The copy is
     * of plain fields only (the atomics are not part of the geometry). */
    struct rm_shm_pool copy;
    memset(&copy, 0, sizeof copy);
    copy.nslots = p->nslots;
    copy.max_req = p->max_req;
    copy.max_resp = p->max_resp;
    copy.req_stride = p->req_stride;
    copy.resp_stride = p->resp_stride;
    copy.size = p->size;
    copy.w_off = p->w_off;
    copy.w_size = p->w_size;
    copy.r_off = p->r_off;
    copy.r_size = p->r_size;
    copy.bell_off = p->bell_off;
    copy.ring_off = p->ring_off;
    copy.states_off = p->states_off;
    copy.resp_meta_off = p->resp_meta_off;
    copy.resp_off = p->resp_off;
    copy.req_meta_off = p->req_meta_off;
    copy.req_off = p->req_off;
    uint32_t cells = rm_ring_size_for(copy.nslots * 2u);
    if (!rm_pool_geometry_valid(seg, idx, &copy, cells))
        return -1;
    unsigned char *base = seg->pool[idx].base;
    v->desc = p;
    v->bell = (struct rm_pool_bell *)(base + copy.bell_off);
    v->index = idx;
    v->nslots = copy.nslots;
    v->ring_cells = cells;
    v->max_req = copy.max_req;
    v->max_resp = copy.max_resp;
    v->ring = (struct rm_ring *)(base + copy.ring_off);
    v->states = (_Atomic uint64_t *)(base + copy.states_off);
    v->req_meta = (struct rm_req_meta *)(base + copy.req_meta_off);
    v->resp_meta = (struct rm_resp_meta *)(base + copy.resp_meta_off);
    v->req_base = base + copy.req_off;
    v->resp_base = base + copy.resp_off;
    v->req_stride = copy.req_stride;
    v->resp_stride = copy.resp_stride;
    return 0;
}

/* ------------------------------------------------------------------ gateway */

uint32_t rm_req_claim(const struct rm_pool_view *v, unsigned gw, uint32_t *cursor)
{
    const uint32_t n = v->nslots;
    const uint32_t start = *cursor < n ? *cursor : 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t s = start + k < n ? start + k : start + k - n;
        _Atomic uint64_t *word = &v->states[s];
        /* relaxed peek; the CAS (acq_rel) is what counts */
        uint64_t w = atomic_load_explicit(word, memory_order_relaxed);
        if (RM_SLOT_STATE(w) != RM_SLOT_FREE)
            continue;
        if (rm_slot_cas(word, &w, RM_SLOT_FILLING, RM_OWNER(gw)) == 1) {
            *cursor = s + 1 < n ? s + 1 : 0;
            RM_CRASH_POINT();
            return s;
        }
    }
    return RM_NO_SLOT;
}

enum rm_publish rm_req_publish(const struct rm_pool_view *v, uint32_t slot, const struct rm_req_in *in,
                               struct rm_req_ticket *t)
{
    _Atomic uint64_t *word = &v->states[slot];
    struct rm_req_meta *m = &v->req_meta[slot];
    struct rm_resp_meta *rm = &v->resp_meta[slot];
    /* relaxed: a reload's new value is picked up by the next request; no
     * other data rides on it. */
    const uint64_t timeout = atomic_load_explicit(&v->desc->request_timeout_ns, memory_order_relaxed);
    const uint64_t len = in->len <= v->max_req ? in->len : v->max_req;
    const size_t clen = in->ctype && in->ctype_len < RM_SHM_CTYPE ? in->ctype_len : 0;

    /* Fill: the whole meta is ours while FILLING (owner = this gateway). */
    m->gw = in->gw;
    m->req_id = in->req_id;
    m->accept_ns = in->now_ns;
    m->deadline_ns = (timeout && timeout < UINT64_MAX - in->now_ns) ? in->now_ns + timeout : UINT64_MAX;
    rm->run_start_ns = 0;
    rm->run_end_ns = 0;
    rm->resp_len = 0;
    rm->resp_status = 0;
    rm->error = 0;
    rm->resp_ctype[0] = '\0';
    /* The stream fields (layout.h): relaxed, published by the QUEUED CAS. */
    atomic_store_explicit(&rm->s_flags, 0, memory_order_relaxed);
    rm->s_end = RM_STREAM_END_NONE;
    atomic_store_explicit(&rm->s_waiting, 0, memory_order_relaxed);
    atomic_store_explicit(&rm->s_wpos, 0, memory_order_relaxed);
    atomic_store_explicit(&rm->s_beat_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&rm->s_rpos, 0, memory_order_relaxed);
    atomic_store_explicit(&rm->s_rwant, 0, memory_order_relaxed);
    m->req_len = (uint32_t)len;
    if (clen)
        memcpy(m->req_ctype, in->ctype, clen);
    m->req_ctype[clen] = '\0';
    if (len)
        memcpy(rm_view_req(v, slot), in->body, len);
    *t = (struct rm_req_ticket){.slot = slot, .gw = in->gw, .req_id = in->req_id,
                                .accept_ns = in->now_ns, .deadline_ns = m->deadline_ns};
    RM_CRASH_POINT();

    /* Accept: FILLING -> QUEUED. release: publishes meta and body to the
     * worker's acquire in its QUEUED -> RUNNING CAS (rm_req_take). */
    uint64_t w = atomic_load_explicit(word, memory_order_relaxed); /* our own FILLING word */
    if (RM_SLOT_STATE(w) != RM_SLOT_FILLING || RM_SLOT_OWNER(w) != RM_OWNER(in->gw) ||
        rm_slot_cas(word, &w, RM_SLOT_QUEUED, 0) != 1)
        return RM_PUBLISH_LOST; /* only the master changes a FILLING slot, of a dead gateway */
    const uint64_t queued = rm_slot_next(w, RM_SLOT_QUEUED, 0);
    RM_CRASH_POINT();
    if (rm_ring_enqueue_n(v->ring, v->ring_cells, slot) != RM_RING_OK) {
        /* Ring full (of stale duplicates): withdraw, unless a worker took
         * the slot already through a stale entry: then it runs; wait. */
        uint64_t q = queued;
        if (rm_slot_cas(word, &q, RM_SLOT_FREE, 0) == 1)
            return RM_PUBLISH_FULL;
        return RM_PUBLISH_OK;
    }
    RM_CRASH_POINT();
    rm_doorbell_ring(v->bell);
    return RM_PUBLISH_OK;
}

/* The slot still holds the ticket's request (meta was written by us while
 * FILLING, before QUEUED; a later request there has another req_id). */
static bool ours(const struct rm_pool_view *v, const struct rm_req_ticket *t)
{
    const struct rm_req_meta *m = &v->req_meta[t->slot];
    return m->gw == t->gw && m->req_id == t->req_id;
}

enum rm_poll rm_req_poll(const struct rm_pool_view *v, const struct rm_req_ticket *t, uint64_t now_ns,
                         uint64_t stuck_grace_ns, struct rm_req_answer *a)
{
    if (t->slot >= v->nslots)
        return RM_POLL_LOST;
    _Atomic uint64_t *word = &v->states[t->slot];
    /* acquire: pairs with the worker's (or recovery's) release CAS to DONE,
     * so the answer and meta read below are complete. */
    uint64_t w = rm_slot_load(word);
    for (int tries = 0; tries < 16; tries++) {
        switch (RM_SLOT_STATE(w)) {
        case RM_SLOT_DONE: {
            const struct rm_resp_meta *m = &v->resp_meta[t->slot];
            if (!ours(v, t)) {
                a->lost_state = RM_SLOT_DONE;
                return RM_POLL_LOST;
            }
            /* Read each field once: the values checked are the values used. */
            a->error = m->error;
            a->status = m->resp_status;
            a->len = m->resp_len;
            a->len_ok = a->len <= v->max_resp;
            a->body = rm_view_resp(v, t->slot);
            a->run_start_ns = m->run_start_ns;
            a->stream_end = m->s_end;
            memcpy(a->ctype, m->resp_ctype, sizeof a->ctype);
            a->ctype[sizeof a->ctype - 1] = '\0';
            a->word = w;
            return RM_POLL_DONE;
        }
        case RM_SLOT_QUEUED:
            if (now_ns < t->deadline_ns)
                return RM_POLL_WAIT;
            if (rm_slot_cas(word, &w, RM_SLOT_FREE, 0) == 1)
                return RM_POLL_TIMEOUT;
            continue; /* a worker took it meanwhile: look again */
        case RM_SLOT_RUNNING:
            /* Past the deadline the master kills the worker and recovery
             * makes it DONE 504. Only if that never happens, give up. */
            if (t->deadline_ns > UINT64_MAX - stuck_grace_ns || now_ns < t->deadline_ns + stuck_grace_ns)
                return RM_POLL_WAIT;
            if (rm_slot_cas(word, &w, RM_SLOT_ABORTED, 0) == 1)
                return RM_POLL_STUCK;
            continue;
        default:
            a->lost_state = RM_SLOT_STATE(w);
            return RM_POLL_LOST;
        }
    }
    return RM_POLL_WAIT;
}

void rm_req_release(const struct rm_pool_view *v, const struct rm_req_ticket *t, struct rm_req_answer *a)
{
    if (t->slot >= v->nslots)
        return;
    _Atomic uint64_t *word = &v->states[t->slot];
    RM_CRASH_POINT();
    /* DONE belongs to us: the CAS fails only if the word changed (a
     * scribble, or the master freeing it for a dead gateway): then it is
     * not ours to free. */
    uint64_t w = a->word;
    rm_slot_cas(word, &w, RM_SLOT_FREE, 0);
}

bool rm_req_abandon(const struct rm_pool_view *v, const struct rm_req_ticket *t)
{
    if (t->slot >= v->nslots || !ours(v, t))
        return false;
    _Atomic uint64_t *word = &v->states[t->slot];
    uint64_t w = rm_slot_load(word); /* acquire: pairs with the last transition's release */
    for (int tries = 0; tries < 16; tries++) {
        unsigned st = RM_SLOT_STATE(w), to;
        if (st == RM_SLOT_QUEUED || st == RM_SLOT_DONE)
            to = RM_SLOT_FREE;
        else if (st == RM_SLOT_RUNNING)
            to = RM_SLOT_ABORTED; /* the worker frees it when it finishes */
        else
            return false;
        int r = rm_slot_cas(word, &w, to, 0);
        if (r == 1)
            return true;
        if (r < 0)
            return false;
    }
    return false;
}

/* ------------------------------------------------------------------ worker */

static bool ring_has_work(void *arg)
{
    const struct rm_pool_view *v = arg;
    return rm_ring_count_n(v->ring, v->ring_cells) > 0;
}

void rm_req_wait(const struct rm_pool_view *v, struct rm_sb_entry *me, uint64_t timeout_ns)
{
    rm_doorbell_wait(v->bell, timeout_ns, ring_has_work, (void *)v, me ? &me->intent : NULL, v->index);
}

enum rm_take rm_req_take(const struct rm_pool_view *v, struct rm_sb_entry *me, unsigned me_idx,
                         uint64_t now_ns, struct rm_req_job *job)
{
    uint32_t s;
    if (rm_ring_dequeue_n(v->ring, v->ring_cells, &s, &me->intent, v->index) != RM_RING_OK)
        return RM_TAKE_EMPTY;
    RM_CRASH_POINT();
    if (s >= v->nslots) {
        /* Not a slot of ours: a scribbled ring. Skip it.
         * release: ordered after the dequeue CAS. */
        atomic_store_explicit(&me->intent, 0, memory_order_release);
        return RM_TAKE_STALE;
    }
    _Atomic uint64_t *word = &v->states[s];
    uint64_t w = rm_slot_load(word); /* acquire: pairs with the gateway's QUEUED CAS */
    bool claimed = false;
    /* Bounded, as every loop on a shared word: a scribbler flipping it
     * cannot hold us (the master heals the pool). */
    for (int tries = 0; tries < 64 && RM_SLOT_STATE(w) == RM_SLOT_QUEUED; tries++) {
        /* acquire (acq_rel): meta and body of the gateway's fill are visible. */
        if (rm_slot_cas(word, &w, RM_SLOT_RUNNING, RM_OWNER(me_idx)) == 1) {
            claimed = true;
            break;
        }
    }
    /* The claim (or its failure) settles the dequeue: clear the intent.
     * release: ordered after the claim CAS; recovery reads it after reaping. */
    atomic_store_explicit(&me->intent, 0, memory_order_release);
    if (!claimed)
        return RM_TAKE_STALE; /* a stale duplicate: another worker has it */
    const uint64_t running = rm_slot_next(w, RM_SLOT_RUNNING, RM_OWNER(me_idx));

    /* relaxed: cur_start_ns rides on the release store of cur_slot below. */
    atomic_store_explicit(&me->cur_start_ns, now_ns, memory_order_relaxed);
    /* release: the master's acquire load of cur_slot (deadline check) sees cur_start_ns. */
    atomic_store_explicit(&me->cur_slot, s, memory_order_release);
    /* release: pairs with the acquire loads of state by the master, gateways and ctl. */
    atomic_store_explicit(&me->state, RM_PROC_BUSY, memory_order_release);
    RM_CRASH_POINT();

    const struct rm_req_meta *m = &v->req_meta[s];
    v->resp_meta[s].run_start_ns = now_ns;
    uint32_t len = m->req_len; /* read once */
    job->slot = s;
    job->attempt = RM_SLOT_ATTEMPTS(running);
    job->len = len <= v->max_req ? len : 0; /* scribbled meta: never read past the request area */
    job->body = rm_view_req(v, s);
    memcpy(job->ctype, m->req_ctype, sizeof job->ctype);
    job->ctype[sizeof job->ctype - 1] = '\0';
    job->deadline_ns = m->deadline_ns;
    job->resp = rm_view_resp(v, s);
    job->resp_cap = v->max_resp;
    job->start_ns = now_ns;
    return RM_TAKE_OK;
}

int rm_req_finish(const struct rm_pool_view *v, struct rm_sb_entry *me, const struct rm_req_job *job,
                  const struct rm_req_result *res, uint64_t now_ns)
{
    const uint32_t s = job->slot;
    _Atomic uint64_t *word = &v->states[s];
    struct rm_resp_meta *m = &v->resp_meta[s];
    const bool fits = res->len <= job->resp_cap;
    const char *ct = res->ctype ? res->ctype : "";
    size_t ctl = strnlen(ct, RM_SHM_CTYPE - 1);

    /* The run phase's fields are ours while RUNNING. A stream's status
     * and Content-Type went out with its first chunk (shm/stream.c): they
     * stay; its answer is in the chunks (resp_len 0). relaxed: our own
     * store, RUNNING is ours. */
    const bool streamed = atomic_load_explicit(&m->s_flags, memory_order_relaxed) & RM_STREAM_STARTED;
    if (streamed) {
        m->error = (uint16_t)(res->error ? res->error : 0);
        m->resp_len = 0;
    } else if (res->error || !fits) {
        m->error = (uint16_t)(res->error ? res->error : 500);
        m->resp_status = 0;
        m->resp_len = res->error && fits ? (uint32_t)res->len : 0;
    } else {
        m->error = 0;
        m->resp_status = (uint16_t)(res->status >= 100 && res->status <= 599 ? res->status : 500);
        m->resp_len = (uint32_t)res->len;
    }
    if (!streamed) {
        memcpy(m->resp_ctype, ct, ctl);
        m->resp_ctype[ctl] = '\0';
    }
    m->run_end_ns = now_ns;
    const uint32_t gw = v->req_meta[s].gw; /* written by the gateway while FILLING; checked by the caller */
    RM_CRASH_POINT();

    /* RUNNING -> DONE publishes the answer (release in rm_slot_cas); if the
     * client went away meanwhile (ABORTED), free the slot instead. */
    int wake = RM_FINISH_TAKEN;
    uint64_t cur = rm_slot_load(word); /* acquire: pairs with the gateway's ABORTED CAS */
    for (int tries = 0; tries < 64; tries++) {
        unsigned st = RM_SLOT_STATE(cur);
        if (st == RM_SLOT_RUNNING) {
            if (rm_slot_cas(word, &cur, RM_SLOT_DONE, 0) == 1) {
                wake = (int)(gw & 0x7fffffff);
                break;
            }
        } else if (st == RM_SLOT_ABORTED) {
            if (rm_slot_cas(word, &cur, RM_SLOT_FREE, 0) == 1) {
                wake = RM_FINISH_NOBODY;
                break;
            }
        } else {
            /* Only the owner ends a RUNNING slot: anything else is a
             * scribble. Leave it to the master. */
            break;
        }
    }
    RM_CRASH_POINT();
    /* release: pairs with the master's acquire load of cur_slot. */
    atomic_store_explicit(&me->cur_slot, RM_NO_SLOT, memory_order_release);
    /* single writer (this worker): no locked RMW; readers only look (relaxed). */
    atomic_store_explicit(&me->served, atomic_load_explicit(&me->served, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* release: pairs with the acquire loads of state by the master, gateways and ctl. */
    atomic_store_explicit(&me->state, RM_PROC_READY, memory_order_release);
    return wake;
}
