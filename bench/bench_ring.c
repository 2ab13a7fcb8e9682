/*
 * bench_ring.c - cross-process benchmark: our crash-tolerant MPMC ring
 * (shm/ring.c) against Concurrency Kit's ck_ring MPMC, side by side.
 *
 * Both rings (1024 cells each; ck_ring's struct and its buffer too) live in
 * one MAP_SHARED|MAP_ANONYMOUS mapping made before fork(). ck_ring keeps no
 * pointer in its struct: each process computes the buffer address from the
 * mapping base and passes it per call.
 *
 * Cases: 1 producer + 1 consumer, 2 producers + 2 consumers. Each producer
 * enqueues N values; consumers dequeue until the shared count of consumed
 * values reaches the total. Both implementations use the same spin policy on
 * FULL / EMPTY (pause, sched_yield() every -y K failed attempts) and
 * the same values. All processes wait on a shared start flag; the parent
 * reads CLOCK_MONOTONIC just before raising it, each consumer stamps
 * CLOCK_MONOTONIC when it is done, and the parent takes the latest stamp as
 * the end (CLOCK_MONOTONIC is system-wide, so the stamps are comparable and
 * the parent does not have to spin on a CPU the children need).
 *
 * Each (case, implementation) is run R times, implementations alternating,
 * and the median is reported. Correctness: count, sum and xor of consumed
 * values must equal those produced, else exit 1.
 *
 * Usage: bench_ring [-n items_per_producer] [-r repeats] [-y yield_every]
 *                   [-t timeout_s] [-q] [-a] [-v]
 * -a pins producer i to CPU i and consumer j to CPU j+1 (mod #CPUs); by
 * default the scheduler places the processes. -v prints each run and, per
 * process, FULL/EMPTY failures, yields and context switches on stderr.
 * Last output line: "ratio_vs_ck_ring X.XX" = ringmaster ns/pair divided by
 * ck_ring ns/pair, 2p2c case, medians.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ck_ring.h>

#include "shm/layout.h"
#include "shm/ring.h"

#define RING_CELLS 1024u
#define MAX_PROCS 8          /* producers + consumers of one case */
#define FLUSH_EVERY 256u     /* consumers publish their count this often */
#define PAGE 4096u

enum impl { IMPL_RM = 0, IMPL_CK = 1, IMPL_N };
static const char *const impl_name[IMPL_N] = { "ringmaster", "ck_ring" };

struct bcase {
    const char *name;
    unsigned nprod, ncons;
};
static const struct bcase cases[] = {
    { "1p1c", 1, 1 },
    { "2p2c", 2, 2 },
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Per-process results, one cache line each (written by that process only). */
struct proc_result {
    alignas(RM_CACHELINE) uint64_t count;
    uint64_t sum;
    uint64_t xor;
    uint64_t end_ns;   /* consumers: CLOCK_MONOTONIC when done */
    uint64_t fails;    /* FULL (producers) or EMPTY (consumers) results */
    uint64_t yields;   /* sched_yield() calls of the spin policy */
    uint64_t nvcsw, nivcsw;  /* voluntary / involuntary context switches */
};

/* Control block at offset 0 of the mapping. */
struct ctl {
    alignas(RM_CACHELINE) _Atomic uint32_t ready;     /* children at the gate */
    alignas(RM_CACHELINE) _Atomic uint32_t start;     /* parent: release */
    alignas(RM_CACHELINE) _Atomic uint64_t consumed;  /* consumers: batched adds */
    struct proc_result res[MAX_PROCS];
};

/* Offsets inside the mapping, each region page aligned. */
static size_t off_rm, off_ck, off_ckbuf, map_size;

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

static unsigned yield_every = 64;
static uint64_t n_fails, n_yields;  /* per process, reported with -v */

/* The one spin policy, shared by both implementations (FULL and EMPTY). */
static inline void backoff(unsigned *spins)
{
    n_fails++;
    if (++*spins % yield_every == 0) {
        n_yields++;
        sched_yield();
    } else {
        cpu_relax();
    }
}

static void record_stats(struct proc_result *res)
{
    struct rusage ru;
    res->fails = n_fails;
    res->yields = n_yields;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        res->nvcsw = (uint64_t)ru.ru_nvcsw;
        res->nivcsw = (uint64_t)ru.ru_nivcsw;
    }
}

