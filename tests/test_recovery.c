/*
 * test_recovery.c - rm_recover_process() and rm_recovery_retry()
 * (shm/recovery.c) on a real segment, in one process.
 *
 * The states a dead process leaves behind are made with the shipped protocol
 * (shm/request.h: rm_req_claim, rm_req_publish, rm_req_take, rm_req_finish,
 * rm_req_abandon), stopped at the step where the process "dies"; only the
 * half-steps the protocol has no function for (a dequeue recorded in the
 * intent but not claimed, a scribbled scoreboard entry) are written by hand.
 * The test then plays the master: it calls recovery with the role and pool
 * it "forked" the process with, and checks slots, ring, scoreboard and the
 * callbacks, and that a gateway or worker carrying on afterwards sees the
 * right thing.
 *
 * Streams (shm/stream.c): the chunk queue's round trip through wraps and
 * split chunks, its bounds checks against a scribbling worker, the wait for
 * room, and recovery of a worker that died before or after its first chunk.
 */
#include <string.h>
#include <unistd.h>

#include "shm/recovery.h"
#include "shm/request.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "shm/stream.h"
#include "shm/clock.h"
#include "tests/cunit_util.h"
#include "tests/helpers.h"

enum { GW = 0, GW2 = 1, WK = 2, WK2 = 3, WK3 = 4, NPROCS = 8, NGW = 2 };

#define S (UINT64_C(1000000000))
#define T0 (1000 * S)          /* the test's clock: requests are accepted at T0 */
#define TIMEOUT (60 * S)       /* request_timeout of every pool */

static struct rm_seg seg;
static struct rm_pool_view pv[2];
static uint64_t next_req_id;

/* ------------------------------------------------------------------ what recovery reported */

static struct {
    unsigned notified, notified_gw;
    unsigned pending;
    unsigned pending_pool;
    uint32_t pending_slot, pending_gen;
    unsigned requeued;
    uint64_t requeued_old;
    unsigned failed, failed_status;
} seen;

static void on_notify(void *arg, unsigned gw)
{
    seen.notified++;
    seen.notified_gw = gw;
}
static void on_pending(void *arg, unsigned pool, uint32_t slot, uint32_t gen)
{
    seen.pending++;
    seen.pending_pool = pool;
    seen.pending_slot = slot;
    seen.pending_gen = gen;
}
static void on_requeued(void *arg, unsigned pool, uint32_t slot, uint64_t old)
{
    seen.requeued++;
    seen.requeued_old = old;
}
static void on_failed(void *arg, unsigned pool, uint32_t slot, unsigned status)
{
    seen.failed++;
    seen.failed_status = status;
}
static const struct rm_recovery_ops ops = {
    .notify_gateway = on_notify, .pending = on_pending, .requeued = on_requeued, .failed = on_failed,
};

/* The master's call after reaping process idx, which it forked as role (and pool). */
static struct rm_recovery_result recover(unsigned idx, unsigned role, unsigned pool, uint64_t now)
{
    struct rm_recovery_result res;
    memset(&seen, 0, sizeof seen);
    memset(&res, 0xee, sizeof res); /* recovery must set every counter */
    rm_recover_process(&seg, idx, role, pool, now, &ops, &res);
    return res;
}

static bool nothing_done(const struct rm_recovery_result *r)
{
    static const struct rm_recovery_result zero;
    return memcmp(r, &zero, sizeof zero) == 0;
}

/* ------------------------------------------------------------------ fixture */

/* Pools 0 ("p") and, if npools == 2, 1 ("q"); gateways GW and GW2 ready;
 * workers WK, WK2, WK3 ready in pool 0. */
static void setup(unsigned max_attempts, uint32_t nslots, unsigned npools)
{
    const struct rm_pool_spec specs[2] = {
        {.name = "p", .nslots = nslots, .max_req = 256, .max_resp = 256, .max_attempts = max_attempts,
         .request_timeout_ns = TIMEOUT, .stream_idle_ns = 5 * S, .stream_timeout_ns = 100 * S, .handler = "echo"},
        {.name = "q", .nslots = nslots, .max_req = 256, .max_resp = 256, .max_attempts = max_attempts,
         .request_timeout_ns = TIMEOUT, .handler = "echo"},
    };
    seg_with_pools(&seg, NPROCS, NGW, specs, npools);
    sb_set(&seg, GW, RM_ROLE_GATEWAY, 0, RM_PROC_READY);
    sb_set(&seg, GW2, RM_ROLE_GATEWAY, 0, RM_PROC_READY);
    sb_set(&seg, WK, RM_ROLE_WORKER, 0, RM_PROC_READY);
    sb_set(&seg, WK2, RM_ROLE_WORKER, 0, RM_PROC_READY);
    sb_set(&seg, WK3, RM_ROLE_WORKER, 0, RM_PROC_READY);
    for (unsigned i = 0; i < npools; i++)
        CU_ASSERT_FATAL(rm_pool_view_open(&seg, i, &pv[i]) == 0);
}

/* After every test, also one a fatal assertion ended. */
static void teardown(void)
{
    if (seg.base)
        rm_seg_close(&seg);
    memset(pv, 0, sizeof pv);
}

/* ------------------------------------------------------------------ both sides of the protocol */

/* Gateway gw: FREE -> FILLING (and stops there). */
static uint32_t claim(unsigned pool, unsigned gw)
{
    uint32_t cursor = 0;
    uint32_t s = rm_req_claim(&pv[pool], gw, &cursor);
    CU_ASSERT_FATAL(s != RM_NO_SLOT);
    return s;
}

