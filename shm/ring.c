/*
 * ring.c - crash-tolerant MPMC ring. See ring.h and docs/ring.md.
 *
 * Cell word: seq:40 | value:24. A cell at index i holds, for lap L
 * (counter c = L*size + i):
 *   seq == c      empty, ready for the enqueue with tail counter c
 *   seq == c + 1  full, holding the value enqueued at counter c, ready for
 *                 the dequeue with head counter c
 *   after that dequeue: seq == c + size, empty for the next lap.
 * Sequence numbers are compared modulo 2^40 (sign of the 40-bit difference),
 * so a process stalled between reading a cell and its CAS is only fooled
 * (ABA) after 2^40 operations, about 4.5 hours at 15 ns each; ringmaster
 * kills a process that misses heartbeats long before.
 */
#include "shm/ring.h"
#include "shm/ring_cell.h"

#include "shm/crashpoint.h"

/*
 * Every loop below ends: each turn either finishes, or helps a lagging
 * hint by one, or sees the ring full/empty. A legitimate hint lags by at
 * most the number of processes that died between their cell CAS and the
 * hint CAS; a hint a scribbler moved far away could make a turn count in
 * the billions. Past RING_TRIES turns the operation gives up as FULL or
 * EMPTY, so that no caller (a gateway serving every pool, the master) can
 * be held by one pool's corrupted ring; the master heals that pool.
 */
#define RING_TRIES (1u << 20)


int rm_ring_enqueue_n(struct rm_ring *r, uint32_t cells, uint32_t v)
{
    const uint32_t mask = cells - 1; /* private: see ring.h */
    for (uint32_t turn = 0; turn < RING_TRIES; turn++) {
        /* Hint only: relaxed. Correctness rests on the cell CAS. */
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        _Atomic uint64_t *cell = &r->cells[t & mask];
        /* E1: acquire pairs with D2 (the dequeue that emptied this cell), so
         * our cell CAS is ordered after the consumer's use of the old value. */
        uint64_t w = atomic_load_explicit(cell, memory_order_acquire);
        int64_t d = seq_diff(CELL_SEQ(w), t);
        if (d == 0) {
            /* E2: the one step of an enqueue. release: everything the producer
             * wrote before (the slot's QUEUED state) is visible to the
             * consumer whose acquire load at D1 sees this cell. */
            if (atomic_compare_exchange_strong_explicit(cell, &w, CELL(t + 1, v),
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed)) {
                RM_CRASH_POINT();
                /* Help the hint along; losing this race is fine. */
                atomic_compare_exchange_strong_explicit(&r->tail, &t, t + 1,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed);
                return RM_RING_OK;
            }
        } else if (d > 0) {
            /* Cell already filled for counter t (tail hint lags: its enqueuer
             * may have died right after E2). Help and retry. */
            atomic_compare_exchange_strong_explicit(&r->tail, &t, t + 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed);
        } else {
            /* Cell still holds the value of the previous lap: full, unless the
             * tail moved meanwhile (our t was stale). */
            /* relaxed: a hint; a stale answer only means one more turn */
            if (atomic_load_explicit(&r->tail, memory_order_relaxed) == t)
                return RM_RING_FULL;
        }
    }
    return RM_RING_FULL;
}

int rm_ring_dequeue_n(struct rm_ring *r, uint32_t cells, uint32_t *v, _Atomic uint64_t *intent, unsigned pool)
{
    const uint32_t mask = cells - 1; /* private: see ring.h */
    const uint32_t size = cells;
    for (uint32_t turn = 0; turn < RING_TRIES; turn++) {
        /* Hint only: relaxed. Correctness rests on the cell CAS. */
        uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        _Atomic uint64_t *cell = &r->cells[h & mask];
        /* D1: acquire pairs with E2: the value and what the producer wrote
         * before publishing it are visible. */
        uint64_t w = atomic_load_explicit(cell, memory_order_acquire);
        int64_t d = seq_diff(CELL_SEQ(w), h + 1);
        if (d == 0) {
            uint32_t val = CELL_VAL(w);
            if (intent) {
                /* relaxed: the intent store is ordered before D2 by D2's release;
                 * recovery reads it after reaping us. */
                atomic_store_explicit(intent, RM_INTENT(RM_INTENT_DEQ, pool, val),
                                      memory_order_relaxed);
                RM_CRASH_POINT();
            }
            /* D2: the one step of a dequeue. release pairs with E1 of the
             * enqueue that refills this cell one lap later. */
            if (atomic_compare_exchange_strong_explicit(cell, &w, CELL(h + size, RM_RING_EMPTY_VALUE),
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed)) {
                RM_CRASH_POINT();
                atomic_compare_exchange_strong_explicit(&r->head, &h, h + 1,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed);
                *v = val;
                return RM_RING_OK;
            }
        } else if (d > 0) {
            /* Already taken for counter h (its dequeuer may have died right
             * after D2). Help the hint and retry. */
            atomic_compare_exchange_strong_explicit(&r->head, &h, h + 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed);
        } else {
            /* relaxed: a hint; a stale answer only means one more turn */
            if (atomic_load_explicit(&r->head, memory_order_relaxed) == h)
                return RM_RING_EMPTY;
        }
    }
    return RM_RING_EMPTY;
}

