/* slot.c - slot state transitions. See slot.h for the table. */
#include "shm/slot.h"

#define T(from, to) (UINT64_C(1) << ((from) * RM_SLOT_NSTATES + (to)))
static const uint64_t legal_mask =
    T(RM_SLOT_FREE, RM_SLOT_FILLING) |
    T(RM_SLOT_FILLING, RM_SLOT_QUEUED) | T(RM_SLOT_FILLING, RM_SLOT_FREE) |
    T(RM_SLOT_QUEUED, RM_SLOT_RUNNING) | T(RM_SLOT_QUEUED, RM_SLOT_FREE) |
    T(RM_SLOT_RUNNING, RM_SLOT_DONE) | T(RM_SLOT_RUNNING, RM_SLOT_QUEUED) |
    T(RM_SLOT_RUNNING, RM_SLOT_ABORTED) |
    T(RM_SLOT_DONE, RM_SLOT_FREE) | T(RM_SLOT_ABORTED, RM_SLOT_FREE);
#undef T

bool rm_slot_legal(unsigned from, unsigned to)
{
    if (from >= RM_SLOT_NSTATES || to >= RM_SLOT_NSTATES)
        return false;
    return (legal_mask >> (from * RM_SLOT_NSTATES + to)) & 1u;
}

uint64_t rm_slot_next(uint64_t old, unsigned to, unsigned owner)
{
    unsigned from = RM_SLOT_STATE(old);
    uint32_t gen = RM_SLOT_GEN(old);
    unsigned attempts = RM_SLOT_ATTEMPTS(old);

    switch (to) {
    case RM_SLOT_FREE:
        /* A freed slot starts a new life: new generation, no attempts. */
        return RM_SLOT_WORD(gen + 1, 0, 0, RM_SLOT_FREE);
    case RM_SLOT_FILLING:
        return RM_SLOT_WORD(gen, 0, owner, RM_SLOT_FILLING);
    case RM_SLOT_QUEUED:
        /* A re-queue bumps the generation so a stale ring entry or a stale
         * claim of the previous attempt can be told apart. */
        return RM_SLOT_WORD(from == RM_SLOT_RUNNING ? gen + 1 : gen, attempts, 0, RM_SLOT_QUEUED);
    case RM_SLOT_RUNNING:
        return RM_SLOT_WORD(gen, attempts < 0xff ? attempts + 1 : attempts, owner, RM_SLOT_RUNNING);
    case RM_SLOT_DONE:
        return RM_SLOT_WORD(gen, attempts, 0, RM_SLOT_DONE);
    case RM_SLOT_ABORTED:
        /* The worker that runs it stays its owner: it frees it when done. */
        return RM_SLOT_WORD(gen, attempts, RM_SLOT_OWNER(old), RM_SLOT_ABORTED);
    default:
        return old;
    }
}

int rm_slot_cas(_Atomic uint64_t *word, uint64_t *expected, unsigned to, unsigned owner)
{
    if (!rm_slot_legal(RM_SLOT_STATE(*expected), to))
        return -1;
    uint64_t next = rm_slot_next(*expected, to, owner);
    /* acq_rel on success: release publishes the phase the caller wrote,
     * acquire sees the previous owner's; acquire on failure: the caller
     * re-reads *expected and may use what it shows. Pairs with this same
     * CAS in the next owner of the slot. */
    return atomic_compare_exchange_strong_explicit(word, expected, next,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire) ? 1 : 0;
}