/* Gateway gw: claim, fill and publish a request accepted at T0: QUEUED, on the ring. */
static struct rm_req_ticket submit(unsigned pool, unsigned gw)
{
    static const char body[] = "payload";
    uint32_t s = claim(pool, gw);
    struct rm_req_in in = {.gw = gw, .req_id = ++next_req_id, .now_ns = T0, .body = body,
                           .len = sizeof body - 1, .ctype = "text/plain", .ctype_len = 10};
    struct rm_req_ticket t;
    CU_ASSERT_FATAL(rm_req_publish(&pv[pool], s, &in, &t) == RM_PUBLISH_OK);
    CU_ASSERT_FATAL(t.deadline_ns == T0 + TIMEOUT);
    return t;
}

/* Worker who: dequeue and claim: RUNNING, owned by who. */
static struct rm_req_job take(unsigned pool, unsigned who)
{
    struct rm_req_job job;
    CU_ASSERT_FATAL(rm_req_take(&pv[pool], rm_seg_sb(&seg, who), who, T0, &job) == RM_TAKE_OK);
    return job;
}

/* Worker who answers its job with an echo: RUNNING -> DONE (or ABORTED -> FREE). */
static int finish(unsigned pool, unsigned who, const struct rm_req_job *job)
{
    memcpy(job->resp, job->body, job->len);
    struct rm_req_result r = {.status = 200, .len = job->len, .ctype = job->ctype};
    return rm_req_finish(&pv[pool], rm_seg_sb(&seg, who), job, &r, T0);
}

static uint64_t word(unsigned pool, uint32_t slot)
{
    return rm_slot_load(&pv[pool].states[slot]);
}

static unsigned state_of(unsigned pool, uint32_t slot)
{
    return RM_SLOT_STATE(word(pool, slot));
}

/* Exact number of entries on a pool's ring (single-threaded: the hints are exact). */
static uint32_t on_ring(unsigned pool)
{
    return rm_ring_count(pv[pool].ring);
}

/* Take every ring entry off (no intent) into out; returns how many. */
static unsigned drain_ring(unsigned pool, uint32_t *out, unsigned max)
{
    unsigned n = 0;
    uint32_t v;
    while (n < max && rm_ring_dequeue(pv[pool].ring, &v, NULL, 0) == RM_RING_OK)
        out[n++] = v;
    return n;
}

/* ------------------------------------------------------------------ dead workers */

static void test_dead_worker_running_slot_is_requeued_on_the_ring_and_answered_by_another(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    struct rm_req_job j = take(0, WK);
    CU_ASSERT_EQUAL_FATAL(j.slot, t.slot);
    CU_ASSERT_EQUAL(j.attempt, 1);
    const uint64_t running = word(0, t.slot);
    CU_ASSERT_EQUAL(on_ring(0), 0);

    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(res.requeued, 1);
    CU_ASSERT_EQUAL(res.crashed + res.timed_out + res.freed + res.aborted + res.reposted + res.pending, 0);
    const uint64_t w = word(0, t.slot);
    CU_ASSERT_EQUAL(RM_SLOT_STATE(w), RM_SLOT_QUEUED);
    CU_ASSERT_EQUAL(RM_SLOT_GEN(w), RM_SLOT_GEN(running) + 1); /* the old run's claims are stale now */
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(w), 0);
    CU_ASSERT_EQUAL(on_ring(0), 1);
    CU_ASSERT_EQUAL(seen.requeued, 1);
    CU_ASSERT_EQUAL(seen.requeued_old, running);
    CU_ASSERT_EQUAL(seen.notified, 0); /* nothing for the gateway yet */
    /* The dead worker's entry is marked and cleaned for its successor. */
    struct rm_sb_entry *e = rm_seg_sb(&seg, WK);
    CU_ASSERT_EQUAL(atomic_load(&e->state), RM_PROC_DEAD);
    CU_ASSERT_EQUAL(atomic_load(&e->cur_slot), RM_NO_SLOT);
    CU_ASSERT_EQUAL(atomic_load(&e->intent), 0);

    /* Another worker runs it, on the second attempt, and the gateway's
     * ticket still finds its answer. */
    struct rm_req_job j2 = take(0, WK2);
    CU_ASSERT_EQUAL(j2.slot, t.slot);
    CU_ASSERT_EQUAL(j2.attempt, 2);
    CU_ASSERT_EQUAL(finish(0, WK2, &j2), GW);
    struct rm_req_answer a;
    CU_ASSERT_EQUAL_FATAL(rm_req_poll(&pv[0], &t, T0 + 2 * S, S, &a), RM_POLL_DONE);
    CU_ASSERT_EQUAL(a.error, 0);
    CU_ASSERT_EQUAL(a.len, 7);
    CU_ASSERT(memcmp(a.body, "payload", 7) == 0);
}

static void test_dead_worker_with_attempts_used_up_ends_slot_done_502(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    take(0, WK);
    CU_ASSERT_EQUAL(recover(WK, RM_ROLE_WORKER, 0, T0 + S).requeued, 1); /* attempt 1 of 2 */
    struct rm_req_job j2 = take(0, WK2);
    CU_ASSERT_EQUAL(j2.attempt, 2);

    struct rm_recovery_result res = recover(WK2, RM_ROLE_WORKER, 0, T0 + S); /* attempt 2 of 2 */
    CU_ASSERT_EQUAL(res.crashed, 1);
    CU_ASSERT_EQUAL(res.requeued, 0);
    CU_ASSERT_EQUAL(res.timed_out, 0);
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_DONE);
    CU_ASSERT_EQUAL(on_ring(0), 0);
    CU_ASSERT_EQUAL(seen.failed, 1);
    CU_ASSERT_EQUAL(seen.failed_status, 502);
    CU_ASSERT_EQUAL(seen.notified, 1);
    CU_ASSERT_EQUAL(seen.notified_gw, GW);
    struct rm_req_answer a;
    CU_ASSERT_EQUAL_FATAL(rm_req_poll(&pv[0], &t, T0 + S, S, &a), RM_POLL_DONE);
    CU_ASSERT_EQUAL(a.error, 502);
    CU_ASSERT_EQUAL(a.len, 0);
    rm_req_release(&pv[0], &t, &a);
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_FREE);
}

