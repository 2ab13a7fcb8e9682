/* test_segment.c - creating, publishing, validating, attaching and confining
 * the shared memory (shm/segment.c): bad input is refused with a reason,
 * and a confined worker can reach nothing but its own pool. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/request.h"
#include "shm/segment.h"
#include "tests/cunit_util.h"

static struct rm_seg seg;
static char err[512];

static void make2(void)
{
    CU_ASSERT_FATAL(rm_seg_create(&seg, 16, 2, err, sizeof err) == 0);
    struct rm_pool_spec spec = {.name = "echo", .nslots = 8, .max_req = 4096, .max_resp = 4096,
                                .max_attempts = 2, .request_timeout_ns = 1000000000, .handler = "echo"};
    CU_ASSERT_FATAL(rm_seg_pool_add(&seg, 0, &spec, err, sizeof err) == 0);
    spec.name = "other";
    CU_ASSERT_FATAL(rm_seg_pool_add(&seg, 1, &spec, err, sizeof err) == 0);
    rm_seg_publish(&seg);
}

static void test_published_memory_attaches_through_proc(void)
{
    make2();
    struct rm_seg other;
    CU_ASSERT_EQUAL_FATAL(rm_seg_attach_pid(&other, getpid(), err, sizeof err), 0);
    CU_ASSERT_EQUAL(other.hdr->master_pid, getpid());
    CU_ASSERT_STRING_EQUAL(rm_seg_pool(&other, 0)->name, "echo");
    CU_ASSERT_PTR_NOT_NULL(other.pool[1].base);
    struct rm_pool_view v;
    CU_ASSERT_EQUAL(rm_pool_view_open(&other, 1, &v), 0);
    CU_ASSERT_EQUAL(v.nslots, 8);
    rm_seg_close(&other);
    rm_seg_close(&seg);
}

static void test_unpublished_memory_refused(void)
{
    CU_ASSERT_FATAL(rm_seg_create(&seg, 16, 2, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, seg.size, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "magic"));
    rm_seg_close(&seg);
}

static void test_bad_magic_refused(void)
{
    make2();
    seg.hdr->magic[0] ^= 0x20;
    struct rm_seg other;
    CU_ASSERT_EQUAL(rm_seg_attach_pid(&other, getpid(), err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad magic"));
    rm_seg_close(&seg);
}

static void test_wrong_layout_version_refused(void)
{
    make2();
    seg.hdr->layout_version = RM_SHM_LAYOUT_VERSION + 1;
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, seg.size, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "layout version"));
    rm_seg_close(&seg);
}

static void test_truncated_memory_refused(void)
{
    make2();
    /* A mapping shorter than the header says. */
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, seg.size - 4096, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "truncated"));
    /* Shorter than a header. */
    CU_ASSERT_EQUAL(rm_seg_validate(seg.base, 16, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "truncated"));
    rm_seg_close(&seg);
}

static void test_memfds_sealed_against_resizing(void)
{
    make2();
    /* Shrinking one would SIGBUS every process that touches the lost pages. */
    int fds[] = {seg.fd, seg.sb.fd, seg.gw.fd, seg.pool[0].fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        CU_ASSERT_EQUAL(ftruncate(fds[i], 0), -1);
        CU_ASSERT_EQUAL(errno, EPERM);
    }
    rm_seg_close(&seg);
}

static void test_pool_offset_out_of_bounds_refused(void)
{
    make2();
    struct rm_shm_pool *p = rm_seg_pool(&seg, 0);
    CU_ASSERT_TRUE(rm_pool_valid(&seg, 0, p));
    uint64_t keep = p->resp_off;
    p->resp_off = p->size - 10;
    CU_ASSERT_FALSE(rm_pool_valid(&seg, 0, p));
    struct rm_pool_view v;
    CU_ASSERT_EQUAL(rm_pool_view_open(&seg, 0, &v), -1);
    p->resp_off = keep;
    p->req_off = p->w_off; /* requests inside the workers' area */
    CU_ASSERT_FALSE(rm_pool_valid(&seg, 0, p));
    rm_seg_close(&seg);
}

