/* test_slots.c - the slot state machine (shm/slot.c) and recovery rules
 * (shm/recovery.c) in one process. */
#include <string.h>
#include <unistd.h>

#include "shm/recovery.h"
#include "shm/ring.h"
#include "shm/segment.h"
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

/* ---- recovery on a real segment ---- */

static struct rm_seg seg;
enum { GW = 0, WK = 1, WK2 = 2, POOL = 0 };

static void setup_seg(unsigned max_attempts)
{
    char err[256];
    CU_ASSERT_FATAL(rm_seg_create(&seg, 8, 2, 64 << 20, err, sizeof err) == 0);
    struct rm_pool_spec spec = {
        .name = "p", .nslots = 4, .max_req = 1024, .max_resp = 1024,
        .max_attempts = max_attempts, .request_timeout_ns = 60ull * 1000000000u, .handler = "echo",
    };
    CU_ASSERT_FATAL(rm_seg_pool_add(&seg, POOL, &spec, err, sizeof err) == 0);
    rm_seg_publish(&seg);
    struct rm_sb_entry *g = rm_seg_sb(&seg, GW), *w = rm_seg_sb(&seg, WK), *w2 = rm_seg_sb(&seg, WK2);
    g->role = RM_ROLE_GATEWAY;
    atomic_store(&g->state, RM_PROC_READY);
    w->role = RM_ROLE_WORKER;
    w->pool = POOL;
    atomic_store(&w->state, RM_PROC_READY);
    w2->role = RM_ROLE_WORKER;
    w2->pool = POOL;
    atomic_store(&w2->state, RM_PROC_READY);
}

/* Gateway side: claim slot s, fill, queue, enqueue. */
static void submit(uint32_t s)
{
    struct rm_shm_pool *p = rm_seg_pool(&seg, POOL);
    _Atomic uint64_t *word = rm_pool_state(&seg, p, s);
    uint64_t w = rm_slot_load(word);
    CU_ASSERT_FATAL(rm_slot_cas(word, &w, RM_SLOT_FILLING, RM_OWNER(GW)) == 1);
    struct rm_slot_meta *m = rm_pool_meta(&seg, p, s);
    m->gw = GW;
    m->deadline_ns = UINT64_MAX;
    w = rm_slot_load(word);
    CU_ASSERT_FATAL(rm_slot_cas(word, &w, RM_SLOT_QUEUED, 0) == 1);
    CU_ASSERT_FATAL(rm_ring_enqueue(rm_pool_ring(&seg, p), s) == RM_RING_OK);
}

/* Worker side: take from ring and claim. Returns the slot. */
static uint32_t take(unsigned who)
{
    struct rm_shm_pool *p = rm_seg_pool(&seg, POOL);
    uint32_t s;
    CU_ASSERT_FATAL(rm_ring_dequeue(rm_pool_ring(&seg, p), &s, &rm_seg_sb(&seg, who)->intent, POOL) == RM_RING_OK);
    _Atomic uint64_t *word = rm_pool_state(&seg, p, s);
    uint64_t w = rm_slot_load(word);
    CU_ASSERT_FATAL(rm_slot_cas(word, &w, RM_SLOT_RUNNING, RM_OWNER(who)) == 1);
    return s;
}

static unsigned state_of(uint32_t s)
{
    return RM_SLOT_STATE(rm_slot_load(rm_pool_state(&seg, rm_seg_pool(&seg, POOL), s)));
}

static void test_recovery_requeues_running_slot_of_dead_worker(void)
{
    setup_seg(2);
    submit(1);
    uint32_t s = take(WK);
    CU_ASSERT_EQUAL(s, 1);
    struct rm_recovery_result res;
    rm_recover_process(&seg, WK, RM_ROLE_WORKER, 0, 0, NULL, &res);
    CU_ASSERT_EQUAL(res.requeued, 1);
    CU_ASSERT_EQUAL(state_of(1), RM_SLOT_QUEUED);
    CU_ASSERT_EQUAL(atomic_load(&rm_seg_sb(&seg, WK)->state), RM_PROC_DEAD);
    /* Another worker gets it, on its second attempt. */
    CU_ASSERT_EQUAL(take(WK2), 1);
    CU_ASSERT_EQUAL(RM_SLOT_ATTEMPTS(rm_slot_load(rm_pool_state(&seg, rm_seg_pool(&seg, POOL), 1))), 2);
    rm_seg_close(&seg);
}

static void test_recovery_fails_with_502_after_max_attempts(void)
{
    setup_seg(1);
    submit(2);
    take(WK);
    struct rm_recovery_result res;
    rm_recover_process(&seg, WK, RM_ROLE_WORKER, 0, 0, NULL, &res);
    CU_ASSERT_EQUAL(res.crashed, 1);
    CU_ASSERT_EQUAL(state_of(2), RM_SLOT_DONE);
    CU_ASSERT_EQUAL(rm_pool_meta(&seg, rm_seg_pool(&seg, POOL), 2)->error, 502);
    rm_seg_close(&seg);
}

