/*
 * master_int.h - the master's private state and the functions its files
 * share. Only supervisor/ includes it; supervisor/master.h stays the public
 * entry (rm_master_run).
 *
 *   master.c   the loop, signals, setup and teardown, the graceful stop
 *   spawn.c    forking, killing, reaping, the obituary, preloader
 *              reservations and adoption, backoff
 *   pools.c    pool runtime, the pending re-queue lists, reconcile,
 *              removal, heartbeat/deadline/startup checks, readiness
 *   reload.c   generation handover, rollback, the reload's failure policy
 *   control.c  the control socket (ringmasterctl)
 *   notify.c   systemd notifications
 *
 * One thread: nothing here is locked. Everything in struct master is the
 * master's private copy; shared memory is reached through M->seg only.
 */
#ifndef RM_MASTER_INT_H
#define RM_MASTER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"
#include "shm/layout.h"
#include "shm/request.h"
#include "shm/segment.h"
#include "supervisor/listen.h"

/* Scoreboard entries: gateways first, then one range of RM_SB_PER_POOL per
 * pool (shm/layout.h): a worker maps its pool's range and nothing else. */
#define NPROCS (RM_MAX_GATEWAYS + RM_SHM_MAX_POOLS * RM_SB_PER_POOL)
static_assert((RM_MAX_GATEWAYS * sizeof(struct rm_sb_entry)) % RM_PAGE == 0, "pool ranges start on a page");
static_assert(NPROCS <= RM_SHM_MAX_PROCS, "every scoreboard index fits the slot owner field");
#define KILL_GRACE_NS (200ull * 1000000u)
#define EARLY_DEATH_NS (1000ull * 1000000u)
#define MS (1000000ull)

enum kill_reason { KR_NONE = -1 };

/* What an epoll event is about: its epoll_event.data.u64. */
enum ep_tag {
    EP_SIGNAL = 1,              /* the signalfd */
    EP_TIMER = 2,               /* the timerfd tick */
    EP_CONTROL = 3,             /* the control socket: accept */
    EP_CTL_CLIENT_BASE = 100,   /* + i: control client M->ctl[i], i < MAX_CTL */
};

struct proc {
    pid_t pid;            /* 0: entry free */
    int pidfd;            /* for signals without pid-reuse races; -1 if unsupported */
    int role;             /* RM_ROLE_GATEWAY / RM_ROLE_WORKER */
    unsigned pool;        /* worker: pool index */
    unsigned index;       /* gateway N / worker N */
    uint32_t generation;  /* config generation it was started with */
    uint64_t spawn_ns;
    uint64_t ready_ns;    /* 0 until seen READY */
    uint64_t kill_at;     /* SIGKILL due (escalation), 0 none */
    int kill_reason;      /* restart reason when we killed it, KR_NONE otherwise */
    int retiring;         /* asked to drain (reload, TTOU, stop): do not replace */
    int recycling;        /* served max_requests: replaced first, then drained */
    uint64_t max_requests;/* jittered recycle limit, 0 never */
    int reserved;         /* preload pools: entry reserved, worker being forked by the preloader */
    uint64_t reserved_at;
    uint64_t next_mem_check_ns; /* max_worker_memory: next look at its RSS */
    int heal_killed;      /* killed because its pool's memory is rebuilt: no recovery, no backoff */
    int poisoned;         /* reservation given up (pid word tombstoned): never reused */
};

