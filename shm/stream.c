/* stream.c - a streamed answer's chunk queue. See stream.h and
 * docs/streaming.md. */
#include "shm/stream.h"

#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm/crashpoint.h"
#include "shm/slot.h"

#define ALIGN8(x) (((uint64_t)(x) + 7u) & ~(uint64_t)7u)

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, 0);
}

uint64_t rm_stream_cap(const struct rm_pool_view *v)
{
    uint64_t cap = v->resp_stride & ~(uint64_t)7u;
    return cap >= 64 ? cap : 0;
}

/* The slot still holds the ticket's request (request meta is in R: the
 * gateway wrote it while FILLING; workers cannot change it). */
static bool ticket_ours(const struct rm_pool_view *v, const struct rm_req_ticket *t)
{
    const struct rm_req_meta *m = &v->req_meta[t->slot];
    return m->gw == t->gw && m->req_id == t->req_id;
}

/* ------------------------------------------------------------------ worker */

void rm_stream_w_init(struct rm_stream_w *s, const struct rm_pool_view *v, unsigned me_idx,
                      const struct rm_req_job *job, uint64_t now_ns)
{
    *s = (struct rm_stream_w){.v = v, .owner = RM_OWNER(me_idx), .slot = job->slot, .area = job->resp,
                              .cap = rm_stream_cap(v)};
    struct rm_resp_meta *m = &v->resp_meta[job->slot];
    /* The run phase's fields are ours while RUNNING. s_wpos and s_rpos are
     * 0: the gateway reset them while FILLING, and recovery re-runs a
     * request only when no chunk was written (s_wpos still 0). STARTED may
     * be left by an earlier attempt killed between the flag and its first
     * s_wpos store. relaxed: nobody reads them before our first release
     * store of s_wpos. */
    atomic_store_explicit(&m->s_flags, 0, memory_order_relaxed);
    atomic_store_explicit(&m->s_waiting, 0, memory_order_relaxed);
    atomic_store_explicit(&m->s_beat_ns, now_ns, memory_order_relaxed);
}

bool rm_stream_cancelled(const struct rm_stream_w *s)
{
    /* acquire: pairs with the gateway's ABORTED CAS (rm_req_abandon) */
    uint64_t w = rm_slot_load(&s->v->states[s->slot]);
    return RM_SLOT_STATE(w) != RM_SLOT_RUNNING || RM_SLOT_OWNER(w) != s->owner;
}