static void test_recovery_fails_with_504_past_deadline(void)
{
    setup_seg(3);
    submit(0);
    rm_pool_meta(&seg, rm_seg_pool(&seg, POOL), 0)->deadline_ns = 1000;
    take(WK);
    struct rm_recovery_result res;
    rm_recover_process(&seg, WK, RM_ROLE_WORKER, 0, 5000, NULL, &res);
    CU_ASSERT_EQUAL(res.timed_out, 1);
    CU_ASSERT_EQUAL(rm_pool_meta(&seg, rm_seg_pool(&seg, POOL), 0)->error, 504);
    rm_seg_close(&seg);
}

static void test_recovery_reposts_slot_taken_but_not_claimed(void)
{
    /* The worker took the cell (intent recorded) and died before its
     * QUEUED -> RUNNING CAS: the slot must go back on the ring. */
    setup_seg(2);
    submit(3);
    struct rm_shm_pool *p = rm_seg_pool(&seg, POOL);
    uint32_t s;
    CU_ASSERT_EQUAL(rm_ring_dequeue(rm_pool_ring(&seg, p), &s, &rm_seg_sb(&seg, WK)->intent, POOL), RM_RING_OK);
    CU_ASSERT_EQUAL(rm_ring_count(rm_pool_ring(&seg, p)), 0);
    struct rm_recovery_result res;
    rm_recover_process(&seg, WK, RM_ROLE_WORKER, 0, 0, NULL, &res);
    CU_ASSERT_EQUAL(res.reposted, 1);
    CU_ASSERT_EQUAL(take(WK2), 3);
    rm_seg_close(&seg);
}

static void test_recovery_of_gateway_frees_its_slots_and_aborts_running(void)
{
    setup_seg(2);
    submit(0);
    submit(1);
    submit(2);
    take(WK); /* slot 0 RUNNING */
    struct rm_shm_pool *p = rm_seg_pool(&seg, POOL);
    uint64_t w = rm_slot_load(rm_pool_state(&seg, p, 3));
    CU_ASSERT_EQUAL(rm_slot_cas(rm_pool_state(&seg, p, 3), &w, RM_SLOT_FILLING, RM_OWNER(GW)), 1);
    struct rm_recovery_result res;
    rm_recover_process(&seg, GW, RM_ROLE_GATEWAY, 0, 0, NULL, &res);
    CU_ASSERT_EQUAL(state_of(0), RM_SLOT_ABORTED);
    CU_ASSERT_EQUAL(state_of(1), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(state_of(2), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(state_of(3), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(res.freed, 3);
    CU_ASSERT_EQUAL(res.aborted, 1);
    /* The worker then dies too: the aborted slot is freed. */
    rm_recover_process(&seg, WK, RM_ROLE_WORKER, 0, 0, NULL, &res);
    CU_ASSERT_EQUAL(state_of(0), RM_SLOT_FREE);
    rm_seg_close(&seg);
}

static unsigned pending_calls;
static void on_pending(void *arg, unsigned pool, uint32_t slot, uint32_t gen) { pending_calls++; }

static void test_recovery_never_blocks_on_full_ring(void)
{
    setup_seg(3);
    struct rm_shm_pool *p = rm_seg_pool(&seg, POOL);
    submit(0);
    take(WK);
    /* Fill the ring with junk duplicates so the re-queue finds it full. */
    struct rm_ring *r = rm_pool_ring(&seg, p);
    while (rm_ring_enqueue(r, 3) == RM_RING_OK)
        ;
    struct rm_recovery_ops ops = {.pending = on_pending};
    struct rm_recovery_result res;
    pending_calls = 0;
    rm_recover_process(&seg, WK, RM_ROLE_WORKER, 0, 0, &ops, &res);
    CU_ASSERT_EQUAL(res.pending, 1);
    CU_ASSERT_EQUAL(pending_calls, 1);
    uint32_t gen = RM_SLOT_GEN(rm_slot_load(rm_pool_state(&seg, p, 0)));
    CU_ASSERT_EQUAL(rm_recovery_retry(&seg, POOL, 0, gen), 0); /* still full */
    uint32_t v;
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_OK);
    CU_ASSERT_EQUAL(rm_recovery_retry(&seg, POOL, 0, gen), 1);
    rm_seg_close(&seg);
}

int main(void)
{
    static const rm_test tests[] = {
        RM_TEST(test_every_legal_transition_succeeds),
        RM_TEST(test_illegal_transitions_refused),
        RM_TEST(test_cas_with_stale_expected_fails_and_reports_current),
        RM_TEST(test_generation_bumped_on_requeue_and_free),
        RM_TEST(test_aborted_keeps_worker_as_owner),
        RM_TEST(test_recovery_requeues_running_slot_of_dead_worker),
        RM_TEST(test_recovery_fails_with_502_after_max_attempts),
        RM_TEST(test_recovery_fails_with_504_past_deadline),
        RM_TEST(test_recovery_reposts_slot_taken_but_not_claimed),
        RM_TEST(test_recovery_of_gateway_frees_its_slots_and_aborts_running),
        RM_TEST(test_recovery_never_blocks_on_full_ring),
        {0},
    };
    return rm_run_suite("slots", tests);
}
