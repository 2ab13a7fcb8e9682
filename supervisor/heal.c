/*
 * heal.c - a pool whose shared memory was scribbled on (a worker's stray
 * writes, a handler's buffer overflow) heals, and the other pools never
 * notice.
 *
 * Detection, every loop turn, from the master's private view of the pool
 * (docs/architecture.md, "trust model"):
 *  - ring cells out of sequence (a cell's counter is always congruent to its
 *    index), or holding a value that is not a slot index; a head or tail
 *    hint further from its cell than a ring's length;
 *  - a slot state word with an impossible state, or an owner that cannot
 *    own it (FILLING: a gateway; RUNNING and ABORTED: a live worker of this
 *    pool; otherwise nobody);
 *  - a slot left in the same FILLING, QUEUED, DONE or ABORTED word far past
 *    any deadline that would have ended it (a leak: the queue would fill);
 *  - a request QUEUED for seconds while a worker of the pool sat READY the
 *    whole time (the ring lost it: a wedge).
 * None of these happens under any interleaving of the protocol's own steps
 * or of process deaths (the crash test runs the same code).
 *
 * Healing: the pool's descriptor (ctrl: only the master writes it) gets a
 * new heal_epoch and healing = 1. Every worker and the preloader of the
 * pool are SIGKILLed with their process groups (their memory is suspect,
 * and so are they); gateways answer every request of the pool they still
 * hold with 502, take no new one (503), and acknowledge the epoch. Once the
 * workers are reaped and the live gateways have acknowledged (or a second
 * has passed), the master rebuilds the pool's ring, slots, meta and
 * doorbell in place, clears healing, and reconcile starts fresh workers.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/names.h"
#include "shm/clock.h"
#include "shm/ring.h"
#include "shm/slot.h"
#include "supervisor/master_int.h"

#define HEAL_ACK_WAIT_NS (1000ull * MS)     /* gateways get this long to let go */
#define LEAK_GRACE_NS (10000ull * MS)       /* past any deadline that would have ended a slot */
#define WEDGE_MIN_NS (3000ull * MS)         /* QUEUED this long with a READY worker all along */
#define WEDGE_READY_NS (1000ull * MS)
#define HINT_SLACK 4096u                    /* hints lag by at most the processes that died mid-operation */

/* The ring's cell word: seq:40 | value:24 (shm/ring_cell.h, docs/ring.md). */
#define CELL_SEQ(w) ((w) >> RM_RING_VALUE_BITS)
#define CELL_VAL(w) ((uint32_t)((w) & RM_RING_VALUE_MASK))

static int64_t seq_diff(uint64_t a, uint64_t b)
{
    uint64_t d = (a - b) << RM_RING_VALUE_BITS;
    return (int64_t)d >> RM_RING_VALUE_BITS;
}

static const char *check_ring(const struct rm_pool_view *v, char *buf, size_t len)
{
    const uint32_t cells = v->ring_cells, mask = cells - 1;
    for (uint32_t i = 0; i < cells; i++) {
        /* relaxed: one word, judged on its own; any legal operation keeps
         * every word valid at every instant. */
        uint64_t w = atomic_load_explicit(&v->ring->cells[i], memory_order_relaxed);
        uint64_t seq = CELL_SEQ(w);
        uint32_t lap = (uint32_t)(seq & mask);
        if (lap == i) {
            /* empty for counter seq: its value is the empty marker */
            if (CELL_VAL(w) != RM_RING_EMPTY_VALUE)
                return snprintf(buf, len, "ring cell %u is empty but holds %u", i, CELL_VAL(w)), buf;
        } else if (lap == ((i + 1) & mask) && cells > 1) {
            if (CELL_VAL(w) >= v->nslots)
                return snprintf(buf, len, "ring cell %u holds %u, not a slot (%u slots)", i, CELL_VAL(w),
                                v->nslots), buf;
        } else {
            return snprintf(buf, len, "ring cell %u out of sequence", i), buf;
        }
    }
    /* relaxed: hints, compared with the cells they point at */
    uint64_t hints[2] = {atomic_load_explicit(&v->ring->head, memory_order_relaxed),
                         atomic_load_explicit(&v->ring->tail, memory_order_relaxed)};
    for (int k = 0; k < 2; k++) {
        uint64_t w = atomic_load_explicit(&v->ring->cells[hints[k] & mask], memory_order_relaxed);
        int64_t d = seq_diff(CELL_SEQ(w), hints[k]);
        if (d < -(int64_t)cells - HINT_SLACK || d > (int64_t)cells + HINT_SLACK)
            return snprintf(buf, len, "ring %s hint %s its cells", k ? "tail" : "head",
                            d < 0 ? "ahead of" : "behind"), buf;
    }
    return NULL;
}

