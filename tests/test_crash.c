/*
 * test_crash.c - multi-process torture of the ring, the slots and recovery.
 *
 * A test master forks producer processes (gateway role) and consumer
 * processes (worker role) that run the shipped request protocol
 * (shm/request.c: claim, publish, poll, release; take, finish, wait), so the
 * crash points fire inside the code gateways and workers run.
 * It reaps, runs the real rm_recover_process() after every death and
 * respawns, exactly as ringmaster's master does. Optionally:
 *   --crash-one-in K   crash points (librmshm_crash.a) raise SIGKILL with
 *                      probability 1/K at every marked step
 *   --kill-ms M        every M ms a random child gets SIGKILL, or SIGSTOP
 *                      followed by SIGCONT a few ms later
 * The oracle then checks every accepted item:
 *   - answered at most once, ever; exactly once if its producer survived;
 *   - run at most 1 + (times it was re-queued) times;
 *   - no slot left in use, and progress never stalled for over --stall-ms.
 * With --expect-failure the run passes only if the oracle catches a fault
 * (used with a deliberately split claim/publish ring, tests/vyukov_ring.c,
 * to show this test is not blind).
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/clock.h"
#include "shm/crashpoint.h"
#include "shm/doorbell.h"
#include "shm/recovery.h"
#include "shm/request.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "shm/stream.h"

/* Oracle room. A fast machine accepts about 350,000 items a second here; 16M
 * items (24 bytes each, MAP_NORESERVE: only touched pages cost memory) last
 * well past any run in make check. Should a machine still fill it, the fault
 * phase ends at that moment (see oracle_full below), so a full oracle can
 * never read as a stall. */
#define MAX_ITEMS (1u << 24)
#define MAX_PROCS 64
#define INFLIGHT 4
#define ANSWER_MAGIC 0x5a5a5a5a5a5a5a5aull

/* Oracle state, shared by all processes of the test. */
struct item {
    _Atomic uint8_t accepted;    /* 1 accepted (QUEUED), 2 withdrawn before any run */
    _Atomic uint32_t producer;   /* incarnation of the producer that made it */
    _Atomic uint32_t runs;       /* consumers that started it */
    _Atomic uint32_t requeues;   /* master re-queues */
    _Atomic uint32_t delivered;  /* answers handed to the producer */
    _Atomic uint32_t errors;     /* of which error answers (502) */
};

struct test_shm {
    _Atomic uint64_t next_item;
    _Atomic uint64_t progress;    /* answers delivered, all producers */
    _Atomic uint64_t crash_fired; /* crash points that fired */
    _Atomic uint32_t stop_producing;
    _Atomic uint32_t oracle_full; /* a producer found no room: the fault phase ends */
    _Atomic uint32_t stop_consuming;
    _Atomic uint32_t crash_armed;
    _Atomic uint32_t bad_answers;
    struct item items[MAX_ITEMS];
};

static struct opts {
    int producers, consumers, cells, max_attempts;
    double seconds;
    unsigned crash_one_in;
    int kill_ms, stall_ms;
    int expect_failure;
    int min_deaths, min_fired;
    unsigned seed;
    uint32_t room; /* oracle items usable (<= MAX_ITEMS); --oracle-items */
    int stream;    /* --stream N: answers are N chunks through the slot's chunk queue (shm/stream.c) */
} o = {2, 2, 64, 3, 5.0, 0, 0, 1000, 0, 0, 0, 0, MAX_ITEMS, 0};

static struct rm_seg seg;
static struct test_shm *T;
static struct rm_shm_pool *P;
static struct rm_pool_view V; /* the test master's view, inherited by every child */

/* ------------------------------------------------------------------ children */

static void child_common(unsigned idx, unsigned incarnation)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#if RM_CRASH_POINTS
    rm_crash_fired = &T->crash_fired;
    rm_crash_rng = 0x9e3779b97f4a7c15ull * (incarnation + 1) ^ (uint64_t)getpid() << 17 ^ rm_now_ns();
    if (!rm_crash_rng)
        rm_crash_rng = 1;
#endif
    (void)idx;
}

static void crash_arm_check(void)
{
#if RM_CRASH_POINTS
    rm_crash_one_in = atomic_load_explicit(&T->crash_armed, memory_order_relaxed) ? o.crash_one_in : 0;
#endif
}