static void test_dead_worker_past_deadline_ends_slot_done_504(void)
{
    setup(3, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    /* One nanosecond before the deadline: still a re-queue. */
    take(0, WK);
    CU_ASSERT_EQUAL(recover(WK, RM_ROLE_WORKER, 0, t.deadline_ns - 1).requeued, 1);
    /* At the deadline: 504, not re-queued although attempts remain. */
    take(0, WK2);
    struct rm_recovery_result res = recover(WK2, RM_ROLE_WORKER, 0, t.deadline_ns);
    CU_ASSERT_EQUAL(res.timed_out, 1);
    CU_ASSERT_EQUAL(res.requeued, 0);
    CU_ASSERT_EQUAL(res.crashed, 0);
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_DONE);
    CU_ASSERT_EQUAL(on_ring(0), 0);
    CU_ASSERT_EQUAL(seen.failed_status, 504);
    CU_ASSERT_EQUAL(seen.notified_gw, GW);
    struct rm_req_answer a;
    CU_ASSERT_EQUAL_FATAL(rm_req_poll(&pv[0], &t, t.deadline_ns, S, &a), RM_POLL_DONE);
    CU_ASSERT_EQUAL(a.error, 504);
}

static void test_dead_worker_dequeue_intent_with_slot_still_queued_is_reposted(void)
{
    /* The worker took the ring cell (intent recorded) and died before its
     * QUEUED -> RUNNING claim: without recovery the request is lost. */
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    const uint64_t queued = word(0, t.slot);
    uint32_t s;
    CU_ASSERT_EQUAL_FATAL(rm_ring_dequeue(pv[0].ring, &s, &rm_seg_sb(&seg, WK)->intent, 0), RM_RING_OK);
    CU_ASSERT_EQUAL_FATAL(s, t.slot);
    CU_ASSERT_EQUAL(atomic_load(&rm_seg_sb(&seg, WK)->intent), RM_INTENT(RM_INTENT_DEQ, 0, s));
    CU_ASSERT_EQUAL(on_ring(0), 0);

    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(res.reposted, 1);
    CU_ASSERT_EQUAL(res.requeued, 0);
    CU_ASSERT_EQUAL(word(0, t.slot), queued); /* same request, same generation: it never ran */
    CU_ASSERT_EQUAL(on_ring(0), 1);
    struct rm_req_job j = take(0, WK2);
    CU_ASSERT_EQUAL(j.slot, t.slot);
    CU_ASSERT_EQUAL(j.attempt, 1);
}

static void test_intent_of_a_slot_already_claimed_is_requeued_once_not_twice(void)
{
    /* Died after the claim, before the intent was cleared: the slot is
     * RUNNING and the intent still names it. One ring entry, not two. */
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    take(0, WK);
    atomic_store(&rm_seg_sb(&seg, WK)->intent, RM_INTENT(RM_INTENT_DEQ, 0, t.slot));
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(res.requeued, 1);
    CU_ASSERT_EQUAL(res.reposted, 0);
    uint32_t got[8];
    CU_ASSERT_EQUAL(drain_ring(0, got, 8), 1);
    CU_ASSERT_EQUAL(got[0], t.slot);
}

static void test_duplicate_entry_from_a_repost_is_harmless(void)
{
    /* Died after recording the intent, before taking the cell: the ring
     * still holds the slot and recovery adds a second entry. Exactly one
     * worker wins the slot; the other entry is skipped as stale. */
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    atomic_store(&rm_seg_sb(&seg, WK)->intent, RM_INTENT(RM_INTENT_DEQ, 0, t.slot));
    CU_ASSERT_EQUAL(recover(WK, RM_ROLE_WORKER, 0, T0 + S).reposted, 1);
    CU_ASSERT_EQUAL(on_ring(0), 2);
    struct rm_req_job j = take(0, WK2);
    CU_ASSERT_EQUAL(j.slot, t.slot);
    struct rm_req_job j3;
    CU_ASSERT_EQUAL(rm_req_take(&pv[0], rm_seg_sb(&seg, WK3), WK3, T0, &j3), RM_TAKE_STALE);
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(word(0, t.slot)), RM_OWNER(WK2));
    CU_ASSERT_EQUAL(atomic_load(&rm_seg_sb(&seg, WK3)->state), RM_PROC_READY); /* never went BUSY */
    CU_ASSERT_EQUAL(rm_req_take(&pv[0], rm_seg_sb(&seg, WK3), WK3, T0, &j3), RM_TAKE_EMPTY);
}

static void test_dead_worker_aborted_slot_is_freed(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    take(0, WK);
    CU_ASSERT_FATAL(rm_req_abandon(&pv[0], &t)); /* client gone while it ran */
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_ABORTED);
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(res.freed, 1);
    CU_ASSERT_EQUAL(res.requeued, 0);
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(on_ring(0), 0);
}

