/*
 * master.c - the supervising master process.
 *
 * One thread, one epoll: signalfd (HUP, TERM, INT, QUIT, TTIN, TTOU, CHLD),
 * a timerfd tick, the control socket and its clients. The master does no
 * request I/O and loads no model. Every tick it:
 *   - reaps children, runs recovery for each death (shm/recovery.c) and logs
 *     an obituary;
 *   - checks heartbeats of idle processes and deadlines of busy workers, and
 *     kills (SIGTERM, then SIGKILL after a grace) those that miss them;
 *   - reconciles: spawns gateways and workers until every pool has its
 *     target, honouring each pool's exponential backoff (never sleeping);
 *   - drives reloads (generation handover) and the graceful stop;
 *   - talks to systemd (READY, STATUS, RELOADING, STOPPING, WATCHDOG).
 * See docs/supervision.md.
 */
#include "supervisor/master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "gateway/gateway.h"
#include "shm/clock.h"
#include "shm/recovery.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "supervisor/listen.h"
#include "core/log.h"
#include "worker/worker.h"
#include "core/proctitle.h"
#include "core/exitcodes.h"
#include "core/paths.h"

#define NPROCS 1088u            /* scoreboard entries: gateways first, then workers */
#define KILL_GRACE_NS (200ull * 1000000u)
#define EARLY_DEATH_NS (1000ull * 1000000u)
#define MS (1000000ull)

enum kill_reason { KR_NONE = -1 };

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
    int poisoned;         /* reservation given up (pid word tombstoned): never reused */
};

struct pool_rt {
    struct rm_pool_config cfg;
    unsigned shm;              /* shm pool index */
    unsigned target;           /* workers + spares (TTIN/TTOU adjust) */
    uint32_t generation;       /* workers of this generation count toward target */
    unsigned early_deaths;
    uint64_t next_spawn_ns;
    int failed;
    int in_use;
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
};

struct ctl_client {
    int fd;
    int waiting_reload;  /* reply when the reload ends */
    char buf[256];
    size_t len;
};
#define MAX_CTL 16

struct master {
    struct rm_config cfg;
    struct rm_seg seg;
    struct rm_listeners lis;
    int wake_fds[RM_MAX_GATEWAYS];
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
    /* pending re-queues (ring was full) */
    struct { unsigned pool; uint32_t slot, gen; } pend[4096];
    unsigned npend;
    /* stop */
    int stopping;          /* 1: graceful, 2: immediate */
    uint64_t stop_deadline;
    int workers_told_to_drain;
    /* reload */
    int reloading;
    uint64_t reload_started;
    struct rm_config old_cfg;     /* global keys a rollback restores */
    char reload_error[512];
    /* systemd */
    uint64_t watchdog_usec, next_watchdog_ns;
    int notified_ready;
    uint64_t next_status_ns;
    pid_t pid;
};

static struct master *M;

/* ------------------------------------------------------------------ helpers */

static int sys_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static void proc_signal(struct proc *p, int sig)
{
    if (!p->pid)
        return;
#ifdef SYS_pidfd_send_signal
    if (p->pidfd >= 0 && syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0)
        return;
#endif
    kill(p->pid, sig);
}

static const char *proc_name(const struct proc *p, char *buf, size_t len)
{
    if (p->role == RM_ROLE_GATEWAY)
        snprintf(buf, len, "gateway %u", p->index);
    else if (p->role == RM_ROLE_PRELOADER)
        snprintf(buf, len, "preloader %s", p->pool < RM_SHM_MAX_POOLS ? M->pools[p->pool].cfg.name : "?");
    else
        snprintf(buf, len, "worker %s %u", p->pool < RM_SHM_MAX_POOLS ? M->pools[p->pool].cfg.name : "?", p->index);
    return buf;
}

static void notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sd_notify(0, buf);
}

/* ------------------------------------------------------------------ spawning */

static void child_setup(const char *role)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        rm_warn("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    /* The master may have died between fork and prctl. */
    if (getppid() != M->pid)
        _exit(0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    /* Only the master talks to systemd: drop its variables, and blank them
     * in the original environment block too, which /proc/PID/environ shows
     * (children are forked, not exec'd, so unsetenv alone leaves them there). */
    static const char *const sd_vars[] = {"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS",
                                          "LISTEN_FDNAMES", "WATCHDOG_PID", "WATCHDOG_USEC"};
    for (size_t i = 0; i < sizeof sd_vars / sizeof sd_vars[0]; i++) {
        char *v = getenv(sd_vars[i]);
        unsetenv(sd_vars[i]);
        if (v) {
            char *entry = v - strlen(sd_vars[i]) - 1; /* "NAME=value" */
            memset(entry, 0, strlen(entry));
        }
    }
    /* Drop the master's own descriptors. */
    close(M->epfd);
    close(M->sigfd);
    close(M->timerfd);
    if (M->ctlfd >= 0)
        close(M->ctlfd);
    for (int i = 0; i < MAX_CTL; i++)
        if (M->ctl[i].fd >= 0)
            close(M->ctl[i].fd);
    for (unsigned i = 0; i < NPROCS; i++)
        if (M->procs[i].pidfd >= 0)
            close(M->procs[i].pidfd);
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++)
        if (M->pools[i].zfd >= 0)
            close(M->pools[i].zfd);
    /* Children keep the mapping, not the memfd (only ctl reads it, through
     * the master's descriptor). */
    close(M->seg.fd);
    M->seg.fd = -1;
    rm_log_init(role);
}

/* Set up scoreboard entry sb for a new process. The entry has no live
 * process: the master is its only writer now. */
static struct rm_sb_entry *prepare_entry(unsigned sb, int role, unsigned pool, unsigned index)
{
    struct rm_sb_entry *e = rm_seg_sb(&M->seg, sb);
    e->role = (uint8_t)role;
    e->pool = (uint16_t)pool;
    e->generation = role == RM_ROLE_GATEWAY ? M->generation : M->pools[pool].generation;
    e->index = index;
    e->spawn_ns = rm_now_ns();
    atomic_store_explicit(&e->pid, 0, memory_order_relaxed);
    atomic_store_explicit(&e->heartbeat_ns, e->spawn_ns, memory_order_relaxed);
    atomic_store_explicit(&e->intent, 0, memory_order_relaxed);
    atomic_store_explicit(&e->cur_slot, RM_NO_SLOT, memory_order_relaxed);
    atomic_store_explicit(&e->flags, 0, memory_order_relaxed);
    atomic_store_explicit(&e->served, 0, memory_order_relaxed); /* per process, not per entry */
    atomic_store_explicit(&e->state, RM_PROC_STARTING, memory_order_release);
    return e;
}

/* The master's private record of a process it started (or reserved). */
static void init_proc(struct proc *p, int role, unsigned pool, unsigned index, uint32_t generation,
                      uint64_t spawn_ns, uint64_t max_requests)
{
    memset(p, 0, sizeof *p);
    p->pidfd = -1;
    p->role = role;
    p->pool = pool;
    p->index = index;
    p->generation = generation;
    p->spawn_ns = spawn_ns;
    p->kill_reason = KR_NONE;
    p->max_requests = max_requests;
}

static unsigned jittered_max_requests(unsigned pool)
{
    /* Jitter up to +25% so a pool's workers do not all recycle together. */
    unsigned mr = M->pools[pool].cfg.max_requests;
    return mr ? mr + (unsigned)((uint64_t)rand() % (mr / 4 + 1)) : 0;
}

