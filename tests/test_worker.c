/*
 * test_worker.c - the worker process on its own: each test forks the real
 * rm_worker_main() (worker/worker.c) on a segment with one pool and plays
 * the gateway with the shipped protocol (shm/request.h: rm_req_claim,
 * rm_req_publish, rm_req_poll, rm_req_release) and the master (scoreboard
 * flags, waitpid, rm_recover_process). The test process is the worker's
 * parent, so it is also the master_pid the worker checks with getppid().
 *
 * Every wait is bounded (WAIT_UNTIL, poll() on the wake eventfd, wait_child);
 * every worker is ended by its pid, with SIGKILL in teardown if a test left
 * it running.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "shm/clock.h"
#include "shm/recovery.h"
#include "shm/request.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "tests/cunit_util.h"
#include "tests/helpers.h"
#include "worker/worker.h"

enum { GW = 0, WK = 1, WK2 = 2, NPROCS = 4, NGW = 1, NSLOTS = 4 };
#define TICK_MS 20u /* heartbeat_interval of the workers: also their longest sleep */
#define MS (UINT64_C(1000000))

static struct rm_seg seg;
static struct rm_pool_view gv; /* the gateway's view of pool 0 */
static int wake_fds[NGW] = {-1};
static pid_t workers[2] = {-1, -1};
static uint64_t next_req_id;

/* ------------------------------------------------------------------ fixture */

static void setup(uint64_t max_resp)
{
    const struct rm_pool_spec spec = {
        .name = "echo", .nslots = NSLOTS, .max_req = 4096, .max_resp = max_resp, .max_attempts = 2,
        .request_timeout_ns = 30000 * MS, .handler = "echo",
    };
    seg_with_pools(&seg, NPROCS, NGW, &spec, 1);
    sb_set(&seg, GW, RM_ROLE_GATEWAY, 0, RM_PROC_READY);
    CU_ASSERT_FATAL(rm_pool_view_open(&seg, 0, &gv) == 0);
    wake_fds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CU_ASSERT_FATAL(wake_fds[0] >= 0);
}

/* Fork scoreboard entry sb as a worker of pool 0 running handler, with
 * master_pid master (0: this process). Returns its pid. */