struct pending {
    struct rm_req_ticket t;
    uint64_t item;
    uint64_t rpos;      /* --stream: our read position in the slot's queue */
    uint64_t chunks;    /* --stream: chunks seen, each checked in order */
    int bad;
};

/* --stream: chunk k of an item is item ^ ANSWER_MAGIC ^ k, 8 bytes. */
static void stream_sink(void *arg, const unsigned char *data, uint32_t len, bool chunk_end)
{
    struct pending *p = arg;
    uint64_t v;
    if (len != sizeof v || !chunk_end) {
        p->bad = 1;
        return;
    }
    memcpy(&v, data, sizeof v);
    if (v != (p->item ^ ANSWER_MAGIC ^ p->chunks))
        p->bad = 1;
    p->chunks++;
}

/* Gateway role, through the shipped protocol (shm/request.c): claim,
 * publish, poll, release. The oracle notes what happened around each call. */
static void producer_main(unsigned idx, unsigned incarnation)
{
    child_common(idx, incarnation);
    struct rm_sb_entry *me = rm_seg_sb(&seg, idx);
    struct pending pend[INFLIGHT];
    int npend = 0;
    uint32_t cursor = (uint32_t)rand_r(&o.seed) % V.nslots;
    unsigned spins = 0;
    uint64_t req_seq = 0;

    for (;;) {
        crash_arm_check();
        atomic_store_explicit(&me->heartbeat_ns, rm_now_ns(), memory_order_relaxed);
        int stopping = atomic_load_explicit(&T->stop_producing, memory_order_acquire);
        if (stopping && npend == 0)
            _exit(0);
        /* Submit one. */
        if (!stopping && npend < INFLIGHT) {
            uint32_t s = rm_req_claim(&V, idx, &cursor);
            if (s != RM_NO_SLOT) {
                uint64_t item = atomic_fetch_add(&T->next_item, 1);
                if (item >= o.room) { /* out of oracle room: stop making items */
                    /* FILLING -> FREE: what recovery does for a dead gateway. */
                    _Atomic uint64_t *word = &V.states[s];
                    uint64_t w = rm_slot_load(word);
                    rm_slot_cas(word, &w, RM_SLOT_FREE, 0);
                    atomic_store(&T->oracle_full, 1);
                    atomic_store(&T->stop_producing, 1);
                } else {
                    atomic_store(&T->items[item].producer, incarnation);
                    struct rm_req_in in = {.gw = idx, .req_id = ++req_seq, .now_ns = rm_now_ns(),
                                           .body = &item, .len = sizeof item};
                    struct rm_req_ticket t;
                    switch (rm_req_publish(&V, s, &in, &t)) {
                    case RM_PUBLISH_OK:
                        atomic_store(&T->items[item].accepted, 1);
                        pend[npend++] = (struct pending){.t = t, .item = item};
                        break;
                    case RM_PUBLISH_FULL: /* ring full of duplicates: withdrawn before any run */
                        atomic_store(&T->items[item].accepted, 2);
                        break;
                    case RM_PUBLISH_LOST:
                        abort(); /* nobody else may touch a FILLING slot of ours */
                    }
                }
            }
        }
        /* Collect answers. */
        int got = 0;
        for (int i = 0; i < npend; i++) {
            struct rm_req_answer a;
            struct rm_stream_head sh;
            if (o.stream && (pend[i].rpos || rm_stream_started(&V, &pend[i].t, &sh))) {
                /* Read what the worker wrote; the end is DONE (with an
                 * error if it died mid-stream) once every record is read. */
                enum rm_sread sr = rm_stream_read(&V, &pend[i].t, &pend[i].rpos, 4096, stream_sink, &pend[i]);
                if (sr == RM_SREAD_CORRUPT || sr == RM_SREAD_LOST)
                    abort(); /* nobody scribbles here; a live producer's slot stays its own */
                if (sr != RM_SREAD_END)
                    continue;
            }
            enum rm_poll r = rm_req_poll(&V, &pend[i].t, rm_now_ns(), UINT64_MAX, &a);
            if (r == RM_POLL_WAIT)
                continue;
            if (r != RM_POLL_DONE)
                abort(); /* no deadlines here: only DONE ends a request of a live producer */
            struct item *it = &T->items[pend[i].item];
            if (o.stream && pend[i].bad) {
                atomic_fetch_add(&T->bad_answers, 1);
            } else if (a.error) {
                atomic_fetch_add(&it->errors, 1);
            } else if (o.stream) {
                if (pend[i].chunks != (uint64_t)o.stream)
                    atomic_fetch_add(&T->bad_answers, 1); /* a stream that ended well must be whole */
            } else {
                uint64_t ans;
                memcpy(&ans, a.body, sizeof ans);
                if (!a.len_ok || a.len != sizeof ans || ans != (pend[i].item ^ ANSWER_MAGIC))
                    atomic_fetch_add(&T->bad_answers, 1);
            }
            atomic_fetch_add(&it->delivered, 1);
            atomic_fetch_add_explicit(&T->progress, 1, memory_order_relaxed);
            rm_req_release(&V, &pend[i].t, &a);
            pend[i--] = pend[--npend];
            got = 1;
        }
        if (!got && (npend == INFLIGHT || stopping)) {
            if (++spins % 64 == 0)
                sched_yield();
        }
    }
}