static void worker_ctx(struct rm_worker_ctx *w, unsigned sb, unsigned pool, unsigned index)
{
    memset(w, 0, sizeof *w);
    w->seg = &M->seg;
    w->pool_name = M->pools[pool].cfg.name;
    w->handler = M->pools[pool].cfg.handler;
    w->kv = M->pools[pool].cfg.kv;
    w->nkv = M->pools[pool].cfg.nkv;
    w->heartbeat_ns = M->cfg.heartbeat_interval * MS;
    w->pool = M->pools[pool].shm;
    w->sb_index = sb;
    w->worker_index = index;
    w->gw_wake_fds = M->wake_fds;
    w->ngw_wake_fds = M->cfg.gateways;
    w->master_pid = M->pid;
}

static int spawn(unsigned sb, int role, unsigned pool, unsigned index)
{
    struct proc *p = &M->procs[sb];
    struct rm_sb_entry *e = prepare_entry(sb, role, pool, index);
    unsigned max_requests = role == RM_ROLE_WORKER ? jittered_max_requests(pool) : 0;
    int zsv[2] = {-1, -1};
    if (role == RM_ROLE_PRELOADER &&
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, zsv) < 0) {
        rm_err("socketpair: %s", strerror(errno));
        atomic_store_explicit(&e->state, RM_PROC_DEAD, memory_order_release);
        return -1;
    }

    fflush(NULL); /* a child's exit() must not flush the master's buffers again */
    pid_t pid = fork();
    if (pid < 0) {
        rm_err("fork: %s", strerror(errno));
        if (zsv[0] >= 0) {
            close(zsv[0]);
            close(zsv[1]);
        }
        atomic_store_explicit(&e->state, RM_PROC_DEAD, memory_order_release);
        return -1;
    }
    if (pid == 0) {
        char rolename[96];
        if (role == RM_ROLE_GATEWAY) {
            snprintf(rolename, sizeof rolename, "gateway %u", index);
            child_setup(rolename);
            rm_proctitle_set("ringmaster: gateway %u", index);
            struct rm_gw_ctx gctx = {
                .seg = &M->seg, .limits = rm_gw_limits_from(&M->cfg), .index = index,
                .listen_fds = M->lis.fds, .nlisten = M->lis.n,
                .wake_fd = M->wake_fds[index], .master_pid = M->pid,
            };
            _exit(rm_gateway_main(&gctx));
        }
        if (role == RM_ROLE_PRELOADER)
            snprintf(rolename, sizeof rolename, "preloader %s", M->pools[pool].cfg.name);
        else
            snprintf(rolename, sizeof rolename, "worker %s %u", M->pools[pool].cfg.name, index);
        child_setup(rolename);
        /* Workers never accept: close the listening sockets. */
        for (size_t i = 0; i < M->lis.n; i++)
            close(M->lis.fds[i]);
        if (role == RM_ROLE_PRELOADER) {
            close(zsv[0]);
            struct rm_preloader_ctx zctx;
            worker_ctx(&zctx.worker, sb, pool, 0);
            zctx.cmd_fd = zsv[1];
            _exit(rm_preloader_main(&zctx));
        }
        struct rm_worker_ctx wctx;
        worker_ctx(&wctx, sb, pool, index);
        _exit(rm_worker_main(&wctx));
    }
    if (role == RM_ROLE_PRELOADER) {
        close(zsv[1]);
        if (M->pools[pool].zfd >= 0)
            close(M->pools[pool].zfd);
        M->pools[pool].zfd = zsv[0];
        fcntl(zsv[0], F_SETFL, fcntl(zsv[0], F_GETFL) | O_NONBLOCK);
    }
    atomic_store_explicit(&e->pid, pid, memory_order_release);
    init_proc(p, role, pool, index, e->generation, e->spawn_ns, max_requests);
    p->pid = pid;
    p->pidfd = sys_pidfd_open(pid);
    char nb[96];
    rm_debug("spawned %s, pid %d", proc_name(p, nb, sizeof nb), pid);
    return 0;
}

static void kill_proc(struct proc *p, int reason, const char *why)
{
    if (!p->pid || p->kill_at)
        return;
    char nb[96];
    rm_warn("%s (pid %d): %s: killing it", proc_name(p, nb, sizeof nb), p->pid, why);
    p->kill_reason = reason;
    proc_signal(p, SIGTERM);
    p->kill_at = rm_now_ns() + KILL_GRACE_NS;
}

/* ------------------------------------------------------------------ recovery hooks */

static void on_notify_gateway(void *arg, unsigned gw)
{
    (void)arg;
    if (gw < M->cfg.gateways && M->wake_fds[gw] >= 0) {
        uint64_t one = 1;
        ssize_t r = write(M->wake_fds[gw], &one, sizeof one);
        (void)r;
    }
}

static void on_pending(void *arg, unsigned pool, uint32_t slot, uint32_t gen)
{
    (void)arg;
    if (M->npend < sizeof M->pend / sizeof M->pend[0]) {
        M->pend[M->npend].pool = pool;
        M->pend[M->npend].slot = slot;
        M->pend[M->npend].gen = gen;
        M->npend++;
    } else {
        rm_err("pending re-queue list full: slot %u of pool %u waits for its gateway's deadline", slot, pool);
    }
}

static void on_requeued(void *arg, unsigned pool, uint32_t slot, uint64_t old)
{
    (void)arg;
    (void)slot;
    (void)old;
    atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, pool)->retried, 1, memory_order_relaxed);
}

static void retry_pending(void)
{
    for (unsigned k = 0; k < M->npend;) {
        if (rm_recovery_retry(&M->seg, M->pend[k].pool, M->pend[k].slot, M->pend[k].gen))
            M->pend[k] = M->pend[--M->npend];
        else
            k++;
    }
}

/* ------------------------------------------------------------------ deaths */

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "status 0x%x", status);
}

/* Exponential backoff after n early deaths in a row: the first respawns at
 * once, then 100 ms, 200 ms, ... up to backoff_max. */
static uint64_t backoff_delay(unsigned n)
{
    if (n <= 1)
        return 0;
    unsigned sh = n - 2 < 20 ? n - 2 : 20;
    uint64_t delay = (100 * MS) << sh;
    return delay > M->cfg.backoff_max * MS ? M->cfg.backoff_max * MS : delay;
}

static unsigned count_workers(const struct pool_rt *pr, unsigned pidx, uint32_t gen, int ready_only);
static void give_up_reservation(unsigned sb);