/* Owner field of a slot word: may that process own it in this state? */
static bool owner_ok(unsigned pidx, unsigned st, unsigned owner)
{
    if (st == RM_SLOT_FILLING)
        return owner >= 1 && owner <= RM_MAX_GATEWAYS;
    if (st == RM_SLOT_RUNNING || st == RM_SLOT_ABORTED) {
        unsigned sb = owner - 1;
        if (owner == 0 || sb < pool_first_sb(pidx) || sb >= pool_first_sb(pidx) + RM_SB_PER_POOL)
            return false;
        const struct proc *p = &M->procs[sb];
        /* alive (or dead and not yet reaped: its recovery comes first) */
        return p->pid && p->role == RM_ROLE_WORKER && p->pool == pidx;
    }
    return owner == 0;
}

const char *heal_check(unsigned pidx, uint64_t now, char *buf, size_t len)
{
    struct pool_rt *pr = &M->pools[pidx];
    const struct rm_pool_view *v = &pr->view;
    const char *why = check_ring(v, buf, len);
    if (why)
        return why;
    /* relaxed: a policy value; the master wrote it */
    const uint64_t timeout = atomic_load_explicit(&v->desc->request_timeout_ns, memory_order_relaxed);
    const uint64_t leak_after = (timeout < UINT64_MAX / 2 ? timeout : UINT64_MAX / 4) + LEAK_GRACE_NS;
    const uint32_t ready = atomic_load_explicit(&v->desc->workers[RM_PROC_READY], memory_order_relaxed);
    if (!ready)
        pr->ready_since = 0;
    else if (!pr->ready_since)
        pr->ready_since = now;
    const bool ready_long = pr->ready_since && now - pr->ready_since > WEDGE_READY_NS;
    /* A READY worker takes a request within heartbeat_interval; one that
     * is stopped is killed after heartbeat_timeout. Past twice that, the
     * ring lost the request. */
    const uint64_t wedge_ns = 2 * M->cfg.heartbeat_timeout * MS > WEDGE_MIN_NS ? 2 * M->cfg.heartbeat_timeout * MS
                                                                                 : WEDGE_MIN_NS;
    for (uint32_t s = 0; s < v->nslots && s < pr->pend_cap; s++) {
        /* acquire: pairs with the release CAS that made the word (its
         * meta is not read here; the word alone is judged) */
        uint64_t w = rm_slot_load(&v->states[s]);
        unsigned st = RM_SLOT_STATE(w), owner = RM_SLOT_OWNER(w);
        if (st >= RM_SLOT_NSTATES)
            return snprintf(buf, len, "slot %u in impossible state %u", s, st), buf;
        if (!owner_ok(pidx, st, owner))
            return snprintf(buf, len, "slot %u %s owned by %u", s, rm_slot_state_name(st), owner), buf;
        if (w != pr->seen_word[s]) {
            pr->seen_word[s] = w;
            pr->seen_since[s] = now;
            continue;
        }
        uint64_t age = now - pr->seen_since[s];
        uint64_t leak = leak_after;
        /* A stream's DONE slot stays while its gateway still hands the last
         * chunks to a slow client, until at most stream_timeout (+ the
         * gateway's grace) from acceptance (docs/streaming.md). relaxed:
         * the worker's flag and a policy value, compared only; a worker
         * that sets the flag on a leaked slot delays its discovery by that
         * much, no more. */
        if (st == RM_SLOT_DONE &&
            (atomic_load_explicit(&v->resp_meta[s].s_flags, memory_order_relaxed) & RM_STREAM_STARTED)) {
            uint64_t cap = atomic_load_explicit(&v->desc->stream_timeout_ns, memory_order_relaxed);
            if (cap < UINT64_MAX / 4 && cap + 2 * LEAK_GRACE_NS > leak)
                leak = cap + 2 * LEAK_GRACE_NS;
        }
        if (st != RM_SLOT_FREE && st != RM_SLOT_RUNNING && age > leak)
            return snprintf(buf, len, "slot %u %s for %.0f s (leaked)", s, rm_slot_state_name(st), age / 1e9), buf;
        /* A QUEUED slot that nobody takes although a worker was READY all
         * along, and the gateways are not all down: the ring lost it. Not
         * while its ring entry waits on the pending list (ring full). */
        if (st == RM_SLOT_QUEUED && ready_long && age > wedge_ns && now - pr->ready_since > wedge_ns &&
            !(pr->pend_bits[s / 64] & (UINT64_C(1) << (s % 64))))
            return snprintf(buf, len, "slot %u QUEUED %.1f s while a worker sat ready (the ring lost it)", s,
                            age / 1e9), buf;
    }
    return NULL;
}

/* ------------------------------------------------------------------ heal */