static void test_dead_worker_whose_gateway_died_too_frees_the_slot(void)
{
    /* Nobody can read the answer: re-running it would be wasted. */
    setup(3, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    take(0, WK);
    atomic_store(&rm_seg_sb(&seg, GW)->state, RM_PROC_DEAD);
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(res.freed, 1);
    CU_ASSERT_EQUAL(res.requeued, 0);
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(on_ring(0), 0);
    CU_ASSERT_EQUAL(seen.notified, 0);
}

static void test_dead_worker_leaves_other_workers_slots_alone(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t1 = submit(0, GW), t2 = submit(0, GW);
    take(0, WK);
    take(0, WK2);
    const uint64_t other = word(0, t2.slot);
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(res.requeued, 1);
    CU_ASSERT_EQUAL(state_of(0, t1.slot), RM_SLOT_QUEUED);
    CU_ASSERT_EQUAL(word(0, t2.slot), other);
    CU_ASSERT_EQUAL(atomic_load(&rm_seg_sb(&seg, WK2)->state), RM_PROC_BUSY);
}

static void test_dead_worker_sleep_intent_uncounts_it_once_and_never_below_zero(void)
{
    setup(2, 4, 1);
    struct rm_pool_bell *p = pv[0].bell;
    atomic_store(&p->sleepers, 2);
    atomic_store(&rm_seg_sb(&seg, WK)->intent, RM_INTENT(RM_INTENT_SLEEP, 0, 0));
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0);
    CU_ASSERT(nothing_done(&res));
    CU_ASSERT_EQUAL(atomic_load(&p->sleepers), 1);
    atomic_store(&p->sleepers, 0);
    atomic_store(&rm_seg_sb(&seg, WK2)->intent, RM_INTENT(RM_INTENT_SLEEP, 0, 0));
    recover(WK2, RM_ROLE_WORKER, 0, T0);
    CU_ASSERT_EQUAL(atomic_load(&p->sleepers), 0);
}

/* ------------------------------------------------------------------ dead gateways */

