/*
 * segment.h - create, attach and validate the shared-memory segment, and
 * find things in it. The master creates it (a memfd) before the first fork;
 * children inherit the mapping; ringmasterctl attaches read-only through
 * /proc/MASTER_PID/fd/N and validates everything before it trusts anything.
 */
#ifndef RM_SEGMENT_H
#define RM_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

struct rm_seg {
    unsigned char *base;
    size_t size;
    struct rm_shm_header *hdr;
    int fd;
    bool owner;       /* created it (master) */
    uint64_t arena_used;   /* master only: bump pointer into the arena */
    /* Private copies of the header's geometry, taken when the segment was
     * created or validated: a process that scribbles over the shared header
     * cannot make the accessors below index outside the mapping. */
    uint64_t pools_off, sb_off, gw_stats_off, master_stats_off;
    uint32_t nprocs, max_gateways;
};

struct rm_pool_spec {
    const char *name;
    uint32_t nslots;          /* queue_depth */
    uint64_t max_req;
    uint64_t max_resp;
    uint32_t max_attempts;
    uint64_t request_timeout_ns;
    const char *handler;
};

/* Bytes of arena one pool needs. */
uint64_t rm_pool_bytes(const struct rm_pool_spec *spec);

/*
 * Create a memfd segment for nprocs scoreboard entries and max_gateways
 * gateways, with an arena of arena_size bytes (virtual: pages cost memory
 * only when touched). Returns 0 or -1 with "syscall: strerror" in err.
 */
int rm_seg_create(struct rm_seg *seg, uint32_t nprocs, uint32_t max_gateways,
                  uint64_t arena_size, char *err, size_t errlen);

/* Publish the header (magic last, release). Call after the pools are added. */
void rm_seg_publish(struct rm_seg *seg);

/* Carve pool index idx (< RM_SHM_MAX_POOLS, unused) out of the arena and
 * initialise its ring and slots. Master only, before children use it. */
int rm_seg_pool_add(struct rm_seg *seg, unsigned idx, const struct rm_pool_spec *spec,
                    char *err, size_t errlen);

/*
 * A pool descriptor's geometry is in bounds and consistent (offsets inside
 * the mapping, ring size matching nslots). Readers that do not own the
 * descriptor check it before they index with it: the master before
 * recovery, gateways before serving the pool.
 */
bool rm_pool_valid(const struct rm_seg *seg, const struct rm_shm_pool *p);

/* The same rules for a private copy p of a descriptor whose ring has cells
 * cells (what rm_pool_view_open checks: request.h). */
bool rm_pool_geometry_valid(const struct rm_seg *seg, const struct rm_shm_pool *p, uint32_t cells);

/* Attach an existing segment from a file (e.g. /proc/PID/fd/N) and validate
 * it. writable=false maps it read-only. */
int rm_seg_attach(struct rm_seg *seg, const char *path, bool writable, char *err, size_t errlen);

/* Validate a mapped segment of size bytes: magic, layout version, sizes,
 * every offset in bounds. 0 or -1 with the reason in err. */
int rm_seg_validate(const void *base, size_t size, char *err, size_t errlen);

void rm_seg_close(struct rm_seg *seg);

/* ---- accessors (indexes are the caller's to bounds-check) ---- */

static inline struct rm_shm_pool *rm_seg_pool(const struct rm_seg *seg, unsigned i)
{
    return (struct rm_shm_pool *)(seg->base + seg->pools_off) + i;
}
static inline struct rm_sb_entry *rm_seg_sb(const struct rm_seg *seg, unsigned i)
{
    return (struct rm_sb_entry *)(seg->base + seg->sb_off) + i;
}
static inline struct rm_ring *rm_pool_ring(const struct rm_seg *seg, const struct rm_shm_pool *p)
{
    return (struct rm_ring *)(seg->base + p->ring_off);
}
static inline _Atomic uint64_t *rm_pool_state(const struct rm_seg *seg, const struct rm_shm_pool *p, uint32_t slot)
{
    return (_Atomic uint64_t *)(seg->base + p->states_off) + slot;
}
static inline struct rm_slot_meta *rm_pool_meta(const struct rm_seg *seg, const struct rm_shm_pool *p, uint32_t slot)
{
    return (struct rm_slot_meta *)(seg->base + p->meta_off) + slot;
}
static inline unsigned char *rm_pool_req(const struct rm_seg *seg, const struct rm_shm_pool *p, uint32_t slot)
{
    return seg->base + p->req_off + (uint64_t)slot * p->req_stride;
}
static inline unsigned char *rm_pool_resp(const struct rm_seg *seg, const struct rm_shm_pool *p, uint32_t slot)
{
    return seg->base + p->resp_off + (uint64_t)slot * p->resp_stride;
}
static inline struct rm_gw_stats *rm_seg_gw_stats(const struct rm_seg *seg, unsigned gw, unsigned pool)
{
    return (struct rm_gw_stats *)(seg->base + seg->gw_stats_off) + (size_t)gw * RM_SHM_MAX_POOLS + pool;
}
static inline struct rm_master_stats *rm_seg_master_stats(const struct rm_seg *seg, unsigned pool)
{
    return (struct rm_master_stats *)(seg->base + seg->master_stats_off) + pool;
}

#endif
