/*
 * stats.h - the request histograms' bucket bounds, their quantiles, and the
 * status -> enum rm_code map, shared by the code that counts
 * (gateway/stats.c) and the code that reports (gateway/metrics.c,
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

/*
 * A quantile of a histogram (non-cumulative counts, as stored), the way
 * Prometheus' histogram_quantile estimates it: the rank q * count falls in
 * the first bucket whose cumulative count reaches it, and the value is
 * interpolated linearly between that bucket's bounds. Two buckets have no
 * lower or no upper bound to interpolate with, and say so instead:
 *   RM_Q_NONE  nothing counted (s is 0)
 *   RM_Q_LE    in the first bucket: "<= s" (s = its bound)
 *   RM_Q_IN    interpolated: about s
 *   RM_Q_GT    in the +Inf bucket: "> s" (s = the last finite bound)
 * q is in (0, 1].
 */
enum rm_q_kind { RM_Q_NONE = 0, RM_Q_LE, RM_Q_IN, RM_Q_GT };
struct rm_quantile {
    enum rm_q_kind kind;
    double s;
};

static inline struct rm_quantile rm_hist_quantile(const uint64_t hist[RM_HIST_BUCKETS + 1], double q)
{
    double total = 0;
    for (unsigned i = 0; i <= RM_HIST_BUCKETS; i++)
        total += (double)hist[i];
    struct rm_quantile r = {RM_Q_NONE, 0};
    if (total <= 0 || !(q > 0))
        return r;
    double rank = q >= 1 ? total : q * total;
    double below = 0; /* cumulative count of the buckets before i */
    for (unsigned i = 0; i <= RM_HIST_BUCKETS; i++) {
        double in = (double)hist[i];
        if (in > 0 && below + in >= rank) {
            if (i == 0) {
                r.kind = RM_Q_LE;
                r.s = rm_hist_bounds_s[0];
            } else if (i == RM_HIST_BUCKETS) {
                r.kind = RM_Q_GT;
                r.s = rm_hist_bounds_s[RM_HIST_BUCKETS - 1];
            } else {
                double lo = rm_hist_bounds_s[i - 1], hi = rm_hist_bounds_s[i];
                r.kind = RM_Q_IN;
                r.s = lo + (hi - lo) * (rank - below) / in;
            }
            return r;
        }
        below += in;
    }
    /* Not reached (the last bucket with a count reaches total); rounding: */
    r.kind = RM_Q_GT;
    r.s = rm_hist_bounds_s[RM_HIST_BUCKETS - 1];
    return r;
}

/* The entry of enum rm_code (shm/layout.h) that counts an answer with this
 * HTTP status. The gateway only sends statuses 200-599 (a handler's other
 * statuses become 500); anything else would be a server error: 5xx. */
static inline unsigned rm_code_of(unsigned status)
{
    switch (status) {
    case 200: return RM_CODE_200;
    case 400: return RM_CODE_400;
    case 404: return RM_CODE_404;
    case 405: return RM_CODE_405;
    case 408: return RM_CODE_408;
    case 413: return RM_CODE_413;
    case 414: return RM_CODE_414;
    case 431: return RM_CODE_431;
    case 500: return RM_CODE_500;
    case 502: return RM_CODE_502;
    case 503: return RM_CODE_503;
    case 504: return RM_CODE_504;
    default: break;
    }
    if (status >= 200 && status < 300)
        return RM_CODE_2XX;
    if (status >= 300 && status < 400)
        return RM_CODE_3XX;
    if (status >= 400 && status < 500)
        return RM_CODE_4XX;
    return RM_CODE_5XX;
}

#endif