static void on_death(unsigned sb, int status)
{
    struct proc *p = &M->procs[sb];
    uint64_t now = rm_now_ns();
    char nb[96], how[128];
    proc_name(p, nb, sizeof nb);
    describe_status(status, how, sizeof how);

    struct rm_recovery_ops ops = {
        .notify_gateway = on_notify_gateway, .pending = on_pending, .requeued = on_requeued,
    };
    struct rm_recovery_result res;
    rm_recover_process(&M->seg, sb, (unsigned)p->role, p->pool, now, &ops, &res);

    int clean = WIFEXITED(status) && (WEXITSTATUS(status) == RM_EXIT_OK);
    int init_failed = WIFEXITED(status) && WEXITSTATUS(status) == RM_EXIT_INIT_FAILED;
    uint64_t lived = now - p->spawn_ns;

    /* The obituary: one line with everything an operator needs. */
    if (p->retiring && clean)
        rm_info("%s (pid %d) %s after draining", nb, p->pid, how);
    else
        rm_log(clean ? RM_LOG_INFO : RM_LOG_WARNING,
               "%s (pid %d) %s after %.1f s%s; recovered: %u re-queued, %u failed 502, %u failed 504, %u freed, %u aborted",
               nb, p->pid, how, lived / 1e9, p->ready_ns ? "" : " (never ready)", res.requeued, res.crashed,
               res.timed_out, res.freed, res.aborted);

    int reason = RM_RESTART_CRASHED;
    if (p->kill_reason != KR_NONE)
        reason = p->kill_reason;
    else if (init_failed)
        reason = RM_RESTART_INIT_FAILED;

    if (p->role == RM_ROLE_PRELOADER && p->pool < RM_SHM_MAX_POOLS && M->pools[p->pool].zsb == sb) {
        struct pool_rt *zp = &M->pools[p->pool];
        if (zp->zfd >= 0)
            close(zp->zfd);
        zp->zfd = -1;
        zp->zsb = NPROCS;
        /* Requests it had not served yet will not be: replace them now. */
        for (unsigned r = RM_MAX_GATEWAYS; r < NPROCS; r++)
            if (M->procs[r].reserved && M->procs[r].pool == p->pool)
                give_up_reservation(r);
    }
    if (p->role == RM_ROLE_WORKER || p->role == RM_ROLE_PRELOADER) {
        struct pool_rt *pr = p->pool < RM_SHM_MAX_POOLS ? &M->pools[p->pool] : NULL;
        if (pr && pr->in_use) {
            if (!p->retiring && !M->stopping)
                atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, pr->shm)->restarts[reason], 1,
                                          memory_order_relaxed);
            int unplanned = !p->retiring && !clean;
            int early = unplanned && (lived < EARLY_DEATH_NS || !p->ready_ns);
            int new_gen = M->reloading && !pr->added && p->generation == pr->generation &&
                          pr->generation != pr->prev_generation;
            if (M->reloading && (new_gen || pr->added) && (init_failed || early) && !M->reload_error[0]) {
                /* The new generation cannot load: roll the reload back
                 * rather than respawn it forever. */
                if (init_failed || ++pr->reload_failures >= 3)
                    snprintf(M->reload_error, sizeof M->reload_error,
                             "pool %s: new workers %s", pr->cfg.name,
                             init_failed ? "failed handler init" : "died while loading, 3 times");
            } else if (init_failed && !p->retiring) {
                if (count_workers(pr, p->pool, pr->generation, 1) == 0 && !pr->failed) {
                    /* Nothing of this pool serves and its model will not
                     * load: failed, not ready, no respawn storm. */
                    pr->failed = 1;
                    atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->failed, 1, memory_order_release);
                    rm_err("pool %s: handler init failed (exit %d): pool marked failed and not ready; "
                           "fix the configuration and reload", pr->cfg.name, RM_EXIT_INIT_FAILED);
                }
                early = 1; /* others still serve: retry with backoff */
            }
            if (unplanned && !pr->failed) {
                if (early) {
                    pr->early_deaths++;
                    uint64_t delay = backoff_delay(pr->early_deaths);
                    if (delay)
                        rm_warn("pool %s: %u early deaths in a row: next worker in %.1f s", pr->cfg.name,
                                pr->early_deaths, delay / 1e9);
                    pr->next_spawn_ns = now + delay;
                } else {
                    pr->early_deaths = 0;
                    pr->next_spawn_ns = now;
                }
            }
        }
    } else if (p->role == RM_ROLE_GATEWAY && !p->retiring && !M->stopping) {
        atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, 0)->gw_restarts, 1, memory_order_relaxed);
        if (lived < EARLY_DEATH_NS || !p->ready_ns)
            M->gw_early_deaths++;
        else
            M->gw_early_deaths = 0;
        M->gw_next_spawn_ns = now + backoff_delay(M->gw_early_deaths);
    }

    if (p->pidfd >= 0)
        close(p->pidfd);
    memset(p, 0, sizeof *p);
    p->pidfd = -1;
    struct rm_sb_entry *e = rm_seg_sb(&M->seg, sb);
    atomic_store_explicit(&e->pid, 0, memory_order_relaxed);
}

/* A worker forked by a preloader wrote its pid into its reserved entry. */
/* A worker forked by a preloader wrote its pid into its reserved entry.
 * That pid comes from shared memory: adopt it only if it really is our
 * child (waitid answers ECHILD otherwise), never signal a stranger. */
static void adopt(unsigned sb, pid_t pid)
{
    struct proc *p = &M->procs[sb];
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD) {
        rm_err("scoreboard entry %u names pid %d, which is not our child: ignoring it", sb, (int)pid);
        p->reserved = 0;
        p->poisoned = 1;
        return;
    }
    p->reserved = 0;
    p->pid = pid;
    p->pidfd = sys_pidfd_open(pid);
}

/*
 * Stop waiting for a reserved worker: tombstone its pid word (0 -> -1). The
 * worker claims the entry with 0 -> its pid, so exactly one side wins: if it
 * already did, adopt it; if we win, a late worker finds -1 and exits, and the
 * entry is never handed out again (no two processes share an owner id).
 */
static void give_up_reservation(unsigned sb)
{
    struct proc *p = &M->procs[sb];
    int32_t expected = 0;
    /* acq_rel: pairs with the worker's CAS in preloader.c. */
    if (atomic_compare_exchange_strong_explicit(&rm_seg_sb(&M->seg, sb)->pid, &expected, -1,
                                                memory_order_acq_rel, memory_order_acquire)) {
        p->reserved = 0;
        p->poisoned = 1;
        atomic_store_explicit(&rm_seg_sb(&M->seg, sb)->state, RM_PROC_DEAD, memory_order_release);
    } else if (expected > 0) {
        adopt(sb, expected);
    }
}

static void adopt_tick(uint64_t now)
{
    for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
        struct proc *p = &M->procs[sb];
        if (!p->reserved)
            continue;
        /* acquire: pairs with the worker's release store of its pid. */
        pid_t pid = atomic_load_explicit(&rm_seg_sb(&M->seg, sb)->pid, memory_order_acquire);
        if (pid > 0) {
            adopt(sb, pid);
        } else if (now - p->reserved_at > (M->pools[p->pool].cfg.startup_timeout + 1000) * MS) {
            rm_warn("pool %s: the preloader did not start worker %u in time: giving up on it",
                    M->pools[p->pool].cfg.name, p->index);
            give_up_reservation(sb);
        }
    }
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        unsigned sb;
        for (sb = 0; sb < NPROCS; sb++)
            if (M->procs[sb].pid == pid)
                break;
        if (sb == NPROCS) {
            /* A worker forked by a preloader, dead before we adopted it? */
            for (sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++)
                if (M->procs[sb].reserved &&
                    atomic_load_explicit(&rm_seg_sb(&M->seg, sb)->pid, memory_order_acquire) == pid)
                    break;
            if (sb == NPROCS)
                continue; /* not ours (a handler's grandchild re-parented to us) */
            adopt(sb, pid);
        }
        on_death(sb, status);
    }
}

/* ------------------------------------------------------------------ checks */

