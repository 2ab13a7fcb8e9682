/*
 * recovery.h - finish what a dead process left half done.
 *
 * The master calls rm_recover_process() after waitpid() reports a child dead,
 * before it reuses the child's scoreboard entry. From the role and pool the
 * master recorded when it forked the child, the entry's intent and the slot
 * state words it:
 *   worker:  RUNNING slots it owned -> QUEUED again (generation + 1, back on
 *            the ring), or DONE with 502 when max_attempts runs are used up,
 *            or DONE with 504 when the deadline has passed; ABORTED slots it
 *            owned -> FREE; the slot its dequeue intent names, if still
 *            QUEUED -> back on the ring (a duplicate entry is harmless: only
 *            one worker wins QUEUED -> RUNNING); un-counts it from the
 *            doorbell's sleepers.
 *   gateway: its clients are gone with it: FILLING, QUEUED and DONE slots of
 *            its -> FREE; RUNNING ones -> ABORTED (the worker frees them).
 * It never blocks: when a ring is full, the slot goes to the caller's pending
 * list (ops->pending) and rm_recovery_retry() puts it on later.
 * It never touches a live process's state, and bounds-checks every index it
 * reads from shared memory.
 */
#ifndef RM_RECOVERY_H
#define RM_RECOVERY_H

#include <stdint.h>

#include "shm/segment.h"

struct rm_recovery_ops {
    void *arg;
    /* A slot of gateway gw is DONE (answer or error): wake it. May be NULL. */
    void (*notify_gateway)(void *arg, unsigned gw);
    /* The pool's ring was full: keep (pool, slot, gen) and call
     * rm_recovery_retry() later. Must not fail (size the list for all slots). */
    void (*pending)(void *arg, unsigned pool, uint32_t slot, uint32_t gen);
    /* Observers (statistics, test oracle). May be NULL. */
    void (*requeued)(void *arg, unsigned pool, uint32_t slot, uint64_t old_word);
    void (*failed)(void *arg, unsigned pool, uint32_t slot, unsigned http_status);
};

struct rm_recovery_result {
    unsigned requeued;   /* RUNNING -> QUEUED */
    unsigned crashed;    /* RUNNING -> DONE 502 */
    unsigned timed_out;  /* RUNNING -> DONE 504 */
    unsigned freed;      /* -> FREE */
    unsigned aborted;    /* RUNNING -> ABORTED (gateway died) */
    unsigned reposted;   /* QUEUED slot of a dequeue intent put back on the ring */
    unsigned pending;    /* ring full: left to the pending list */
};

/*
 * Recover scoreboard entry idx, whose process is dead and reaped. role
 * (RM_ROLE_GATEWAY or RM_ROLE_WORKER; anything else: nothing to recover)
 * and pool (workers) come from the caller's own records of what it forked,
 * never from the scoreboard entry, which the dead process could write.
 */
void rm_recover_process(struct rm_seg *seg, unsigned idx, unsigned role, unsigned pool,
                        uint64_t now_ns, const struct rm_recovery_ops *ops,
                        struct rm_recovery_result *res);

/* Put a pending slot back on its pool's ring if it is still QUEUED with
 * generation gen. Returns 1 done (or nothing to do any more), 0 ring still
 * full (keep it pending). */
int rm_recovery_retry(struct rm_seg *seg, unsigned pool, uint32_t slot, uint32_t gen);

#endif
