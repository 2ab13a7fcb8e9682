/*
 * stats.h - the request histograms' bucket bounds, shared by the code that
 * counts (gateway/submit.c) and the code that reports (gateway/metrics.c,
 * ringmasterctl status). RM_HIST_BUCKETS (shm/layout.h) finite buckets; the
 * shared-memory arrays have one more, the +Inf bucket.
 *
 * Buckets in shared memory are NOT cumulative: a value lands in the first
 * bucket whose upper bound is >= the value (Prometheus' `le`), or in the last
 * (+Inf) one. Readers accumulate.
 */
#ifndef RM_GW_STATS_H
#define RM_GW_STATS_H

#include <stdint.h>

#include "shm/layout.h"

/* Upper bounds, seconds (for `le` labels). */
static const double rm_hist_bounds_s[RM_HIST_BUCKETS] __attribute__((unused)) = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

/* The same bounds in microseconds (what the counters measure in). */
static const uint64_t rm_hist_bounds_us[RM_HIST_BUCKETS] __attribute__((unused)) = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000,
};

/* Index of the bucket for a value of us microseconds (RM_HIST_BUCKETS: +Inf). */
static inline unsigned rm_hist_bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < RM_HIST_BUCKETS && us > rm_hist_bounds_us[i])
        i++;
    return i;
}

#endif
