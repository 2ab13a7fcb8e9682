/*
 * segment.h - create, attach, confine and validate ringmaster's shared
 * memory, and find things in it. The master creates the memfds (ctrl, sb,
 * gw, and one per pool: layout.h) before the first fork; children inherit
 * the mappings and then confine themselves to what they may touch
 * (rm_seg_confine_*); ringmasterctl attaches read-only through the master's
 * descriptors in /proc and validates everything before it trusts anything.
 */
#ifndef RM_SEGMENT_H
#define RM_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

/* One memfd and this process's mapping of it. */
struct rm_seg_map {
    unsigned char *base;  /* NULL: not mapped in this process */
    size_t size;
    int fd;               /* read-write descriptor (master), -1 otherwise */
    int ro_fd;            /* read-only descriptor, for confining children; -1 when gone */
};

struct rm_seg {
    /* ctrl: header, pool descriptors, master counters. */
    unsigned char *base;
    size_t size;
    struct rm_shm_header *hdr;
    int fd, ro_fd;
    bool owner;           /* created it (master) */
    bool confined;        /* a worker's or preloader's view: see rm_seg_confine_worker */
    struct rm_seg_map sb, gw;
    struct rm_seg_map pool[RM_SHM_MAX_POOLS];
    /* Private copies of the geometry, taken when the memory was created or
     * validated: a process that scribbles over shared memory cannot make
     * the accessors below index outside a mapping. */
    uint64_t pools_off, master_stats_off;
    uint32_t nprocs, max_gateways;
};

struct rm_pool_spec {
    const char *name;
    uint32_t nslots;          /* queue_depth */
    uint64_t max_req;
    uint64_t max_resp;
    uint32_t max_attempts;
    uint64_t request_timeout_ns;
    uint64_t stream_idle_ns;      /* stream_idle_timeout */
    uint64_t stream_timeout_ns;   /* stream_timeout */
    const char *handler;      /* name shown in metadata (not a path) */
    const char *io_json;      /* "\"inputs\":[...],\"outputs\":[...]" for metadata, or NULL */
};

/* Bytes of the memfd one pool needs (virtual: pages cost memory only when touched). */
uint64_t rm_pool_bytes(const struct rm_pool_spec *spec);

/*
 * Create the ctrl, sb and gw memfds for nprocs scoreboard entries, the
 * first max_gateways of them gateways. Returns 0 or -1 with
 * "syscall: strerror" in err.
 */
int rm_seg_create(struct rm_seg *seg, uint32_t nprocs, uint32_t max_gateways, char *err, size_t errlen);

/* Publish the header (magic last, release). Call after the first pools are added. */
void rm_seg_publish(struct rm_seg *seg);

/* Create pool idx's memfd (< RM_SHM_MAX_POOLS, unused), map it with its
 * guard pages, initialise its ring and slots and publish its descriptor.
 * Master only. */
int rm_seg_pool_add(struct rm_seg *seg, unsigned idx, const struct rm_pool_spec *spec,
                    char *err, size_t errlen);

/*
 * Map pool idx from fd (a gateway given a pool the master created after
 * the gateway was forked). The descriptor must be active and valid, and the
 * memfd exactly its size. Takes over nothing: the caller closes fd.
 */
int rm_seg_pool_map(struct rm_seg *seg, unsigned idx, int fd, char *err, size_t errlen);

/*
 * A pool descriptor's geometry is in bounds of its mapping and consistent
 * (rm_pool_view_open checks a private copy the same way).
 */
bool rm_pool_valid(const struct rm_seg *seg, unsigned idx, const struct rm_shm_pool *p);
bool rm_pool_geometry_valid(const struct rm_seg *seg, unsigned idx, const struct rm_shm_pool *p, uint32_t cells);

