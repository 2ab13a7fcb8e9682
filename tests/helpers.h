/*
 * helpers.h - helpers the CUnit tests share: time, bounded waits, child
 * processes, and a segment with pools and scoreboard entries set up the way
 * the master would. Header-only (static inline), like cunit_util.h.
 *
 *   WAIT_UNTIL(cond, ms)      poll cond every millisecond; true once it holds,
 *                             false when ms passed without it (never a bare sleep)
 *   wait_child(pid, ms)       reap pid within ms, else SIGKILL and reap it:
 *                             its wait status, or CHILD_TIMED_OUT
 *   seg_with_pools(...)       rm_seg_create + rm_seg_pool_add (pools 0..n-1) +
 *                             rm_seg_publish, asserting each step
 *   sb_set(...)               a scoreboard entry's role, pool and state, as
 *                             the master writes them before fork
 *   slots_in_state(...)       how many slots of a pool view are in a state
 *
 * The torture test (test_crash.c) is not a CUnit program and keeps its own.
 */
#ifndef RM_TESTS_HELPERS_H
#define RM_TESTS_HELPERS_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

#include "shm/clock.h"
#include "shm/request.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "tests/cunit_util.h"

/* ------------------------------------------------------------------ time */

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline uint64_t ms_now(void)
{
    return rm_now_ns() / 1000000u;
}

/*
 * Evaluate cond every millisecond until it is true (the macro's value:
 * true) or ms milliseconds have passed (false). cond is evaluated once more
 * at the deadline, so a condition that became true just in time counts.
 */
#define WAIT_UNTIL(cond, ms)                            \
    __extension__({                                     \
        const uint64_t wu_until_ = ms_now() + (ms);     \
        bool wu_ok_;                                    \
        while (!(wu_ok_ = (cond)) && ms_now() < wu_until_) \
            sleep_ms(1);                                \
        wu_ok_;                                         \
    })

/* ------------------------------------------------------------------ children */

#define CHILD_TIMED_OUT (-1)

/*
 * Reap child pid within ms milliseconds. On time out: SIGKILL it (by pid),
 * reap it, and return CHILD_TIMED_OUT; otherwise its wait status.
 */
static inline int wait_child(pid_t pid, unsigned ms)
{
    const uint64_t until = ms_now() + ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return CHILD_TIMED_OUT;
        if (ms_now() >= until)
            break;
        sleep_ms(1);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return CHILD_TIMED_OUT;
}

/* The exit code of a wait status, 128 + signal for a killed process, or
 * CHILD_TIMED_OUT passed through. */
static inline int exit_code_of(int status)
{
    if (status == CHILD_TIMED_OUT)
        return CHILD_TIMED_OUT;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ------------------------------------------------------------------ shared memory */

/*
 * Create a segment of nprocs scoreboard entries (ngw of them gateways) with
 * pools 0..npools-1 as specs, and publish it. The arena is exactly what the
 * pools need. Every step is asserted fatally.
 */
static inline void seg_with_pools(struct rm_seg *seg, uint32_t nprocs, uint32_t ngw,
                                  const struct rm_pool_spec *specs, unsigned npools)
{
    char err[256] = "";
    int rc = rm_seg_create(seg, nprocs, ngw, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\nrm_seg_create: %s\n", err);
    CU_ASSERT_FATAL(rc == 0);
    for (unsigned i = 0; i < npools; i++) {
        rc = rm_seg_pool_add(seg, i, &specs[i], err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "\nrm_seg_pool_add: %s\n", err);
        CU_ASSERT_FATAL(rc == 0);
    }
    rm_seg_publish(seg);
}

/* Scoreboard entry idx as the master leaves it before fork. */
/* What the master publishes in each pool's descriptor (workers by state),
 * computed here from the scoreboard entries the test set: gateways read
 * readiness from it. Call after changing a worker's state. */
static inline void publish_worker_counts(struct rm_seg *seg)
{
    uint32_t counts[RM_SHM_MAX_POOLS][8] = {{0}};
    for (uint32_t i = seg->max_gateways; i < seg->nprocs; i++) {
        struct rm_sb_entry *e = rm_seg_sb(seg, i);
        unsigned st = atomic_load(&e->state);
        if (e->role == RM_ROLE_WORKER && e->pool < RM_SHM_MAX_POOLS && st < 8)
            counts[e->pool][st]++;
    }
    for (unsigned p = 0; p < RM_SHM_MAX_POOLS; p++)
        for (unsigned st = 0; st < 8; st++)
            atomic_store(&rm_seg_pool(seg, p)->workers[st], counts[p][st]);
}

static inline struct rm_sb_entry *sb_set(struct rm_seg *seg, unsigned idx, unsigned role, unsigned pool,
                                         unsigned state)
{
    struct rm_sb_entry *e = rm_seg_sb(seg, idx);
    e->role = (uint8_t)role;
    e->pool = (uint16_t)pool;
    atomic_store(&e->intent, 0);
    atomic_store(&e->flags, 0);
    atomic_store(&e->cur_slot, RM_NO_SLOT);
    atomic_store(&e->state, (uint8_t)state);
    publish_worker_counts(seg);
    return e;
}

static inline unsigned slots_in_state(const struct rm_pool_view *v, unsigned state)
{
    unsigned n = 0;
    for (uint32_t s = 0; s < v->nslots; s++)
        if (RM_SLOT_STATE(rm_slot_load(&v->states[s])) == state)
            n++;
    return n;
}

#endif
