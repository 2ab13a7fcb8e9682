/*
 * ring_layout.c - what every ring implementation shares: sizes, the
 * initial cells, the approximate count. shm/ring.c (one CAS per operation)
 * and tests/vyukov_ring.c (the split claim/publish ring the crash test must
 * catch) both use it, so they differ only in enqueue and dequeue.
 */
#include "shm/ring.h"
#include "shm/ring_cell.h"

#if RM_CRASH_POINTS
unsigned rm_crash_one_in;
_Atomic uint64_t *rm_crash_fired;
uint64_t rm_crash_rng = 88172645463325252ull;
#endif

size_t rm_ring_bytes(uint32_t size)
{
    return sizeof(struct rm_ring) + (size_t)size * sizeof(uint64_t);
}

uint32_t rm_ring_size_for(uint32_t n)
{
    uint32_t s = 2;
    while (s < n) {
        if (s >= RM_RING_MAX_SIZE)
            return 0;
        s <<= 1;
    }
    return s;
}

int rm_ring_init(struct rm_ring *r, uint32_t size)
{
    if (size < 2 || size > RM_RING_MAX_SIZE || (size & (size - 1)))
        return -1;
    r->size = size;
    r->mask = size - 1;
    /* relaxed: no concurrent users yet; published by R0 below */
    for (uint32_t i = 0; i < size; i++)
        atomic_store_explicit(&r->cells[i], CELL(i, RM_RING_EMPTY_VALUE), memory_order_relaxed);
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
    /* R0: publishes the initialised cells; the segment's magic store (F1 in
     * segment.c) or fork() orders this before any other process looks. */
    atomic_store_explicit(&r->tail, 0, memory_order_release);
    return 0;
}

uint32_t rm_ring_count_n(const struct rm_ring *r, uint32_t cells)
{
    /* relaxed: hints; the count is approximate by contract */
    uint64_t h = atomic_load_explicit(&((struct rm_ring *)r)->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&((struct rm_ring *)r)->tail, memory_order_relaxed);
    if (t <= h)
        return 0;
    return t - h > cells ? cells : (uint32_t)(t - h);
}