static void test_dead_gateway_frees_filling_queued_done_and_aborts_running(void)
{
    setup(2, 8, 1);
    /* DONE: run and answered, not yet sent. */
    struct rm_req_ticket td = submit(0, GW);
    struct rm_req_job jd = take(0, WK);
    CU_ASSERT_EQUAL(finish(0, WK, &jd), GW);
    /* RUNNING on WK2. */
    struct rm_req_ticket tr = submit(0, GW);
    struct rm_req_job jr = take(0, WK2);
    CU_ASSERT_EQUAL_FATAL(jr.slot, tr.slot);
    /* QUEUED, still on the ring. */
    struct rm_req_ticket tq = submit(0, GW);
    /* FILLING. */
    uint32_t sf = claim(0, GW);
    /* The other gateway's requests, QUEUED and FILLING, must survive. */
    struct rm_req_ticket oq = submit(0, GW2);
    uint32_t of = claim(0, GW2);
    const uint64_t oq_word = word(0, oq.slot), of_word = word(0, of);

    struct rm_recovery_result res = recover(GW, RM_ROLE_GATEWAY, 0, T0 + S);
    CU_ASSERT_EQUAL(res.freed, 3);
    CU_ASSERT_EQUAL(res.aborted, 1);
    CU_ASSERT_EQUAL(res.requeued + res.crashed + res.timed_out + res.reposted + res.pending, 0);
    CU_ASSERT_EQUAL(state_of(0, td.slot), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(state_of(0, tq.slot), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(state_of(0, sf), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(state_of(0, tr.slot), RM_SLOT_ABORTED);
    CU_ASSERT_EQUAL(RM_SLOT_OWNER(word(0, tr.slot)), RM_OWNER(WK2)); /* its worker frees it */
    CU_ASSERT_EQUAL(word(0, oq.slot), oq_word);
    CU_ASSERT_EQUAL(word(0, of), of_word);
    CU_ASSERT_EQUAL(atomic_load(&rm_seg_sb(&seg, GW)->state), RM_PROC_DEAD);

    /* The running worker finishes: nobody to wake, the slot is freed. */
    CU_ASSERT_EQUAL(finish(0, WK2, &jr), RM_FINISH_NOBODY);
    CU_ASSERT_EQUAL(state_of(0, tr.slot), RM_SLOT_FREE);
    /* The freed QUEUED slot's ring entry is skipped; the other gateway's
     * request behind it is served. */
    struct rm_req_job j;
    CU_ASSERT_EQUAL(rm_req_take(&pv[0], rm_seg_sb(&seg, WK3), WK3, T0, &j), RM_TAKE_STALE);
    CU_ASSERT_EQUAL(rm_req_take(&pv[0], rm_seg_sb(&seg, WK3), WK3, T0, &j), RM_TAKE_OK);
    CU_ASSERT_EQUAL(j.slot, oq.slot);
}

/* ------------------------------------------------------------------ full ring */

static void test_full_ring_makes_recovery_call_pending_and_retry_puts_it_on_later(void)
{
    setup(3, 4, 1); /* a ring of 8 cells */
    struct rm_req_ticket t = submit(0, GW);
    take(0, WK);
    /* Fill the ring with stale entries (slot 3 is FREE). */
    uint32_t junk = t.slot == 3 ? 2 : 3, n = 0;
    while (rm_ring_enqueue(pv[0].ring, junk) == RM_RING_OK)
        n++;
    CU_ASSERT_EQUAL_FATAL(n, pv[0].ring_cells);

    const uint64_t t_start = ms_now();
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT(ms_now() - t_start < 100); /* returned at once, did not wait for room */
    CU_ASSERT_EQUAL(res.requeued, 1);
    CU_ASSERT_EQUAL(res.pending, 1);
    const uint64_t w = word(0, t.slot);
    CU_ASSERT_EQUAL(RM_SLOT_STATE(w), RM_SLOT_QUEUED);
    CU_ASSERT_EQUAL(seen.pending, 1);
    CU_ASSERT_EQUAL(seen.pending_pool, 0);
    CU_ASSERT_EQUAL(seen.pending_slot, t.slot);
    CU_ASSERT_EQUAL(seen.pending_gen, RM_SLOT_GEN(w));

    CU_ASSERT_EQUAL(rm_recovery_retry(&seg, 0, t.slot, RM_SLOT_GEN(w)), 0); /* still full: keep it */
    uint32_t v;
    CU_ASSERT_EQUAL_FATAL(rm_ring_dequeue(pv[0].ring, &v, NULL, 0), RM_RING_OK);
    /* A pending entry of an older generation is done with, and adds nothing. */
    CU_ASSERT_EQUAL(rm_recovery_retry(&seg, 0, t.slot, RM_SLOT_GEN(w) - 1), 1);
    CU_ASSERT_EQUAL(on_ring(0), pv[0].ring_cells - 1);
    CU_ASSERT_EQUAL(rm_recovery_retry(&seg, 0, t.slot, RM_SLOT_GEN(w)), 1);
    uint32_t got[16];
    unsigned k = drain_ring(0, got, 16);
    CU_ASSERT_EQUAL_FATAL(k, pv[0].ring_cells);
    CU_ASSERT_EQUAL(got[k - 1], t.slot);
}

static void test_full_ring_repost_of_a_dequeue_intent_goes_to_pending_too(void)
{
    setup(3, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    uint32_t s;
    CU_ASSERT_EQUAL_FATAL(rm_ring_dequeue(pv[0].ring, &s, &rm_seg_sb(&seg, WK)->intent, 0), RM_RING_OK);
    uint32_t junk = t.slot == 3 ? 2 : 3;
    while (rm_ring_enqueue(pv[0].ring, junk) == RM_RING_OK)
        ;
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(res.reposted, 1);
    CU_ASSERT_EQUAL(res.pending, 1);
    CU_ASSERT_EQUAL(seen.pending_slot, t.slot);
    CU_ASSERT_EQUAL(seen.pending_gen, RM_SLOT_GEN(word(0, t.slot)));
}

/* ------------------------------------------------------------------ what recovery trusts */

static void test_role_and_pool_come_from_the_caller_not_the_scoreboard(void)
{
    setup(2, 4, 2);
    /* A worker of pool 1 dies running a request; its entry claims it was a
     * gateway of pool 0. */
    sb_set(&seg, WK, RM_ROLE_WORKER, 1, RM_PROC_READY);
    struct rm_req_ticket t1 = submit(1, GW);
    take(1, WK);
    struct rm_sb_entry *e = rm_seg_sb(&seg, WK);
    e->role = RM_ROLE_GATEWAY;
    e->pool = 0;
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 1, T0 + S);
    CU_ASSERT_EQUAL(res.requeued, 1);
    CU_ASSERT_EQUAL(state_of(1, t1.slot), RM_SLOT_QUEUED);
    CU_ASSERT_EQUAL(on_ring(1), 1);
    CU_ASSERT_EQUAL(on_ring(0), 0);

    /* A gateway dies with a QUEUED request; its entry claims it was a worker. */
    struct rm_req_ticket t0 = submit(0, GW);
    struct rm_sb_entry *g = rm_seg_sb(&seg, GW);
    g->role = RM_ROLE_WORKER;
    g->pool = 1;
    res = recover(GW, RM_ROLE_GATEWAY, 0, T0 + S);
    CU_ASSERT_EQUAL(res.freed, 2); /* its request in pool 0 and the re-queued one in pool 1 */
    CU_ASSERT_EQUAL(state_of(0, t0.slot), RM_SLOT_FREE);
    CU_ASSERT_EQUAL(state_of(1, t1.slot), RM_SLOT_FREE);

    /* The caller forked nothing recoverable there (role NONE): nothing is
     * touched, whatever the entry says. */
    struct rm_req_ticket t2 = submit(0, GW2);
    take(0, WK2);
    const uint64_t running = word(0, t2.slot);
    res = recover(WK2, RM_ROLE_NONE, 0, T0 + S);
    CU_ASSERT(nothing_done(&res));
    CU_ASSERT_EQUAL(word(0, t2.slot), running);
}

static void test_intent_naming_another_pool_or_an_out_of_range_slot_is_ignored(void)
{
    setup(2, 4, 2);
    /* The same slot index QUEUED in both pools, each on its own ring: an
     * intent read with the wrong pool would re-post pool 0's. */
    struct rm_req_ticket tp = submit(0, GW2);
    struct rm_req_ticket tq = submit(1, GW);
    CU_ASSERT_EQUAL_FATAL(tp.slot, tq.slot);
    const uint64_t tq_word = word(1, tq.slot);
    struct rm_sb_entry *e = rm_seg_sb(&seg, WK); /* a worker of pool 0 */
    static const uint64_t bad[] = {
        RM_INTENT(RM_INTENT_DEQ, 1, 0) /* slot of pool 1, filled in below */,
        RM_INTENT(RM_INTENT_DEQ, 0, 4),            /* == nslots */
        RM_INTENT(RM_INTENT_DEQ, 0, 0x00ffffff),   /* a ring value out of range */
        RM_INTENT(RM_INTENT_DEQ, 0, UINT32_MAX),
        RM_INTENT(RM_INTENT_DEQ, 0xff, 0),         /* no such pool */
        UINT64_MAX,                                /* no such operation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t intent = i == 0 ? RM_INTENT(RM_INTENT_DEQ, 1, tq.slot) : bad[i];
        sb_set(&seg, WK, RM_ROLE_WORKER, 0, RM_PROC_READY);
        atomic_store(&e->intent, intent);
        struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
        CU_ASSERT(nothing_done(&res));
        CU_ASSERT_EQUAL(on_ring(0), 1);
        CU_ASSERT_EQUAL(on_ring(1), 1);
        CU_ASSERT_EQUAL(word(1, tq.slot), tq_word);
    }
    /* A sleep intent of another pool does not un-count this pool's sleepers. */
    atomic_store(&pv[0].bell->sleepers, 1);
    atomic_store(&pv[1].bell->sleepers, 1);
    atomic_store(&e->intent, RM_INTENT(RM_INTENT_SLEEP, 1, 0));
    recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(atomic_load(&pv[0].bell->sleepers), 1);
    CU_ASSERT_EQUAL(atomic_load(&pv[1].bell->sleepers), 1);
}

static void test_out_of_range_entry_or_pool_is_ignored(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    take(0, WK);
    const uint64_t running = word(0, t.slot);
    struct rm_recovery_result res = recover(NPROCS, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT(nothing_done(&res));
    res = recover(UINT32_MAX, RM_ROLE_GATEWAY, 0, T0 + S);
    CU_ASSERT(nothing_done(&res));
    res = recover(WK, RM_ROLE_WORKER, RM_SHM_MAX_POOLS, T0 + S);
    CU_ASSERT(nothing_done(&res));
    res = recover(WK, RM_ROLE_WORKER, 1, T0 + S); /* a pool that was never added */
    CU_ASSERT(nothing_done(&res));
    CU_ASSERT_EQUAL(word(0, t.slot), running);
    CU_ASSERT_EQUAL(rm_recovery_retry(&seg, RM_SHM_MAX_POOLS, 0, 1), 1);
    CU_ASSERT_EQUAL(rm_recovery_retry(&seg, 0, 4, 1), 1);
    CU_ASSERT_EQUAL(on_ring(0), 0);
}

/* ------------------------------------------------------------------ streams */

struct got {
    char data[8192];
    size_t len;
    unsigned ends;      /* pieces that ended a chunk */
    size_t chunk_len[256];
    size_t cur;
};

static void got_sink(void *arg, const unsigned char *d, uint32_t len, bool chunk_end)
{
    struct got *g = arg;
    CU_ASSERT_FATAL(g->len + len <= sizeof g->data);
    memcpy(g->data + g->len, d, len);
    g->len += len;
    g->cur += len;
    if (chunk_end) {
        if (g->ends < 256)
            g->chunk_len[g->ends] = g->cur;
        g->ends++;
        g->cur = 0;
    }
}

static void test_stream_queue_round_trip_through_wraps_and_split_chunks(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    struct rm_req_job j = take(0, WK);
    struct rm_stream_w sw;
    rm_stream_w_init(&sw, &pv[0], WK, &j, T0);
    const uint64_t cap = rm_stream_cap(&pv[0]);
    CU_ASSERT_EQUAL_FATAL(cap, 256);
    struct rm_stream_head h;
    CU_ASSERT_FALSE(rm_stream_started(&pv[0], &t, &h)); /* nothing written yet */
    /* chunk k: k * 7 % 300 bytes of 'a' + k % 26 (0 bytes, and more than
     * half the queue: split into pieces) */
    char want[8192];
    size_t wlen = 0, sizes[60];
    uint64_t rpos = 0;
    struct got g = {0};
    for (int k = 0; k < 60; k++) {
        char chunk[300];
        size_t n = (size_t)(k * 7 % 300);
        memset(chunk, 'a' + k % 26, n);
        memcpy(want + wlen, chunk, n);
        wlen += n;
        sizes[k] = n;
        size_t done = 0;
        enum rm_emit e;
        while ((e = rm_stream_put(&sw, 203, "text/x", chunk, n, &done, T0)) == RM_EMIT_FULL)
            CU_ASSERT_FATAL(rm_stream_read(&pv[0], &t, &rpos, 64, got_sink, &g) != RM_SREAD_CORRUPT);
        CU_ASSERT_EQUAL_FATAL(e, RM_EMIT_OK);
        if (k == 0) {
            CU_ASSERT_TRUE(rm_stream_started(&pv[0], &t, &h));
            CU_ASSERT_EQUAL(h.status, 203);
            CU_ASSERT_STRING_EQUAL(h.ctype, "text/x");
        }
    }
    enum rm_sread r;
    while ((r = rm_stream_read(&pv[0], &t, &rpos, 64, got_sink, &g)) == RM_SREAD_MORE)
        ;
    CU_ASSERT_EQUAL(r, RM_SREAD_EMPTY); /* still RUNNING */
    struct rm_req_result res = {.status = 200};
    CU_ASSERT(rm_req_finish(&pv[0], rm_seg_sb(&seg, WK), &j, &res, T0) >= 0);
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 64, got_sink, &g), RM_SREAD_END);
    CU_ASSERT_EQUAL(g.len, wlen);
    CU_ASSERT(memcmp(g.data, want, wlen) == 0);
    CU_ASSERT_EQUAL(g.ends, 60);
    for (int k = 0; k < 60; k++)
        CU_ASSERT_EQUAL(g.chunk_len[k], sizes[k]);
    struct rm_req_answer a;
    CU_ASSERT_EQUAL_FATAL(rm_req_poll(&pv[0], &t, T0, UINT64_MAX, &a), RM_POLL_DONE);
    CU_ASSERT_EQUAL(a.error, 0);
    CU_ASSERT_EQUAL(a.len, 0);
    CU_ASSERT_EQUAL(pv[0].resp_meta[t.slot].resp_status, 203); /* the stream's, kept by finish */
}

static void test_stream_queue_scribbled_by_the_worker_is_caught(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    struct rm_req_job j = take(0, WK);
    struct rm_stream_w sw;
    rm_stream_w_init(&sw, &pv[0], WK, &j, T0);
    size_t done = 0;
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", "abc", 3, &done, T0), RM_EMIT_OK);
    struct rm_resp_meta *m = &pv[0].resp_meta[t.slot];
    uint64_t rpos = 0;
    struct got g = {0};
    /* a position more than the queue ahead */
    atomic_store(&m->s_wpos, 257 + 16);
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1 << 20, got_sink, &g), RM_SREAD_CORRUPT);
    /* a position behind ours */
    atomic_store(&m->s_wpos, 16);
    uint64_t ahead = 32;
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &ahead, 1 << 20, got_sink, &g), RM_SREAD_CORRUPT);
    /* a record longer than what was published, or than the area */
    uint32_t bad[2] = {200, 0};
    memcpy(j.resp, bad, sizeof bad);
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1 << 20, got_sink, &g), RM_SREAD_CORRUPT);
    bad[0] = 0xfffffff0u;
    memcpy(j.resp, bad, sizeof bad);
    atomic_store(&m->s_wpos, 256);
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1 << 20, got_sink, &g), RM_SREAD_CORRUPT);
    /* a WRAP filler claiming more than was published */
    uint32_t wrap[2] = {0, RM_REC_WRAP};
    memcpy(j.resp, wrap, sizeof wrap);
    atomic_store(&m->s_wpos, 8);
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1 << 20, got_sink, &g), RM_SREAD_CORRUPT);
    CU_ASSERT_EQUAL(g.len, 0); /* nothing was handed out of a bad queue */
    CU_ASSERT_EQUAL(rpos, 0);
    /* and a gateway position the worker cannot make sense of cancels its emits */
    atomic_store(&m->s_rpos, 1 << 20);
    done = 0;
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", "x", 1, &done, T0), RM_EMIT_CANCELLED);
}

