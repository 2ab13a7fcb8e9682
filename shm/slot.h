/*
 * slot.h - request slots: a 64-bit state word per slot,
 * generation:32 | attempts:8 | owner:16 | state:8, and every transition one
 * CAS on it. The legal transitions (anything else is refused):
 *
 *   FREE    -> FILLING   gateway claims a slot            (owner = gateway)
 *   FILLING -> QUEUED    gateway accepts the request      (owner = 0)
 *   FILLING -> FREE      gateway or master aborts         (gen + 1)
 *   QUEUED  -> RUNNING   worker claims it                 (owner = worker, attempts + 1)
 *   QUEUED  -> FREE      gateway gives up (deadline, ring full) or master
 *                        frees it because its gateway died (gen + 1)
 *   RUNNING -> DONE      worker answered, or master ends it with an error
 *   RUNNING -> QUEUED    master re-queues after the worker died (gen + 1)
 *   RUNNING -> ABORTED   the client is gone (owner stays the worker)
 *   DONE    -> FREE      gateway sent the answer, or master: gateway died (gen + 1)
 *   ABORTED -> FREE      the worker finished, or master: the worker died (gen + 1)
 */
#ifndef RM_SLOT_H
#define RM_SLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"

#define RM_SLOT_STATE(w) ((unsigned)((w) & 0xff))
#define RM_SLOT_OWNER(w) ((unsigned)(((w) >> 8) & 0xffff))
#define RM_SLOT_ATTEMPTS(w) ((unsigned)(((w) >> 24) & 0xff))
#define RM_SLOT_GEN(w) ((uint32_t)((w) >> 32))
#define RM_SLOT_WORD(gen, attempts, owner, state)                                 \
    (((uint64_t)(uint32_t)(gen) << 32) | ((uint64_t)((attempts) & 0xff) << 24) | \
     ((uint64_t)((owner) & 0xffff) << 8) | (uint64_t)((state) & 0xff))

/* Owner field value for scoreboard index i. */
#define RM_OWNER(i) ((unsigned)(i) + 1u)

/* True if from -> to is one of the legal transitions above. */
bool rm_slot_legal(unsigned from, unsigned to);

/* The word a legal transition produces from old (generation and attempts
 * rules applied), given the new state and owner field. */
uint64_t rm_slot_next(uint64_t old, unsigned to, unsigned owner);

/*
 * One transition: CAS *word from *expected to rm_slot_next(*expected, to,
 * owner). Returns 1 on success, 0 when the word was not *expected (then
 * *expected holds the current word), -1 when the transition is illegal
 * (nothing written). Memory order: acq_rel on success: release publishes the
 * phase its caller wrote (request, answer, meta), acquire makes the previous
 * phase visible to the caller. Pairs with the same CAS in the next owner.
 */
int rm_slot_cas(_Atomic uint64_t *word, uint64_t *expected, unsigned to, unsigned owner);

/* acquire load; pairs with rm_slot_cas's release. */
static inline uint64_t rm_slot_load(_Atomic uint64_t *word)
{
    return atomic_load_explicit(word, memory_order_acquire);
}

#endif
