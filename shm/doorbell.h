/*
 * doorbell.h - a futex on a shared word, so idle workers sleep instead of
 * spinning. Shared futexes only (never FUTEX_PRIVATE_FLAG: the word lives in
 * a MAP_SHARED segment used by several processes). Waits always time out.
 *
 * Waiter (rm_doorbell_wait):
 *   sleepers += 1, then intent SLEEP (so the master can un-count a waiter
 *   killed while counted); v = doorbell; re-check the ring
 *   (caller's callback); FUTEX_WAIT(doorbell, v, timeout); sleepers -= 1.
 * Producer (rm_doorbell_ring): after publishing, doorbell += 1; if sleepers,
 *   FUTEX_WAKE.
 * The seq_cst increments of sleepers (W1) and doorbell (P1) make "the waiter
 * missed the item and the producer missed the sleeper" impossible: either
 * the waiter's re-check sees the item, or the producer sees sleepers > 0 and
 * the changed doorbell value makes FUTEX_WAIT return at once.
 */
#ifndef RM_DOORBELL_H
#define RM_DOORBELL_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"

/* Producer side: call after the item is published. */
void rm_doorbell_ring(struct rm_pool_bell *p);

/*
 * Waiter side. ready(arg) re-checks for work after the waiter is counted; if
 * it returns true the wait is skipped. Sleeps at most timeout_ns. intent is
 * the caller's scoreboard intent word (may be NULL in tests).
 * Returns true if woken or work was found, false on timeout.
 */
bool rm_doorbell_wait(struct rm_pool_bell *p, uint64_t timeout_ns,
                      bool (*ready)(void *), void *arg,
                      _Atomic uint64_t *intent, unsigned pool_index);

#endif