static void test_stream_wait_sleeps_until_the_gateway_reads_and_emit_sees_the_client_gone(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    struct rm_req_job j = take(0, WK);
    struct rm_stream_w sw;
    rm_stream_w_init(&sw, &pv[0], WK, &j, T0);
    char chunk[100];
    memset(chunk, 'z', sizeof chunk);
    size_t done = 0;
    enum rm_emit e;
    int n = 0;
    while ((e = rm_stream_put(&sw, 200, "", chunk, sizeof chunk, &done, T0)) == RM_EMIT_OK && n < 100)
        done = 0, n++;
    CU_ASSERT_EQUAL_FATAL(e, RM_EMIT_FULL);
    /* nothing read: the wait sleeps its whole timeout (no spinning) */
    uint64_t t0 = rm_now_ns();
    rm_stream_wait(&sw, 50 * 1000000u, T0);
    CU_ASSERT(rm_now_ns() - t0 >= 40 * 1000000u);
    /* the gateway read: the next wait returns at once */
    uint64_t rpos = 0;
    struct got g = {0};
    CU_ASSERT(rm_stream_read(&pv[0], &t, &rpos, 1, got_sink, &g) != RM_SREAD_CORRUPT);
    t0 = rm_now_ns();
    rm_stream_wait(&sw, 2000 * 1000000u, T0);
    CU_ASSERT(rm_now_ns() - t0 < 1000 * 1000000u);
    /* the client goes: the emit says so, and finishing frees the slot */
    CU_ASSERT_TRUE(rm_req_abandon(&pv[0], &t));
    CU_ASSERT_TRUE(rm_stream_cancelled(&sw));
    done = 0;
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", chunk, 1, &done, T0), RM_EMIT_CANCELLED);
    struct rm_req_result res = {.status = 200};
    CU_ASSERT_EQUAL(rm_req_finish(&pv[0], rm_seg_sb(&seg, WK), &j, &res, T0), RM_FINISH_NOBODY);
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_FREE);
}

