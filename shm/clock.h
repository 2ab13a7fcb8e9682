/* clock.h - monotonic and wall clocks in nanoseconds (vDSO: no syscall). */
#ifndef RM_CLOCK_H
#define RM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t rm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rm_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