/* Worker role, through the shipped protocol: take, run, finish, wait. */
static void consumer_main(unsigned idx, unsigned incarnation)
{
    child_common(idx, incarnation);
    struct rm_sb_entry *me = rm_seg_sb(&seg, idx);
    for (;;) {
        crash_arm_check();
        atomic_store_explicit(&me->heartbeat_ns, rm_now_ns(), memory_order_relaxed);
        if (atomic_load_explicit(&T->stop_consuming, memory_order_acquire))
            _exit(0);
        struct rm_req_job job;
        enum rm_take r = rm_req_take(&V, me, idx, rm_now_ns(), &job);
        if (r == RM_TAKE_EMPTY) {
            rm_req_wait(&V, me, 20 * 1000000u);
            continue;
        }
        if (r != RM_TAKE_OK)
            continue;
        uint64_t item = UINT64_MAX;
        if (job.len == sizeof item)
            memcpy(&item, job.body, sizeof item);
        if (item < MAX_ITEMS)
            atomic_fetch_add(&T->items[item].runs, 1);
        RM_CRASH_POINT();
        uint64_t ans = item ^ ANSWER_MAGIC;
        struct rm_req_result res = {.status = 200, .len = sizeof ans};
        if (o.stream) {
            /* The answer as o.stream chunks through the queue, waiting for
             * room as a worker does (its crash points fire inside). */
            struct rm_stream_w sw;
            rm_stream_w_init(&sw, &V, idx, &job, rm_now_ns());
            for (int k = 0; k < o.stream; k++) {
                uint64_t v = ans ^ (uint64_t)k;
                size_t done = 0;
                enum rm_emit e;
                while ((e = rm_stream_put(&sw, 200, "x", &v, sizeof v, &done, rm_now_ns())) == RM_EMIT_FULL) {
                    atomic_store_explicit(&me->heartbeat_ns, rm_now_ns(), memory_order_relaxed);
                    rm_stream_wait(&sw, 2 * 1000000u, rm_now_ns());
                }
                if (e == RM_EMIT_CANCELLED)
                    break; /* its producer died: the slot is ABORTED */
            }
            res.len = 0;
        } else {
            memcpy(job.resp, &ans, sizeof ans);
        }
        if (rm_req_finish(&V, me, &job, &res, rm_now_ns()) == RM_FINISH_TAKEN)
            abort(); /* nobody else may end a slot we run */
    }
}

/* ------------------------------------------------------------------ master */

struct child {
    pid_t pid;
    int role;
    unsigned incarnation;
    uint64_t cont_at_ns;  /* SIGSTOPped: SIGCONT at this time */
};
static struct child kids[MAX_PROCS];
static int nkids;
static unsigned next_incarnation = 1;
static unsigned long deaths, requeues_seen, failures_seen, pending_max;

static struct { unsigned pool; uint32_t slot, gen; } pend_list[4096];
static unsigned npend_list;

static void on_pending(void *arg, unsigned pool, uint32_t slot, uint32_t gen)
{
    if (npend_list < sizeof pend_list / sizeof pend_list[0])
        pend_list[npend_list++] = (typeof(pend_list[0])){pool, slot, gen};
    if (npend_list > pending_max)
        pending_max = npend_list;
}