/*
 * Confine a child to what it may touch. Call before any code that is not
 * ringmaster's runs in the process (a handler's init):
 *  - gateway: ctrl becomes read-only (mapped again from a read-only
 *    descriptor, so that mprotect cannot make it writable again);
 *  - worker or preloader of pool: ctrl read-only; of the scoreboard only its
 *    pool's range (sb entries first_sb .. first_sb + nsb - 1, whole pages;
 *    nsb 0 keeps the whole scoreboard, for tests);
 *    the gw memfd and every other pool unmapped; its own pool's R area
 *    (requests) read-only. Idempotent: a worker forked by a confined
 *    preloader keeps what the preloader kept.
 * Both close every memfd descriptor the process inherited. 0 or -1 with the
 * failing call in err (the process must not go on).
 */
int rm_seg_confine_gateway(struct rm_seg *seg, char *err, size_t errlen);
int rm_seg_confine_worker(struct rm_seg *seg, unsigned pool, uint32_t first_sb, uint32_t nsb,
                          char *err, size_t errlen);

/* Master: publish new metadata tensors for pool idx (a reload). */
void rm_pool_io_write(struct rm_seg *seg, unsigned idx, const char *io_json);
/* Copy the current metadata tensors of p into out (NUL-terminated). */
void rm_pool_io_read(const struct rm_shm_pool *p, char *out, size_t len);

/* Close every memfd descriptor (children that keep their mappings). */
void rm_seg_close_fds(struct rm_seg *seg);

/*
 * Attach the shared memory of the ringmaster master with pid, read-only,
 * through its descriptors in /proc/PID/fd, and validate all of it.
 */
int rm_seg_attach_pid(struct rm_seg *seg, int pid, char *err, size_t errlen);

/* Validate a mapped ctrl memfd of size bytes: magic, layout version, sizes,
 * every offset in bounds. 0 or -1 with the reason in err. */
int rm_seg_validate(const void *base, size_t size, char *err, size_t errlen);

void rm_seg_close(struct rm_seg *seg);

/* ---- accessors (indexes are the caller's to bounds-check) ---- */

static inline struct rm_shm_pool *rm_seg_pool(const struct rm_seg *seg, unsigned i)
{
    return (struct rm_shm_pool *)(seg->base + seg->pools_off) + i;
}
static inline unsigned rm_seg_pool_index(const struct rm_seg *seg, const struct rm_shm_pool *p)
{
    return (unsigned)(p - rm_seg_pool(seg, 0));
}
static inline struct rm_sb_entry *rm_seg_sb(const struct rm_seg *seg, unsigned i)
{
    return (struct rm_sb_entry *)seg->sb.base + i;
}
/* The first scoreboard entry of pool p's range (the master's allocation). */
static inline uint32_t rm_seg_pool_first_sb(const struct rm_seg *seg, unsigned p)
{
    return seg->max_gateways + p * RM_SB_PER_POOL;
}
/* Gateway gw's block of pool (< RM_SHM_MAX_POOLS) or of RM_GW_SERVER. */
static inline struct rm_gw_stats *rm_seg_gw_stats(const struct rm_seg *seg, unsigned gw, unsigned pool)
{
    return (struct rm_gw_stats *)seg->gw.base + (size_t)gw * RM_GW_BLOCKS + pool;
}
static inline struct rm_master_stats *rm_seg_master_stats(const struct rm_seg *seg, unsigned pool)
{
    return (struct rm_master_stats *)(seg->base + seg->master_stats_off) + pool;
}
/* Inside pool p's memfd (p must be valid: rm_pool_valid or a view). */
static inline unsigned char *rm_pool_base(const struct rm_seg *seg, const struct rm_shm_pool *p)
{
    return seg->pool[rm_seg_pool_index(seg, p)].base;
}
static inline struct rm_ring *rm_pool_ring(const struct rm_seg *seg, const struct rm_shm_pool *p)
{
    return (struct rm_ring *)(rm_pool_base(seg, p) + p->ring_off);
}
static inline struct rm_pool_bell *rm_pool_bell(const struct rm_seg *seg, const struct rm_shm_pool *p)
{
    return (struct rm_pool_bell *)(rm_pool_base(seg, p) + p->bell_off);
}
static inline _Atomic uint64_t *rm_pool_state(const struct rm_seg *seg, const struct rm_shm_pool *p, uint32_t slot)
{
    return (_Atomic uint64_t *)(rm_pool_base(seg, p) + p->states_off) + slot;
}

#endif