enum rm_emit rm_stream_put(struct rm_stream_w *s, unsigned status, const char *ctype, const void *data,
                           size_t len, size_t *done, uint64_t now_ns)
{
    if (!s->cap || rm_stream_cancelled(s))
        return RM_EMIT_CANCELLED;
    struct rm_resp_meta *m = &s->v->resp_meta[s->slot];
    /* acquire: pairs with the gateway's release store of s_rpos, after
     * which the space it consumed is ours to write again. */
    const uint64_t r = atomic_load_explicit(&m->s_rpos, memory_order_acquire);
    if (r > s->wpos || s->wpos - r > s->cap)
        return RM_EMIT_CANCELLED; /* not a position the gateway can have written */
    s->seen_rpos = r;
    const uint64_t maxpiece = s->cap / 2 - RM_REC_HDR;
    const uint64_t began = s->wpos;
    const unsigned char *p = data;
    s->wake = false;
    bool wrote = false, complete = false;
    for (;;) {
        const uint64_t rest = len - *done;
        const uint64_t piece = rest < maxpiece ? rest : maxpiece;
        const uint64_t need = RM_REC_HDR + ALIGN8(piece);
        uint64_t off = s->wpos % s->cap;
        const uint64_t skip = s->cap - off < need ? s->cap - off : 0;
        if (skip + need > s->cap - (s->wpos - r))
            break; /* full */
        if (!s->started) {
            m->resp_status = (uint16_t)(status >= 100 && status <= 599 ? status : 200);
            const char *ct = ctype ? ctype : "";
            size_t n = strnlen(ct, RM_SHM_CTYPE - 1);
            memcpy(m->resp_ctype, ct, n);
            m->resp_ctype[n] = '\0';
            /* relaxed: published by the release store of s_wpos below */
            atomic_store_explicit(&m->s_flags, RM_STREAM_STARTED, memory_order_relaxed);
            s->started = true;
        }
        if (skip) {
            uint32_t wrap[2] = {0, RM_REC_WRAP};
            memcpy(s->area + off, wrap, sizeof wrap);
            s->wpos += skip;
            off = 0;
        }
        uint32_t hdr[2] = {(uint32_t)piece, rest > piece ? RM_REC_CONT : 0};
        memcpy(s->area + off, hdr, sizeof hdr);
        if (piece)
            memcpy(s->area + off + RM_REC_HDR, p + *done, (size_t)piece);
        s->wpos += need;
        *done += (size_t)piece;
        wrote = true;
        if (*done == len) {
            complete = true;
            break;
        }
    }
    if (wrote) {
        RM_CRASH_POINT();
        /* release: the records (and, the first time, status, ctype and
         * STARTED) before the position; pairs with the gateway's acquire.
         * seq_cst: a Dekker pair with the gateway's s_rwant store and
         * s_wpos load (rm_stream_read): either it sees this position and
         * reads on, or we see it waiting at the position this put began
         * at, and wake it. */
        atomic_store_explicit(&m->s_wpos, s->wpos, memory_order_seq_cst);
        s->wake = atomic_load_explicit(&m->s_rwant, memory_order_seq_cst) == began;
        /* relaxed: a timestamp the master compares with its clock */
        atomic_store_explicit(&m->s_beat_ns, now_ns, memory_order_relaxed);
        RM_CRASH_POINT();
    }
    return complete ? RM_EMIT_OK : RM_EMIT_FULL;
}

void rm_stream_wait(struct rm_stream_w *s, uint64_t timeout_ns, uint64_t now_ns)
{
    struct rm_resp_meta *m = &s->v->resp_meta[s->slot];
    /* relaxed: the master only compares it with its clock. Waiting for
     * room is not silence: the client is slow, not the worker. */
    atomic_store_explicit(&m->s_beat_ns, now_ns, memory_order_relaxed);
    /* Dekker with the gateway (rm_stream_read): seq_cst store of s_waiting,
     * then seq_cst load of s_rpos; the gateway stores s_rpos, bumps s_rseq
     * and loads s_waiting, all seq_cst. One of us sees the other. */
    const uint32_t seq = atomic_load_explicit(&m->s_rseq, memory_order_seq_cst);
    atomic_store_explicit(&m->s_waiting, 1, memory_order_seq_cst);
    const uint64_t r = atomic_load_explicit(&m->s_rpos, memory_order_seq_cst);
    /* Sleep only while the gateway consumed nothing since the put that
     * found no room (then there is still none) and the client is here. */
    if (r == s->seen_rpos && !rm_stream_cancelled(s)) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u),
                              .tv_nsec = (long)(timeout_ns % 1000000000u)};
        long rc = futex(&m->s_rseq, FUTEX_WAIT, seq, &ts);
        if (rc == -1 && errno != ETIMEDOUT && errno != EAGAIN && errno != EINTR)
            nanosleep(&ts, NULL); /* no futex (seccomp): never spin */
    }
    atomic_store_explicit(&m->s_waiting, 0, memory_order_relaxed);
}

/* ------------------------------------------------------------------ gateway */

bool rm_stream_started(const struct rm_pool_view *v, const struct rm_req_ticket *t, struct rm_stream_head *h)
{
    if (t->slot >= v->nslots)
        return false;
    /* acquire: pairs with the worker's (or recovery's) release CAS */
    uint64_t w = rm_slot_load(&v->states[t->slot]);
    unsigned st = RM_SLOT_STATE(w);
    if ((st != RM_SLOT_RUNNING && st != RM_SLOT_DONE) || !ticket_ours(v, t))
        return false;
    const struct rm_resp_meta *m = &v->resp_meta[t->slot];
    /* acquire: pairs with the worker's release store of s_wpos, after
     * status and ctype */
    if (atomic_load_explicit(&((struct rm_resp_meta *)m)->s_wpos, memory_order_acquire) == 0)
        return false;
    h->status = m->resp_status; /* read once; the caller checks the range */
    memcpy(h->ctype, m->resp_ctype, sizeof h->ctype);
    h->ctype[sizeof h->ctype - 1] = '\0';
    return true;
}

