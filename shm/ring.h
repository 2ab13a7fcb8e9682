/*
 * ring.h - crash-tolerant bounded MPMC ring of 24-bit values (slot indexes).
 *
 * Every enqueue and every dequeue is exactly one CAS on a cell, so a process
 * killed at any instruction never leaves the ring half-updated: there is
 * nothing to repair. head and tail are hints that any process may advance.
 * This is the array queue of Shann, Huang and Chen with Vyukov's per-cell
 * sequence numbers; see docs/ring.md for the argument and the memory orders.
 */
#ifndef RM_RING_H
#define RM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

enum { RM_RING_OK = 0, RM_RING_FULL = -1, RM_RING_EMPTY = -2 };

/* Bytes needed for a ring of size cells (size: power of two, >= 2). */
size_t rm_ring_bytes(uint32_t size);

/* Smallest power of two >= n (n >= 2 gives at least 2), or 0 if too big. */
uint32_t rm_ring_size_for(uint32_t n);

/* Initialise in place (no concurrent users). size: power of two in [2, 2^24]. */
int rm_ring_init(struct rm_ring *r, uint32_t size);

/*
 * The operations take the ring's size (cells, a power of two) from the
 * caller's private copy, never from the ring's own header in shared
 * memory: a process that scribbles on the header cannot make another index
 * outside the cells. The plain forms, for code that owns the ring (tests,
 * benchmarks), read the header.
 */

/* Put v (<= RM_RING_MAX_VALUE). RM_RING_OK or RM_RING_FULL. Never blocks. */
int rm_ring_enqueue_n(struct rm_ring *r, uint32_t cells, uint32_t v);

/*
 * Take the oldest value into *v. RM_RING_OK or RM_RING_EMPTY. Never blocks.
 * If intent is not NULL, RM_INTENT(RM_INTENT_DEQ, pool, value) is stored into
 * it (release) before the CAS that takes the value, so that a process killed
 * right after the CAS leaves a record of what it held.
 */
int rm_ring_dequeue_n(struct rm_ring *r, uint32_t cells, uint32_t *v, _Atomic uint64_t *intent, unsigned pool);

/* Approximate number of values in the ring (tail - head hints; may lag). */
uint32_t rm_ring_count_n(const struct rm_ring *r, uint32_t cells);

static inline int rm_ring_enqueue(struct rm_ring *r, uint32_t v)
{
    return rm_ring_enqueue_n(r, r->size, v);
}
static inline int rm_ring_dequeue(struct rm_ring *r, uint32_t *v, _Atomic uint64_t *intent, unsigned pool)
{
    return rm_ring_dequeue_n(r, r->size, v, intent, pool);
}
static inline uint32_t rm_ring_count(const struct rm_ring *r)
{
    return rm_ring_count_n(r, r->size);
}

#endif