static pid_t fork_worker(unsigned sb, const char *handler, pid_t master)
{
    sb_set(&seg, sb, RM_ROLE_WORKER, 0, RM_PROC_STARTING);
    const pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        /* What the master does for its children: die with the parent. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(99);
        rm_log_init("worker under test");
        const struct rm_worker_ctx ctx = {
            .seg = &seg,
            .pool_name = "echo",
            .handler = handler,
            .heartbeat_ns = TICK_MS * MS,
            .pool = 0,
            .sb_index = sb,
            .worker_index = sb,
            .gw_wake_fds = wake_fds,
            .ngw_wake_fds = NGW,
            .master_pid = master ? master : parent,
        };
        _exit(rm_worker_main(&ctx));
    }
    atomic_store(&rm_seg_sb(&seg, sb)->pid, pid);
    workers[sb == WK ? 0 : 1] = pid;
    return pid;
}

/* Reap the worker of entry sb within ms: its exit code (128 + signal if
 * killed), or CHILD_TIMED_OUT (then it was SIGKILLed). */
static int reap_worker(unsigned sb, unsigned ms)
{
    pid_t *p = &workers[sb == WK ? 0 : 1];
    CU_ASSERT_FATAL(*p > 0);
    int code = exit_code_of(wait_child(*p, ms));
    *p = -1;
    return code;
}

/* After every test (also one a fatal assertion ended): workers still
 * running are killed by pid and reaped; the segment and eventfd closed. */
static void teardown(void)
{
    for (unsigned i = 0; i < 2; i++)
        if (workers[i] > 0) {
            kill(workers[i], SIGKILL);
            wait_child(workers[i], 5000);
            workers[i] = -1;
        }
    if (wake_fds[0] >= 0)
        close(wake_fds[0]);
    wake_fds[0] = -1;
    if (seg.base)
        rm_seg_close(&seg);
    memset(&gv, 0, sizeof gv);
}

static struct rm_sb_entry *entry(unsigned i)
{
    return rm_seg_sb(&seg, i);
}

static unsigned state_of_proc(unsigned i)
{
    return atomic_load(&entry(i)->state);
}

/* ------------------------------------------------------------------ the gateway's side */

static struct rm_req_ticket submit_bytes(const void *body, size_t len, const char *ctype)
{
    uint32_t cursor = 0;
    uint32_t s = rm_req_claim(&gv, GW, &cursor);
    CU_ASSERT_FATAL(s != RM_NO_SLOT);
    struct rm_req_in in = {.gw = GW, .req_id = ++next_req_id, .now_ns = rm_now_ns(), .body = body, .len = len,
                           .ctype = ctype, .ctype_len = ctype ? strlen(ctype) : 0};
    struct rm_req_ticket t;
    CU_ASSERT_FATAL(rm_req_publish(&gv, s, &in, &t) == RM_PUBLISH_OK);
    return t;
}

static struct rm_req_ticket submit(const char *body)
{
    return submit_bytes(body, strlen(body), "text/plain");
}

/* Wait up to ms for the gateway's wake eventfd; returns its counter (0: it
 * did not fire). */
static uint64_t wait_wake(unsigned ms)
{
    struct pollfd pfd = {.fd = wake_fds[0], .events = POLLIN};
    if (poll(&pfd, 1, (int)ms) != 1)
        return 0;
    uint64_t v = 0;
    if (read(wake_fds[0], &v, sizeof v) != sizeof v)
        return 0;
    return v;
}

static enum rm_poll poll_answer(const struct rm_req_ticket *t, struct rm_req_answer *a)
{
    return rm_req_poll(&gv, t, rm_now_ns(), 1000 * MS, a);
}

static bool body_is(const struct rm_req_answer *a, const void *want, size_t len)
{
    return a->len_ok && a->len == len && memcmp(a->body, want, len) == 0;
}

/* Wait for the wake-up, then the answer must be there already. */
static void expect_echo(const struct rm_req_ticket *t, const void *body, size_t len, const char *ctype)
{
    CU_ASSERT_FATAL(wait_wake(3000) >= 1);
    struct rm_req_answer a;
    CU_ASSERT_EQUAL_FATAL(poll_answer(t, &a), RM_POLL_DONE);
    CU_ASSERT_EQUAL(a.error, 0);
    CU_ASSERT_EQUAL(a.status, 200);
    CU_ASSERT(body_is(&a, body, len));
    CU_ASSERT_STRING_EQUAL(a.ctype, ctype);
    rm_req_release(&gv, t, &a);
    CU_ASSERT_EQUAL(RM_SLOT_STATE(rm_slot_load(&gv.states[t->slot])), RM_SLOT_FREE);
}

static bool worker_ready(unsigned i)
{
    return WAIT_UNTIL(state_of_proc(i) == RM_PROC_READY, 5000);
}

/* ------------------------------------------------------------------ tests */

static void test_worker_goes_ready_then_echoes_and_wakes_the_gateway(void)
{
    setup(4096);
    fork_worker(WK, "echo", 0);
    CU_ASSERT_FATAL(worker_ready(WK));
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->served), 0);
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->cur_slot), RM_NO_SLOT);
    /* An idle worker wakes no gateway (a few ticks of looking). */
    CU_ASSERT_EQUAL(wait_wake(3 * TICK_MS), 0);

    struct rm_req_ticket t = submit("hello worker");
    expect_echo(&t, "hello worker", 12, "text/plain");
    /* rm_req_finish went READY and counted it before the wake-up. */
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->served), 1);
    CU_ASSERT_EQUAL(state_of_proc(WK), RM_PROC_READY);
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->cur_slot), RM_NO_SLOT);

    /* Binary body with NULs and no content type. */
    static const unsigned char bin[] = {0, 1, 2, 0, 0xff, 'x', 0};
    t = submit_bytes(bin, sizeof bin, NULL);
    expect_echo(&t, bin, sizeof bin, "application/octet-stream");
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->served), 2);
    CU_ASSERT_EQUAL(slots_in_state(&gv, RM_SLOT_FREE), NSLOTS);
}