/* Value number i of producer p: in [0, RM_RING_MAX_VALUE], same for both. */
static inline uint32_t value_of(unsigned p, uint64_t n, uint64_t i)
{
    return (uint32_t)(((uint64_t)p * n + i) % (RM_RING_MAX_VALUE + 1));
}

/* ------------------------------------------------------------------ ops */

static inline bool try_put(enum impl impl, unsigned char *base, uint32_t v)
{
    if (impl == IMPL_RM)
        return rm_ring_enqueue((struct rm_ring *)(base + off_rm), v) == RM_RING_OK;
    return ck_ring_enqueue_mpmc((ck_ring_t *)(base + off_ck),
                                (ck_ring_buffer_t *)(base + off_ckbuf),
                                (const void *)(uintptr_t)v);
}

static inline bool try_get(enum impl impl, unsigned char *base, uint32_t *v)
{
    if (impl == IMPL_RM)
        return rm_ring_dequeue((struct rm_ring *)(base + off_rm), v, NULL, 0) == RM_RING_OK;
    void *p;
    if (!ck_ring_dequeue_mpmc((ck_ring_t *)(base + off_ck),
                              (const ck_ring_buffer_t *)(base + off_ckbuf), &p))
        return false;
    *v = (uint32_t)(uintptr_t)p;
    return true;
}

/* ------------------------------------------------------------------ children */

static void wait_start(struct ctl *c)
{
    atomic_fetch_add_explicit(&c->ready, 1, memory_order_relaxed);
    unsigned spins = 0;
    /* Pairs with the parent's release store of start. */
    while (!atomic_load_explicit(&c->start, memory_order_acquire)) {
        if (++spins % 16 == 0)
            sched_yield();
        else
            cpu_relax();
    }
}

static void producer(enum impl impl, unsigned char *base, unsigned p, uint64_t n)
{
    struct ctl *c = (struct ctl *)base;
    uint64_t sum = 0, x = 0;
    wait_start(c);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v = value_of(p, n, i);
        unsigned spins = 0;
        while (!try_put(impl, base, v))
            backoff(&spins);
        sum += v;
        x ^= v;
    }
    c->res[p].count = n;
    c->res[p].sum = sum;
    c->res[p].xor = x;
    record_stats(&c->res[p]);
}

static void consumer(enum impl impl, unsigned char *base, unsigned slot, uint64_t total)
{
    struct ctl *c = (struct ctl *)base;
    uint64_t sum = 0, x = 0, count = 0, unflushed = 0;
    unsigned spins = 0;
    wait_start(c);
    for (;;) {
        uint32_t v;
        if (try_get(impl, base, &v)) {
            sum += v;
            x ^= v;
            count++;
            spins = 0;
            if (++unflushed == FLUSH_EVERY) {
                atomic_fetch_add_explicit(&c->consumed, unflushed, memory_order_relaxed);
                unflushed = 0;
            }
            continue;
        }
        /* EMPTY: publish what we hold, then see whether everyone is done.
         * Every consumer flushes on EMPTY, so once the last value is taken
         * the count reaches total. */
        if (unflushed) {
            atomic_fetch_add_explicit(&c->consumed, unflushed, memory_order_relaxed);
            unflushed = 0;
        }
        if (atomic_load_explicit(&c->consumed, memory_order_relaxed) >= total)
            break;
        backoff(&spins);
    }
    c->res[slot].end_ns = now_ns();
    c->res[slot].count = count;
    c->res[slot].sum = sum;
    c->res[slot].xor = x;
    record_stats(&c->res[slot]);
}

/* ------------------------------------------------------------------ one run */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static bool verbose;  /* -v: every run and per-process spin stats on stderr */
static bool pin;  /* -a: producer i on CPU i, consumer j on CPU j+1 (mod ncpu) */

static void pin_self(unsigned cpu)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (unsigned)ncpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        perror("bench_ring: sched_setaffinity");
}