static void check_procs(uint64_t now)
{
    const uint64_t hb_timeout = M->cfg.heartbeat_timeout * MS;
    for (unsigned sb = 0; sb < NPROCS; sb++) {
        struct proc *p = &M->procs[sb];
        if (!p->pid)
            continue;
        if (p->kill_at && now >= p->kill_at) {
            proc_signal(p, SIGKILL);
            p->kill_at = UINT64_MAX; /* sent; wait for the reap */
            continue;
        }
        if (p->kill_at)
            continue;
        struct rm_sb_entry *e = rm_seg_sb(&M->seg, sb);
        unsigned st = atomic_load_explicit(&e->state, memory_order_acquire);
        uint64_t hb = atomic_load_explicit(&e->heartbeat_ns, memory_order_relaxed);
        if (!p->ready_ns && (st == RM_PROC_READY || st == RM_PROC_BUSY))
            p->ready_ns = now;
        /* Serving for a while ends a series of early deaths. */
        if (p->ready_ns && now - p->ready_ns >= EARLY_DEATH_NS) {
            if (p->role == RM_ROLE_GATEWAY)
                M->gw_early_deaths = 0;
            else if (p->pool < RM_SHM_MAX_POOLS)
                M->pools[p->pool].early_deaths = 0;
        }
        if ((p->role == RM_ROLE_WORKER || p->role == RM_ROLE_PRELOADER) && st == RM_PROC_STARTING) {
            struct pool_rt *pr = &M->pools[p->pool];
            if (now - p->spawn_ns > pr->cfg.startup_timeout * MS) {
                if (M->reloading && p->generation == pr->generation &&
                    (pr->added || pr->generation != pr->prev_generation))
                    snprintf(M->reload_error, sizeof M->reload_error,
                             "pool %s: new worker not ready within startup_timeout", pr->cfg.name);
                kill_proc(p, RM_RESTART_INIT_FAILED, "not ready within startup_timeout");
            }
            continue;
        }
        if (st == RM_PROC_BUSY && p->role == RM_ROLE_WORKER) {
            /* Busy: the request's deadline, not the heartbeat, decides. */
            uint32_t s = atomic_load_explicit(&e->cur_slot, memory_order_acquire);
            struct rm_shm_pool *sp = rm_seg_pool(&M->seg, M->pools[p->pool].shm);
            /* cur_slot and the descriptor are shared memory: check both. */
            if (s < M->pools[p->pool].cfg.queue_depth && rm_pool_valid(&M->seg, sp) && s < sp->nslots) {
                uint64_t deadline = rm_pool_meta(&M->seg, sp, s)->deadline_ns;
                if (now > deadline)
                    kill_proc(p, RM_RESTART_TIMEOUT, "request past its deadline");
            }
            continue;
        }
        if ((st == RM_PROC_READY || st == RM_PROC_DRAINING) && now > hb && now - hb > hb_timeout)
            kill_proc(p, RM_RESTART_HEARTBEAT, "no heartbeat");
        if (p->role == RM_ROLE_WORKER && p->max_requests && !p->recycling && !p->retiring &&
            atomic_load_explicit(&e->served, memory_order_relaxed) >= p->max_requests) {
            /* Recycle through the handover: the replacement starts now, this
             * one keeps serving until the replacement is ready (reconcile). */
            p->recycling = 1;
            atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, M->pools[p->pool].shm)->restarts[RM_RESTART_RECYCLED],
                                      1, memory_order_relaxed);
        }
    }
}

/* ------------------------------------------------------------------ reconcile */

static unsigned free_worker_entry(void)
{
    for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++)
        if (!M->procs[sb].pid && !M->procs[sb].reserved && !M->procs[sb].poisoned)
            return sb;
    return NPROCS;
}

static unsigned count_workers(const struct pool_rt *pr, unsigned pidx, uint32_t gen, int ready_only)
{
    unsigned n = 0;
    for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
        const struct proc *p = &M->procs[sb];
        if ((!p->pid && !p->reserved) || p->role != RM_ROLE_WORKER || p->pool != pidx || p->retiring ||
            p->recycling || p->generation != gen)
            continue;
        if (ready_only && !p->ready_ns)
            continue;
        n++;
    }
    (void)pr;
    return n;
}

static void drain_proc(unsigned sb)
{
    struct proc *p = &M->procs[sb];
    p->retiring = 1;
    /* release: pairs with the worker's acquire load of flags. */
    atomic_fetch_or_explicit(&rm_seg_sb(&M->seg, sb)->flags, RM_SBF_DRAIN, memory_order_release);
}

/* Worker numbers in titles stay small: the lowest one no live worker of the
 * pool uses ("ringmaster: worker echo 0", like nginx and php-fpm). */
static unsigned lowest_free_index(unsigned pidx)
{
    for (unsigned n = 0;; n++) {
        int used = 0;
        for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS && !used; sb++) {
            const struct proc *p = &M->procs[sb];
            used = (p->pid || p->reserved) && p->role == RM_ROLE_WORKER && p->pool == pidx && p->index == n;
        }
        if (!used)
            return n;
    }
}

/*
 * preload = yes: the pool's current-generation preloader must be running and
 * ready (model loaded) before workers are requested from it. Preloaders of
 * older generations drain once no reload needs them any more.
 */
static int preloader_ready(struct pool_rt *pr, unsigned pidx, uint64_t now)
{
    int ready = 0, have = 0;
    for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
        struct proc *p = &M->procs[sb];
        if (!p->pid || p->role != RM_ROLE_PRELOADER || p->pool != pidx || p->retiring)
            continue;
        if (p->generation != pr->generation) {
            if (!M->reloading)
                drain_proc(sb);
            continue;
        }
        have = 1;
        ready = p->ready_ns != 0 && pr->zsb == sb && pr->zfd >= 0;
    }
    if (!have && now >= pr->next_spawn_ns) {
        unsigned sb = free_worker_entry();
        if (sb < NPROCS && spawn(sb, RM_ROLE_PRELOADER, pidx, 0) == 0)
            pr->zsb = sb;
    }
    return ready;
}

/* Reserve entry sb and ask the preloader to fork a worker into it. */
static int request_worker(struct pool_rt *pr, unsigned pidx, unsigned sb)
{
    struct proc *p = &M->procs[sb];
    unsigned index = lowest_free_index(pidx);
    prepare_entry(sb, RM_ROLE_WORKER, pidx, index);
    struct rm_spawn_req req = {.sb = sb, .index = index};
    if (write(pr->zfd, &req, sizeof req) != (ssize_t)sizeof req) {
        rm_err("pool %s: asking the preloader for a worker: write: %s", pr->cfg.name, strerror(errno));
        return -1;
    }
    uint64_t now = rm_now_ns();
    init_proc(p, RM_ROLE_WORKER, pidx, index, pr->generation, now, jittered_max_requests(pidx));
    p->reserved = 1;
    p->reserved_at = now;
    return 0;
}

/* A removed pool: drain everything of it; once nothing is left, stop
 * serving it (404 from then on). */
static void remove_tick(struct pool_rt *pr, unsigned pidx)
{
    unsigned left = 0;
    for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
        struct proc *p = &M->procs[sb];
        if (p->pool != pidx || (!p->pid && !p->reserved))
            continue;
        if (p->reserved)
            give_up_reservation(sb);
        if (p->pid && !p->retiring)
            drain_proc(sb);
        left += p->pid != 0;
    }
    if (left)
        return;
    /* release: gateways that see the pool inactive answer 404. */
    atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->active, 0, memory_order_release);
    if (pr->zfd >= 0)
        close(pr->zfd);
    pr->zfd = -1;
    pr->in_use = 0;
    rm_notice("pool %s removed", pr->cfg.name);
}