/* The worker writes the gateway's eventfd only for a chunk the gateway
 * waits for: the first, and the first after the gateway caught up. */
static void test_stream_wakes_the_gateway_when_it_waits_and_only_then(void)
{
    setup(2, 4, 1);
    struct rm_req_ticket t = submit(0, GW);
    struct rm_req_job j = take(0, WK);
    struct rm_stream_w sw;
    rm_stream_w_init(&sw, &pv[0], WK, &j, T0);
    size_t done = 0;
    uint64_t rpos = 0;
    struct got g = {0};
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", "a", 1, &done, T0), RM_EMIT_OK);
    CU_ASSERT_TRUE(sw.wake); /* the first chunk */
    done = 0;
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", "b", 1, &done, T0), RM_EMIT_OK);
    CU_ASSERT_FALSE(sw.wake); /* woken already, not read yet */
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1 << 20, got_sink, &g), RM_SREAD_EMPTY);
    CU_ASSERT_EQUAL(g.len, 2);
    done = 0;
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", "c", 1, &done, T0), RM_EMIT_OK);
    CU_ASSERT_TRUE(sw.wake); /* the gateway caught up and waits */
    done = 0;
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", "d", 1, &done, T0), RM_EMIT_OK);
    CU_ASSERT_FALSE(sw.wake);
    /* a read stopped by its budget (MORE) does not wait: no wake for it */
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1, got_sink, &g), RM_SREAD_MORE);
    done = 0;
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", "e", 1, &done, T0), RM_EMIT_OK);
    CU_ASSERT_FALSE(sw.wake);
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1 << 20, got_sink, &g), RM_SREAD_EMPTY);
    CU_ASSERT_EQUAL(g.len, 5);
    CU_ASSERT(memcmp(g.data, "abcde", 5) == 0);
}

