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
#include "shm/ring_cell.h"

#include "shm/crashpoint.h"

int rm_ring_enqueue_n(struct rm_ring *r, uint32_t cells, uint32_t v)
{
    for (;;) {
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        _Atomic uint64_t *cell = &r->cells[t & (cells - 1)];
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

int rm_ring_dequeue_n(struct rm_ring *r, uint32_t cells, uint32_t *v, _Atomic uint64_t *intent, unsigned pool)
{
    for (;;) {
        uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        _Atomic uint64_t *cell = &r->cells[h & (cells - 1)];
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
                atomic_store_explicit(cell, CELL(h + cells, RM_RING_EMPTY_VALUE), memory_order_release);
                return RM_RING_OK;
            }
        } else if (d < 0) {
            return RM_RING_EMPTY;
        }
    }
}
