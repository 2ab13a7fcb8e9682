/*
 * metrics.c - GET /metrics in the Prometheus text format (version 0.0.4),
 * straight from shared memory. Counters of all gateways are summed (each
 * gateway writes only its own block); worker states come from the
 * scoreboard, restarts and retries from the master's block.
 */
#include <config.h> /* autoconf: PACKAGE_VERSION */
#include <stdio.h>
#include <string.h>

#include "core/names.h"
#include "gateway/internal.h"
#include "gateway/stats.h"
#include "shm/segment.h"
#include "shm/slot.h"

/* Worker states shown in /metrics (names from core/names.c). */
static const unsigned worker_states[] = {RM_PROC_STARTING, RM_PROC_READY, RM_PROC_BUSY, RM_PROC_DRAINING};

struct pool_sums {
    uint64_t outcomes[RM_OUT_N];
    uint64_t dur_hist[RM_HIST_BUCKETS + 1];
    uint64_t dur_sum_us;
    uint64_t wait_hist[RM_HIST_BUCKETS + 1];
    uint64_t wait_sum_us;
    uint64_t codes[RM_CODE_N];
    uint64_t streams[RM_STREAM_RESULTS];
};

/* Label value: backslash, double quote and newline escaped. */
static void label(struct gw_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            gw_buf_put(b, "\\\\", 2);
        else if (*s == '"')
            gw_buf_put(b, "\\\"", 2);
        else if (*s == '\n')
            gw_buf_put(b, "\\n", 2);
        else
            gw_buf_put(b, s, 1);
    }
}