static void test_dead_worker_before_first_chunk_is_rerun_after_it_ends_the_stream(void)
{
    setup(3, 4, 1);
    /* died before any chunk left it: re-run as any request */
    struct rm_req_ticket t = submit(0, GW);
    struct rm_req_job j = take(0, WK);
    struct rm_resp_meta *m = &pv[0].resp_meta[t.slot];
    atomic_store(&m->s_flags, RM_STREAM_STARTED); /* killed between the flag and s_wpos */
    struct rm_recovery_result res = recover(WK, RM_ROLE_WORKER, 0, T0 + S);
    CU_ASSERT_EQUAL(res.requeued, 1);
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_QUEUED);
    /* the re-run starts clean, streams, and dies after its first chunk */
    j = take(0, WK2);
    CU_ASSERT_EQUAL(j.attempt, 2);
    CU_ASSERT_EQUAL(atomic_load(&m->s_flags), RM_STREAM_STARTED); /* left until the worker's init */
    struct rm_stream_w sw;
    rm_stream_w_init(&sw, &pv[0], WK2, &j, T0 + S);
    CU_ASSERT_EQUAL(atomic_load(&m->s_flags), 0);
    size_t done = 0;
    CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "text/plain", "tok", 3, &done, T0 + S), RM_EMIT_OK);
    res = recover(WK2, RM_ROLE_WORKER, 0, T0 + 2 * S);
    CU_ASSERT_EQUAL(res.requeued, 0); /* never re-run: its client may have the chunk */
    CU_ASSERT_EQUAL(res.crashed, 1);
    CU_ASSERT_EQUAL(seen.notified, 1);
    CU_ASSERT_EQUAL(state_of(0, t.slot), RM_SLOT_DONE);
    /* the gateway delivers the chunk, then the error and its reason */
    uint64_t rpos = 0;
    struct got g = {0};
    CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1 << 20, got_sink, &g), RM_SREAD_END);
    CU_ASSERT_EQUAL(g.len, 3);
    struct rm_req_answer a;
    CU_ASSERT_EQUAL_FATAL(rm_req_poll(&pv[0], &t, T0 + 2 * S, UINT64_MAX, &a), RM_POLL_DONE);
    CU_ASSERT_EQUAL(a.error, 502);
    CU_ASSERT_EQUAL(a.stream_end, RM_STREAM_END_CRASHED);
}

static void test_dead_silent_or_overlong_stream_ends_504_with_its_reason(void)
{
    setup(3, 4, 1);
    for (int k = 0; k < 2; k++) {
        struct rm_req_ticket t = submit(0, GW);
        unsigned who = k ? WK2 : WK;
        struct rm_req_job j = take(0, who);
        struct rm_stream_w sw;
        rm_stream_w_init(&sw, &pv[0], who, &j, T0);
        size_t done = 0;
        CU_ASSERT_EQUAL(rm_stream_put(&sw, 200, "", "tok", 3, &done, T0), RM_EMIT_OK);
        /* killed: silent 6 s (stream_idle 5 s), or 101 s after acceptance (cap 100 s) */
        uint64_t now = k ? T0 + 101 * S : T0 + 6 * S;
        struct rm_recovery_result res = recover(who, RM_ROLE_WORKER, 0, now);
        CU_ASSERT_EQUAL(res.timed_out, 1);
        struct rm_req_answer a;
        uint64_t rpos = 0;
        struct got g = {0};
        CU_ASSERT_EQUAL(rm_stream_read(&pv[0], &t, &rpos, 1 << 20, got_sink, &g), RM_SREAD_END);
        CU_ASSERT_EQUAL_FATAL(rm_req_poll(&pv[0], &t, now, UINT64_MAX, &a), RM_POLL_DONE);
        CU_ASSERT_EQUAL(a.error, 504);
        CU_ASSERT_EQUAL(a.stream_end, k ? RM_STREAM_END_CAP : RM_STREAM_END_IDLE);
        rm_req_release(&pv[0], &t, &a);
    }
}

int main(void)
{
    /* Recovery retries lost CASes in loops: should one never end, fail
     * the run instead of hanging make check. */
    alarm(60);
    static const rm_test tests[] = {
        RM_TEST(test_dead_worker_running_slot_is_requeued_on_the_ring_and_answered_by_another),
        RM_TEST(test_dead_worker_with_attempts_used_up_ends_slot_done_502),
        RM_TEST(test_dead_worker_past_deadline_ends_slot_done_504),
        RM_TEST(test_dead_worker_dequeue_intent_with_slot_still_queued_is_reposted),
        RM_TEST(test_intent_of_a_slot_already_claimed_is_requeued_once_not_twice),
        RM_TEST(test_duplicate_entry_from_a_repost_is_harmless),
        RM_TEST(test_dead_worker_aborted_slot_is_freed),
        RM_TEST(test_dead_worker_whose_gateway_died_too_frees_the_slot),
        RM_TEST(test_dead_worker_leaves_other_workers_slots_alone),
        RM_TEST(test_dead_worker_sleep_intent_uncounts_it_once_and_never_below_zero),
        RM_TEST(test_dead_gateway_frees_filling_queued_done_and_aborts_running),
        RM_TEST(test_full_ring_makes_recovery_call_pending_and_retry_puts_it_on_later),
        RM_TEST(test_full_ring_repost_of_a_dequeue_intent_goes_to_pending_too),
        RM_TEST(test_role_and_pool_come_from_the_caller_not_the_scoreboard),
        RM_TEST(test_intent_naming_another_pool_or_an_out_of_range_slot_is_ignored),
        RM_TEST(test_out_of_range_entry_or_pool_is_ignored),
        RM_TEST(test_stream_queue_round_trip_through_wraps_and_split_chunks),
        RM_TEST(test_stream_queue_scribbled_by_the_worker_is_caught),
        RM_TEST(test_stream_wait_sleeps_until_the_gateway_reads_and_emit_sees_the_client_gone),
        RM_TEST(test_stream_wakes_the_gateway_when_it_waits_and_only_then),
        RM_TEST(test_dead_worker_before_first_chunk_is_rerun_after_it_ends_the_stream),
        RM_TEST(test_dead_silent_or_overlong_stream_ends_504_with_its_reason),
        {0},
    };
    return rm_run_suite_fixture("recovery", tests, NULL, teardown);
}
