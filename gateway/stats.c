/*
 * stats.c - the gateway's request counters and histograms in shared
 * memory (one block per gateway and pool, and one for the answers that
 * belong to no pool; single writer: this gateway).
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

void gw_count_stream(struct gw *gw, unsigned pool, enum rm_stream_result r)
{
    if (pool >= RM_SHM_MAX_POOLS || (unsigned)r >= RM_STREAM_RESULTS)
        return;
    bump(&rm_seg_gw_stats(gw->seg, gw->index, pool)->streams[r], 1);
}

void gw_count_status(struct gw *gw, unsigned block, unsigned status)
{
    if (block >= RM_GW_BLOCKS)
        return;
    bump(&rm_seg_gw_stats(gw->seg, gw->index, block)->codes[rm_code_of(status)], 1);
}

void gw_count_answer(struct gw *gw, const struct gw_conn *c, unsigned status)
{
    /* A pool's counters get the answers to its inference endpoint; c->pool
     * is the gateway's own index of a pool it found by name (never read
     * from shared memory), and still checked. */
    bool pool = (c->route == GW_R_INFER || c->route == GW_R_GENERATE || c->route == GW_R_GENERATE_STREAM) &&
                c->pool >= 0 && (unsigned)c->pool < RM_SHM_MAX_POOLS;
    gw_count_status(gw, pool ? (unsigned)c->pool : RM_GW_SERVER, status);
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
