/*
 * layout.h - the shared memory of ringmaster, split by writer into separate
 * memfds so that each process maps only what it may touch
 * (docs/architecture.md, "trust model"):
 *
 *   ctrl   rm_shm_header, rm_shm_pool[32] descriptors, rm_master_stats[32]
 *          written by the master only; everyone else maps it read-only
 *   sb     rm_sb_entry[nprocs], the scoreboard: gateways 0..G-1, then one
 *          page-aligned range of RM_SB_PER_POOL entries per pool; each
 *          process writes its own entry. A worker maps its pool's range only.
 *   gw     rm_gw_stats[G][33]: per gateway, one block per pool and one
 *          (RM_GW_SERVER) for answers that belong to no pool; each gateway
 *          writes its own blocks; workers do not map it
 *   pool   one per pool:
 *            guard page
 *            W (the pool's workers write): bell (doorbell, sleepers), ring,
 *              slot state words, answer meta, answer areas
 *            guard page
 *            R (gateways write, the pool's workers map it read-only):
 *              request meta, request areas
 *            guard page
 *          other pools' workers do not map it at all.
 *
 * Rules (see docs/shm.md):
 *  - No pointers cross processes: only offsets (from the start of their
 *    memfd) and indexes. Every process keeps private copies of all geometry;
 *    every index read from memory another process can write is
 *    bounds-checked by its reader, at the point of use.
 *  - Every field has one writer at a time, named in its comment. Fields that
 *    several processes touch concurrently are C11 atomics, and each access
 *    says its memory order and what it pairs with.
 *  - Hot fields of different writers live on different cache lines.
 *  - Layout changes bump RM_SHM_LAYOUT_VERSION.
 */
#ifndef RM_SHM_LAYOUT_H
#define RM_SHM_LAYOUT_H

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RM_CACHELINE 64
#define RM_SHM_MAGIC "RNGMSTR\0"
#define RM_SHM_MAGIC_LEN 8
#define RM_SHM_LAYOUT_VERSION 8u
#define RM_PAGE 4096u

#define RM_SHM_MAX_POOLS 32
#define RM_SHM_POOL_NAME 48
#define RM_SHM_CTYPE 128
#define RM_NO_SLOT UINT32_MAX
/* Scoreboard entries a segment may have: the slot word's owner field is 16
 * bits and holds index + 1 (0: no owner). */
#define RM_SHM_MAX_PROCS 0xfffeu

/* Every 64-bit atomic in the segment must be a plain lock-free instruction:
 * a lock-based emulation would be a per-process lock, useless across
 * processes, and a process killed holding it would wedge the others. */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
static_assert(sizeof(unsigned long long) == 8, "64-bit atomics are unsigned long long");

/* ------------------------------------------------------------------ header */

struct rm_shm_header {
    /* Written by the master before the first fork; magic last, after a
     * release fence (segment.c: F1). Read-only for everyone afterwards. */
    char magic[RM_SHM_MAGIC_LEN];
    uint32_t layout_version;
    uint32_t header_size;        /* sizeof(struct rm_shm_header) */
    uint64_t size;               /* the ctrl memfd, bytes */
    int32_t master_pid;
    uint32_t nprocs;             /* scoreboard entries */
    uint64_t birth_mono_ns;      /* CLOCK_MONOTONIC at creation: uptime, detects restarts */
    uint32_t max_pools;          /* RM_SHM_MAX_POOLS */
    uint32_t max_gateways;
    uint64_t pools_off;          /* in ctrl */
    uint64_t master_stats_off;   /* in ctrl */
    uint64_t sb_size;            /* the sb memfd, bytes */
    uint64_t gw_size;            /* the gw memfd, bytes */
    /* Written by the master at run time (single writer), read by ctl and
     * gateways with acquire; pairs with the master's release stores. */
    alignas(RM_CACHELINE) _Atomic uint32_t draining;     /* 1: graceful stop begun: new requests get 503 */
    _Atomic uint32_t reloads;      /* completed reloads */
    _Atomic uint32_t reloads_failed; /* reloads refused (bad file) or rolled back */
    _Atomic uint32_t unready;      /* 1: a stop was asked; during drain_delay readiness is 503 while
                                    * requests are still served, then draining follows */
};