static void on_requeued(void *arg, unsigned pool, uint32_t slot, uint64_t old)
{
    uint64_t item;
    memcpy(&item, rm_view_req(&V, slot), sizeof item);
    if (item < MAX_ITEMS)
        atomic_fetch_add(&T->items[item].requeues, 1);
    requeues_seen++;
}

static void on_failed(void *arg, unsigned pool, uint32_t slot, unsigned status) { failures_seen++; }

static void spawn(int i)
{
    struct rm_sb_entry *e = rm_seg_sb(&seg, (unsigned)i);
    e->role = kids[i].role == 0 ? RM_ROLE_GATEWAY : RM_ROLE_WORKER;
    e->pool = 0;
    atomic_store(&e->intent, 0);
    atomic_store(&e->cur_slot, RM_NO_SLOT);
    atomic_store(&e->state, RM_PROC_READY);
    unsigned inc = next_incarnation++;
    o.seed = o.seed * 1103515245u + 12345u;
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(99);
    }
    if (pid == 0) {
        if (kids[i].role == 0)
            producer_main((unsigned)i, inc);
        else
            consumer_main((unsigned)i, inc);
        _exit(0);
    }
    atomic_store(&e->pid, pid);
    kids[i].pid = pid;
    kids[i].incarnation = inc;
    kids[i].cont_at_ns = 0;
}

/* Reap; recover and (unless told not to) respawn the dead. Returns deaths. */
static int reap(int respawn)
{
    int n = 0, status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < nkids; i++) {
            if (kids[i].pid != pid)
                continue;
            kids[i].pid = 0;
            int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
                fprintf(stderr, "child %d (role %d) exited with %d\n", pid, kids[i].role, WEXITSTATUS(status));
            }
            if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
                fprintf(stderr, "child %d (role %d) died of signal %d: a bug\n", pid, kids[i].role, WTERMSIG(status));
                exit(1);
            }
            struct rm_recovery_ops ops = {.pending = on_pending, .requeued = on_requeued, .failed = on_failed};
            rm_recover_process(&seg, (unsigned)i, kids[i].role == 0 ? RM_ROLE_GATEWAY : RM_ROLE_WORKER, 0, rm_now_ns(), &ops, NULL);
            if (!clean) {
                deaths++;
                n++;
                if (respawn)
                    spawn(i);
            }
        }
    }
    /* Retry re-queues that found the ring full. */
    for (unsigned k = 0; k < npend_list;) {
        if (rm_recovery_retry(&seg, pend_list[k].pool, pend_list[k].slot, pend_list[k].gen))
            pend_list[k] = pend_list[--npend_list];
        else
            k++;
    }
    return n;
}

/* What the ring looks like when progress stops: each slot's state, owner and
 * attempts, and each child's state from /proc (R, S, T stopped, Z). */
static void stall_dump(uint64_t at_ns)
{
    static const char *names[] = {"FREE", "FILLING", "QUEUED", "RUNNING", "DONE", "ABORTED"};
    fprintf(stderr, "crash-test: STALL at %.3f s; slots:\n", at_ns / 1e9);
    for (uint32_t s = 0; s < V.nslots; s++) {
        uint64_t w = rm_slot_load(&V.states[s]);
        unsigned st = RM_SLOT_STATE(w);
        fprintf(stderr, "  slot %u: %s owner %u attempts %u gen %u\n", s,
                st < sizeof names / sizeof names[0] ? names[st] : "?", RM_SLOT_OWNER(w), RM_SLOT_ATTEMPTS(w),
                RM_SLOT_GEN(w));
    }
    for (int i = 0; i < nkids; i++) {
        char path[64], buf[256] = "";
        snprintf(path, sizeof path, "/proc/%d/stat", (int)kids[i].pid);
        FILE *f = kids[i].pid ? fopen(path, "r") : NULL;
        if (f) {
            if (!fgets(buf, sizeof buf, f))
                buf[0] = 0;
            fclose(f);
        }
        char *p = strrchr(buf, ')');
        fprintf(stderr, "  child %d (%s) pid %d incarnation %u state %c%s\n", i,
                kids[i].role == 0 ? "producer" : "consumer", (int)kids[i].pid, kids[i].incarnation,
                p && p[1] ? p[2] : '?', kids[i].cont_at_ns ? " (SIGSTOPped by the test)" : "");
    }
}