static void reconcile(uint64_t now)
{
    if (M->stopping)
        return;
    /* Gateways start once every pool has a ready worker (or has failed), so
     * that connections made before that wait in the listen backlog instead
     * of getting 503 from a server that is still loading its models. */
    if (!M->gateways_started) {
        int ok = 1;
        for (unsigned i = 0; i < RM_SHM_MAX_POOLS && ok; i++) {
            struct pool_rt *pr = &M->pools[i];
            ok = !pr->in_use || pr->failed || count_workers(pr, i, pr->generation, 1) > 0 ||
                 now - M->started_ns > pr->cfg.startup_timeout * MS;
        }
        M->gateways_started = ok;
    }
    for (unsigned g = 0; g < M->cfg.gateways && M->gateways_started; g++)
        if (!M->procs[g].pid && now >= M->gw_next_spawn_ns)
            spawn(g, RM_ROLE_GATEWAY, 0, g);
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        struct pool_rt *pr = &M->pools[i];
        if (pr->in_use && pr->removing) {
            remove_tick(pr, i);
            continue;
        }
        if (!pr->in_use || pr->failed)
            continue;
        if (pr->cfg.preload && !preloader_ready(pr, i, now))
            continue; /* workers of this pool are forked by its preloader */
        while (count_workers(pr, i, pr->generation, 0) < pr->target && now >= pr->next_spawn_ns) {
            unsigned sb = free_worker_entry();
            if (sb == NPROCS) {
                rm_err("scoreboard full (%u entries): cannot start another worker", NPROCS);
                break;
            }
            if ((pr->cfg.preload ? request_worker(pr, i, sb) : spawn(sb, RM_ROLE_WORKER, i, lowest_free_index(i))) < 0)
                break;
        }
        /* Recycling workers (max_requests reached, or left over from a
         * rolled-back generation) drain once their replacements are ready. */
        for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
            struct proc *p = &M->procs[sb];
            if (p->pid && p->role == RM_ROLE_WORKER && p->pool == i && p->recycling && !p->retiring &&
                count_workers(pr, i, pr->generation, 1) >= pr->target) {
                char nb[96];
                rm_info("%s (pid %d): replacement ready, draining it", proc_name(p, nb, sizeof nb), p->pid);
                drain_proc(sb);
            }
        }
        /* More workers than the target (TTOU): drain the youngest extra. */
        while (count_workers(pr, i, pr->generation, 0) > pr->target) {
            struct proc *victim = NULL;
            for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
                struct proc *p = &M->procs[sb];
                if (p->pid && p->role == RM_ROLE_WORKER && p->pool == i && !p->retiring && !p->recycling &&
                    p->generation == pr->generation && (!victim || p->spawn_ns > victim->spawn_ns))
                    victim = p;
            }
            if (!victim)
                break;
            victim->retiring = 1;
            atomic_fetch_or_explicit(&rm_seg_sb(&M->seg, (unsigned)(victim - M->procs))->flags, RM_SBF_DRAIN,
                                     memory_order_release);
        }
    }
}

/* ------------------------------------------------------------------ readiness, systemd */

static int all_pools_ready(char *why, size_t len)
{
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        struct pool_rt *pr = &M->pools[i];
        if (!pr->in_use || pr->removing)
            continue;
        if (pr->failed) {
            snprintf(why, len, "pool %s failed", pr->cfg.name);
            return 0;
        }
        unsigned n = 0;
        for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
            struct proc *p = &M->procs[sb];
            if (p->pid && p->role == RM_ROLE_WORKER && p->pool == i && p->ready_ns)
                n++;
        }
        if (!n) {
            snprintf(why, len, "pool %s has no ready worker", pr->cfg.name);
            return 0;
        }
    }
    for (unsigned g = 0; g < M->cfg.gateways; g++)
        if (!M->procs[g].pid || !M->procs[g].ready_ns) {
            snprintf(why, len, "gateway %u not ready", g);
            return 0;
        }
    return 1;
}

static void systemd_tick(uint64_t now)
{
    char why[128];
    if (!M->notified_ready && !M->stopping && !M->reloading && all_pools_ready(why, sizeof why)) {
        notify("READY=1");
        M->notified_ready = 1;
        unsigned npools = 0;
        for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++)
            npools += M->pools[i].in_use && !M->pools[i].removing;
        rm_notice("ready: serving on %zu socket(s), %u pool(s)", M->lis.n, npools);
    }
    if (M->watchdog_usec && now >= M->next_watchdog_ns) {
        notify("WATCHDOG=1");
        M->next_watchdog_ns = now + M->watchdog_usec * 1000u / 2;
    }
    if (now >= M->next_status_ns) {
        unsigned workers = 0, ready = 0;
        uint64_t served = 0;
        for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++)
            if (M->procs[sb].pid) {
                workers++;
                ready += M->procs[sb].ready_ns != 0;
            }
        for (unsigned g = 0; g < M->seg.hdr->max_gateways; g++)
            for (unsigned pl = 0; pl < RM_SHM_MAX_POOLS; pl++)
                served += atomic_load_explicit(&rm_seg_gw_stats(&M->seg, g, pl)->outcomes[RM_OUT_OK], memory_order_relaxed);
        notify("STATUS=%s%u workers (%u ready), %llu requests served", M->stopping ? "stopping: " : M->reloading ? "reloading: " : "",
               workers, ready, (unsigned long long)served);
        M->next_status_ns = now + 1000 * MS;
    }
}

/* ------------------------------------------------------------------ control socket */

static void ctl_reply(struct ctl_client *c, const char *msg)
{
    if (c->fd < 0)
        return;
    ssize_t r = write(c->fd, msg, strlen(msg));
    (void)r;
    epoll_ctl(M->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->waiting_reload = 0;
    c->len = 0;
}

static void reload_finished(int ok, const char *why)
{
    char msg[600];
    if (ok)
        snprintf(msg, sizeof msg, "ok\n");
    else
        snprintf(msg, sizeof msg, "error: %s\n", why);
    for (int i = 0; i < MAX_CTL; i++)
        if (M->ctl[i].fd >= 0 && M->ctl[i].waiting_reload)
            ctl_reply(&M->ctl[i], msg);
}

static void begin_stop(int immediate);
static int begin_reload(char *why, size_t len);

static void ctl_command(struct ctl_client *c)
{
    c->buf[c->len] = '\0';
    char *nl = strchr(c->buf, '\n');
    if (!nl)
        return;
    *nl = '\0';
    if (strcmp(c->buf, "reload") == 0) {
        char why[512];
        if (M->stopping) {
            ctl_reply(c, "error: stopping\n");
        } else if (M->reloading) {
            c->waiting_reload = 1; /* join the reload under way */
        } else if (begin_reload(why, sizeof why) < 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "error: %s\n", why);
            ctl_reply(c, msg);
        } else {
            c->waiting_reload = 1;
        }
    } else if (strcmp(c->buf, "stop") == 0) {
        ctl_reply(c, "ok\n");
        begin_stop(0);
    } else {
        ctl_reply(c, "error: unknown command (reload, stop)\n");
    }
}

static void ctl_accept(void)
{
    for (;;) {
        int fd = accept4(M->ctlfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered epoll would spin on the pending client:
                 * stop watching the socket until the next tick. */
                rm_err("accept4(control socket): %s: control requests wait", strerror(errno));
                epoll_ctl(M->epfd, EPOLL_CTL_DEL, M->ctlfd, NULL);
                M->ctl_paused = 1;
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                rm_err("accept4(control socket): %s", strerror(errno));
            }
            return;
        }
        int slot = -1;
        for (int i = 0; i < MAX_CTL; i++)
            if (M->ctl[i].fd < 0) {
                slot = i;
                break;
            }
        if (slot < 0) {
            const char *m = "error: busy\n";
            ssize_t r = write(fd, m, strlen(m));
            (void)r;
            close(fd);
            continue;
        }
        M->ctl[slot].fd = fd;
        M->ctl[slot].len = 0;
        M->ctl[slot].waiting_reload = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 100 + (uint64_t)slot};
        if (epoll_ctl(M->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            rm_err("epoll_ctl(control client): %s", strerror(errno));
            close(fd);
            M->ctl[slot].fd = -1;
        }
    }
}

