/* test_segment.c - creating, publishing and validating the segment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm/segment.h"
#include "tests/cunit_util.h"

static struct rm_seg seg;
static char err[512];

static void make(void)
{
    CU_ASSERT_FATAL(rm_seg_create(&seg, 16, 2, 8 << 20, err, sizeof err) == 0);
    struct rm_pool_spec spec = {.name = "echo", .nslots = 8, .max_req = 4096, .max_resp = 4096,
                                .max_attempts = 2, .request_timeout_ns = 1000000000, .handler = "echo"};
    CU_ASSERT_FATAL(rm_seg_pool_add(&seg, 0, &spec, err, sizeof err) == 0);
    rm_seg_publish(&seg);
}

static int attach_own(bool writable, struct rm_seg *out)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", seg.fd);
    return rm_seg_attach(out, path, writable, err, sizeof err);
}

static void test_published_segment_attaches(void)
{
    make();
    struct rm_seg other;
    CU_ASSERT_EQUAL(attach_own(false, &other), 0);
    CU_ASSERT_EQUAL(other.hdr->master_pid, getpid());
    CU_ASSERT_STRING_EQUAL(rm_seg_pool(&other, 0)->name, "echo");
    rm_seg_close(&other);
    rm_seg_close(&seg);
}

static void test_unpublished_segment_refused(void)
{
    CU_ASSERT_FATAL(rm_seg_create(&seg, 16, 2, 1 << 20, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, seg.size, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "magic"));
    rm_seg_close(&seg);
}

static void test_bad_magic_refused(void)
{
    make();
    seg.hdr->magic[0] ^= 0x20;
    struct rm_seg other;
    CU_ASSERT_EQUAL(attach_own(false, &other), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad magic"));
    rm_seg_close(&seg);
}

static void test_wrong_layout_version_refused(void)
{
    make();
    seg.hdr->layout_version = RM_SHM_LAYOUT_VERSION + 1;
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, seg.size, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "layout version"));
    rm_seg_close(&seg);
}

static void test_truncated_segment_refused(void)
{
    make();
    /* A mapping shorter than the header says. */
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, seg.size - 4096, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "truncated"));
    /* Shorter than a header. */
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, 16, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "truncated"));
    /* A copy of the segment's first page in a file: cut short. */
    char path[] = "/tmp/rm-test-segment-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, seg.base, 4096), 4096);
    close(fd);
    struct rm_seg other;
    CU_ASSERT_EQUAL(rm_seg_attach(&other, path, false, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "truncated"));
    unlink(path);
    rm_seg_close(&seg);
}

static void test_segment_sealed_against_resizing(void)
{
    make();
    /* Shrinking it would SIGBUS every process that touches the lost pages. */
    CU_ASSERT_EQUAL(ftruncate(seg.fd, 4096), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL(ftruncate(seg.fd, (off_t)seg.size * 2), -1);
    rm_seg_close(&seg);
}

static void test_pool_offset_out_of_bounds_refused(void)
{
    make();
    rm_seg_pool(&seg, 0)->resp_off = seg.size - 10;
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, seg.size, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of bounds"));
    rm_seg_close(&seg);
}

static void test_pool_too_big_for_arena_refused(void)
{
    CU_ASSERT_FATAL(rm_seg_create(&seg, 16, 2, 1 << 20, err, sizeof err) == 0);
    struct rm_pool_spec spec = {.name = "big", .nslots = 64, .max_req = 1 << 20, .max_resp = 1 << 20,
                                .max_attempts = 2, .request_timeout_ns = 1, .handler = "echo"};
    CU_ASSERT_EQUAL(rm_seg_pool_add(&seg, 0, &spec, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "big"));
    rm_seg_close(&seg);
}

static void test_missing_file_names_errno(void)
{
    struct rm_seg other;
    CU_ASSERT_EQUAL(rm_seg_attach(&other, "/nonexistent/ringmaster.shm", false, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
}

int main(void)
{
    static const rm_test tests[] = {
        RM_TEST(test_published_segment_attaches),
        RM_TEST(test_unpublished_segment_refused),
        RM_TEST(test_bad_magic_refused),
        RM_TEST(test_wrong_layout_version_refused),
        RM_TEST(test_truncated_segment_refused),
        RM_TEST(test_segment_sealed_against_resizing),
        RM_TEST(test_pool_offset_out_of_bounds_refused),
        RM_TEST(test_pool_too_big_for_arena_refused),
        RM_TEST(test_missing_file_names_errno),
        {0},
    };
    return rm_run_suite("segment", tests);
}