/* ------------------------------------------------------------------ ring */

/*
 * The crash-tolerant MPMC ring (ring.c). Cells are 64-bit {seq:40 | value:24}.
 * head and tail are hints that anyone may advance; each sits on its own line.
 */
#define RM_RING_VALUE_BITS 24
#define RM_RING_VALUE_MASK ((UINT64_C(1) << RM_RING_VALUE_BITS) - 1)
#define RM_RING_EMPTY_VALUE RM_RING_VALUE_MASK   /* value of an empty cell */
#define RM_RING_MAX_VALUE (RM_RING_VALUE_MASK - 1)
#define RM_RING_MAX_SIZE (UINT32_C(1) << 24)

struct rm_ring {
    alignas(RM_CACHELINE) _Atomic uint64_t tail;  /* enqueue hint, any writer */
    alignas(RM_CACHELINE) _Atomic uint64_t head;  /* dequeue hint, any writer */
    alignas(RM_CACHELINE) uint32_t size;          /* power of two, set at init */
    uint32_t mask;
    alignas(RM_CACHELINE) _Atomic uint64_t cells[];
};
static_assert(offsetof(struct rm_ring, tail) % RM_CACHELINE == 0, "tail on its own line");
static_assert(offsetof(struct rm_ring, head) == RM_CACHELINE, "head on its own line");
static_assert(offsetof(struct rm_ring, cells) % RM_CACHELINE == 0, "cells aligned");

/* ------------------------------------------------------------------ slots */

/*
 * Slot state word, 64 bits: generation:32 | attempts:8 | owner:16 | state:8.
 * owner is the scoreboard index + 1 of the process acting on the slot
 * (gateway in FILLING, worker in RUNNING and ABORTED), 0 otherwise.
 */
enum rm_slot_state {
    RM_SLOT_FREE = 0,
    RM_SLOT_FILLING = 1,  /* a gateway copies a request in */
    RM_SLOT_QUEUED = 2,   /* accepted: on the ring (or about to be re-put) */
    RM_SLOT_RUNNING = 3,  /* a worker runs it */
    RM_SLOT_DONE = 4,     /* answer (or error) ready for the gateway */
    RM_SLOT_ABORTED = 5,  /* its client is gone: whoever holds it frees it */
    RM_SLOT_NSTATES
};

/*
 * A slot's meta, in two parts by writer. Readers see a phase's fields after
 * an acquire load of the state word that shows the phase ended (pairs with
 * the release CAS that ended it).
 *
 * Request meta (R area: the pool's workers cannot write it): written by the
 * gateway while FILLING.
 */
struct rm_req_meta {
    uint32_t gw;            /* scoreboard index of the gateway that owns the client */
    uint32_t req_len;
    uint64_t req_id;        /* gateway-local request id */
    uint64_t accept_ns;     /* CLOCK_MONOTONIC when it went QUEUED */
    uint64_t deadline_ns;   /* accept + request_timeout */
    char req_ctype[RM_SHM_CTYPE];
};

/* Answer meta (W area): written by the worker while RUNNING, by the master
 * while it recovers a slot whose worker is dead, and reset by the gateway
 * while FILLING.
 *
 * Streaming (docs/streaming.md): a handler that emits chunks turns the
 * slot's answer area into a single-producer single-consumer queue of
 * records (shm/stream.c). Producer: the worker that owns the RUNNING slot;
 * consumer: the gateway whose request it is. Positions are byte counters
 * that only grow; a record starts at pos % cap, where cap is the reader's
 * private answer stride. The s_ fields, by writer: */
