/*
 * ctl_status.c - `ringmasterctl status`: one look at the master's shared
 * memory is a sample (struct sample), copied out of read-only mappings of
 * its memfds (rm_seg_attach_pid: everything validated) into private
 * memory; rates are the difference of two samples taken --interval seconds
 * apart, and --watch prints one screen per interval against the sample
 * before it. Each sample attaches afresh, so pools a reload adds show up
 * and a master that is gone ends the watch.
 *
 * What may be scribbled on: a pool's workers can write every scoreboard
 * entry of their pool's range (and their pool's memory). So the pool of a
 * worker is the range its entry is in (the master's allocation), never the
 * entry's pool field; counts from there are shown, never used as an index;
 * a pid from there is shown with its RSS only if /proc says the master is
 * its parent. The pool descriptors, the master's counters (ctrl) and the
 * gateways' counters are written by the master and the gateways only.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <config.h>
#include "core/names.h"
#include "core/paths.h"
#include "gateway/stats.h"
#include "shm/clock.h"
#include "shm/request.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "supervisor/ctl_status.h"

#define NO_POOL RM_SHM_MAX_POOLS

struct pool_sample {
    bool active;
    bool failed;
    char name[RM_SHM_POOL_NAME + 1];
    char handler[64 + 1];
    uint32_t queue, nslots;
    unsigned workers[RM_PROC_NSTATES];
    uint64_t served_live;   /* live workers' served */
    uint64_t served_exited; /* the master's count of reaped workers' */
    uint64_t codes[RM_CODE_N];
    uint64_t dur_hist[RM_HIST_BUCKETS + 1];
    uint64_t streams[RM_STREAM_RESULTS]; /* enum rm_stream_result */
};

struct proc_sample {
    int pid;
    unsigned sb, role, pool, index, generation, state;
    uint64_t served;
    double heartbeat_age_ms;
    double busy_s; /* < 0: not busy */
    long rss_kb;   /* < 0: gone, or not the master's child */
};

struct sample {
    int master_pid;
    uint64_t birth_ns;
    uint64_t now_ns;
    bool draining;
    unsigned reloads;
    struct pool_sample pools[RM_SHM_MAX_POOLS];
    uint64_t other[RM_CODE_N]; /* answers that belong to no pool */
    struct proc_sample *procs;
    size_t nprocs, procs_cap;
};

/* ------------------------------------------------------------------ /proc */

/* VmRSS of pid in KiB, or -1: the process is gone (or a zombie), or is not
 * the master's child (a pid scribbled into the scoreboard, or reused). */
static long rss_kb_of(int pid, int master_pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long rss = -1, ppid = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "PPid:", 5) == 0)
            ppid = strtol(line + 5, NULL, 10);
        else if (strncmp(line, "VmRSS:", 6) == 0)
            rss = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return ppid == master_pid ? rss : -1;
}

/* ------------------------------------------------------------------ sampling */