static void heal_begin(unsigned pidx, const char *why, uint64_t now)
{
    struct pool_rt *pr = &M->pools[pidx];
    struct rm_shm_pool *sp = rm_seg_pool(&M->seg, pidx);
    rm_err("pool %s: its shared memory is inconsistent (%s): a worker wrote where it must not. Failing its "
           "requests in flight with 502, killing its workers, rebuilding it",
           pr->cfg.name, why);
    /* relaxed: a statistics counter (single writer, the master) */
    atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, pidx)->heals, 1, memory_order_relaxed);
    pr->healing = 1;
    pr->heal_started = now;
    pr->epoch++;
    /* release (both): a gateway that sees the new epoch or healing sees
     * everything the master wrote before. Pairs with the gateways' acquire
     * loads (gateway/pools.c). */
    atomic_store_explicit(&sp->healing, 1, memory_order_release);
    atomic_store_explicit(&sp->heal_epoch, pr->epoch, memory_order_release);
    unsigned sb;
    struct proc *p;
    for_each_pool_proc(pidx, POOL_ANY_ROLE, sb, p) {
        if (p->reserved)
            give_up_reservation(sb);
        if (!p->pid)
            continue;
        p->heal_killed = 1;
        if (kill(-p->pid, SIGKILL) < 0 && errno != ESRCH)
            rm_warn("kill(-%d, SIGKILL): %s", (int)p->pid, strerror(errno));
        proc_signal(p, SIGKILL);
        p->kill_at = UINT64_MAX; /* sent; wait for the reap */
    }
    /* Its pending re-queues are void: the ring is rebuilt. */
    memset(pr->pend_bits, 0, ((pr->pend_cap + 63u) / 64u) * sizeof *pr->pend_bits);
}

/* Every live gateway has answered its requests of the old epoch. */
static bool gateways_acked(unsigned pidx, uint32_t epoch)
{
    for (unsigned g = 0; g < M->cfg.gateways && g < RM_MAX_GATEWAYS; g++) {
        const struct proc *p = &M->procs[g];
        if (!p->pid || p->role != RM_ROLE_GATEWAY)
            continue;
        /* acquire: pairs with the gateway's release store of heal_ack,
         * made after it let go of every request of the old epoch. */
        if (atomic_load_explicit(&rm_seg_gw_stats(&M->seg, g, pidx)->heal_ack, memory_order_acquire) != epoch)
            return false;
    }
    return true;
}

static void rebuild(unsigned pidx, uint64_t now)
{
    struct pool_rt *pr = &M->pools[pidx];
    const struct rm_pool_view *v = &pr->view;
    /* Nobody else touches the pool now: its workers are dead and the
     * gateways let go (or are too slow: their tickets no longer match). */
    rm_ring_init(v->ring, v->ring_cells);
    uint32_t gen = pr->epoch << 16 | 1; /* generations new to every ticket */
    for (uint32_t s = 0; s < v->nslots; s++) {
        /* relaxed: published by the release store of healing = 0 below */
        atomic_store_explicit(&v->states[s], RM_SLOT_WORD(gen, 0, 0, RM_SLOT_FREE), memory_order_relaxed);
        pr->seen_word[s] = 0;
    }
    memset(v->resp_meta, 0, (size_t)v->nslots * sizeof *v->resp_meta);
    memset(v->req_meta, 0, (size_t)v->nslots * sizeof *v->req_meta);
    /* relaxed: as above */
    atomic_store_explicit(&v->bell->sleepers, 0, memory_order_relaxed);
    for (unsigned sb = pool_first_sb(pidx); sb < pool_first_sb(pidx) + RM_SB_PER_POOL; sb++) {
        if (M->procs[sb].pid || M->procs[sb].reserved)
            continue;
        struct rm_sb_entry *e = rm_seg_sb(&M->seg, sb);
        /* relaxed: no process owns these entries (the master writes them
         * before fork, and fork orders them) */
        atomic_store_explicit(&e->intent, 0, memory_order_relaxed);
        atomic_store_explicit(&e->cur_slot, RM_NO_SLOT, memory_order_relaxed);
        atomic_store_explicit(&e->flags, 0, memory_order_relaxed);
        atomic_store_explicit(&e->state, RM_PROC_EMPTY, memory_order_relaxed);
    }
    pr->healing = 0;
    pr->ready_since = 0;
    pr->early_deaths = 0;
    pr->next_spawn_ns = now;
    /* release: pairs with the gateways' acquire load of healing: who sees
     * 0 sees the rebuilt pool. */
    atomic_store_explicit(&rm_seg_pool(&M->seg, pidx)->healing, 0, memory_order_release);
    rm_notice("pool %s: rebuilt after %.0f ms; starting fresh workers", pr->cfg.name,
              (now - pr->heal_started) / 1e6);
}

void heal_tick(uint64_t now)
{
    for (unsigned pidx = 0; pidx < RM_SHM_MAX_POOLS; pidx++) {
        struct pool_rt *pr = &M->pools[pidx];
        if (!pr->created)
            continue;
        if (pr->healing) {
            unsigned sb;
            struct proc *p;
            bool alive = false;
            for_each_pool_proc(pidx, POOL_ANY_ROLE, sb, p)
                alive |= p->pid != 0;
            if (!alive && (gateways_acked(pidx, pr->epoch) || now - pr->heal_started > HEAL_ACK_WAIT_NS))
                rebuild(pidx, now);
            continue;
        }
        if (M->stopping)
            continue;
        char buf[160];
        const char *why = heal_check(pidx, now, buf, sizeof buf);
        if (why)
            heal_begin(pidx, why, now);
    }
}