struct rm_resp_meta {
    uint64_t run_start_ns;  /* worker: when it went RUNNING */
    uint64_t run_end_ns;
    uint32_t resp_len;
    uint16_t resp_status;   /* HTTP status from the handler (a stream's: at its first emit) */
    uint16_t error;         /* nonzero: answer is an error with this HTTP status */
    char resp_ctype[RM_SHM_CTYPE];
    /* worker (RUNNING; reset by the gateway while FILLING): RM_STREAM_*
     * flags; STARTED is stored (relaxed) before the first release store of
     * s_wpos, so a reader that sees s_wpos > 0 sees it, status and ctype. */
    _Atomic uint32_t s_flags;
    /* master, while it recovers a dead worker's started stream
     * (RM_STREAM_END_*): why the stream ended; published by its CAS to DONE */
    uint16_t s_end;
    uint16_t s_pad;
    /* worker: 1 while it sleeps on s_rseq waiting for room (seq_cst: pairs
     * with the gateway's seq_cst load after its s_rseq bump, a Dekker pair) */
    _Atomic uint32_t s_waiting;
    uint32_t s_pad2;
    /* worker: bytes written; release store after the records it covers
     * (pairs with the gateway's acquire load) */
    _Atomic uint64_t s_wpos;
    /* worker, relaxed: CLOCK_MONOTONIC of its last emit or wait for room;
     * the master's stream_idle_timeout check compares it with its clock */
    _Atomic uint64_t s_beat_ns;
    /* gateway (the request's): bytes consumed; release store after it
     * copied the records out (pairs with the worker's acquire load before it
     * reuses their space). Its own line: the other writer's. */
    alignas(RM_CACHELINE) _Atomic uint64_t s_rpos;
    /* gateway: bumped (seq_cst) after each s_rpos store and when it
     * abandons the request; the worker FUTEX_WAITs on it */
    _Atomic uint32_t s_rseq;
    uint32_t s_pad3;
    /* gateway: the position it read up to when it found the queue empty,
     * and at which it wants the next chunk to wake it (seq_cst: a Dekker
     * pair with the worker's s_wpos store and s_rwant load; the worker
     * writes the gateway's eventfd only when s_rwant is where its put
     * began, so a gateway that is still reading is not woken per chunk) */
    _Atomic uint64_t s_rwant;
};
#define RM_STREAM_STARTED 1u   /* s_flags: the first chunk was written */
/* s_end */
#define RM_STREAM_END_NONE 0u
#define RM_STREAM_END_CRASHED 1u  /* the worker died mid-stream */
#define RM_STREAM_END_IDLE 2u     /* killed: silent past stream_idle_timeout */
#define RM_STREAM_END_CAP 3u      /* killed: past stream_timeout */
static_assert(offsetof(struct rm_resp_meta, s_rpos) % RM_CACHELINE == 0, "consumer fields on their own line");

/* A pool's doorbell (W area): producers bump, sleepers FUTEX_WAIT on it
 * (doorbell.c). */
struct rm_pool_bell {
    alignas(RM_CACHELINE) _Atomic uint32_t doorbell;
    alignas(RM_CACHELINE) _Atomic uint32_t sleepers;
};
static_assert(sizeof(struct rm_pool_bell) == 2 * RM_CACHELINE, "doorbell and sleepers on their own lines");

/* ------------------------------------------------------------------ pools */