static void ctl_read(int slot)
{
    struct ctl_client *c = &M->ctl[slot];
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            epoll_ctl(M->epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
        }
        return;
    }
    c->len += (size_t)n;
    if (c->len >= sizeof c->buf - 1) {
        ctl_reply(c, "error: command too long\n");
        return;
    }
    if (!c->waiting_reload)
        ctl_command(c);
}

/* ------------------------------------------------------------------ reload */

static int pool_layout_same(const struct rm_pool_config *a, const struct rm_pool_config *b)
{
    return a->queue_depth == b->queue_depth && a->max_request_size == b->max_request_size &&
           a->max_response_size == b->max_response_size;
}

static void set_pool_cfg(struct pool_rt *pr, const struct rm_pool_config *pc)
{
    pr->cfg = *pc;
    /* cfg.kv points into cfg.kv_store: re-point after the copy. */
    for (size_t k = 0; k < pr->cfg.nkv; k++) {
        pr->cfg.kv[k].key = pr->cfg.kv_store[k][0];
        pr->cfg.kv[k].value = pr->cfg.kv_store[k][1];
    }
}

/* A pool's master index is its shared-memory index (one numbering
 * everywhere). Shared-memory pool entries are never reused, so neither are
 * indexes: a pool removed by a reload keeps its entry until restart. */
static int add_pool(const struct rm_pool_config *pc, char *err, size_t errlen)
{
    struct rm_pool_spec spec = {
        .name = pc->name, .nslots = pc->queue_depth, .max_req = pc->max_request_size,
        .max_resp = pc->max_response_size, .max_attempts = pc->max_attempts,
        .request_timeout_ns = pc->request_timeout * MS, .handler = pc->handler,
    };
    unsigned k;
    for (k = 0; k < RM_SHM_MAX_POOLS; k++)
        if (!M->pools[k].in_use && !rm_seg_pool(&M->seg, k)->nslots)
            break;
    if (k == RM_SHM_MAX_POOLS) {
        snprintf(err, errlen, "no free pool entry in shared memory (%u pools were ever configured): restart",
                 RM_SHM_MAX_POOLS);
        return -1;
    }
    if (rm_seg_pool_add(&M->seg, k, &spec, err, errlen) < 0)
        return -1;
    struct pool_rt *pr = &M->pools[k];
    memset(pr, 0, sizeof *pr);
    set_pool_cfg(pr, pc);
    pr->shm = k;
    pr->zfd = -1;
    pr->zsb = NPROCS;
    pr->target = pc->workers + pc->spares;
    pr->generation = M->generation;
    pr->prev_generation = M->generation;
    pr->in_use = 1;
    return 0;
}

static struct pool_rt *pool_by_name(const char *name)
{
    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++)
        if (M->pools[j].in_use && strcmp(M->pools[j].cfg.name, name) == 0)
            return &M->pools[j];
    return NULL;
}

/*
 * Start a reload: validate the new file, then start a new generation of
 * workers for every pool. Old workers drain one by one as new ones become
 * ready (reload_tick). Pools added by the file are created; pools removed
 * drain and then answer 404 (reconcile). A pool whose queue_depth or max
 * sizes changed needs a restart (its shared-memory layout is fixed): refused.
 * Everything a rollback needs is saved per pool first.
 */
static int begin_reload(char *why, size_t len)
{
    struct rm_config *nc = calloc(1, sizeof *nc);
    if (!nc) {
        snprintf(why, len, "out of memory");
        return -1;
    }
    char err[512];
    if (rm_config_load(nc, M->cfg.path, err, sizeof err) < 0) {
        snprintf(why, len, "%s", err);
        free(nc);
        return -1;
    }
    rm_runtime_dir_resolve(nc);
    if (nc->gateways != M->cfg.gateways || strcmp(nc->runtime_dir, M->cfg.runtime_dir) != 0) {
        snprintf(why, len, "gateways and runtime_dir cannot change on reload: restart ringmaster");
        free(nc);
        return -1;
    }
    unsigned adding = 0;
    for (size_t i = 0; i < nc->npools; i++) {
        struct pool_rt *pr = pool_by_name(nc->pools[i].name);
        if (!pr) {
            adding++;
        } else if (!pool_layout_same(&pr->cfg, &nc->pools[i])) {
            snprintf(why, len, "pool %s: queue_depth, max_request_size and max_response_size cannot change on reload: restart ringmaster",
                     nc->pools[i].name);
            free(nc);
            return -1;
        }
    }
    unsigned free_entries = 0;
    for (unsigned k = 0; k < RM_SHM_MAX_POOLS; k++)
        free_entries += !M->pools[k].in_use && !rm_seg_pool(&M->seg, k)->nslots;
    if (adding > free_entries) {
        snprintf(why, len, "%u new pools, room for %u more in shared memory: restart ringmaster", adding, free_entries);
        free(nc);
        return -1;
    }

    rm_notice("reload: %s parsed, starting a new generation", nc->path);
    notify("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)(rm_now_ns() / 1000u));
    M->old_cfg = M->cfg;
    M->generation++; /* never reused, even after a rollback */
    M->reloading = 1;
    M->reload_started = rm_now_ns();
    M->reload_error[0] = '\0';
    M->cfg.heartbeat_interval = nc->heartbeat_interval;
    M->cfg.heartbeat_timeout = nc->heartbeat_timeout;
    M->cfg.shutdown_timeout = nc->shutdown_timeout;
    M->cfg.backoff_max = nc->backoff_max;

    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++) {
        struct pool_rt *pr = &M->pools[j];
        if (!pr->in_use)
            continue;
        pr->prev_cfg = pr->cfg;
        pr->prev_target = pr->target;
        pr->prev_generation = pr->generation;
        pr->prev_removing = pr->removing;
        pr->added = 0;
        pr->reload_failures = 0;
        const struct rm_pool_config *pc = rm_config_pool(nc, pr->cfg.name);
        if (!pc) {
            if (!pr->removing)
                rm_notice("reload: pool %s removed: new requests get 404, its workers finish theirs", pr->cfg.name);
            pr->removing = 1;
            /* release: gateways (acquire) stop taking requests for it. */
            atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->active, 0, memory_order_release);
            continue;
        }
        set_pool_cfg(pr, pc);
        pr->removing = 0;
        pr->target = pc->workers + pc->spares;
        pr->generation = M->generation;
        pr->failed = 0;
        pr->early_deaths = 0;
        pr->next_spawn_ns = 0;
        struct rm_shm_pool *sp = rm_seg_pool(&M->seg, pr->shm);
        sp->max_attempts = pc->max_attempts;
        sp->request_timeout_ns = pc->request_timeout * MS;
        atomic_store_explicit(&sp->failed, 0, memory_order_release);
    }
    for (size_t i = 0; i < nc->npools; i++) {
        if (pool_by_name(nc->pools[i].name))
            continue;
        if (add_pool(&nc->pools[i], err, sizeof err) < 0) {
            snprintf(M->reload_error, sizeof M->reload_error, "pool %s: %s", nc->pools[i].name, err);
            break;
        }
        struct pool_rt *pr = pool_by_name(nc->pools[i].name);
        pr->added = 1;
        pr->prev_target = 0;
        rm_notice("reload: pool %s added", nc->pools[i].name);
    }
    free(nc);
    return 0;
}

