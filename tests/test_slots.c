/* test_slots.c - the slot state machine (shm/slot.c): every legal transition
 * and only those, generation and attempts rules, owner fields. Recovery after
 * a death is tests/test_recovery.c. */
#include <string.h>
#include <unistd.h>

#include "shm/slot.h"
#include "tests/cunit_util.h"

static const unsigned legal[][2] = {
    {RM_SLOT_FREE, RM_SLOT_FILLING},    {RM_SLOT_FILLING, RM_SLOT_QUEUED},
    {RM_SLOT_FILLING, RM_SLOT_FREE},    {RM_SLOT_QUEUED, RM_SLOT_RUNNING},
    {RM_SLOT_QUEUED, RM_SLOT_FREE},     {RM_SLOT_RUNNING, RM_SLOT_DONE},
    {RM_SLOT_RUNNING, RM_SLOT_QUEUED},  {RM_SLOT_RUNNING, RM_SLOT_ABORTED},
    {RM_SLOT_DONE, RM_SLOT_FREE},       {RM_SLOT_ABORTED, RM_SLOT_FREE},
};
#define NLEGAL (sizeof legal / sizeof legal[0])

static int is_listed(unsigned from, unsigned to)
{
    for (size_t i = 0; i < NLEGAL; i++)
        if (legal[i][0] == from && legal[i][1] == to)
            return 1;
    return 0;
}

static void test_every_legal_transition_succeeds(void)
{
    for (size_t i = 0; i < NLEGAL; i++) {
        uint64_t start = RM_SLOT_WORD(7, 1, 3, legal[i][0]);
        _Atomic uint64_t word = start;
        uint64_t exp = start;
        CU_ASSERT_EQUAL(rm_slot_cas(&word, &exp, legal[i][1], 9), 1);
        CU_ASSERT_EQUAL(RM_SLOT_STATE(atomic_load(&word)), legal[i][1]);
    }
}

static void test_illegal_transitions_refused(void)
{
    unsigned refused = 0;
    for (unsigned from = 0; from < RM_SLOT_NSTATES; from++)
        for (unsigned to = 0; to < RM_SLOT_NSTATES; to++) {
            if (is_listed(from, to))
                continue;
            uint64_t start = RM_SLOT_WORD(7, 1, 3, from);
            _Atomic uint64_t word = start;
            uint64_t exp = start;
            CU_ASSERT_EQUAL(rm_slot_cas(&word, &exp, to, 9), -1);
            CU_ASSERT_EQUAL(atomic_load(&word), start); /* untouched */
            refused++;
        }
    CU_ASSERT_EQUAL(refused, RM_SLOT_NSTATES * RM_SLOT_NSTATES - NLEGAL);
}

static void test_cas_with_stale_expected_fails_and_reports_current(void)
{
    _Atomic uint64_t word = RM_SLOT_WORD(5, 0, 0, RM_SLOT_QUEUED);
    uint64_t stale = RM_SLOT_WORD(4, 0, 0, RM_SLOT_QUEUED); /* older generation */
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &stale, RM_SLOT_RUNNING, 2), 0);
    CU_ASSERT_EQUAL(stale, RM_SLOT_WORD(5, 0, 0, RM_SLOT_QUEUED));
    CU_ASSERT_EQUAL(RM_SLOT_STATE(atomic_load(&word)), RM_SLOT_QUEUED);
}

static void test_generation_bumped_on_requeue_and_free(void)
{
    _Atomic uint64_t word = RM_SLOT_WORD(10, 0, 0, RM_SLOT_FREE);
    uint64_t w = atomic_load(&word);
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &w, RM_SLOT_FILLING, 4), 1);
    w = atomic_load(&word);
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(w), 4);
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &w, RM_SLOT_QUEUED, 0), 1);
    w = atomic_load(&word);
    CU_ASSERT_EQUAL(RM_SLOT_GEN(w), 10);
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &w, RM_SLOT_RUNNING, 6), 1);
    w = atomic_load(&word);
    CU_ASSERT_EQUAL(RM_SLOT_ATTEMPTS(w), 1);
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(w), 6);
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &w, RM_SLOT_QUEUED, 0), 1); /* requeue */
    w = atomic_load(&word);
    CU_ASSERT_EQUAL(RM_SLOT_GEN(w), 11);
    CU_ASSERT_EQUAL(RM_SLOT_ATTEMPTS(w), 1);  /* attempts kept across requeue */
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(w), 0);
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &w, RM_SLOT_RUNNING, 7), 1);
    w = atomic_load(&word);
    CU_ASSERT_EQUAL(RM_SLOT_ATTEMPTS(w), 2);
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &w, RM_SLOT_DONE, 0), 1);
    w = atomic_load(&word);
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &w, RM_SLOT_FREE, 0), 1);
    w = atomic_load(&word);
    CU_ASSERT_EQUAL(RM_SLOT_GEN(w), 12);
    CU_ASSERT_EQUAL(RM_SLOT_ATTEMPTS(w), 0);
}

static void test_aborted_keeps_worker_as_owner(void)
{
    _Atomic uint64_t word = RM_SLOT_WORD(3, 1, 8, RM_SLOT_RUNNING);
    uint64_t w = atomic_load(&word);
    CU_ASSERT_EQUAL(rm_slot_cas(&word, &w, RM_SLOT_ABORTED, 0), 1);
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(atomic_load(&word)), 8);
}

int main(void)
{
    static const rm_test tests[] = {
        RM_TEST(test_every_legal_transition_succeeds),
        RM_TEST(test_illegal_transitions_refused),
        RM_TEST(test_cas_with_stale_expected_fails_and_reports_current),
        RM_TEST(test_generation_bumped_on_requeue_and_free),
        RM_TEST(test_aborted_keeps_worker_as_owner),
        {0},
    };
    return rm_run_suite("slots", tests);
}