static void family(struct gw_buf *b, const char *name, const char *type, const char *help)
{
    gw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{pool="P"[,key="value"]} */
static void series(struct gw_buf *b, const char *name, const char *pool, const char *key,
                   const char *value)
{
    gw_buf_puts(b, name);
    gw_buf_puts(b, "{pool=\"");
    label(b, pool);
    if (key) {
        gw_buf_puts(b, "\",");
        gw_buf_puts(b, key);
        gw_buf_puts(b, "=\"");
        gw_buf_puts(b, value);
    }
    gw_buf_puts(b, "\"} ");
}

static void histogram(struct gw_buf *b, const char *name, const char *pool,
                      const uint64_t *hist, uint64_t sum_us)
{
    uint64_t cum = 0;
    char le[32];
    for (unsigned i = 0; i <= RM_HIST_BUCKETS; i++) {
        cum += hist[i];
        if (i < RM_HIST_BUCKETS)
            snprintf(le, sizeof le, "%g", rm_hist_bounds_s[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        gw_buf_puts(b, name);
        gw_buf_puts(b, "_bucket{pool=\"");
        label(b, pool);
        gw_buf_printf(b, "\",le=\"%s\"} %llu\n", le, (unsigned long long)cum);
    }
    gw_buf_puts(b, name);
    gw_buf_puts(b, "_sum{pool=\"");
    label(b, pool);
    gw_buf_printf(b, "\"} %llu.%06llu\n", (unsigned long long)(sum_us / 1000000),
                  (unsigned long long)(sum_us % 1000000));
    gw_buf_puts(b, name);
    gw_buf_puts(b, "_count{pool=\"");
    label(b, pool);
    gw_buf_printf(b, "\"} %llu\n", (unsigned long long)cum);
}

void gw_metrics_render(struct gw *gw, struct gw_buf *b)
{
    struct rm_seg *seg = gw->seg;
    const struct rm_shm_header *h = seg->hdr;
    unsigned ngw = seg->max_gateways; /* the private copy (geometry), not the header's */
    unsigned pools[RM_SHM_MAX_POOLS];
    unsigned np = 0;
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++)
        if (gw->pools[i].active && gw->pools[i].valid)
            pools[np++] = i;

    static struct pool_sums sums[RM_SHM_MAX_POOLS];
    memset(sums, 0, sizeof sums);
    for (unsigned k = 0; k < np; k++) {
        struct pool_sums *s = &sums[pools[k]];
        for (unsigned g = 0; g < ngw; g++) {
            struct rm_gw_stats *st = rm_seg_gw_stats(seg, g, pools[k]);
            /* relaxed: counters, slightly stale values are fine */
            for (unsigned o = 0; o < RM_OUT_N; o++)
                s->outcomes[o] += atomic_load_explicit(&st->outcomes[o], memory_order_relaxed);
            for (unsigned i = 0; i <= RM_HIST_BUCKETS; i++) {
                s->dur_hist[i] += atomic_load_explicit(&st->dur_hist[i], memory_order_relaxed);
                s->wait_hist[i] += atomic_load_explicit(&st->wait_hist[i], memory_order_relaxed);
            }
            s->dur_sum_us += atomic_load_explicit(&st->dur_sum_us, memory_order_relaxed);
            s->wait_sum_us += atomic_load_explicit(&st->wait_sum_us, memory_order_relaxed);
            for (unsigned code = 0; code < RM_CODE_N; code++)
                s->codes[code] += atomic_load_explicit(&st->codes[code], memory_order_relaxed);
            for (unsigned r = 0; r < RM_STREAM_RESULTS; r++)
                s->streams[r] += atomic_load_explicit(&st->streams[r], memory_order_relaxed);
        }
    }
    uint64_t other[RM_CODE_N] = {0};
    for (unsigned g = 0; g < ngw; g++)
        for (unsigned code = 0; code < RM_CODE_N; code++)
            /* relaxed: counters (each gateway's own block), summed */
            other[code] += atomic_load_explicit(&rm_seg_gw_stats(seg, g, RM_GW_SERVER)->codes[code],
                                              memory_order_relaxed);
    unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES];
    gw_scan_workers(gw, counts);

    family(b, "ringmaster_up", "gauge", "1 while ringmaster answers.");
    gw_buf_puts(b, "ringmaster_up 1\n");
    family(b, "ringmaster_build_info", "gauge", "Always 1; the version of ringmaster in its label.");
    gw_buf_puts(b, "ringmaster_build_info{version=\"" PACKAGE_VERSION "\"} 1\n");
    family(b, "ringmaster_draining", "gauge",
           "1 once a stop was asked (readiness 503; requests still served during drain_delay).");
    gw_buf_printf(b, "ringmaster_draining %u\n", gw_server_stopping(gw) ? 1u : 0u);
    family(b, "ringmaster_reloads_total", "counter",
           "Reloads by result: ok (the new generation serves), failed (refused or rolled back).");
    /* relaxed: the master's counters (layout.h) */
    gw_buf_printf(b, "ringmaster_reloads_total{result=\"ok\"} %u\n",
                  atomic_load_explicit(&((struct rm_shm_header *)h)->reloads, memory_order_relaxed));
    gw_buf_printf(b, "ringmaster_reloads_total{result=\"failed\"} %u\n",
                  atomic_load_explicit(&((struct rm_shm_header *)h)->reloads_failed, memory_order_relaxed));

    family(b, "ringmaster_requests_total", "counter", "Inference requests by model pool and outcome.");
    for (unsigned k = 0; k < np; k++)
        for (unsigned o = 0; o < RM_OUT_N; o++) {
            series(b, "ringmaster_requests_total", gw->pools[pools[k]].name, "outcome", rm_outcome_name(o));
            gw_buf_put_u64(b, sums[pools[k]].outcomes[o]);
            gw_buf_put(b, "\n", 1);
        }

    family(b, "ringmaster_streams_total", "counter",
           "Streamed answers by model pool: started (the first chunk went out), then completed, failed "
           "(worker died, silent past stream_idle_timeout, past stream_timeout, handler error) or cancelled "
           "(the client went away).");
    for (unsigned k = 0; k < np; k++)
        for (unsigned r = 0; r < RM_STREAM_RESULTS; r++) {
            series(b, "ringmaster_streams_total", gw->pools[pools[k]].name, "result", rm_stream_result_name(r));
            gw_buf_put_u64(b, sums[pools[k]].streams[r]);
            gw_buf_put(b, "\n", 1);
        }

    family(b, "ringmaster_responses_total", "counter",
           "Answers to inference requests by model pool and HTTP status; 2xx, 3xx, 4xx and 5xx count the "
           "statuses of that class that have no series of their own.");
    for (unsigned k = 0; k < np; k++)
        for (unsigned code = 0; code < RM_CODE_N; code++) {
            series(b, "ringmaster_responses_total", gw->pools[pools[k]].name, "code", rm_code_name(code));
            gw_buf_put_u64(b, sums[pools[k]].codes[code]);
            gw_buf_put(b, "\n", 1);
        }

    family(b, "ringmaster_other_responses_total", "counter",
           "Answers that belong to no model pool (health, metadata, metrics, unknown paths and models, "
           "malformed requests, too many connections) by HTTP status, classed like ringmaster_responses_total.");
    for (unsigned code = 0; code < RM_CODE_N; code++) {
        gw_buf_printf(b, "ringmaster_other_responses_total{code=\"%s\"} ", rm_code_name(code));
        gw_buf_put_u64(b, other[code]);
        gw_buf_put(b, "\n", 1);
    }

    family(b, "ringmaster_request_duration_seconds", "histogram",
           "Time from acceptance of an inference request to its answer.");
    for (unsigned k = 0; k < np; k++)
        histogram(b, "ringmaster_request_duration_seconds", gw->pools[pools[k]].name,
                  sums[pools[k]].dur_hist, sums[pools[k]].dur_sum_us);

    family(b, "ringmaster_queue_wait_seconds", "histogram",
           "Time from acceptance of an inference request until a worker started it.");
    for (unsigned k = 0; k < np; k++)
        histogram(b, "ringmaster_queue_wait_seconds", gw->pools[pools[k]].name,
                  sums[pools[k]].wait_hist, sums[pools[k]].wait_sum_us);

    family(b, "ringmaster_queue_depth", "gauge", "Request slots in use (waiting or running).");
    for (unsigned k = 0; k < np; k++) {
        const struct rm_pool_view *v = &gw->pools[pools[k]].view;
        uint64_t used = 0;
        /* relaxed: a gauge; private bound (the view), never nslots from shared memory */
        for (uint32_t s = 0; s < v->nslots; s++)
            if (RM_SLOT_STATE(atomic_load_explicit(&v->states[s], memory_order_relaxed)) != RM_SLOT_FREE)
                used++;
        series(b, "ringmaster_queue_depth", gw->pools[pools[k]].name, NULL, NULL);
        gw_buf_put_u64(b, used);
        gw_buf_put(b, "\n", 1);
    }

    family(b, "ringmaster_queue_capacity", "gauge", "Request slots of the pool (its queue_depth).");
    for (unsigned k = 0; k < np; k++) {
        series(b, "ringmaster_queue_capacity", gw->pools[pools[k]].name, NULL, NULL);
        gw_buf_put_u64(b, gw->pools[pools[k]].view.nslots); /* private copy */
        gw_buf_put(b, "\n", 1);
    }

    family(b, "ringmaster_pool_ready", "gauge",
           "1 when the pool serves (a ready worker, not failed, not being rebuilt), as /v2/models/{pool}/ready.");
    for (unsigned k = 0; k < np; k++) {
        series(b, "ringmaster_pool_ready", gw->pools[pools[k]].name, NULL, NULL);
        gw_buf_puts(b, gw_pool_not_ready(gw, pools[k], counts) ? "0\n" : "1\n");
    }

    family(b, "ringmaster_pool_saturation", "gauge",
           "Busy workers divided by the workers that can serve (ready and busy); 1 when none can.");
    for (unsigned k = 0; k < np; k++) {
        unsigned busy = counts[pools[k]][RM_PROC_BUSY];
        unsigned serving = busy + counts[pools[k]][RM_PROC_READY];
        series(b, "ringmaster_pool_saturation", gw->pools[pools[k]].name, NULL, NULL);
        gw_buf_printf(b, "%.4f\n", serving ? (double)busy / serving : 1.0);
    }

    family(b, "ringmaster_workers", "gauge", "Worker processes by model pool and state.");
    for (unsigned k = 0; k < np; k++)
        for (size_t i = 0; i < sizeof worker_states / sizeof worker_states[0]; i++) {
            series(b, "ringmaster_workers", gw->pools[pools[k]].name, "state", rm_proc_state_name(worker_states[i]));
            gw_buf_put_u64(b, counts[pools[k]][worker_states[i]]);
            gw_buf_put(b, "\n", 1);
        }

    family(b, "ringmaster_restarts_total", "counter", "Worker restarts by model pool and reason.");
    for (unsigned k = 0; k < np; k++) {
        struct rm_master_stats *ms = rm_seg_master_stats(seg, pools[k]);
        /* relaxed: the master's counters; slightly stale values are fine */
        for (unsigned r = 0; r < RM_RESTART_N; r++) {
            series(b, "ringmaster_restarts_total", gw->pools[pools[k]].name, "reason", rm_restart_reason_name(r));
            gw_buf_put_u64(b, atomic_load_explicit(&ms->restarts[r], memory_order_relaxed));
            gw_buf_put(b, "\n", 1);
        }
    }

    family(b, "ringmaster_retried_requests_total", "counter",
           "Requests run again after their worker died.");
    for (unsigned k = 0; k < np; k++) {
        struct rm_master_stats *ms = rm_seg_master_stats(seg, pools[k]);
        series(b, "ringmaster_retried_requests_total", gw->pools[pools[k]].name, NULL, NULL);
        /* relaxed: a counter */
        gw_buf_put_u64(b, atomic_load_explicit(&ms->retried, memory_order_relaxed));
        gw_buf_put(b, "\n", 1);
    }

    family(b, "ringmaster_pool_heals_total", "counter",
           "Times a pool's shared memory was found corrupted (by a worker) and rebuilt.");
    for (unsigned k = 0; k < np; k++) {
        struct rm_master_stats *ms = rm_seg_master_stats(seg, pools[k]);
        series(b, "ringmaster_pool_heals_total", gw->pools[pools[k]].name, NULL, NULL);
        /* relaxed: a counter */
        gw_buf_put_u64(b, atomic_load_explicit(&ms->heals, memory_order_relaxed));
        gw_buf_put(b, "\n", 1);
    }

    family(b, "ringmaster_gateway_restarts_total", "counter", "Gateway processes respawned.");
    gw_buf_puts(b, "ringmaster_gateway_restarts_total ");
    /* relaxed: a counter */
    gw_buf_put_u64(b, atomic_load_explicit(&rm_seg_master_stats(seg, 0)->gw_restarts, memory_order_relaxed));
    gw_buf_put(b, "\n", 1);
}