/*
 * Roll back: every pool gets its previous configuration, target and
 * generation. New-generation workers that are ready keep serving until the
 * old generation is back to its target (they are drained like recycled
 * workers, reconcile), so no pool drops to zero; those still loading are
 * stopped. Pools the reload added are removed again.
 */
static void rollback(void)
{
    rm_err("reload failed, rolling back: %s", M->reload_error);
    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++) {
        struct pool_rt *pr = &M->pools[j];
        if (!pr->in_use)
            continue;
        uint32_t new_gen = pr->generation;
        for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
            struct proc *p = &M->procs[sb];
            if (p->pool != j || p->generation != new_gen || p->retiring)
                continue;
            if (p->reserved) {
                give_up_reservation(sb);
                if (!p->pid)
                    continue;
            }
            if (!p->pid)
                continue;
            if (p->role == RM_ROLE_WORKER && p->ready_ns && !pr->added) {
                p->recycling = 1; /* serves until the old generation is back */
            } else {
                drain_proc(sb);
                if (!p->ready_ns)
                    kill_proc(p, RM_RESTART_RELOAD, "reload rolled back");
            }
        }
        if (pr->added) {
            pr->removing = 1;
            pr->target = 0;
            atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->active, 0, memory_order_release);
            continue;
        }
        set_pool_cfg(pr, &pr->prev_cfg);
        pr->target = pr->prev_target;
        pr->generation = pr->prev_generation;
        pr->removing = pr->prev_removing;
        if (!pr->removing)
            atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->active, 1, memory_order_release);
        pr->failed = 0;
        pr->early_deaths = 0;
        pr->next_spawn_ns = 0;
        struct rm_shm_pool *sp = rm_seg_pool(&M->seg, pr->shm);
        sp->max_attempts = pr->cfg.max_attempts;
        sp->request_timeout_ns = pr->cfg.request_timeout * MS;
        atomic_store_explicit(&sp->failed, 0, memory_order_release);
    }
    M->cfg.heartbeat_interval = M->old_cfg.heartbeat_interval;
    M->cfg.heartbeat_timeout = M->old_cfg.heartbeat_timeout;
    M->cfg.shutdown_timeout = M->old_cfg.shutdown_timeout;
    M->cfg.backoff_max = M->old_cfg.backoff_max;
    M->reloading = 0;
    notify("READY=1");
    reload_finished(0, M->reload_error);
}

static void reload_tick(uint64_t now)
{
    if (!M->reloading)
        return;
    /* A reload that neither finishes nor fails (workers that keep dying in
     * ways backoff hides) must not hang ctl, systemd and later reloads. */
    uint64_t limit = 10000;
    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++)
        if (M->pools[j].in_use && 2 * M->pools[j].cfg.startup_timeout + 10000 > limit)
            limit = 2 * M->pools[j].cfg.startup_timeout + 10000;
    if (!M->reload_error[0] && now - M->reload_started > limit * MS)
        snprintf(M->reload_error, sizeof M->reload_error, "the new generation did not take over within %.0f s",
                 limit / 1e3);
    if (M->reload_error[0]) {
        rollback();
        return;
    }
    int done = 1;
    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++) {
        struct pool_rt *pr = &M->pools[j];
        if (!pr->in_use)
            continue;
        if (pr->removing) {
            done = 0; /* finished when reconcile has removed it */
            continue;
        }
        /* Hand over one at a time: for every new worker that is ready,
         * drain one old worker. Capacity never drops below the target. */
        unsigned new_ready = count_workers(pr, j, pr->generation, 1);
        unsigned old_alive = 0, old_total = 0;
        for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
            struct proc *p = &M->procs[sb];
            if ((!p->pid && !p->reserved) || p->role != RM_ROLE_WORKER || p->pool != j ||
                p->generation == pr->generation)
                continue;
            old_total++;
            old_alive += !p->retiring;
        }
        while (old_alive > 0 && new_ready + old_alive > pr->target) {
            for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++) {
                struct proc *p = &M->procs[sb];
                if (p->pid && p->role == RM_ROLE_WORKER && p->pool == j && p->generation != pr->generation &&
                    !p->retiring) {
                    drain_proc(sb);
                    break;
                }
            }
            old_alive--;
        }
        if (old_total > 0 || new_ready < pr->target)
            done = 0;
    }
    if (done) {
        M->reloading = 0;
        atomic_fetch_add_explicit(&M->seg.hdr->reloads, 1, memory_order_relaxed);
        rm_notice("reload finished in %.2f s: generation %u serves", (now - M->reload_started) / 1e9, M->generation);
        notify("READY=1");
        reload_finished(1, NULL);
    }
}

/* ------------------------------------------------------------------ stop */

static void begin_stop(int immediate)
{
    uint64_t now = rm_now_ns();
    if (M->stopping && !immediate)
        immediate = 1; /* a second stop signal: do not wait */
    if (!M->stopping) {
        notify("STOPPING=1");
        /* release: gateways' readiness (acquire) turns 503 at once. */
        atomic_store_explicit(&M->seg.hdr->draining, 1, memory_order_release);
        M->stop_deadline = now + M->cfg.shutdown_timeout * MS;
        rm_notice("stopping: draining gateways, then workers (shutdown_timeout %.1f s)", M->cfg.shutdown_timeout / 1e3);
        for (unsigned g = 0; g < RM_MAX_GATEWAYS; g++)
            if (M->procs[g].pid) {
                M->procs[g].retiring = 1;
                atomic_fetch_or_explicit(&rm_seg_sb(&M->seg, g)->flags, RM_SBF_DRAIN, memory_order_release);
                proc_signal(&M->procs[g], SIGTERM);
            }
        reload_finished(0, "stopping");
    }
    M->stopping = immediate ? 2 : 1;
    if (immediate) {
        rm_notice("immediate stop: killing every child");
        for (unsigned sb = 0; sb < NPROCS; sb++)
            proc_signal(&M->procs[sb], SIGKILL);
    }
}

/* Returns 1 when everything has exited. */
static int stop_tick(uint64_t now)
{
    int gateways = 0, workers = 0;
    for (unsigned sb = 0; sb < NPROCS; sb++) {
        if (!M->procs[sb].pid)
            continue;
        if (M->procs[sb].role == RM_ROLE_GATEWAY)
            gateways++;
        else
            workers++;
    }
    /* Workers drain once the gateways are gone: queued requests are done. */
    if (!gateways && !M->workers_told_to_drain) {
        M->workers_told_to_drain = 1;
        for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++)
            if (M->procs[sb].pid) {
                drain_proc(sb);
                proc_signal(&M->procs[sb], SIGTERM);
            }
    }
    if (gateways + workers == 0)
        return 1;
    if (now >= M->stop_deadline && M->stopping == 1) {
        rm_warn("shutdown_timeout reached with %d gateway(s) and %d worker(s) left: killing them", gateways, workers);
        M->stopping = 2;
        for (unsigned sb = 0; sb < NPROCS; sb++)
            proc_signal(&M->procs[sb], SIGKILL);
    }
    return 0;
}

/* ------------------------------------------------------------------ setup */

