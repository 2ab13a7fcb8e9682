/*
 * cunit_util.h - run CUnit suites and map the result to automake's exit codes
 * (0 pass, 1 fail, 77 skip, 99 hard error). CUnit's own runner returns a
 * failure count, which automake would misread.
 *
 *   static const rm_test tests[] = { RM_TEST(test_ring_fifo_order), ..., {0} };
 *   int main(void) { return rm_run_suite("ring", tests); }
 */
#ifndef RM_CUNIT_UTIL_H
#define RM_CUNIT_UTIL_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} rm_test;

#define RM_TEST(f) { #f, f }

static inline int rm_run_suite(const char *suite_name, const rm_test *tests)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 99;
    CU_pSuite s = CU_add_suite(suite_name, NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 99;
    }
    for (const rm_test *t = tests; t->name; t++)
        if (!CU_add_test(s, t->name, t->fn)) {
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

#endif