enum rm_sread rm_stream_read(const struct rm_pool_view *v, const struct rm_req_ticket *t, uint64_t *rpos,
                             size_t budget, rm_stream_sink sink, void *arg)
{
    const uint64_t cap = rm_stream_cap(v);
    if (t->slot >= v->nslots)
        return RM_SREAD_LOST;
    if (!cap)
        return RM_SREAD_CORRUPT;
    /* acquire: pairs with the worker's release CAS to DONE; a DONE slot's
     * s_wpos read below is final. */
    uint64_t word = rm_slot_load(&v->states[t->slot]);
    unsigned st = RM_SLOT_STATE(word);
    if ((st != RM_SLOT_RUNNING && st != RM_SLOT_DONE) || !ticket_ours(v, t))
        return RM_SREAD_LOST;
    struct rm_resp_meta *m = &v->resp_meta[t->slot];
    const unsigned char *area = rm_view_resp(v, t->slot);
    /* acquire: pairs with the worker's release store after the records */
    uint64_t w = atomic_load_explicit(&m->s_wpos, memory_order_acquire);
    uint64_t r = *rpos;
    size_t given = 0;
    for (;;) {
        if (w < r || w - r > cap)
            return RM_SREAD_CORRUPT;
        while (r < w && given < budget) {
            const uint64_t off = r % cap;
            uint32_t hdr[2];
            memcpy(hdr, area + off, sizeof hdr); /* read once: the values checked are the values used */
            if (hdr[1] & RM_REC_WRAP) {
                if (cap - off > w - r)
                    return RM_SREAD_CORRUPT;
                r += cap - off;
                continue;
            }
            const uint64_t need = RM_REC_HDR + ALIGN8(hdr[0]);
            if (need > cap - off || need > w - r)
                return RM_SREAD_CORRUPT;
            sink(arg, area + off + RM_REC_HDR, hdr[0], !(hdr[1] & RM_REC_CONT));
            r += need;
            given += (size_t)need;
        }
        if (r < w || st != RM_SLOT_RUNNING)
            break;
        /* Caught up while the worker runs: ask to be woken by the next
         * chunk, then look once more (seq_cst: the Dekker pair with the
         * worker's s_wpos store and s_rwant load in rm_stream_put). The
         * load is also the acquire for the records it covers. */
        atomic_store_explicit(&m->s_rwant, r, memory_order_seq_cst);
        const uint64_t w2 = atomic_load_explicit(&m->s_wpos, memory_order_seq_cst);
        if (w2 == w)
            break;
        w = w2; /* a chunk came meanwhile: read it too (or say MORE) */
        if (given >= budget)
            break;
    }
    if (r != *rpos) {
        *rpos = r;
        /* release: we are done with the records' bytes; pairs with the
         * worker's acquire load before it writes there again. seq_cst for
         * the Dekker pair with rm_stream_wait (s_waiting). */
        atomic_store_explicit(&m->s_rpos, r, memory_order_seq_cst);
        atomic_fetch_add_explicit(&m->s_rseq, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&m->s_waiting, memory_order_seq_cst))
            futex(&m->s_rseq, FUTEX_WAKE, 1, NULL);
    }
    if (r < w)
        return RM_SREAD_MORE;
    return st == RM_SLOT_DONE ? RM_SREAD_END : RM_SREAD_EMPTY;
}

void rm_stream_kick(const struct rm_pool_view *v, const struct rm_req_ticket *t)
{
    if (t->slot >= v->nslots)
        return;
    struct rm_resp_meta *m = &v->resp_meta[t->slot];
    /* seq_cst: as in rm_stream_read (the Dekker pair with rm_stream_wait) */
    atomic_fetch_add_explicit(&m->s_rseq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->s_waiting, memory_order_seq_cst))
        futex(&m->s_rseq, FUTEX_WAKE, 1, NULL);
}
