/*
 * vyukov_ring.c - a deliberately NOT crash-tolerant ring, for
 * tests/test_crash --expect-failure only.
 *
 * Same API and cell format as shm/ring.c, but each operation is Vyukov's
 * bounded MPMC queue: *claim* (CAS on tail/head) then *publish* (store the
 * cell). A process killed between the two leaves a cell that nobody will
 * ever publish, and the ring wedges. The crash test must catch that.
 */
#include "shm/ring.h"

#include "shm/crashpoint.h"

#define CELL(seq, v) (((uint64_t)(seq) << RM_RING_VALUE_BITS) | ((uint64_t)(v) & RM_RING_VALUE_MASK))
#define CELL_SEQ(w) ((w) >> RM_RING_VALUE_BITS)
#define CELL_VAL(w) ((uint32_t)((w) & RM_RING_VALUE_MASK))

#if RM_CRASH_POINTS
unsigned rm_crash_one_in;
_Atomic uint64_t *rm_crash_fired;
uint64_t rm_crash_rng = 88172645463325252ull;
#endif

static inline int64_t seq_diff(uint64_t seq, uint64_t counter)
{
    return (int64_t)((seq - counter) << RM_RING_VALUE_BITS) >> RM_RING_VALUE_BITS;
}

size_t rm_ring_bytes(uint32_t size) { return sizeof(struct rm_ring) + (size_t)size * sizeof(uint64_t); }

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
    for (uint32_t i = 0; i < size; i++)
        atomic_store_explicit(&r->cells[i], CELL(i, RM_RING_EMPTY_VALUE), memory_order_relaxed);
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
    atomic_store_explicit(&r->tail, 0, memory_order_release);
    return 0;
}

int rm_ring_enqueue(struct rm_ring *r, uint32_t v)
{
    for (;;) {
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        _Atomic uint64_t *cell = &r->cells[t & r->mask];
        int64_t d = seq_diff(CELL_SEQ(atomic_load_explicit(cell, memory_order_acquire)), t);
        if (d == 0) {
            /* claim ... */
            if (atomic_compare_exchange_weak_explicit(&r->tail, &t, t + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                RM_CRASH_POINT(); /* killed here: the cell is never published */
                /* ... then publish */
                atomic_store_explicit(cell, CELL(t + 1, v), memory_order_release);
                return RM_RING_OK;
            }
        } else if (d < 0) {
            return RM_RING_FULL;
        }
    }
}

int rm_ring_dequeue(struct rm_ring *r, uint32_t *v, _Atomic uint64_t *intent, unsigned pool)
{
    for (;;) {
        uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        _Atomic uint64_t *cell = &r->cells[h & r->mask];
        uint64_t w = atomic_load_explicit(cell, memory_order_acquire);
        int64_t d = seq_diff(CELL_SEQ(w), h + 1);
        if (d == 0) {
            if (intent)
                atomic_store_explicit(intent, RM_INTENT(RM_INTENT_DEQ, pool, CELL_VAL(w)),
                                      memory_order_release);
            if (atomic_compare_exchange_weak_explicit(&r->head, &h, h + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                RM_CRASH_POINT(); /* killed here: the cell is never freed */
                *v = CELL_VAL(w);
                atomic_store_explicit(cell, CELL(h + r->size, RM_RING_EMPTY_VALUE), memory_order_release);
                return RM_RING_OK;
            }
        } else if (d < 0) {
            return RM_RING_EMPTY;
        }
    }
}

uint32_t rm_ring_count(const struct rm_ring *r)
{
    uint64_t h = atomic_load_explicit(&((struct rm_ring *)r)->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&((struct rm_ring *)r)->tail, memory_order_relaxed);
    return t <= h ? 0 : (t - h > r->size ? r->size : (uint32_t)(t - h));
}
