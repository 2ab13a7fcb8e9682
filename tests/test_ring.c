/* test_ring.c - single-process properties of the ring (shm/ring.c). */
#include <stdlib.h>
#include <string.h>

#include "shm/ring.h"
#include "tests/cunit_util.h"

static struct rm_ring *new_ring(uint32_t size)
{
    struct rm_ring *r = aligned_alloc(RM_CACHELINE, (rm_ring_bytes(size) + 63) & ~(size_t)63);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_FATAL(rm_ring_init(r, size) == 0);
    return r;
}

static void test_ring_fifo_order(void)
{
    struct rm_ring *r = new_ring(64);
    for (uint32_t i = 0; i < 50; i++)
        CU_ASSERT_EQUAL(rm_ring_enqueue(r, i * 3), RM_RING_OK);
    for (uint32_t i = 0; i < 50; i++) {
        uint32_t v = 12345;
        CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_OK);
        CU_ASSERT_EQUAL(v, i * 3);
    }
    free(r);
}

static void check_capacity(uint32_t size)
{
    struct rm_ring *r = new_ring(size);
    uint32_t v;
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_EMPTY);
    for (uint32_t i = 0; i < size; i++)
        CU_ASSERT_EQUAL(rm_ring_enqueue(r, i), RM_RING_OK);
    CU_ASSERT_EQUAL(rm_ring_count(r), size);
    CU_ASSERT_EQUAL(rm_ring_enqueue(r, 999), RM_RING_FULL);
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_OK);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(rm_ring_enqueue(r, 999), RM_RING_OK);
    CU_ASSERT_EQUAL(rm_ring_enqueue(r, 1000), RM_RING_FULL);
    for (uint32_t i = 1; i < size; i++) {
        CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_OK);
        CU_ASSERT_EQUAL(v, i);
    }
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_OK);
    CU_ASSERT_EQUAL(v, 999);
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_EMPTY);
    CU_ASSERT_EQUAL(rm_ring_count(r), 0);
    free(r);
}

static void test_ring_holds_exactly_capacity_then_full(void) { check_capacity(64); }
static void test_ring_of_2_cells_full_and_empty(void) { check_capacity(2); }
static void test_ring_of_8_cells_full_and_empty(void) { check_capacity(8); }

static void test_ring_wraps_around_over_many_laps(void)
{
    /* 100000 laps of an 8-cell ring with a varying fill level. */
    struct rm_ring *r = new_ring(8);
    uint32_t next_in = 0, next_out = 0;
    for (int lap = 0; lap < 100000; lap++) {
        int n = 1 + lap % 8;
        for (int i = 0; i < n; i++)
            CU_ASSERT_EQUAL_FATAL(rm_ring_enqueue(r, next_in++ & RM_RING_MAX_VALUE), RM_RING_OK);
        for (int i = 0; i < n; i++) {
            uint32_t v;
            CU_ASSERT_EQUAL_FATAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_OK);
            CU_ASSERT_EQUAL_FATAL(v, next_out++ & RM_RING_MAX_VALUE);
        }
    }
    uint32_t v;
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_EMPTY);
    free(r);
}

static void test_ring_lagging_hints_are_helped(void)
{
    /* A producer killed between its cell CAS and its tail CAS leaves the tail
     * hint behind; a consumer killed likewise leaves head behind. Simulate
     * both by winding the hints back: the ring must still work. */
    struct rm_ring *r = new_ring(8);
    for (uint32_t i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(rm_ring_enqueue(r, i), RM_RING_OK);
    atomic_store(&r->tail, 2);  /* 3 enqueues "never advanced" the tail */
    CU_ASSERT_EQUAL(rm_ring_enqueue(r, 5), RM_RING_OK);
    uint32_t v;
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_OK);
    CU_ASSERT_EQUAL(v, 0);
    atomic_store(&r->head, 0);  /* the dequeue "never advanced" the head */
    for (uint32_t i = 1; i <= 5; i++) {
        CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_OK);
        CU_ASSERT_EQUAL(v, i);
    }
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, NULL, 0), RM_RING_EMPTY);
    free(r);
}

static void test_ring_dequeue_records_intent_before_taking(void)
{
    struct rm_ring *r = new_ring(4);
    _Atomic uint64_t intent = 0;
    CU_ASSERT_EQUAL(rm_ring_enqueue(r, 77), RM_RING_OK);
    uint32_t v;
    CU_ASSERT_EQUAL(rm_ring_dequeue(r, &v, &intent, 3), RM_RING_OK);
    uint64_t w = atomic_load(&intent);
    CU_ASSERT_EQUAL(RM_INTENT_OP(w), RM_INTENT_DEQ);
    CU_ASSERT_EQUAL(RM_INTENT_POOL(w), 3);
    CU_ASSERT_EQUAL(RM_INTENT_SLOT(w), 77);
    free(r);
}

static void test_ring_rejects_bad_sizes(void)
{
    struct rm_ring *r = aligned_alloc(RM_CACHELINE, rm_ring_bytes(16) + 64);
    CU_ASSERT_EQUAL(rm_ring_init(r, 0), -1);
    CU_ASSERT_EQUAL(rm_ring_init(r, 1), -1);
    CU_ASSERT_EQUAL(rm_ring_init(r, 12), -1);
    CU_ASSERT_EQUAL(rm_ring_size_for(3), 4);
    CU_ASSERT_EQUAL(rm_ring_size_for(1), 2);
    CU_ASSERT_EQUAL(rm_ring_size_for(256), 256);
    free(r);
}

int main(void)
{
    static const rm_test tests[] = {
        RM_TEST(test_ring_fifo_order),
        RM_TEST(test_ring_holds_exactly_capacity_then_full),
        RM_TEST(test_ring_of_2_cells_full_and_empty),
        RM_TEST(test_ring_of_8_cells_full_and_empty),
        RM_TEST(test_ring_wraps_around_over_many_laps),
        RM_TEST(test_ring_lagging_hints_are_helped),
        RM_TEST(test_ring_dequeue_records_intent_before_taking),
        RM_TEST(test_ring_rejects_bad_sizes),
        {0},
    };
    return rm_run_suite("ring", tests);
}