static void test_worker_is_busy_with_its_slot_while_the_handler_runs_then_ready(void)
{
    setup(4096);
    fork_worker(WK, "chaos", 0); /* "sleep N" holds the handler for N ms */
    CU_ASSERT_FATAL(worker_ready(WK));
    struct rm_req_ticket t = submit("sleep 300");
    CU_ASSERT_FATAL(WAIT_UNTIL(state_of_proc(WK) == RM_PROC_BUSY, 3000));
    const uint64_t now = rm_now_ns();
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->cur_slot), t.slot);
    const uint64_t started = atomic_load(&entry(WK)->cur_start_ns);
    CU_ASSERT(started >= t.accept_ns && started <= now);
    const uint64_t w = rm_slot_load(&gv.states[t.slot]);
    CU_ASSERT_EQUAL(RM_SLOT_STATE(w), RM_SLOT_RUNNING);
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(w), RM_OWNER(WK));
    CU_ASSERT_EQUAL(RM_SLOT_ATTEMPTS(w), 1);
    struct rm_req_answer a;
    CU_ASSERT_EQUAL(poll_answer(&t, &a), RM_POLL_WAIT);
    CU_ASSERT_EQUAL(wait_wake(0), 0); /* no wake-up before the answer */

    expect_echo(&t, "sleep 300", 9, "text/plain");
    CU_ASSERT_EQUAL(state_of_proc(WK), RM_PROC_READY);
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->cur_slot), RM_NO_SLOT);
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->served), 1);
}

static void test_idle_worker_sleeps_on_the_doorbell_and_heartbeats_every_tick(void)
{
    setup(4096);
    fork_worker(WK, "echo", 0);
    CU_ASSERT_FATAL(worker_ready(WK));
    /* Asleep on the futex doorbell, and its intent says so (for recovery). */
    CU_ASSERT(WAIT_UNTIL(atomic_load(&gv.bell->sleepers) == 1, 2000));
    CU_ASSERT(WAIT_UNTIL(RM_INTENT_OP(atomic_load(&entry(WK)->intent)) == RM_INTENT_SLEEP, 2000));
    /* The heartbeat moves on, tick after tick, with no request at all. */
    uint64_t h = atomic_load(&entry(WK)->heartbeat_ns);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_FATAL(WAIT_UNTIL(atomic_load(&entry(WK)->heartbeat_ns) > h, 20 * TICK_MS));
        h = atomic_load(&entry(WK)->heartbeat_ns);
    }
    CU_ASSERT(h <= rm_now_ns());
    CU_ASSERT_EQUAL(state_of_proc(WK), RM_PROC_READY);
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->served), 0);
}

static void test_drain_flag_makes_an_idle_worker_exit_0_within_ticks(void)
{
    setup(4096);
    fork_worker(WK, "echo", 0);
    CU_ASSERT_FATAL(worker_ready(WK));
    const uint64_t t0 = ms_now();
    atomic_fetch_or(&entry(WK)->flags, RM_SBF_DRAIN); /* what the master does */
    CU_ASSERT_EQUAL(reap_worker(WK, 3000), RM_EXIT_OK);
    CU_ASSERT(ms_now() - t0 < 50 * TICK_MS); /* a doorbell sleep is one tick at most */
    CU_ASSERT_EQUAL(state_of_proc(WK), RM_PROC_DRAINING);
}

static void test_drain_while_busy_finishes_the_request_then_exits_0(void)
{
    setup(4096);
    fork_worker(WK, "chaos", 0);
    CU_ASSERT_FATAL(worker_ready(WK));
    struct rm_req_ticket t = submit("sleep 200");
    CU_ASSERT_FATAL(WAIT_UNTIL(state_of_proc(WK) == RM_PROC_BUSY, 3000));
    atomic_fetch_or(&entry(WK)->flags, RM_SBF_DRAIN);
    struct rm_req_ticket queued = submit("never run"); /* behind it on the ring */
    expect_echo(&t, "sleep 200", 9, "text/plain");
    CU_ASSERT_EQUAL(reap_worker(WK, 3000), RM_EXIT_OK);
    CU_ASSERT_EQUAL(RM_SLOT_STATE(rm_slot_load(&gv.states[queued.slot])), RM_SLOT_QUEUED);
}