/* Returns wall ns of the run; exits 1 on any failure. */
static uint64_t run_once(unsigned char *base, const struct bcase *bc, enum impl impl,
                         uint64_t n, unsigned timeout_s)
{
    struct ctl *c = (struct ctl *)base;
    unsigned nproc = bc->nprod + bc->ncons;
    uint64_t total = n * bc->nprod;
    pid_t pids[MAX_PROCS];

    /* No process uses the rings now: reinitialise both. */
    memset(c, 0, sizeof *c);
    if (rm_ring_init((struct rm_ring *)(base + off_rm), RING_CELLS) != 0) {
        fprintf(stderr, "bench_ring: rm_ring_init failed\n");
        exit(1);
    }
    ck_ring_init((ck_ring_t *)(base + off_ck), RING_CELLS);
    memset(base + off_ckbuf, 0, RING_CELLS * sizeof(ck_ring_buffer_t));

    for (unsigned i = 0; i < nproc; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            alarm(timeout_s);  /* a hang kills the child: parent reports it */
            if (pin)
                pin_self(i < bc->nprod ? i : i - bc->nprod + 1);
            if (i < bc->nprod)
                producer(impl, base, i, n);
            else
                consumer(impl, base, i, total);
            _exit(0);
        }
        pids[i] = pid;
    }

    /* Everyone at the gate (sleep, do not take a CPU from them). */
    while (atomic_load_explicit(&c->ready, memory_order_relaxed) < nproc) {
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
    }
    uint64_t t0 = now_ns();
    atomic_store_explicit(&c->start, 1, memory_order_release);

    bool failed = false;
    for (unsigned i = 0; i < nproc; i++) {
        int st;
        while (waitpid(pids[i], &st, 0) < 0) {
            if (errno != EINTR)
                die("waitpid");
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (WIFSIGNALED(st))
                fprintf(stderr, "bench_ring: %s %s: child %u killed by signal %d%s\n",
                        bc->name, impl_name[impl], i, WTERMSIG(st),
                        WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
            else
                fprintf(stderr, "bench_ring: %s %s: child %u exited with %d\n",
                        bc->name, impl_name[impl], i, WEXITSTATUS(st));
            failed = true;
        }
    }
    if (failed)
        exit(1);

    /* Children are reaped: their stores to the mapping are visible. */
    uint64_t pc = 0, ps = 0, px = 0, cc = 0, cs = 0, cx = 0, end = 0;
    for (unsigned i = 0; i < bc->nprod; i++) {
        pc += c->res[i].count;
        ps += c->res[i].sum;
        px ^= c->res[i].xor;
    }
    for (unsigned i = bc->nprod; i < nproc; i++) {
        cc += c->res[i].count;
        cs += c->res[i].sum;
        cx ^= c->res[i].xor;
        if (c->res[i].end_ns > end)
            end = c->res[i].end_ns;
    }
    if (pc != total || cc != total || cs != ps || cx != px) {
        fprintf(stderr,
                "bench_ring: %s %s: MISMATCH produced count=%" PRIu64 " sum=%" PRIu64
                " xor=%#" PRIx64 ", consumed count=%" PRIu64 " sum=%" PRIu64 " xor=%#" PRIx64 "\n",
                bc->name, impl_name[impl], pc, ps, px, cc, cs, cx);
        exit(1);
    }
    if (verbose) {
        for (unsigned i = 0; i < nproc; i++)
            fprintf(stderr, "#   %s %s %c%u: fails=%" PRIu64 " yields=%" PRIu64
                    " csw=%" PRIu64 "/%" PRIu64 "\n", bc->name, impl_name[impl],
                    i < bc->nprod ? 'p' : 'c', i < bc->nprod ? i : i - bc->nprod,
                    c->res[i].fails, c->res[i].yields, c->res[i].nvcsw, c->res[i].nivcsw);
    }
    if (end < t0) {
        fprintf(stderr, "bench_ring: %s %s: bad end stamp\n", bc->name, impl_name[impl]);
        exit(1);
    }
    return end - t0;
}