struct rm_shm_pool {
    /* Geometry: written by the master once, before the pool's entry is
     * published by the release store of active; never changed afterwards
     * (a removed pool's entry is never reused). Offsets are from the start
     * of the pool's own memfd. */
    char name[RM_SHM_POOL_NAME];
    _Atomic uint32_t active;    /* 1: configured and served; release-stored last */
    uint32_t nslots;            /* queue_depth */
    uint64_t max_req;           /* max_request_size, exact (413 above it) */
    uint64_t max_resp;          /* max_response_size, exact */
    uint64_t req_stride;        /* bytes between request areas (max_req rounded up to 64) */
    uint64_t resp_stride;
    uint64_t size;              /* the pool's memfd, bytes */
    uint64_t w_off, w_size;     /* W area: page-aligned, guard page before and after */
    uint64_t r_off, r_size;     /* R area: page-aligned, guard page after */
    uint64_t bell_off;          /* struct rm_pool_bell (W) */
    uint64_t ring_off;          /* struct rm_ring (W) */
    uint64_t states_off;        /* _Atomic uint64_t[nslots] (W) */
    uint64_t resp_meta_off;     /* struct rm_resp_meta[nslots] (W) */
    uint64_t resp_off;          /* nslots * resp_stride bytes (W, last) */
    uint64_t req_meta_off;      /* struct rm_req_meta[nslots] (R) */
    uint64_t req_off;           /* nslots * req_stride bytes (R) */
    char handler[64];           /* the handler's name for metadata: a built-in's, or "shared object" (never a path) */
    /* The tensors of the v2 metadata, "\"inputs\":[...],\"outputs\":[...]":
     * a reload may change them while gateways read, so two buffers: the
     * master writes io[(io_seq + 1) & 1], then release-stores io_seq + 1.
     * Readers copy io[seq & 1] and retry if io_seq moved on by 2 meanwhile
     * (segment.c: rm_pool_io_read). */
    _Atomic uint32_t io_seq;
    char io[2][1024];
    /* Policy a reload may change while the pool serves: atomics, stored by
     * the master (relaxed: each is one value that no other data rides on),
     * loaded relaxed at the point of use. Not geometry: they steer no
     * memory access. */
    _Atomic uint32_t max_attempts;
    _Atomic uint64_t request_timeout_ns;
    _Atomic uint64_t stream_idle_ns;     /* stream_idle_timeout: a stream's longest silence */
    _Atomic uint64_t stream_timeout_ns;  /* stream_timeout: a stream's overall cap, from accept */
    /* Written by the master at run time. */
    _Atomic uint32_t failed;    /* 1: handler init failed permanently */
    /* Workers of the pool by state, as the master sees them (its own
     * records of who is alive, and the states they report): what readiness
     * and /metrics use. relaxed: gauges. */
    _Atomic uint32_t workers[8];
    /* Healing (docs/architecture.md): the master bumps heal_epoch (release)
     * when it finds the pool's memory inconsistent, and clears healing once
     * the pool is rebuilt. Gateways answer their requests of an older epoch
     * with 502 and acknowledge (rm_gw_ack). */
    _Atomic uint32_t heal_epoch;
    _Atomic uint32_t healing;
};
static_assert(sizeof(struct rm_shm_pool) % 8 == 0, "descriptors stay aligned");

/* ------------------------------------------------------------------ scoreboard */

enum rm_role { RM_ROLE_NONE = 0, RM_ROLE_GATEWAY = 1, RM_ROLE_WORKER = 2, RM_ROLE_TEST = 3, RM_ROLE_PRELOADER = 4 };

enum rm_proc_state {
    RM_PROC_EMPTY = 0,     /* entry unused */
    RM_PROC_STARTING = 1,  /* forked, loading (handler init) */
    RM_PROC_READY = 2,     /* idle, takes requests */
    RM_PROC_BUSY = 3,      /* running a request */
    RM_PROC_DRAINING = 4,  /* finishing its request, takes no new one */
    RM_PROC_DEAD = 5,      /* reaped, recovered by the master */
    RM_PROC_NSTATES
};

/* Intent record: what ring/slot operation the process is in the middle of. */
enum rm_intent_op {
    RM_INTENT_NONE = 0,
    RM_INTENT_DEQ = 1,    /* dequeuing slot (value) from its pool's ring */
    RM_INTENT_SLEEP = 2,  /* counted in its pool's sleepers */
};
#define RM_INTENT(op, pool, slot) \
    (((uint64_t)(op) << 56) | ((uint64_t)((pool) & 0xff) << 48) | (uint64_t)(uint32_t)(slot))
#define RM_INTENT_OP(w) ((unsigned)((w) >> 56))
#define RM_INTENT_POOL(w) ((unsigned)(((w) >> 48) & 0xff))
#define RM_INTENT_SLOT(w) ((uint32_t)(w))
static_assert(RM_SHM_MAX_POOLS <= 0x100, "the intent word's pool field is 8 bits");
static_assert(RM_RING_MAX_SIZE <= (UINT64_C(1) << 32), "the intent word's slot field is 32 bits");