struct pool_rt {
    struct rm_pool_config cfg;
    unsigned shm;              /* shm pool index */
    struct rm_pool_view view;  /* private geometry of its memory (shm/request.h), from creation */
    unsigned target;           /* workers + spares (TTIN/TTOU adjust) */
    uint32_t generation;       /* workers of this generation count toward target */
    unsigned early_deaths;
    uint64_t next_spawn_ns;
    int failed;
    int in_use;
    int created;               /* its shared-memory entry was carved: never reused */
    int zfd;                   /* preload: command socket of the current preloader, -1 none */
    unsigned zsb;              /* its scoreboard entry, NPROCS none */
    int removing;              /* removed by a reload (or a rolled-back add): drain, then 404 */
    /* What a rollback restores (taken when a reload starts). */
    struct rm_pool_config prev_cfg;
    unsigned prev_target;
    uint32_t prev_generation;
    int prev_removing;
    int added;                 /* created by the reload under way */
    unsigned reload_failures;  /* early deaths of its new generation during the reload */
    /*
     * Pending re-queues: slots recovery could not put back on the ring
     * because it was full (rm_recovery_ops.pending). One entry per slot: a
     * slot is QUEUED with one generation at a time, so it is pending at most
     * once per generation, and a newer generation replaces an older one
     * (whose retry would find nothing to do). Sized for every slot of the
     * pool when it is created, and kept while its shared-memory entry exists
     * (entries are never reused), so recovery never runs out of room.
     */
    uint64_t *pend_bits;       /* bit s: slot s is pending */
    uint32_t *pend_gen;        /* [s]: the generation it was pending with */
    uint32_t pend_cap;         /* slots the two arrays cover (queue_depth) */
    /* Healing (heal.c): what the master last saw of each slot and since
     * when, and the state of a rebuild under way. */
    uint64_t *seen_word;       /* [s]: the state word last seen */
    uint64_t *seen_since;      /* [s]: when it was first seen */
    uint64_t ready_since;      /* a worker READY continuously since (0: none now) */
    uint64_t next_check_ns;
    int healing;               /* 1: its workers are being killed, gateways asked to let go */
    uint64_t heal_started;
    uint32_t epoch;            /* the heal_epoch published in its descriptor */
    unsigned npend;            /* bits set */
};

struct ctl_client {
    int fd;
    int waiting_reload;  /* reply when the reload ends */
    char buf[4352];       /* "reload /path/of/the/file\n" */
    size_t len;
};
#define MAX_CTL 16

struct master {
    struct rm_config cfg;
    char config_dir[4096];     /* folder of cfg.path (relative paths in it start here) */
    int created_runtime_dir, created_socket, created_pidfile;  /* undone when start-up fails */
    struct rm_seg seg;
    struct rm_listeners lis;
    int wake_fds[RM_MAX_GATEWAYS];
    int gw_chan[RM_MAX_GATEWAYS];
    int access_fd;              /* access_log, opened by the master for the gateways; -1 off */  /* master's end of each gateway's channel (new pools' memfds), -1 none */
    int epfd, sigfd, timerfd, ctlfd;
    struct ctl_client ctl[MAX_CTL];
    int ctl_paused;         /* accept failed for lack of fds: re-armed each tick */
    struct proc procs[NPROCS];
    struct pool_rt pools[RM_SHM_MAX_POOLS];
    uint32_t generation;
    uint64_t gw_next_spawn_ns;
    int gateways_started;
    uint64_t started_ns;
    unsigned gw_early_deaths;
    /* stop */
    int stopping;          /* 1: graceful, 2: immediate */
    uint64_t stop_at;      /* a stop was asked: the graceful stop begins then (drain_delay); 0: none */
    uint64_t stop_deadline;
    int workers_told_to_drain;
    /* reload */
    int reloading;
    int reload_queued;    /* a SIGHUP or ctl reload came during a reload: another one follows it */
    uint64_t reload_started;
    struct rm_config old_cfg;     /* global keys a rollback restores */
    char reload_error[512];
    /* systemd */
    uint64_t watchdog_usec, next_watchdog_ns;
    int notified_ready;
    uint64_t next_status_ns;
    pid_t pid;
};

extern struct master *M;

/* ------------------------------------------------------------------ spawn.c */

void proc_signal(struct proc *p, int sig);
const char *proc_name(const struct proc *p, char *buf, size_t len);
/* Fork a gateway, worker or preloader into scoreboard entry sb. 0 or -1. */
int spawn(unsigned sb, int role, unsigned pool, unsigned index);
/* SIGTERM now, SIGKILL after KILL_GRACE_NS (check_procs); restart reason. */
void kill_proc(struct proc *p, int reason, const char *why);
/* waitpid every dead child, recover it and log its obituary. */
void reap(void);
void adopt_tick(uint64_t now);
void give_up_reservation(unsigned sb);
/* preload = yes: the pool's preloader is ready; (re)starts it if missing. */
int preloader_ready(struct pool_rt *pr, unsigned pidx, uint64_t now);
/* Reserve entry sb and ask the preloader to fork a worker into it. */
int request_worker(struct pool_rt *pr, unsigned pidx, unsigned sb);