static int make_runtime_dir(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int open_control(char *err, size_t errlen)
{
    char path[4096];
    rm_control_path(&M->cfg, path, sizeof path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_UNIX): %s", strerror(errno));
        return -1;
    }
    /* Refuse to run twice on one runtime_dir: a live master answers. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
        snprintf(err, errlen, "another ringmaster is running on %s", path);
        close(fd);
        return -1;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 16) < 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    chmod(path, 0600);
    return fd;
}

static int write_pidfile(char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    rm_pidfile_path(&M->cfg, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "open %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "%d %d\n", (int)M->pid, M->seg.fd);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "rename %s to %s: %s", tmp, path, strerror(errno));
        return -1;
    }
    return 0;
}

static int setup(const struct rm_config *cfg, char *err, size_t errlen)
{
    M->cfg = *cfg;
    M->pid = getpid();
    M->epfd = M->sigfd = M->timerfd = M->ctlfd = -1;
    for (int i = 0; i < MAX_CTL; i++)
        M->ctl[i].fd = -1;
    for (unsigned i = 0; i < NPROCS; i++)
        M->procs[i].pidfd = -1;
    for (unsigned i = 0; i < RM_MAX_GATEWAYS; i++)
        M->wake_fds[i] = -1;
    M->generation = 1;

    rm_runtime_dir_resolve(&M->cfg);
    if (make_runtime_dir(M->cfg.runtime_dir, err, errlen) < 0)
        return -1;
    /* Workers forked by a preloader are re-parented to us, not to init. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        snprintf(err, errlen, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
        return -1;
    }

    /* Signals arrive through a signalfd: block them first. */
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGTTIN, SIGTTOU, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((M->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        return -1;
    }
    if ((M->ctlfd = open_control(err, errlen)) < 0)
        return -1;
    if (rm_listen_open(&M->lis, &M->cfg, err, errlen) < 0)
        return -1;

    /* Shared memory: room for the pools now and for pools a reload adds
     * (virtual: only touched pages cost memory). */
    uint64_t need = 0;
    for (size_t i = 0; i < M->cfg.npools; i++) {
        const struct rm_pool_config *pc = &M->cfg.pools[i];
        struct rm_pool_spec spec = {.name = pc->name, .nslots = pc->queue_depth, .max_req = pc->max_request_size,
                                    .max_resp = pc->max_response_size};
        need += rm_pool_bytes(&spec);
    }
    uint64_t arena = need * 4 + (256ull << 20);
    if (rm_seg_create(&M->seg, NPROCS, RM_MAX_GATEWAYS, arena, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < M->cfg.npools; i++) {
        if (add_pool(&M->cfg.pools[i], err, errlen) < 0)
            return -1;
    }
    atomic_store_explicit(&M->seg.hdr->ngateways, M->cfg.gateways, memory_order_relaxed);
    rm_seg_publish(&M->seg);

    for (unsigned g = 0; g < M->cfg.gateways; g++)
        if ((M->wake_fds[g] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
            snprintf(err, errlen, "eventfd: %s", strerror(errno));
            return -1;
        }
    /* Children inherit these across fork (no exec), so CLOEXEC is harmless. */

    if ((M->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "timerfd_create: %s", strerror(errno));
        return -1;
    }
    uint64_t tick = M->cfg.heartbeat_interval * MS / 2;
    if (tick > 50 * MS)
        tick = 50 * MS;
    if (tick < 5 * MS)
        tick = 5 * MS;
    struct itimerspec its = {.it_interval = {0, (long)tick}, .it_value = {0, (long)tick}};
    if (timerfd_settime(M->timerfd, 0, &its, NULL) < 0) {
        snprintf(err, errlen, "timerfd_settime: %s", strerror(errno));
        return -1;
    }

    if ((M->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
        return -1;
    }
    int watched[3] = {M->sigfd, M->timerfd, M->ctlfd};
    for (int i = 0; i < 3; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i + 1};
        if (epoll_ctl(M->epfd, EPOLL_CTL_ADD, watched[i], &ev) < 0) {
            snprintf(err, errlen, "epoll_ctl(ADD): %s", strerror(errno));
            return -1;
        }
    }
    /* One pidfd per child: make room for a full scoreboard. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            rm_warn("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    }

    if (write_pidfile(err, errlen) < 0)
        return -1;
    if (sd_watchdog_enabled(0, &M->watchdog_usec) <= 0)
        M->watchdog_usec = 0;
    return 0;
}

static void on_signal(void)
{
    struct signalfd_siginfo si;
    while (read(M->sigfd, &si, sizeof si) == sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            break; /* reaped below */
        case SIGHUP: {
            char why[512];
            if (M->stopping || M->reloading) {
                rm_warn("SIGHUP ignored: %s", M->stopping ? "stopping" : "a reload is under way");
            } else if (begin_reload(why, sizeof why) < 0) {
                rm_err("reload refused, nothing changed: %s", why);
            }
            break;
        }
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            begin_stop(0);
            break;
        case SIGTTIN:
        case SIGTTOU:
            for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++) {
                struct pool_rt *pr = &M->pools[j];
                if (!pr->in_use)
                    continue;
                if (si.ssi_signo == SIGTTIN && pr->target < 256)
                    pr->target++;
                else if (si.ssi_signo == SIGTTOU && pr->target > 1)
                    pr->target--;
                rm_notice("pool %s: %u worker(s) now", pr->cfg.name, pr->target);
            }
            break;
        }
    }
}

int rm_master_run(const struct rm_config *cfg)
{
    M = calloc(1, sizeof *M);
    if (!M) {
        rm_err("calloc: %s", strerror(errno));
        return 1;
    }
    rm_log_init("master");
    rm_proctitle_set("ringmaster: master");
    char err[512];
    if (setup(cfg, err, sizeof err) < 0) {
        rm_err("startup failed: %s", err);
        return 1;
    }
    srand((unsigned)(M->pid ^ rm_now_ns()));
    for (size_t i = 0; i < M->lis.n; i++)
        rm_notice("listening on %s", M->lis.names[i]);

    uint64_t now = rm_now_ns();
    M->started_ns = now;
    reconcile(now);
    for (;;) {
        struct epoll_event evs[16];
        int n = epoll_wait(M->epfd, evs, 16, 100);
        if (n < 0 && errno != EINTR) {
            rm_err("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            uint64_t id = evs[i].data.u64;
            if (id == 1) {
                on_signal();
            } else if (id == 2) {
                uint64_t exp;
                ssize_t r = read(M->timerfd, &exp, sizeof exp);
                (void)r;
            } else if (id == 3) {
                ctl_accept();
            } else if (id >= 100 && id < 100 + MAX_CTL) {
                ctl_read((int)(id - 100));
            }
        }
        now = rm_now_ns();
        /* Publish the master's own heartbeat for ctl and gateways. */
        atomic_store_explicit(&M->seg.hdr->master_heartbeat_ns, now, memory_order_relaxed);
        if (M->ctl_paused) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 3};
            if (epoll_ctl(M->epfd, EPOLL_CTL_ADD, M->ctlfd, &ev) == 0)
                M->ctl_paused = 0;
        }
        reap();
        adopt_tick(now);
        retry_pending();
        check_procs(now);
        if (M->stopping) {
            if (stop_tick(now))
                break;
        } else {
            reload_tick(now);
            reconcile(now);
        }
        systemd_tick(now);
    }
    char path[4096];
    rm_control_path(&M->cfg, path, sizeof path);
    unlink(path);
    rm_pidfile_path(&M->cfg, path, sizeof path);
    unlink(path);
    rm_notice("stopped");
    return 0;
}
