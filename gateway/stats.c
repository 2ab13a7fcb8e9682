/*
 * stats.c - the gateway's request counters and histograms in shared
 * memory (one block per gateway and pool; single writer: this gateway).
 */
#include "gateway/internal.h"
#include "gateway/stats.h"
#include "shm/segment.h"

/* One writer per counter (this gateway): a relaxed load and store, no
 * locked read-modify-write on the request path. Readers only sum, with
 * relaxed loads, and tolerate slightly stale values. */
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

void gw_observe(struct gw *gw, unsigned pool, uint64_t accept_ns, uint64_t run_start_ns, uint64_t end_ns)
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
