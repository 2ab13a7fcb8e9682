/* doorbell.c - shared futex doorbell. See doorbell.h. */
#include "shm/doorbell.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm/crashpoint.h"

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, 0);
}

void rm_doorbell_ring(struct rm_pool_bell *p)
{
    /* P1: seq_cst, pairs with W1/W2 in rm_doorbell_wait. */
    atomic_fetch_add_explicit(&p->doorbell, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) > 0)
        futex(&p->doorbell, FUTEX_WAKE, 1, NULL);
}

bool rm_doorbell_wait(struct rm_pool_bell *p, uint64_t timeout_ns,
                      bool (*ready)(void *), void *arg,
                      _Atomic uint64_t *intent, unsigned pool_index)
{
    /* W1: seq_cst, pairs with P1. The intent is recorded after the count
     * and cleared before the un-count: a process killed in between leaves the
     * count one too high (a spare FUTEX_WAKE now and then), never too low
     * (a sleeper nobody wakes) and never wrapped below zero. */
    atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
    RM_CRASH_POINT();
    if (intent)
        atomic_store_explicit(intent, RM_INTENT(RM_INTENT_SLEEP, pool_index, 0),
                              memory_order_release);
    RM_CRASH_POINT();
    /* W2 */
    uint32_t v = atomic_load_explicit(&p->doorbell, memory_order_seq_cst);
    bool woke = true;
    if (!ready || !ready(arg)) {
        struct timespec ts = {
            .tv_sec = (time_t)(timeout_ns / 1000000000u),
            .tv_nsec = (long)(timeout_ns % 1000000000u),
        };
        long r = futex(&p->doorbell, FUTEX_WAIT, v, &ts);
        woke = !(r == -1 && errno == ETIMEDOUT);
        if (r == -1 && errno != ETIMEDOUT && errno != EAGAIN && errno != EINTR) {
            /* ENOSYS/EPERM (a seccomp filter): no sleeping at all. Do not
             * spin: sleep the tick out, say so once (library code: stderr). */
            static int said;
            if (!said++) {
                static const char msg[] = "ringmaster: futex(FUTEX_WAIT) fails: workers poll instead\n";
                ssize_t wr = write(2, msg, sizeof msg - 1);
                (void)wr;
            }
            nanosleep(&ts, NULL);
        }
    }
    /* release: the intent is cleared before the un-count below (W1's order) */
    if (intent)
        atomic_store_explicit(intent, RM_INTENT(RM_INTENT_NONE, 0, 0), memory_order_release);
    RM_CRASH_POINT();
    atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_seq_cst);
    return woke;
}
