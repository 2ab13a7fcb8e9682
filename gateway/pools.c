/*
 * pools.c - what the gateway knows of the pools: a per-tick snapshot of
 * the descriptors (name, active, a validated private view of the geometry)
 * and of the scoreboard (which pools have a ready worker).
 *
 * A pool's geometry never changes while its entry exists (a removed pool's
 * entry is never reused), so once a view opened it is kept: later scribbles
 * on the shared descriptor cannot move it.
 */
#include <string.h>

#include "core/log.h"
#include "gateway/internal.h"
#include "shm/request.h"
#include "shm/segment.h"

void gw_scan_workers(const struct gw *gw, unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES])
{
    memset(counts, 0, sizeof(unsigned) * RM_SHM_MAX_POOLS * RM_PROC_NSTATES);
    /* Private bounds (taken when the segment was created): never a count
     * read from shared memory. */
    const uint32_t n = gw->seg->nprocs;
    for (uint32_t i = gw->seg->max_gateways; i < n; i++) {
        const struct rm_sb_entry *e = rm_seg_sb(gw->seg, i);
        unsigned pool = e->pool; /* read once, then bounds-checked */
        if (e->role != RM_ROLE_WORKER || pool >= RM_SHM_MAX_POOLS)
            continue;
        /* acquire: pairs with the worker's release store of its state */
        unsigned st = atomic_load_explicit(&e->state, memory_order_acquire);
        if (st < RM_PROC_NSTATES)
            counts[pool][st]++;
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
            /* Removed (or never configured). Requests already in flight in
             * a removed pool keep their view and are answered; new ones get
             * 404. */
            gp->active = gp->has_worker = false;
            continue;
        }
        gp->active = true;
        if (!gp->valid) {
            gp->valid = rm_pool_view_open(gw->seg, i, &gp->view) == 0;
            if (gp->valid) {
                memcpy(gp->name, p->name, sizeof gp->name);
                gp->name[sizeof gp->name - 1] = '\0';
                gp->name_len = strlen(gp->name);
            } else if (!gp->said_invalid) {
                gp->said_invalid = true;
                rm_err("pool %u: descriptor out of bounds of the shared memory, not served", i);
            }
        }
        gp->has_worker = counts[i][RM_PROC_READY] + counts[i][RM_PROC_BUSY] > 0;
    }
}

bool gw_pool_has_worker_now(struct gw *gw, unsigned pi)
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