static void test_sigterm_makes_the_worker_exit_0(void)
{
    setup(4096);
    pid_t pid = fork_worker(WK, "echo", 0);
    CU_ASSERT_FATAL(worker_ready(WK));
    CU_ASSERT_EQUAL_FATAL(kill(pid, SIGTERM), 0);
    CU_ASSERT_EQUAL(reap_worker(WK, 3000), RM_EXIT_OK);
    CU_ASSERT_EQUAL(state_of_proc(WK), RM_PROC_DRAINING);
}

static void test_worker_whose_master_is_gone_exits_0_without_taking_work(void)
{
    setup(4096);
    struct rm_req_ticket t = submit("for nobody");
    fork_worker(WK, "echo", 1); /* pid 1 is not its parent: "the master died" */
    CU_ASSERT_EQUAL(reap_worker(WK, 3000), RM_EXIT_OK);
    CU_ASSERT_EQUAL(RM_SLOT_STATE(rm_slot_load(&gv.states[t.slot])), RM_SLOT_QUEUED);
    CU_ASSERT_EQUAL(rm_ring_count(gv.ring), 1);
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->served), 0);
}

static void test_stale_and_out_of_range_ring_entries_are_skipped(void)
{
    setup(4096);
    /* Before the worker starts: an index past the pool's slots, the largest
     * value a ring cell holds, and a FREE slot (a stale duplicate). */
    const uint32_t free_slot = NSLOTS - 1;
    const uint64_t free_word = rm_slot_load(&gv.states[free_slot]);
    CU_ASSERT_FATAL(rm_ring_enqueue(gv.ring, NSLOTS + 5) == RM_RING_OK);
    CU_ASSERT_FATAL(rm_ring_enqueue(gv.ring, RM_RING_MAX_VALUE) == RM_RING_OK);
    CU_ASSERT_FATAL(rm_ring_enqueue(gv.ring, free_slot) == RM_RING_OK);
    pid_t pid = fork_worker(WK, "echo", 0);
    CU_ASSERT_FATAL(worker_ready(WK));
    CU_ASSERT(WAIT_UNTIL(rm_ring_count(gv.ring) == 0, 2000));

    /* While it sleeps: more junk, then a real request behind it (the
     * publish rings the doorbell once, for all of them). */
    CU_ASSERT_FATAL(rm_ring_enqueue(gv.ring, NSLOTS) == RM_RING_OK);
    CU_ASSERT_FATAL(rm_ring_enqueue(gv.ring, free_slot) == RM_RING_OK);
    struct rm_req_ticket t = submit("after the junk");
    CU_ASSERT_FATAL(t.slot != free_slot);
    expect_echo(&t, "after the junk", 14, "text/plain");

    CU_ASSERT_EQUAL(rm_slot_load(&gv.states[free_slot]), free_word); /* never claimed */
    CU_ASSERT_EQUAL(atomic_load(&entry(WK)->served), 1);
    CU_ASSERT_EQUAL(rm_ring_count(gv.ring), 0);
    CU_ASSERT(RM_INTENT_OP(atomic_load(&entry(WK)->intent)) != RM_INTENT_DEQ); /* every take settled */
    CU_ASSERT_EQUAL(waitpid(pid, NULL, WNOHANG), 0); /* still running */
    atomic_fetch_or(&entry(WK)->flags, RM_SBF_DRAIN);
    CU_ASSERT_EQUAL(reap_worker(WK, 3000), RM_EXIT_OK);
}