static void sleep_ms(double ms)
{
    long ns = (long)(ms * 1e6);
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

static int usage(void)
{
    fprintf(stderr, "usage: test_crash [--producers N] [--consumers N] [--cells N] [--seconds S]\n"
                    "       [--crash-one-in K] [--kill-ms M] [--stall-ms M] [--max-attempts N]\n"
                    "       [--min-deaths N] [--min-fired N] [--expect-failure] [--seed N]\n"
                    "       [--oracle-items N (at most %u)] [--stream CHUNKS]\n", MAX_ITEMS);
    return 99;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"producers", 1, 0, 'p'}, {"consumers", 1, 0, 'c'}, {"cells", 1, 0, 'n'},
        {"seconds", 1, 0, 's'}, {"crash-one-in", 1, 0, 'k'}, {"kill-ms", 1, 0, 'K'},
        {"stall-ms", 1, 0, 'S'}, {"max-attempts", 1, 0, 'a'}, {"expect-failure", 0, 0, 'x'},
        {"min-deaths", 1, 0, 'd'}, {"min-fired", 1, 0, 'f'}, {"seed", 1, 0, 'r'}, {"oracle-items", 1, 0, 'o'},
        {"stream", 1, 0, 'T'}, {0, 0, 0, 0}};
    o.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'p': o.producers = atoi(optarg); break;
        case 'c': o.consumers = atoi(optarg); break;
        case 'n': o.cells = atoi(optarg); break;
        case 's': o.seconds = atof(optarg); break;
        case 'k': o.crash_one_in = (unsigned)atoi(optarg); break;
        case 'K': o.kill_ms = atoi(optarg); break;
        case 'S': o.stall_ms = atoi(optarg); break;
        case 'a': o.max_attempts = atoi(optarg); break;
        case 'x': o.expect_failure = 1; break;
        case 'd': o.min_deaths = atoi(optarg); break;
        case 'f': o.min_fired = atoi(optarg); break;
        case 'r': o.seed = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': o.room = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'T': o.stream = atoi(optarg); break;
        default: return usage();
        }
    }
    if (o.producers < 1 || o.consumers < 1 || o.producers + o.consumers > MAX_PROCS || o.cells < 2 ||
        (o.cells & (o.cells - 1)) || o.room < 1000 || o.room > MAX_ITEMS)
        return usage();
#if !RM_CRASH_POINTS
    if (o.crash_one_in) {
        fprintf(stderr, "this build has no crash points (build with -DRM_CRASH_POINTS=1)\n");
        return 99;
    }
