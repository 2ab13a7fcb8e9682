/*
 * cunit_util.h - run CUnit suites and map the result to automake's exit codes
 * (0 pass, 1 fail, 77 skip, 99 hard error). CUnit's own runner returns a
 * failure count, which automake would misread.
 *
 *   static const rm_test tests[] = { RM_TEST(test_ring_fifo_order), ..., {0} };
 *   int main(void) { return rm_run_suite("ring", tests); }
 *
 * RM_TEST_ONLY=part in the environment runs only the tests whose name
 * contains part (none: exit 77, skipped).
 *
 * rm_run_suite_fixture() also runs setup before and teardown after every
 * test; teardown runs even when a CU_ASSERT_*_FATAL ended the test early, so
 * it is where forked children are killed and segments closed.
 * Helpers for time, bounded waits, children and segments: tests/helpers.h.
 */
#ifndef RM_CUNIT_UTIL_H
#define RM_CUNIT_UTIL_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} rm_test;

#define RM_TEST(f) { #f, f }

static inline int rm_run_suite_fixture(const char *suite_name, const rm_test *tests, void (*setup)(void),
                                       void (*teardown)(void))
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 99;
    CU_pSuite s = CU_add_suite_with_setup_and_teardown(suite_name, NULL, NULL, setup, teardown);
    if (!s) {
        CU_cleanup_registry();
        return 99;
    }
    /* RM_TEST_ONLY=part runs only the tests whose name contains part. */
    const char *only = getenv("RM_TEST_ONLY");
    for (const rm_test *t = tests; t->name; t++)
        if ((!only || !*only || strstr(t->name, only)) && !CU_add_test(s, t->name, t->fn)) {
            CU_cleanup_registry();
            return 99;
        }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (CU_basic_run_tests() != CUE_SUCCESS) {
        CU_cleanup_registry();
        return 99;
    }
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    fflush(stdout);
    if (run == 0)
        return 77;
    return failed ? 1 : 0;
}

static inline int rm_run_suite(const char *suite_name, const rm_test *tests)
{
    return rm_run_suite_fixture(suite_name, tests, NULL, NULL);
}

#endif