static void test_attach_to_a_process_without_ringmaster_memory_names_it(void)
{
    struct rm_seg other;
    CU_ASSERT_EQUAL(rm_seg_attach_pid(&other, getppid(), err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no ringmaster shared memory"));
    CU_ASSERT_EQUAL(rm_seg_attach_pid(&other, 0x7ffffff0, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
}

/* In a child: does writing one byte at p fault? */
static sigjmp_buf fault_jmp;
static void on_fault(int sig)
{
    (void)sig;
    siglongjmp(fault_jmp, 1);
}
static int write_faults(volatile unsigned char *p)
{
    struct sigaction sa = {.sa_handler = on_fault};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    if (sigsetjmp(fault_jmp, 1))
        return 1;
    *p = *p;
    return 0;
}

static void test_confined_worker_reaches_only_its_own_pool(void)
{
    make2();
    const struct rm_shm_pool *p0 = rm_seg_pool(&seg, 0);
    unsigned char *own_w = seg.pool[0].base + p0->resp_off;
    unsigned char *own_r = seg.pool[0].base + p0->req_off;
    unsigned char *guard = seg.pool[0].base + p0->w_off + p0->w_size;
    unsigned char *other = seg.pool[1].base + 4096;
    unsigned char *ctrl = seg.base;
    unsigned char *gw = seg.gw.base;
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        char e[256];
        if (rm_seg_confine_worker(&seg, 0, 0, 0, e, sizeof e) < 0)
            _exit(10);
        int bad = 0;
        bad |= write_faults(own_w) << 0;          /* must not fault */
        bad |= !write_faults(own_r) << 1;         /* requests: read-only */
        bad |= !write_faults(guard) << 2;         /* guard page */
        bad |= !write_faults(other) << 3;         /* another pool: unmapped */
        bad |= !write_faults(ctrl) << 4;          /* the master's memory: read-only */
        bad |= !write_faults(gw) << 5;            /* gateway counters: unmapped */
        /* and the read-only mappings cannot be made writable again */
        bad |= (mprotect(ctrl, 4096, PROT_READ | PROT_WRITE) == 0) << 6;
        bad |= (mprotect(own_r - ((uintptr_t)own_r % 4096), 4096, PROT_READ | PROT_WRITE) == 0) << 7;
        /* no memfd descriptor is left open */
        bad |= (seg.fd >= 0 || seg.pool[0].ro_fd >= 0 || seg.sb.fd >= 0) << 8;
        _exit(bad);
    }
    int status;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status))
        fprintf(stderr, "\nconfined worker: check bits 0x%x failed\n", WEXITSTATUS(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    rm_seg_close(&seg);
}

static void test_confined_gateway_cannot_write_the_masters_memory(void)
{
    make2();
    unsigned char *ctrl = seg.base;
    unsigned char *req = seg.pool[1].base + rm_seg_pool(&seg, 1)->req_off;
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        char e[256];
        if (rm_seg_confine_gateway(&seg, e, sizeof e) < 0)
            _exit(10);
        int bad = (!write_faults(ctrl)) | write_faults(req) << 1 |
                  (mprotect(ctrl, 4096, PROT_READ | PROT_WRITE) == 0) << 2;
        _exit(bad);
    }
    int status;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rm_seg_close(&seg);
}

static void test_pool_mapped_from_a_descriptor_matches(void)
{
    make2();
    struct rm_seg copy = seg; /* a gateway forked before pool 1 existed */
    copy.pool[1].base = NULL;
    copy.pool[1].size = 0;
    copy.pool[1].fd = copy.pool[1].ro_fd = -1;
    CU_ASSERT_EQUAL(rm_seg_pool_map(&copy, 1, seg.pool[1].fd, err, sizeof err), 0);
    struct rm_pool_view v;
    CU_ASSERT_EQUAL(rm_pool_view_open(&copy, 1, &v), 0);
    /* the wrong memfd for the descriptor: refused */
    munmap(copy.pool[1].base, copy.pool[1].size);
    copy.pool[1].base = NULL;
    struct rm_pool_spec spec = {.name = "big", .nslots = 16, .max_req = 8192, .max_resp = 8192};
    CU_ASSERT_FATAL(rm_seg_pool_add(&seg, 2, &spec, err, sizeof err) == 0);
    CU_ASSERT_EQUAL(rm_seg_pool_map(&copy, 1, seg.pool[2].fd, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bytes"));
    rm_seg_close(&seg);
}

int main(void)
{
    static const rm_test tests[] = {
        RM_TEST(test_published_memory_attaches_through_proc),
        RM_TEST(test_unpublished_memory_refused),
        RM_TEST(test_bad_magic_refused),
        RM_TEST(test_wrong_layout_version_refused),
        RM_TEST(test_truncated_memory_refused),
        RM_TEST(test_memfds_sealed_against_resizing),
        RM_TEST(test_pool_offset_out_of_bounds_refused),
        RM_TEST(test_attach_to_a_process_without_ringmaster_memory_names_it),
        RM_TEST(test_confined_worker_reaches_only_its_own_pool),
        RM_TEST(test_confined_gateway_cannot_write_the_masters_memory),
        RM_TEST(test_pool_mapped_from_a_descriptor_matches),
        {0},
    };
    return rm_run_suite("segment", tests);
}
