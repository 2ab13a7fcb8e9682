/*
 * crashpoint.h - marked points between shared-memory steps where a test build
 * may kill its own process.
 *
 * Built with -DRM_CRASH_POINTS=1 (librmshm_crash.a, used by tests/test_crash),
 * RM_CRASH_POINT(name) raises SIGKILL with probability 1/rm_crash_one_in when
 * rm_crash_one_in is nonzero (a per-process variable the test sets after fork),
 * and counts fired points in *rm_crash_fired (a shared counter the test maps).
 * In normal builds it compiles to nothing.
 */
#ifndef RM_CRASHPOINT_H
#define RM_CRASHPOINT_H

#include <stdint.h>

#if RM_CRASH_POINTS
#include <signal.h>
#include <stdatomic.h>

extern unsigned rm_crash_one_in;           /* 0: disarmed */
extern _Atomic uint64_t *rm_crash_fired;   /* shared counter, may be NULL */
extern uint64_t rm_crash_rng;              /* per-process xorshift state */

static inline void rm_crash_point(void)
{
    if (!rm_crash_one_in)
        return;
    uint64_t x = rm_crash_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rm_crash_rng = x;
    if (x % rm_crash_one_in == 0) {
        if (rm_crash_fired)
            /* relaxed: a test counter, read after every child is gone */
            atomic_fetch_add_explicit(rm_crash_fired, 1, memory_order_relaxed);
        raise(SIGKILL);
    }
}
#define RM_CRASH_POINT() rm_crash_point()
#else
#define RM_CRASH_POINT() ((void)0)
#endif

#endif