/* ------------------------------------------------------------------ main */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median(uint64_t *v, unsigned r)
{
    qsort(v, r, sizeof *v, cmp_u64);
    if (r % 2)
        return (double)v[r / 2];
    return ((double)v[r / 2 - 1] + (double)v[r / 2]) / 2.0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_ring [-n items_per_producer] [-r repeats] [-y yield_every]\n"
            "                  [-t timeout_s] [-q] [-a] [-v]\n"
            "  -n N  values per producer (default 2000000)\n"
            "  -r R  runs per case and implementation, median reported (default 5)\n"
            "  -y K  sched_yield() every K failed attempts on FULL/EMPTY (default 64)\n"
            "  -t S  per-run child timeout in seconds (default 300)\n"
            "  -q    quick: N=200000, R=3\n"
            "  -a    pin: producer i on CPU i, consumer j on CPU j+1 (mod #CPUs)\n"
            "  -v    print every run on stderr\n");
    exit(2);
}

static unsigned long parse_ul(const char *s, unsigned long min, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    uint64_t n = 2000000;
    unsigned reps = 5, timeout_s = 300;
    int opt;

    while ((opt = getopt(argc, argv, "n:r:y:t:qavh")) != -1) {
        switch (opt) {
        case 'n': n = parse_ul(optarg, 1, UINT32_MAX); break;
        case 'r': reps = (unsigned)parse_ul(optarg, 1, 1000); break;
        case 'y': yield_every = (unsigned)parse_ul(optarg, 1, 1u << 30); break;
        case 't': timeout_s = (unsigned)parse_ul(optarg, 1, 86400); break;
        case 'q': n = 200000; reps = 3; break;
        case 'a': pin = true; break;
        case 'v': verbose = true; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();

    off_rm = round_up(sizeof(struct ctl), PAGE);
    off_ck = off_rm + round_up(rm_ring_bytes(RING_CELLS), PAGE);
    off_ckbuf = off_ck + round_up(sizeof(ck_ring_t), PAGE);
    map_size = off_ckbuf + round_up(RING_CELLS * sizeof(ck_ring_buffer_t), PAGE);

    unsigned char *base = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        die("mmap");

    uint64_t *ns = calloc((size_t)NCASES * IMPL_N * reps, sizeof *ns);
    if (!ns)
        die("calloc");
#define NS(ci, im, r) ns[((size_t)(ci) * IMPL_N + (im)) * reps + (r)]

    for (unsigned r = 0; r < reps; r++) {
        for (unsigned ci = 0; ci < NCASES; ci++) {
            for (unsigned k = 0; k < IMPL_N; k++) {
                /* Alternate which implementation goes first. */
                enum impl im = (enum impl)((k + r + ci) % IMPL_N);
                uint64_t t = run_once(base, &cases[ci], im, n, timeout_s);
                NS(ci, im, r) = t;
                if (verbose)
                    fprintf(stderr, "# run %u %s %-10s %8.2f ns/pair\n", r, cases[ci].name,
                            impl_name[im], (double)t / (double)(n * cases[ci].nprod));
            }
        }
    }

    printf("# items/producer=%" PRIu64 " runs=%u ring=%u cells yield_every=%u cpus=%ld%s\n",
           n, reps, RING_CELLS, yield_every, sysconf(_SC_NPROCESSORS_ONLN),
           pin ? " pinned" : "");
    printf("%-6s %-10s %9s %8s %9s %9s\n", "case", "impl", "ns/pair", "Mops/s", "ns_min",
           "ns_max");
    double med[NCASES][IMPL_N];
    for (unsigned ci = 0; ci < NCASES; ci++) {
        double items = (double)(n * cases[ci].nprod);
        for (unsigned im = 0; im < IMPL_N; im++) {
            uint64_t *v = &NS(ci, im, 0);
            double m = median(v, reps) / items;  /* v is now sorted */
            med[ci][im] = m;
            printf("%-6s %-10s %9.2f %8.2f %9.2f %9.2f\n", cases[ci].name, impl_name[im], m,
                   1e3 / m, (double)v[0] / items, (double)v[reps - 1] / items);
        }
    }
    /* The 2p2c case is cases[1]. */
    printf("ratio_vs_ck_ring %.2f\n", med[1][IMPL_RM] / med[1][IMPL_CK]);
    fflush(stdout);
    free(ns);
    munmap(base, map_size);
    return 0;
}