static void copy_str(char *dst, const char *src, size_t srclen)
{
    size_t n = strnlen(src, srclen);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Pool i's scoreboard range, within the entries this segment has. */
static void pool_range(const struct rm_seg *seg, unsigned i, uint32_t *first, uint32_t *end)
{
    uint64_t f = rm_seg_pool_first_sb(seg, i), e = f + RM_SB_PER_POOL;
    *first = f < seg->nprocs ? (uint32_t)f : seg->nprocs;
    *end = e < seg->nprocs ? (uint32_t)e : seg->nprocs;
}

/*
 * Requests served by pool i's live workers and by its reaped ones, as one
 * consistent pair: the master moves a worker's count from its entry to
 * served_exited under served_seq (layout.h, spawn.c: free_entry). Bounded:
 * after 64 tries the last read is taken (off by at most one worker's count).
 */
static void pool_served(const struct rm_seg *seg, unsigned i, uint64_t *live, uint64_t *exited)
{
    struct rm_master_stats *ms = rm_seg_master_stats(seg, i);
    uint32_t first, end;
    pool_range(seg, i, &first, &end);
    for (int tries = 0; tries < 64; tries++) {
        /* acquire: pairs with the master's release store of an even seq:
         * its stores of that step are visible below. */
        uint32_t s1 = atomic_load_explicit(&ms->served_seq, memory_order_acquire);
        /* relaxed: ordered by the seqlock's fences (layout.h). */
        uint64_t ex = atomic_load_explicit(&ms->served_exited, memory_order_relaxed);
        uint64_t lv = 0;
        for (uint32_t sb = first; sb < end; sb++) {
            struct rm_sb_entry *e = rm_seg_sb(seg, sb);
            /* relaxed (pid and served): counted under the seqlock; a live
             * worker's served only grows (its relaxed store). */
            if (atomic_load_explicit(&e->pid, memory_order_relaxed) != 0 && e->role == RM_ROLE_WORKER)
                lv += atomic_load_explicit(&e->served, memory_order_relaxed);
        }
        /* acquire fence: pairs with the master's release fence after its odd
         * seq store; if any load above saw a store of a step, seq moved. */
        atomic_thread_fence(memory_order_acquire);
        uint32_t s2 = atomic_load_explicit(&ms->served_seq, memory_order_relaxed);
        *live = lv;
        *exited = ex;
        if (!(s1 & 1) && s1 == s2)
            return;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

static void sample_pool(const struct rm_seg *seg, unsigned i, struct pool_sample *ps)
{
    static bool warned[RM_SHM_MAX_POOLS];
    memset(ps, 0, sizeof *ps);
    struct rm_shm_pool *p = rm_seg_pool(seg, i);
    /* acquire: pairs with the master's release store of active
     * (rm_seg_pool_add): the descriptor below is complete. */
    if (!atomic_load_explicit(&p->active, memory_order_acquire))
        return;
    /* A private, validated copy of the geometry: a scribbled descriptor
     * cannot make ctl read outside the mapping. */
    struct rm_pool_view v;
    if (rm_pool_view_open(seg, i, &v) < 0) {
        if (!warned[i])
            fprintf(stderr, "ringmasterctl: pool %u: descriptor out of bounds of the shared memory: "
                    "skipped\n", i);
        warned[i] = true;
        return;
    }
    ps->active = true;
    copy_str(ps->name, p->name, sizeof p->name);
    copy_str(ps->handler, p->handler, sizeof p->handler);
    /* acquire: pairs with the master's release store of failed. */
    ps->failed = atomic_load_explicit(&p->failed, memory_order_acquire) != 0;
    ps->nslots = v.nslots;
    for (uint32_t s = 0; s < v.nslots; s++) /* the view's private bound */
        ps->queue += RM_SLOT_STATE(rm_slot_load(&v.states[s])) != RM_SLOT_FREE;
    /* The private copy of max_gateways (rm_seg_attach validated the gw
     * memfd's size for it), never the header's. */
    for (unsigned g = 0; g < seg->max_gateways; g++) {
        struct rm_gw_stats *st = rm_seg_gw_stats(seg, g, i);
        /* relaxed: counters (single writer: that gateway), summed for display. */
        for (unsigned c = 0; c < RM_CODE_N; c++)
            ps->codes[c] += atomic_load_explicit(&st->codes[c], memory_order_relaxed);
        for (unsigned b = 0; b <= RM_HIST_BUCKETS; b++)
            ps->dur_hist[b] += atomic_load_explicit(&st->dur_hist[b], memory_order_relaxed);
        for (unsigned r = 0; r < RM_STREAM_RESULTS; r++)
            ps->streams[r] += atomic_load_explicit(&st->streams[r], memory_order_relaxed);
    }
    pool_served(seg, i, &ps->served_live, &ps->served_exited);
}

static int sample_procs(const struct rm_seg *seg, struct sample *s)
{
    s->nprocs = 0;
    if (s->procs_cap < seg->nprocs) {
        free(s->procs);
        s->procs = calloc(seg->nprocs, sizeof *s->procs);
        s->procs_cap = s->procs ? seg->nprocs : 0;
        if (!s->procs) {
            fprintf(stderr, "ringmasterctl: calloc(%u processes): %s\n", seg->nprocs, strerror(errno));
            return -1;
        }
    }
    /* Bounds: the private copies rm_seg_attach validated, not the header. */
    for (unsigned sb = 0; sb < seg->nprocs; sb++) {
        struct rm_sb_entry *e = rm_seg_sb(seg, sb);
        /* acquire: pairs with the master's release store of pid (spawn). */
        int pid = atomic_load_explicit(&e->pid, memory_order_acquire);
        if (pid <= 0) /* free, or a reservation given up (-1) */
            continue;
        struct proc_sample *ps = &s->procs[s->nprocs++];
        ps->pid = pid;
        ps->sb = sb;
        ps->role = e->role;
        /* The pool is where the master put the entry (see the top). */
        ps->pool = sb < seg->max_gateways ? NO_POOL : (sb - seg->max_gateways) / RM_SB_PER_POOL;
        if (ps->pool > NO_POOL)
            ps->pool = NO_POOL;
        ps->index = e->index;
        ps->generation = e->generation;
        /* acquire: pairs with the process's release stores of its state:
         * a BUSY state's cur_start_ns (stored before it) is visible. */
        ps->state = atomic_load_explicit(&e->state, memory_order_acquire);
        /* relaxed (the three): a counter and timestamps, shown only. */
        ps->served = atomic_load_explicit(&e->served, memory_order_relaxed);
        uint64_t hb = atomic_load_explicit(&e->heartbeat_ns, memory_order_relaxed);
        ps->heartbeat_age_ms = s->now_ns > hb ? (s->now_ns - hb) / 1e6 : 0;
        ps->busy_s = -1;
        if (ps->state == RM_PROC_BUSY) {
            uint64_t start = atomic_load_explicit(&e->cur_start_ns, memory_order_relaxed);
            ps->busy_s = s->now_ns > start ? (s->now_ns - start) / 1e9 : 0;
        }
        ps->rss_kb = rss_kb_of(pid, s->master_pid);
    }
    return 0;
}

/* Attach the running master's memory and copy one sample out of it. 0, or
 * 1 with the reason on stderr. */
static int sample_take(const struct rm_config *cfg, struct sample *s)
{
    char path[4096];
    rm_pidfile_path(cfg, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ringmasterctl: open %s: %s (is ringmaster running?)\n", path, strerror(errno));
        return 1;
    }
    int pid = 0;
    char extra;
    int ok = fscanf(f, "%d", &pid) == 1 && fscanf(f, " %c", &extra) != 1;
    fclose(f);
    if (!ok || pid <= 0) {
        fprintf(stderr, "ringmasterctl: %s: malformed (expected one pid)\n", path);
        return 1;
    }
    struct rm_seg seg;
    char err[512];
    if (rm_seg_attach_pid(&seg, pid, err, sizeof err) < 0) {
        fprintf(stderr, "ringmasterctl: %s\n", err);
        return 1;
    }
    if (seg.hdr->master_pid != pid) {
        fprintf(stderr, "ringmasterctl: segment belongs to pid %d, pid file says %d\n", seg.hdr->master_pid,
                pid);
        rm_seg_close(&seg);
        return 1;
    }
    s->master_pid = pid;
    s->birth_ns = seg.hdr->birth_mono_ns;
    s->now_ns = rm_now_ns();
    /* acquire: pairs with the master's release stores of unready and draining (master.c). */
    s->draining = atomic_load_explicit(&seg.hdr->unready, memory_order_acquire) != 0 ||
                  atomic_load_explicit(&seg.hdr->draining, memory_order_acquire) != 0;
    /* relaxed: a counter, printed only (the master's relaxed add). */
    s->reloads = atomic_load_explicit(&seg.hdr->reloads, memory_order_relaxed);
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++)
        sample_pool(&seg, i, &s->pools[i]);
    memset(s->other, 0, sizeof s->other);
    for (unsigned g = 0; g < seg.max_gateways; g++)
        for (unsigned c = 0; c < RM_CODE_N; c++)
            /* relaxed: counters (single writer: that gateway), summed. */
            s->other[c] += atomic_load_explicit(&rm_seg_gw_stats(&seg, g, RM_GW_SERVER)->codes[c],
                                                memory_order_relaxed);
    int rc = sample_procs(&seg, s) < 0 ? 1 : 0;
    rm_seg_close(&seg);
    return rc;
}

/* ------------------------------------------------------------------ what two samples say */

/* Rates need an earlier sample of the same master. */
static bool comparable(const struct sample *prev, const struct sample *cur)
{
    return prev && prev->master_pid == cur->master_pid && prev->birth_ns == cur->birth_ns &&
           cur->now_ns > prev->now_ns;
}

/* cur - prev, counter by counter (a counter never goes down; if it seems
 * to, that counter's difference is 0). */
static void diff(uint64_t *out, const uint64_t *cur, const uint64_t *prev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = prev && cur[i] > prev[i] ? cur[i] - prev[i] : prev ? 0 : cur[i];
}

static uint64_t sum(const uint64_t *v, size_t n)
{
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += v[i];
    return t;
}

/* Answers of status 400 or more. */
static uint64_t errors(const uint64_t codes[RM_CODE_N])
{
    uint64_t t = 0;
    for (unsigned c = RM_CODE_400; c < RM_CODE_N; c++)
        t += codes[c];
    return t;
}

static const double quantiles[] = {0.5, 0.9, 0.99};
static const char *const quantile_names[] = {"p50", "p90", "p99"};
#define NQ (sizeof quantiles / sizeof quantiles[0])

/* ------------------------------------------------------------------ text */

/* Three significant digits: "840 us", "2.62 ms", "1 ms", "4.5 s", "1234 s". */
static void fmt_dur(char *buf, size_t len, double s)
{
    if (s < 0.0009995)
        snprintf(buf, len, "%.0f us", s * 1e6);
    else if (s < 0.9995)
        snprintf(buf, len, "%.3g ms", s * 1e3);
    else if (s < 99.95)
        snprintf(buf, len, "%.3g s", s);
    else
        snprintf(buf, len, "%.0f s", s);
}

static void fmt_quantile(char *buf, size_t len, struct rm_quantile q)
{
    char d[32];
    fmt_dur(d, sizeof d, q.s);
    switch (q.kind) {
    case RM_Q_NONE: snprintf(buf, len, "-"); break;
    case RM_Q_LE: snprintf(buf, len, "<= %s", d); break;
    case RM_Q_GT: snprintf(buf, len, "> %s", d); break;
    case RM_Q_IN: snprintf(buf, len, "%s", d); break;
    }
}

static void print_latency(const uint64_t hist[RM_HIST_BUCKETS + 1])
{
    for (size_t q = 0; q < NQ; q++) {
        char b[48];
        fmt_quantile(b, sizeof b, rm_hist_quantile(hist, quantiles[q]));
        printf("%s %s %s", q ? "," : "", quantile_names[q], b);
    }
}

/* "200: 152, 503: 3" for the nonzero counters, or "none". */
static void print_codes(const uint64_t codes[RM_CODE_N])
{
    int any = 0;
    for (unsigned c = 0; c < RM_CODE_N; c++)
        if (codes[c]) {
            printf("%s%s: %llu", any ? ", " : "", rm_code_name(c), (unsigned long long)codes[c]);
            any = 1;
        }
    if (!any)
        printf("none");
}

static void fmt_rss(char *buf, size_t len, long kb)
{
    if (kb < 0)
        snprintf(buf, len, "-");
    else if (kb >= 1024)
        snprintf(buf, len, "%.1f MiB", kb / 1024.0);
    else
        snprintf(buf, len, "%ld KiB", kb);
}

static void print_proc(const struct proc_sample *p)
{
    char what[64], doing[64], rss[32];
    if (p->role == RM_ROLE_WORKER)
        snprintf(what, sizeof what, "worker %u", p->index);
    else if (p->role == RM_ROLE_GATEWAY)
        snprintf(what, sizeof what, "gateway %u", p->index);
    else
        snprintf(what, sizeof what, "%s", rm_role_name(p->role));
    if (p->busy_s >= 0) {
        char d[32];
        fmt_dur(d, sizeof d, p->busy_s);
        snprintf(doing, sizeof doing, "busy for %s", d);
    } else {
        snprintf(doing, sizeof doing, "%s", rm_proc_state_name(p->state));
    }
    fmt_rss(rss, sizeof rss, p->rss_kb);
    printf("  pid %-8d %-12s gen %-4u %-22s", p->pid, what, p->generation, doing);
    if (p->role == RM_ROLE_WORKER)
        printf(" served %-10llu", (unsigned long long)p->served);
    else
        printf(" %-17s", "");
    printf(" rss %s\n", rss);
}

static void print_text(const struct sample *cur, const struct sample *prev, double dt)
{
    printf("ringmaster %s: master pid %d, up %.0f s%s, %u reload(s); ", PACKAGE_VERSION, cur->master_pid,
           (cur->now_ns - cur->birth_ns) / 1e9, cur->draining ? ", STOPPING" : "", cur->reloads);
    if (prev)
        printf("rates over the last %.1f s\n", dt);
    else
        printf("one look, no rates\n");
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct pool_sample *p = &cur->pools[i];
        if (!p->active)
            continue;
        printf("pool %-16s handler %-10s %s queue %u/%u  "
               "workers: %u ready, %u busy, %u starting, %u draining\n",
               p->name, p->handler, p->failed ? "FAILED" : "ok    ", p->queue, p->nslots,
               p->workers[RM_PROC_READY], p->workers[RM_PROC_BUSY], p->workers[RM_PROC_STARTING],
               p->workers[RM_PROC_DRAINING]);
        if (prev) {
            const struct pool_sample *q = prev->pools[i].active ? &prev->pools[i] : NULL;
            uint64_t d[RM_CODE_N], h[RM_HIST_BUCKETS + 1];
            diff(d, p->codes, q ? q->codes : NULL, RM_CODE_N);
            diff(h, p->dur_hist, q ? q->dur_hist : NULL, RM_HIST_BUCKETS + 1);
            printf("  last %.1f s:  %.1f req/s, %.1f errors/s;  answers ", dt, sum(d, RM_CODE_N) / dt,
                   errors(d) / dt);
            print_codes(d);
            printf(";  latency");
            print_latency(h);
            printf("\n");
        }
        printf("  since start: answers ");
        print_codes(p->codes);
        printf(";  latency");
        print_latency(p->dur_hist);
        printf("\n");
        printf("  served %llu in all: %llu by live workers, %llu by exited ones\n",
               (unsigned long long)(p->served_live + p->served_exited), (unsigned long long)p->served_live,
               (unsigned long long)p->served_exited);
        if (p->streams[RM_STREAMS_STARTED]) {
            /* Counters read one by one while streams go on: open is an
             * estimate, clamped at 0. */
            uint64_t s = p->streams[RM_STREAMS_STARTED], ended = 0;
            printf("  streams since start: %llu started", (unsigned long long)s);
            for (unsigned r = 0; r < RM_STREAM_RESULTS; r++)
                if (r != RM_STREAMS_STARTED) {
                    ended += p->streams[r];
                    printf(", %llu %s", (unsigned long long)p->streams[r], rm_stream_result_name(r));
                }
            printf(", %llu open\n", (unsigned long long)(s > ended ? s - ended : 0));
        }
        for (size_t k = 0; k < cur->nprocs; k++)
            if (cur->procs[k].pool == i)
                print_proc(&cur->procs[k]);
    }
    printf("other answers (health, metadata, metrics, unknown paths, bad requests): ");
    if (prev) {
        uint64_t d[RM_CODE_N];
        diff(d, cur->other, prev->other, RM_CODE_N);
        printf("last %.1f s: ", dt);
        print_codes(d);
        printf(";  ");
    }
    printf("since start: ");
    print_codes(cur->other);
    printf("\n");
    /* Gateways, and the workers of a pool a reload removed (still draining). */
    for (size_t k = 0; k < cur->nprocs; k++)
        if (cur->procs[k].pool == NO_POOL || !cur->pools[cur->procs[k].pool].active)
            print_proc(&cur->procs[k]);
}

/* ------------------------------------------------------------------ JSON */

/* A string as a JSON string body: quotes, backslashes and control bytes
 * escaped (names come from shared memory). */
static void json_str(const char *sv)
{
    for (size_t i = 0; sv[i]; i++) {
        unsigned char ch = (unsigned char)sv[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
}

static void json_codes(const uint64_t codes[RM_CODE_N])
{
    printf("{");
    for (unsigned c = 0; c < RM_CODE_N; c++)
        printf("%s\"%s\":%llu", c ? "," : "", rm_code_name(c), (unsigned long long)codes[c]);
    printf("}");
}

/* {"count":N,"p50":{"s":0.0042,"cmp":"~"},...}; a quantile of nothing is null. */
static void json_latency(const uint64_t hist[RM_HIST_BUCKETS + 1])
{
    printf("{\"count\":%llu", (unsigned long long)sum(hist, RM_HIST_BUCKETS + 1));
    for (size_t q = 0; q < NQ; q++) {
        struct rm_quantile r = rm_hist_quantile(hist, quantiles[q]);
        static const char *const cmp[] = {
            [RM_Q_NONE] = "", [RM_Q_LE] = "<=", [RM_Q_IN] = "~", [RM_Q_GT] = ">",
        };
        if (r.kind == RM_Q_NONE)
            printf(",\"%s\":null", quantile_names[q]);
        else
            printf(",\"%s\":{\"s\":%.6f,\"cmp\":\"%s\"}", quantile_names[q], r.s, cmp[r.kind]);
    }
    printf("}");
}

static void print_json(const struct sample *cur, const struct sample *prev, double dt)
{
    printf("{\"master_pid\":%d,\"uptime_s\":%.1f,\"draining\":%s,\"reloads\":%u,\"interval_s\":%.6f,"
           "\"pools\":[",
           cur->master_pid, (cur->now_ns - cur->birth_ns) / 1e9, cur->draining ? "true" : "false",
           cur->reloads, prev ? dt : 0.0);
    int first = 1;
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct pool_sample *p = &cur->pools[i];
        if (!p->active)
            continue;
        printf("%s{\"name\":\"", first ? "" : ",");
        json_str(p->name);
        printf("\",\"handler\":\"");
        json_str(p->handler);
        printf("\",\"failed\":%s,\"queue\":%u,\"queue_depth\":%u,"
               "\"workers\":{\"starting\":%u,\"ready\":%u,\"busy\":%u,\"draining\":%u},"
               "\"served\":%llu,\"served_exited\":%llu,\"served_total\":%llu,",
               p->failed ? "true" : "false", p->queue, p->nslots, p->workers[RM_PROC_STARTING],
               p->workers[RM_PROC_READY], p->workers[RM_PROC_BUSY], p->workers[RM_PROC_DRAINING],
               (unsigned long long)p->served_live, (unsigned long long)p->served_exited,
               (unsigned long long)(p->served_live + p->served_exited));
        if (prev) {
            const struct pool_sample *q = prev->pools[i].active ? &prev->pools[i] : NULL;
            uint64_t d[RM_CODE_N], h[RM_HIST_BUCKETS + 1];
            diff(d, p->codes, q ? q->codes : NULL, RM_CODE_N);
            diff(h, p->dur_hist, q ? q->dur_hist : NULL, RM_HIST_BUCKETS + 1);
            printf("\"requests_per_s\":%.3f,\"errors_per_s\":%.3f,\"answers_last\":", sum(d, RM_CODE_N) / dt,
                   errors(d) / dt);
            json_codes(d);
            printf(",\"latency_last\":");
            json_latency(h);
        } else {
            printf("\"requests_per_s\":null,\"errors_per_s\":null,\"answers_last\":null,"
                   "\"latency_last\":null");
        }
        printf(",\"answers\":");
        json_codes(p->codes);
        printf(",\"latency\":");
        json_latency(p->dur_hist);
        printf(",\"streams\":{");
        for (unsigned r = 0; r < RM_STREAM_RESULTS; r++)
            printf("%s\"%s\":%llu", r ? "," : "", rm_stream_result_name(r), (unsigned long long)p->streams[r]);
        printf("}}");
        first = 0;
    }
    printf("],\"other_answers\":");
    json_codes(cur->other);
    printf(",\"other_answers_last\":");
    if (prev) {
        uint64_t d[RM_CODE_N];
        diff(d, cur->other, prev->other, RM_CODE_N);
        json_codes(d);
    } else {
        printf("null");
    }
    printf(",\"processes\":[");
    for (size_t k = 0; k < cur->nprocs; k++) {
        const struct proc_sample *p = &cur->procs[k];
        printf("%s{\"pid\":%d,\"role\":\"%s\",\"pool\":%u,\"index\":%u,\"generation\":%u,\"state\":\"%s\","
               "\"served\":%llu,\"heartbeat_age_ms\":%.0f,",
               k ? "," : "", p->pid, rm_role_name(p->role), p->pool == NO_POOL ? 0 : p->pool, p->index,
               p->generation, rm_proc_state_name(p->state), (unsigned long long)p->served,
               p->heartbeat_age_ms);
        if (p->busy_s >= 0)
            printf("\"busy_s\":%.3f,", p->busy_s);
        else
            printf("\"busy_s\":null,");
        if (p->rss_kb >= 0)
            printf("\"rss_kb\":%ld}", p->rss_kb);
        else
            printf("\"rss_kb\":null}");
    }
    printf("]}\n");
}

/* ------------------------------------------------------------------ the command */

/* Workers by state per pool, from the entries of each pool's range. */
static void count_workers(struct sample *s)
{
    for (size_t k = 0; k < s->nprocs; k++) {
        const struct proc_sample *p = &s->procs[k];
        if (p->role == RM_ROLE_WORKER && p->pool < RM_SHM_MAX_POOLS && p->state < RM_PROC_NSTATES)
            s->pools[p->pool].workers[p->state]++;
    }
}

static volatile sig_atomic_t stop_watch;

static void on_stop(int sig)
{
    (void)sig;
    stop_watch = 1;
}

/* Sleep until the absolute CLOCK_MONOTONIC time at; false if told to stop. */
static bool sleep_until(const struct timespec *at)
{
    while (!stop_watch) {
        int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, at, NULL);
        if (r == 0)
            return !stop_watch;
        if (r != EINTR) {
            fprintf(stderr, "ringmasterctl: clock_nanosleep: %s\n", strerror(r));
            return false;
        }
    }
    return false;
}

static void add_seconds(struct timespec *t, double s)
{
    time_t whole = (time_t)s; /* s >= 0 */
    t->tv_sec += whole;
    t->tv_nsec += (long)((s - (double)whole) * 1e9);
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

int rm_status_run(const struct rm_config *cfg, const struct rm_status_opts *o)
{
    struct sample a = {0}, b = {0};
    struct sample *prev = &a, *cur = &b;
    int rc = sample_take(cfg, prev);
    if (rc)
        goto out;
    count_workers(prev);
    if (o->interval_s <= 0) {
        if (o->json)
            print_json(prev, NULL, 0);
        else
            print_text(prev, NULL, 0);
        goto out;
    }
    if (o->watch) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop; /* no SA_RESTART: the sleep returns at once */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    bool tty = isatty(STDOUT_FILENO);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (unsigned screen = 0;; screen++) {
        add_seconds(&next, o->interval_s);
        if (!sleep_until(&next))
            break; /* told to stop: a watch ends with 0 */
        rc = sample_take(cfg, cur);
        if (rc)
            break;
        count_workers(cur);
        const struct sample *p = comparable(prev, cur) ? prev : NULL;
        double dt = p ? (cur->now_ns - p->now_ns) / 1e9 : 0;
        if (o->watch && !o->json)
            /* clear the terminal, or a blank line between screens */
            fputs(tty ? "\033[H\033[2J" : screen ? "\n" : "", stdout);
        if (o->json)
            print_json(cur, p, dt);
        else
            print_text(cur, p, dt);
        fflush(stdout);
        if (!o->watch)
            break;
        struct sample *t = prev;
        prev = cur;
        cur = t;
    }
out:
    free(a.procs);
    free(b.procs);
    return rc;
}