#endif
    unsigned seed0 = o.seed;
    srand(o.seed);

    char err[256];
    if (rm_seg_create(&seg, MAX_PROCS, (uint32_t)o.producers, err, sizeof err) < 0) {
        fprintf(stderr, "rm_seg_create: %s\n", err);
        return 99;
    }
    /* cells = ring size = 2 * slots (segment.c sizes the ring so). */
    struct rm_pool_spec spec = {.name = "torture", .nslots = (uint32_t)o.cells / 2, .max_req = 64, .max_resp = 64,
                                .max_attempts = (uint32_t)o.max_attempts, .request_timeout_ns = UINT64_MAX / 2,
                                .handler = "test"};
    if (rm_seg_pool_add(&seg, 0, &spec, err, sizeof err) < 0) {
        fprintf(stderr, "rm_seg_pool_add: %s\n", err);
        return 99;
    }
    rm_seg_publish(&seg);
    P = rm_seg_pool(&seg, 0);
    if (rm_pool_view_open(&seg, 0, &V) < 0) {
        fprintf(stderr, "rm_pool_view_open: the pool's descriptor does not validate\n");
        return 99;
    }
    T = mmap(NULL, sizeof *T, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (T == MAP_FAILED) {
        perror("mmap");
        return 99;
    }
    atomic_store(&T->crash_armed, o.crash_one_in ? 1 : 0);

    nkids = o.producers + o.consumers;
    for (int i = 0; i < nkids; i++) {
        kids[i].role = i < o.producers ? 0 : 1;
        spawn(i);
    }

    uint64_t start = rm_now_ns(), end = start + (uint64_t)(o.seconds * 1e9);
    uint64_t last_progress_val = 0, last_progress_at = start, next_kill = start + (uint64_t)o.kill_ms * 1000000u;
    uint64_t worst_gap = 0;
    int stalled = 0;
    unsigned long kills = 0, stops = 0;

    uint64_t fault_end = 0;
    /* The machine itself pausing (a VM's stolen time, a host under memory
     * pressure) freezes every process, this loop included, and would read as
     * a stall of the ring. So a sleep of 1 ms that overshoots by more than
     * PAUSE_NS is not counted as a gap: the loop was not running to see
     * progress. A real stall (children live-locked or waiting on each other)
     * leaves this loop running every millisecond and is counted in full;
     * time spent in reap() (the test master's recovery) always counts. */
    const uint64_t PAUSE_NS = 100ull * 1000000u;
    uint64_t paused_ns = 0, worst_pause = 0;
    unsigned long pauses = 0;
    while (rm_now_ns() < end && !stalled) {
        reap(1);
        uint64_t now = rm_now_ns();
        /* The oracle has no room left: producers stop, so progress stops by
         * design. End the fault phase here; gaps are only measured while
         * producers are producing. */
        if (atomic_load(&T->oracle_full)) {
            fault_end = now;
            break;
        }
        for (int i = 0; i < nkids; i++)
            if (kids[i].cont_at_ns && now >= kids[i].cont_at_ns && kids[i].pid) {
                kill(kids[i].pid, SIGCONT);
                kids[i].cont_at_ns = 0;
            }
        if (o.kill_ms && now >= next_kill) {
            int i = rand() % nkids;
            if (kids[i].pid && !kids[i].cont_at_ns) {
                if (rand() % 10 < 7) {
                    kill(kids[i].pid, SIGKILL);
                    kills++;
                } else {
                    kill(kids[i].pid, SIGSTOP);
                    kids[i].cont_at_ns = now + (uint64_t)(1 + rand() % 30) * 1000000u;
                    stops++;
                }
            }
            next_kill = now + (uint64_t)(o.kill_ms / 2 + rand() % (o.kill_ms + 1)) * 1000000u;
        }
        uint64_t p = atomic_load(&T->progress);
        if (p != last_progress_val) {
            last_progress_val = p;
            last_progress_at = now;
        } else if (now - last_progress_at > worst_gap) {
            worst_gap = now - last_progress_at;
            if (worst_gap > (uint64_t)o.stall_ms * 1000000u) {
                stalled = 1;
                stall_dump(now - start);
            }
        }
        uint64_t before = rm_now_ns();
        sleep_ms(1);
        uint64_t slept = rm_now_ns() - before;
        if (slept > PAUSE_NS) {
            pauses++;
            paused_ns += slept;
            if (slept > worst_pause)
                worst_pause = slept;
            last_progress_at += slept; /* this time was not observed */
        }
    }

    if (!fault_end)
        fault_end = rm_now_ns();

    /* Drain: no more faults; producers finish what they have in flight. */
    atomic_store(&T->crash_armed, 0);
    for (int i = 0; i < nkids; i++)
        if (kids[i].pid && kids[i].cont_at_ns)
            kill(kids[i].pid, SIGCONT);
    atomic_store(&T->stop_producing, 1);
    uint64_t drain_deadline = rm_now_ns() + 5ull * 1000000000u;
    int stuck = 0;
    for (;;) {
        reap(1);
        int alive = 0;
        for (int i = 0; i < o.producers; i++)
            alive += kids[i].pid != 0;
        if (!alive)
            break;
        if (rm_now_ns() > drain_deadline) {
            stuck = 1;
            break;
        }
        sleep_ms(1);
    }
    atomic_store(&T->stop_consuming, 1);
    for (int i = 0; i < nkids; i++)
        if (kids[i].pid)
            kill(kids[i].pid, stuck ? SIGKILL : SIGCONT);
    uint64_t cons_deadline = rm_now_ns() + 3ull * 1000000000u;
    for (;;) {
        reap(0);
        int alive = 0;
        for (int i = 0; i < nkids; i++)
            alive += kids[i].pid != 0;
        if (!alive)
            break;
        if (rm_now_ns() > cons_deadline) {
            for (int i = 0; i < nkids; i++)
                if (kids[i].pid)
                    kill(kids[i].pid, SIGKILL);
        }
        sleep_ms(1);
    }

    /* ---- the oracle ---- */
    uint64_t nitems = atomic_load(&T->next_item);
    if (nitems > o.room)
        nitems = o.room;
    /* Producers alive at the end are the last incarnation of each entry. */
    unsigned final_inc[MAX_PROCS];
    for (int i = 0; i < o.producers; i++)
        final_inc[i] = kids[i].incarnation;
    unsigned long accepted = 0, delivered = 0, dup_answers = 0, lost = 0, over_run = 0, withdrawn = 0,
                  errors = 0, orphaned = 0;
    for (uint64_t k = 0; k < nitems; k++) {
        struct item *it = &T->items[k];
        unsigned acc = atomic_load(&it->accepted);
        unsigned del = atomic_load(&it->delivered);
        unsigned runs = atomic_load(&it->runs), rq = atomic_load(&it->requeues);
        if (acc == 2) {
            withdrawn++;
            continue;
        }
        if (acc == 0 && runs == 0 && del == 0)
            continue; /* never accepted (producer died while filling) */
        accepted++;
        delivered += del;
        errors += atomic_load(&it->errors);
        if (del > 1)
            dup_answers++;
        if (runs > 1 + rq)
            over_run++;
        int survivor = 0;
        for (int i = 0; i < o.producers; i++)
            survivor |= atomic_load(&it->producer) == final_inc[i];
        if (del == 0) {
            if (survivor)
                lost++;
            else
                orphaned++;
        }
    }
    unsigned busy_slots = 0;
    for (uint32_t s = 0; s < V.nslots; s++)
        busy_slots += RM_SLOT_STATE(rm_slot_load(&V.states[s])) != RM_SLOT_FREE;

    printf("crash-test: seed %u, %d producers, %d consumers, ring %d cells (%u slots), %.1f s\n", seed0,
           o.producers, o.consumers, o.cells, V.nslots, o.seconds);
    printf("  oracle: %llu items made of %u room (%.1f%%)%s; fault phase %.2f s of %.1f s\n",
           (unsigned long long)nitems, o.room, 100.0 * (double)nitems / o.room,
           atomic_load(&T->oracle_full) ? ", FULL: fault phase ended early" : "", (fault_end - start) / 1e9,
           o.seconds);
    printf("  items accepted %lu, answered %lu (errors 502: %lu), withdrawn %lu, orphaned (producer died) %lu\n",
           accepted, delivered, errors, withdrawn, orphaned);
    printf("  deaths %lu (external SIGKILL %lu, SIGSTOP %lu, crash points fired %llu), re-queues %lu, "
           "pending-list peak %lu\n",
           deaths, kills, stops, (unsigned long long)atomic_load(&T->crash_fired), requeues_seen, pending_max);
    if (pauses)
        printf("  machine paused %lu times (this process slept 1 ms for over %llu ms), %.0f ms in all, "
               "longest %.0f ms: not counted as gaps\n",
               pauses, (unsigned long long)(PAUSE_NS / 1000000u), paused_ns / 1e6, worst_pause / 1e6);
    printf("  worst progress gap %.0f ms, duplicate answers %lu, lost %lu, over-run %lu, bad answers %u, "
           "slots still busy %u%s\n",
           worst_gap / 1e6, dup_answers, lost, over_run, atomic_load(&T->bad_answers), busy_slots,
           stalled ? ", STALLED" : stuck ? ", STUCK in drain" : "");

    int failed = dup_answers || lost || over_run || atomic_load(&T->bad_answers) || busy_slots || stalled || stuck;
    if (o.expect_failure) {
        printf("  expected the oracle to catch a fault: %s\n", failed ? "caught" : "NOT caught");
        return failed ? 0 : 1;
    }
    if (deaths < (unsigned long)o.min_deaths) {
        printf("  FAIL: only %lu deaths, wanted at least %d\n", deaths, o.min_deaths);
        return 1;
    }
    if (atomic_load(&T->crash_fired) < (uint64_t)o.min_fired) {
        printf("  FAIL: only %llu crash points fired, wanted at least %d\n",
               (unsigned long long)atomic_load(&T->crash_fired), o.min_fired);
        return 1;
    }
    if (accepted < 1000) {
        printf("  FAIL: only %lu items accepted: too little work to prove anything\n", accepted);
        return 1;
    }
    printf("  %s\n", failed ? "FAIL" : "PASS");
    return failed ? 1 : 0;
}