/*
 * One cache line per process. Written by the master while the entry has no
 * live process (before fork, after reap); otherwise only by its process.
 * Readers (master, gateways, ctl) load with acquire.
 */
struct rm_sb_entry {
    alignas(RM_CACHELINE) _Atomic int32_t pid;  /* master: before fork / after reap (preloaded: the worker's CAS) */
    uint8_t role;                  /* master, before fork */
    _Atomic uint8_t state;         /* owner (master before fork / after reap) */
    uint16_t pool;                 /* master, before fork (workers) */
    uint32_t generation;           /* master, before fork: config generation */
    uint32_t index;                /* master, before fork: worker N in pool / gateway N */
    _Atomic uint64_t heartbeat_ns; /* owner, relaxed: CLOCK_MONOTONIC */
    _Atomic uint64_t intent;       /* owner; see RM_INTENT(); release before ring CAS */
    _Atomic uint32_t cur_slot;     /* owner: slot being run or RM_NO_SLOT */
    _Atomic uint32_t flags;        /* master -> owner requests: RM_SBF_* */
    _Atomic uint64_t cur_start_ns; /* owner: when cur_slot started */
    _Atomic uint64_t served;       /* owner: requests completed */
    uint64_t spawn_ns;             /* master, before fork */
};
#define RM_SBF_DRAIN 1u  /* master asks the process to drain and exit */
static_assert(sizeof(struct rm_sb_entry) == RM_CACHELINE, "one cache line per process");
static_assert(RM_PROC_NSTATES <= 8, "rm_shm_pool.workers[] has a counter per state");

/* Scoreboard entries of one pool's workers and preloaders (the master's
 * range for pool p starts at max_gateways + p * RM_SB_PER_POOL): twice the
 * most workers + spares a pool may have (a reload's handover runs both
 * generations), a preloader each, and spare entries; a multiple of the
 * entries in a page, so that a worker can map its pool's range and nothing
 * else. */
#define RM_SB_PER_POOL 576u
static_assert((RM_SB_PER_POOL * sizeof(struct rm_sb_entry)) % RM_PAGE == 0, "pool ranges are whole pages");

/* ------------------------------------------------------------------ statistics */

enum rm_outcome {
    RM_OUT_OK = 0,        /* handler answered (any status it chose) */
    RM_OUT_HANDLER_ERROR, /* 500 */
    RM_OUT_CRASHED,       /* 502: every attempt's worker died */
    RM_OUT_TIMEOUT,       /* 504 */
    RM_OUT_REJECTED,      /* 503: queue full, draining, no worker */
    RM_OUT_TOO_LARGE,     /* 413 */
    RM_OUT_CLIENT_GONE,   /* client hung up before the answer */
    RM_OUT_N
};

#define RM_HIST_BUCKETS 14  /* upper bounds in rm_hist_bounds_s[] (stats.h) */

/*
 * HTTP answers by status, counted when a gateway queues the answer
 * (gateway/stats.c: gw_count_answer; rm_code_of in gateway/stats.h maps a
 * status to its entry). The codes an operator acts on have their own entry;
 * every other status counts in its class (RM_CODE_2XX: any 2xx but 200, and
 * so on). Names (the `code` label of /metrics, ringmasterctl): core/names.c.
 */
enum rm_code {
    RM_CODE_200 = 0,
    RM_CODE_2XX,   /* other 2xx (a handler's 201, 204, ...) */
    RM_CODE_3XX,   /* a handler's 3xx */
    RM_CODE_400,   /* malformed request; handler said so */
    RM_CODE_404,
    RM_CODE_405,
    RM_CODE_408,   /* headers or body not in time */
    RM_CODE_413,
    RM_CODE_414,
    RM_CODE_431,
    RM_CODE_4XX,   /* other 4xx (a handler's 422, 429, ...) */
    RM_CODE_500,   /* handler failed */
    RM_CODE_502,   /* every attempt's worker died; pool rebuilt */
    RM_CODE_503,   /* queue full, draining, not ready, too many connections */
    RM_CODE_504,   /* request_timeout */
    RM_CODE_5XX,   /* other 5xx (505, a handler's own) */
    RM_CODE_N
};