/* ------------------------------------------------------------------ pools.c */

/*
 * The per-pool iterator over the worker part of the scoreboard
 * (RM_MAX_GATEWAYS .. NPROCS): the next entry at or after *sb that is live
 * (a process, or a reservation its preloader is forking), belongs to pool
 * pidx, and has role `role` (POOL_ANY_ROLE: workers and preloaders). *sb is
 * left on the entry returned; NULL at the end.
 */
#define POOL_ANY_ROLE RM_ROLE_NONE
struct proc *pool_proc_next(unsigned pidx, int role, unsigned *sb);
#define for_each_pool_proc(pidx, role, sb, p) \
    for ((sb) = pool_first_sb(pidx); ((p) = pool_proc_next((pidx), (role), &(sb))) != NULL; (sb)++)
/* The scoreboard range of pool pidx: [pool_first_sb, pool_first_sb + RM_SB_PER_POOL). */
static inline unsigned pool_first_sb(unsigned pidx)
{
    return RM_MAX_GATEWAYS + pidx * RM_SB_PER_POOL;
}
#define for_each_pool_worker(pidx, sb, p) for_each_pool_proc((pidx), RM_ROLE_WORKER, sb, p)

int add_pool(const struct rm_pool_config *pc, char *err, size_t errlen);
/* The v2 metadata tensors of pc (descriptor io[]). */
void pool_io_json(const struct rm_pool_config *pc, char *out, size_t len);
/* Hand pool k's memfd to every live gateway (pools created after they were forked). */
void send_pool_to_gateways(unsigned k);
/* Publish each pool's workers by state in its descriptor (readiness, /metrics). */
void publish_worker_counts(void);
void set_pool_cfg(struct pool_rt *pr, const struct rm_pool_config *pc);
struct pool_rt *pool_by_name(const char *name);
/* Pool entry k was never used (an index is never reused). */
int pool_entry_free(unsigned k);
unsigned count_workers(const struct pool_rt *pr, unsigned pidx, uint32_t gen, int ready_only);
unsigned free_worker_entry(unsigned pidx);
unsigned lowest_free_index(unsigned pidx);
void drain_proc(unsigned sb);
void pool_pend_add(unsigned pool, uint32_t slot, uint32_t gen);
void retry_pending(void);
void check_procs(uint64_t now);
void reconcile(uint64_t now);
int all_pools_ready(char *why, size_t len);

/* ------------------------------------------------------------------ reload.c */

int begin_reload(char *why, size_t len);
void reload_tick(uint64_t now);
/* Answer the ctl clients waiting for the reload. */
void reload_finished(int ok, const char *why);
/*
 * A worker or preloader of pool pr died unplanned and early (or failed its
 * handler init). Returns 1 if it belongs to the new generation of the
 * reload under way: the reload's failure policy applies (it may set
 * reload_error), and the pool's own (marking it failed) does not.
 */
int reload_note_early_death(struct pool_rt *pr, const struct proc *p, int init_failed, int early);
/* A worker or preloader of pool pr missed startup_timeout. */
void reload_note_startup_timeout(const struct pool_rt *pr, const struct proc *p);

/* ------------------------------------------------------------------ control.c */

int open_control(char *err, size_t errlen);
void ctl_accept(void);
void ctl_read(int slot);
void ctl_reply(struct ctl_client *c, const char *msg);
/* Watch the control socket again after ctl_accept paused it. */
void ctl_resume(void);

/* ------------------------------------------------------------------ notify.c */

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/* WATCHDOG_USEC: 0 if systemd does not watch us. */
void notify_watchdog_init(void);
void systemd_tick(uint64_t now);

/* ------------------------------------------------------------------ master.c */

void begin_stop(int immediate);
void request_stop(void);

/* ------------------------------------------------------------------ heal.c */

/* Look for pools whose shared memory is inconsistent and heal them; drive
 * rebuilds under way. Once per loop turn. */
void heal_tick(uint64_t now);
/* Why pool pidx's memory is inconsistent, or NULL (exposed for tests). */
const char *heal_check(unsigned pidx, uint64_t now, char *buf, size_t len);

#endif