static void test_unknown_handler_exits_init_failed_and_never_goes_ready(void)
{
    setup(4096);
    static const char *const bad[] = {"no-such-handler", "echo.so", "/nonexistent/handler.so"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rm_req_ticket t = submit("untouched");
        fork_worker(WK, bad[i], 0);
        CU_ASSERT_EQUAL(reap_worker(WK, 3000), RM_EXIT_INIT_FAILED);
        CU_ASSERT_EQUAL(state_of_proc(WK), RM_PROC_STARTING);
        CU_ASSERT_EQUAL(RM_SLOT_STATE(rm_slot_load(&gv.states[t.slot])), RM_SLOT_QUEUED);
        CU_ASSERT_TRUE(rm_req_abandon(&gv, &t));
    }
}

static void test_handler_failure_is_answered_500_with_its_message(void)
{
    setup(256); /* max_response_size 256: echo refuses a 300-byte body */
    fork_worker(WK, "echo", 0);
    CU_ASSERT_FATAL(worker_ready(WK));
    char body[300];
    memset(body, 'b', sizeof body);
    struct rm_req_ticket t = submit_bytes(body, sizeof body, "text/plain");
    CU_ASSERT_FATAL(wait_wake(3000) >= 1);
    struct rm_req_answer a;
    CU_ASSERT_EQUAL_FATAL(poll_answer(&t, &a), RM_POLL_DONE);
    CU_ASSERT_EQUAL(a.error, 500);
    CU_ASSERT_FATAL(a.len_ok && a.len > 0);
    CU_ASSERT(memmem(a.body, a.len, "exceeds max_response_size", 25) != NULL);
    rm_req_release(&gv, &t, &a);
    /* The worker carries on. */
    t = submit("fine");
    expect_echo(&t, "fine", 4, "text/plain");
}

static void test_worker_killed_mid_request_is_recovered_and_rerun_by_the_next(void)
{
    setup(4096);
    fork_worker(WK, "chaos", 0);
    CU_ASSERT_FATAL(worker_ready(WK));
    struct rm_req_ticket t = submit("crash-once"); /* SIGKILLs its worker on attempt 1 */
    CU_ASSERT_EQUAL(reap_worker(WK, 3000), 128 + SIGKILL);
    /* It died RUNNING the request, owner in the slot word: recovery finds it. */
    const uint64_t w = rm_slot_load(&gv.states[t.slot]);
    CU_ASSERT_EQUAL(RM_SLOT_STATE(w), RM_SLOT_RUNNING);
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(w), RM_OWNER(WK));
    CU_ASSERT_EQUAL(wait_wake(50), 0);
    struct rm_recovery_result res;
    rm_recover_process(&seg, WK, RM_ROLE_WORKER, 0, rm_now_ns(), NULL, &res);
    CU_ASSERT_EQUAL_FATAL(res.requeued, 1);
    /* The next worker runs it as attempt 2, which chaos answers. */
    fork_worker(WK2, "chaos", 0);
    expect_echo(&t, "crash-once", 10, "text/plain");
    CU_ASSERT_EQUAL(atomic_load(&entry(WK2)->served), 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static const rm_test tests[] = {
        RM_TEST(test_worker_goes_ready_then_echoes_and_wakes_the_gateway),
        RM_TEST(test_worker_is_busy_with_its_slot_while_the_handler_runs_then_ready),
        RM_TEST(test_idle_worker_sleeps_on_the_doorbell_and_heartbeats_every_tick),
        RM_TEST(test_drain_flag_makes_an_idle_worker_exit_0_within_ticks),
        RM_TEST(test_drain_while_busy_finishes_the_request_then_exits_0),
        RM_TEST(test_sigterm_makes_the_worker_exit_0),
        RM_TEST(test_worker_whose_master_is_gone_exits_0_without_taking_work),
        RM_TEST(test_stale_and_out_of_range_ring_entries_are_skipped),
        RM_TEST(test_unknown_handler_exits_init_failed_and_never_goes_ready),
        RM_TEST(test_handler_failure_is_answered_500_with_its_message),
        RM_TEST(test_worker_killed_mid_request_is_recovered_and_rerun_by_the_next),
        {0},
    };
    return rm_run_suite_fixture("worker", tests, NULL, teardown);
}