enum rm_stream_result {
    RM_STREAMS_STARTED = 0,
    RM_STREAMS_COMPLETED,
    RM_STREAMS_FAILED,     /* worker died, killed idle or over its cap, handler error, corrupt queue */
    RM_STREAMS_CANCELLED,  /* the client went away mid-stream */
    RM_STREAM_RESULTS
};

/* Counters of one gateway for one pool (or, in block RM_GW_SERVER, for the
 * answers that belong to no pool: only codes[] is used there). Single
 * writer: that gateway (relaxed stores; readers sum them, tolerate slightly
 * stale values). */
struct rm_gw_stats {
    alignas(RM_CACHELINE) _Atomic uint64_t outcomes[RM_OUT_N];
    _Atomic uint64_t dur_hist[RM_HIST_BUCKETS + 1];   /* last: +Inf */
    _Atomic uint64_t dur_sum_us;
    _Atomic uint64_t wait_hist[RM_HIST_BUCKETS + 1];
    _Atomic uint64_t wait_sum_us;
    /* The pool's heal_epoch this gateway has answered every older request
     * of (release: pairs with the master's acquire load before rebuilding). */
    _Atomic uint32_t heal_ack;
    /* Answers queued, by status (enum rm_code): in a pool's block, those to
     * the pool's inference requests (POST .../infer, also a 405 there);
     * in RM_GW_SERVER's, every other answer: health, metadata, /metrics,
     * unknown paths and models, malformed requests, too many connections. */
    _Atomic uint64_t codes[RM_CODE_N];
    /* Streamed answers (enum rm_stream_result): started when the first
     * chunk's headers were queued, then exactly one of the others. */
    _Atomic uint64_t streams[RM_STREAM_RESULTS];
};
/* A gateway's blocks in the gw memfd: one per pool, then the server's. */
#define RM_GW_SERVER RM_SHM_MAX_POOLS
#define RM_GW_BLOCKS (RM_SHM_MAX_POOLS + 1)

enum rm_restart_reason {
    RM_RESTART_CRASHED = 0, /* died on its own (signal or exit) */
    RM_RESTART_HEARTBEAT,   /* killed: no heartbeat while idle */
    RM_RESTART_TIMEOUT,     /* killed: request past its deadline */
    RM_RESTART_RECYCLED,    /* max_requests reached */
    RM_RESTART_RELOAD,      /* replaced by a reload */
    RM_RESTART_INIT_FAILED, /* handler init failed */
    RM_RESTART_MEMORY,      /* max_worker_memory reached */
    RM_RESTART_N
};

/* Master-only counters per pool (single writer: the master). */
struct rm_master_stats {
    alignas(RM_CACHELINE) _Atomic uint64_t restarts[RM_RESTART_N];
    _Atomic uint64_t retried;       /* requests re-queued after a worker death */
    _Atomic uint64_t heals;         /* times the pool's memory was found inconsistent and rebuilt */
    _Atomic uint64_t gw_restarts;   /* gateways respawned (pool 0 entry only) */
    /*
     * Requests served by the pool's workers that are gone: the master adds
     * a worker's final `served` when it reaps it, in the same step that
     * frees its scoreboard entry (pid 0). A reader's total is this plus the
     * `served` of the live entries (pid != 0) of the pool's range, and
     * served_seq makes that sum consistent (a seqlock, single writer: the
     * master): odd while a worker's count moves from its entry to here.
     * Reader: load served_seq (acquire), give up on odd; read served_exited
     * and the entries (relaxed); acquire fence; load served_seq again
     * (relaxed); retry if it moved (supervisor/ctl_status.c). Writer
     * (supervisor/spawn.c, free_entry): store seq + 1 (relaxed), release
     * fence, the stores, store seq + 2 (release).
     */
    _Atomic uint32_t served_seq;
    _Atomic uint64_t served_exited;
};

#endif
