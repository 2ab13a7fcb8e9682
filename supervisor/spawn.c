/*
 * spawn.c - the master's children: forking them (child_setup), killing them
 * (SIGTERM, then SIGKILL after a grace), reaping them, recovering what each
 * death left half done and logging its obituary, the preloader's
 * reservations and their adoption, and the respawn backoff.
 * See docs/supervision.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/proctitle.h"
#include "gateway/gateway.h"
#include "shm/clock.h"
#include "shm/recovery.h"
#include "shm/segment.h"
#include "supervisor/master_int.h"
#include "worker/worker.h"

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

void proc_signal(struct proc *p, int sig)
{
    if (!p->pid)
        return;
#ifdef SYS_pidfd_send_signal
    if (p->pidfd >= 0 && syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0)
        return;
#endif
    kill(p->pid, sig);
}

const char *proc_name(const struct proc *p, char *buf, size_t len)
{
    if (p->role == RM_ROLE_GATEWAY)
        snprintf(buf, len, "gateway %u", p->index);
    else if (p->role == RM_ROLE_PRELOADER)
        snprintf(buf, len, "preloader %s", p->pool < RM_SHM_MAX_POOLS ? M->pools[p->pool].cfg.name : "?");
    else
        snprintf(buf, len, "worker %s %u", p->pool < RM_SHM_MAX_POOLS ? M->pools[p->pool].cfg.name : "?", p->index);
    return buf;
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
    for (unsigned i = 0; i < RM_MAX_GATEWAYS; i++)
        if (M->gw_chan[i] >= 0)
            close(M->gw_chan[i]);
    /* Workers never write the access log (gateways keep it: spawn). */
    if (M->access_fd >= 0 && strncmp(role, "gateway", 7) != 0) {
        close(M->access_fd);
        M->access_fd = -1;
    }
    /* The memfds' descriptors stay open until the child confines itself
     * (rm_seg_confine_*), which closes them: it needs the read-only ones. */
    rm_log_init(role);
}

/*
 * Run as id (user/group from the configuration) from here on, and never
 * gain privileges again (PR_SET_NO_NEW_PRIVS: no setuid executable, no file
 * capability can raise them). Called after the child's setup, before any
 * handler or request code. A failure is fatal for the child: it must not
 * run a model with more rights than configured.
 */
static void drop_identity(const struct rm_identity *id, const char *who)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        rm_warn("%s: prctl(PR_SET_NO_NEW_PRIVS): %s", who, strerror(errno));
    if (!id->drop)
        return;
    if (geteuid() == 0 && setgroups(1, &id->gid) < 0) {
        rm_err("%s: setgroups(%u): %s", who, (unsigned)id->gid, strerror(errno));
        _exit(RM_EXIT_FAILURE);
    }
    if (setgid(id->gid) < 0) {
        rm_err("%s: setgid(%u): %s", who, (unsigned)id->gid, strerror(errno));
        _exit(RM_EXIT_FAILURE);
    }
    if (setuid(id->uid) < 0) {
        rm_err("%s: setuid(%u): %s", who, (unsigned)id->uid, strerror(errno));
        _exit(RM_EXIT_FAILURE);
    }
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
    /* relaxed (these six): no process owns the entry yet; the release store
     * of state below publishes them to readers (acquire), and fork() or the
     * preloader's request to the new process. */
    atomic_store_explicit(&e->pid, 0, memory_order_relaxed);
    atomic_store_explicit(&e->heartbeat_ns, e->spawn_ns, memory_order_relaxed); /* relaxed: see above */
    atomic_store_explicit(&e->intent, 0, memory_order_relaxed);                 /* relaxed: see above */
    atomic_store_explicit(&e->cur_slot, RM_NO_SLOT, memory_order_relaxed);      /* relaxed: see above */
    atomic_store_explicit(&e->flags, 0, memory_order_relaxed);                  /* relaxed: see above */
    /* relaxed: see above; served counts per process, not per entry. */
    atomic_store_explicit(&e->served, 0, memory_order_relaxed);
    /* release: pairs with the acquire loads of state by gateways, ctl and
     * check_procs: who sees STARTING sees the fields above. */
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
    w->config_dir = M->config_dir;
    w->config_path = M->cfg.path;
    w->kv = M->pools[pool].cfg.kv;
    w->nkv = M->pools[pool].cfg.nkv;
    w->heartbeat_ns = M->cfg.heartbeat_interval * MS;
    w->pool = M->pools[pool].shm;
    w->sb_index = sb;
    w->sb_first = pool_first_sb(pool);
    w->sb_count = RM_SB_PER_POOL;
    w->worker_index = index;
    w->gw_wake_fds = M->wake_fds;
    w->ngw_wake_fds = M->cfg.gateways;
    w->master_pid = M->pid;
}

int spawn(unsigned sb, int role, unsigned pool, unsigned index)
{
    struct proc *p = &M->procs[sb];
    struct rm_sb_entry *e = prepare_entry(sb, role, pool, index);
    unsigned max_requests = role == RM_ROLE_WORKER ? jittered_max_requests(pool) : 0;
    int zsv[2] = {-1, -1}; /* preloader: its command socket; gateway: its channel for new pools */
    if ((role == RM_ROLE_PRELOADER || role == RM_ROLE_GATEWAY) &&
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, zsv) < 0) {
        rm_err("socketpair: %s", strerror(errno));
        /* release: pairs with readers' acquire loads of state (as above). */
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
        /* release: pairs with readers' acquire loads of state (as above). */
        atomic_store_explicit(&e->state, RM_PROC_DEAD, memory_order_release);
        return -1;
    }
    if (pid == 0) {
        char rolename[96];
        if (role == RM_ROLE_GATEWAY) {
            snprintf(rolename, sizeof rolename, "gateway %u", index);
            child_setup(rolename);
            close(zsv[0]);
            drop_identity(&M->cfg.gw_id, rolename);
            rm_proctitle_set("ringmaster: gateway %u", index);
            struct rm_gw_ctx gctx = {
                .seg = &M->seg, .limits = rm_gw_limits_from(&M->cfg), .index = index,
                .listen_fds = M->lis.fds, .listen_metrics = M->lis.metrics, .nlisten = M->lis.n,
                .wake_fd = M->wake_fds[index], .chan_fd = zsv[1], .access_fd = M->access_fd,
                .master_pid = M->pid,
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
        /* Its own process group: the master kills the group when it dies. */
        if (setpgid(0, 0) < 0)
            rm_warn("setpgid: %s", strerror(errno));
        drop_identity(&M->pools[pool].cfg.id, rolename);
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
    if (role == RM_ROLE_GATEWAY) {
        close(zsv[1]);
        if (M->gw_chan[index] >= 0)
            close(M->gw_chan[index]);
        M->gw_chan[index] = zsv[0];
    }
    if (role == RM_ROLE_PRELOADER) {
        close(zsv[1]);
        if (M->pools[pool].zfd >= 0)
            close(M->pools[pool].zfd);
        M->pools[pool].zfd = zsv[0];
        fcntl(zsv[0], F_SETFL, fcntl(zsv[0], F_GETFL) | O_NONBLOCK);
    }
    /* release: pairs with ctl's acquire load of pid (ctl.c), which then
     * reads the entry's other fields. */
    atomic_store_explicit(&e->pid, pid, memory_order_release);
    init_proc(p, role, pool, index, e->generation, e->spawn_ns, max_requests);
    p->pid = pid;
    p->pidfd = sys_pidfd_open(pid);
    char nb[96];
    rm_debug("spawned %s, pid %d", proc_name(p, nb, sizeof nb), pid);
    return 0;
}

void kill_proc(struct proc *p, int reason, const char *why)
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
    pool_pend_add(pool, slot, gen);
}

static void on_requeued(void *arg, unsigned pool, uint32_t slot, uint64_t old)
{
    (void)arg;
    (void)slot;
    (void)old;
    /* relaxed: a statistics counter (single writer, the master); gateways'
     * metrics read it relaxed and tolerate a stale value. */
    atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, pool)->retried, 1, memory_order_relaxed);
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

/* A pool's worker or preloader died: restart statistics, the pool's
 * failure policy and its respawn backoff. */
static void worker_died(struct proc *p, struct pool_rt *pr, int reason, int clean, int init_failed,
                        uint64_t lived, uint64_t now)
{
    if (p->heal_killed)
        return; /* the pool is being rebuilt: its fresh workers start at once (heal.c) */
    if (!p->retiring && !M->stopping) {
        /* relaxed: a statistics counter (single writer, the master); gateways'
         * metrics read it relaxed. */
        atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, pr->shm)->restarts[reason], 1,
                                  memory_order_relaxed);
    }
    int unplanned = !p->retiring && !clean;
    int early = unplanned && (lived < EARLY_DEATH_NS || !p->ready_ns);
    /* A new generation that cannot load is the reload's to judge (it rolls
     * back); otherwise the pool's own policy applies. */
    int reload_took_it = reload_note_early_death(pr, p, init_failed, early);
    if (!reload_took_it && init_failed && !p->retiring) {
        if (count_workers(pr, p->pool, pr->generation, 1) == 0 && !pr->failed) {
            /* Nothing of this pool serves and its model will not
             * load: failed, not ready, no respawn storm. */
            pr->failed = 1;
            /* release: pairs with the gateways' acquire load of failed
             * (submit.c), which then answer 503 "failed to load". */
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

/*
 * The entry of a reaped process is free (pid 0). A worker's requests served
 * move to its pool's served_exited in the same step, under the pool's
 * served_seq (layout.h): a reader never sees them in both places or in
 * neither. The count is the dead worker's last word (its pool's other
 * workers could have scribbled on it: a statistic, never an index).
 */
static void free_entry(unsigned sb, int role, unsigned pool)
{
    struct rm_sb_entry *e = rm_seg_sb(&M->seg, sb);
    if (role != RM_ROLE_WORKER || pool >= RM_SHM_MAX_POOLS) {
        /* relaxed: the entry is free; rm_recover_process's release store of
         * DEAD already published the repaired slots, and the next process's
         * entry is published by prepare_entry's release store of state. */
        atomic_store_explicit(&e->pid, 0, memory_order_relaxed);
        return;
    }
    struct rm_master_stats *ms = rm_seg_master_stats(&M->seg, pool);
    /* relaxed (the loads): the master is the only writer of both counters;
     * the worker is reaped, so its stores to served are all visible. */
    uint32_t seq = atomic_load_explicit(&ms->served_seq, memory_order_relaxed);
    uint64_t served = atomic_load_explicit(&e->served, memory_order_relaxed);
    /* relaxed + release fence: readers that see any store below see seq odd
     * (pairs with their acquire fence before they load seq again). */
    atomic_store_explicit(&ms->served_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    /* relaxed (both): ordered by the fence above and the release below. */
    atomic_store_explicit(&ms->served_exited,
                          atomic_load_explicit(&ms->served_exited, memory_order_relaxed) + served,
                          memory_order_relaxed);
    atomic_store_explicit(&e->pid, 0, memory_order_relaxed);
    /* release: pairs with the readers' acquire load of served_seq. */
    atomic_store_explicit(&ms->served_seq, seq + 2, memory_order_release);
}

static void on_death(unsigned sb, int status)
{
    struct proc *p = &M->procs[sb];
    uint64_t now = rm_now_ns();
    char nb[96], how[128];
    proc_name(p, nb, sizeof nb);
    describe_status(status, how, sizeof how);

    /* A worker's side effects die with it: whatever it forked (a handler's
     * helper processes) is in its process group. Before recovery, so that a
     * grandchild still writing to the pool's memory is gone first. ESRCH:
     * nothing left (or it died before it became a group leader). */
    if (p->role == RM_ROLE_WORKER || p->role == RM_ROLE_PRELOADER)
        if (kill(-p->pid, SIGKILL) < 0 && errno != ESRCH)
            rm_warn("kill(-%d, SIGKILL) (the dead %s's process group): %s", (int)p->pid, nb, strerror(errno));

    struct rm_recovery_ops ops = {
        .notify_gateway = on_notify_gateway, .pending = on_pending, .requeued = on_requeued,
    };
    struct rm_recovery_result res;
    /* A pool being rebuilt (heal.c) is not recovered: its memory is
     * suspect and about to be reset; only the entry is marked dead. */
    bool healing = p->heal_killed || (p->pool < RM_SHM_MAX_POOLS && M->pools[p->pool].healing &&
                                      (p->role == RM_ROLE_WORKER || p->role == RM_ROLE_PRELOADER));
    rm_recover_process(&M->seg, sb, healing ? RM_ROLE_NONE : (unsigned)p->role, p->pool, now, &ops, &res);

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
        unsigned r;
        struct proc *q;
        for_each_pool_proc(p->pool, POOL_ANY_ROLE, r, q)
            if (q->reserved)
                give_up_reservation(r);
    }
    if (p->role == RM_ROLE_WORKER || p->role == RM_ROLE_PRELOADER) {
        struct pool_rt *pr = p->pool < RM_SHM_MAX_POOLS ? &M->pools[p->pool] : NULL;
        if (pr && pr->in_use)
            worker_died(p, pr, reason, clean, init_failed, lived, now);
    } else if (p->role == RM_ROLE_GATEWAY && !p->retiring && !M->stopping) {
        /* relaxed: a statistics counter (single writer, the master);
         * gateways' metrics read it relaxed. */
        atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, 0)->gw_restarts, 1, memory_order_relaxed);
        if (lived < EARLY_DEATH_NS || !p->ready_ns)
            M->gw_early_deaths++;
        else
            M->gw_early_deaths = 0;
        M->gw_next_spawn_ns = now + backoff_delay(M->gw_early_deaths);
    }

    int role = p->role;
    unsigned pool = p->pool;
    if (p->pidfd >= 0)
        close(p->pidfd);
    memset(p, 0, sizeof *p);
    p->pidfd = -1;
    free_entry(sb, role, pool);
}

/* ------------------------------------------------------------------ preloader reservations */

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
void give_up_reservation(unsigned sb)
{
    struct proc *p = &M->procs[sb];
    int32_t expected = 0;
    /* acq_rel: pairs with the worker's CAS in preloader.c. */
    if (atomic_compare_exchange_strong_explicit(&rm_seg_sb(&M->seg, sb)->pid, &expected, -1,
                                                memory_order_acq_rel, memory_order_acquire)) {
        p->reserved = 0;
        p->poisoned = 1;
        /* release: pairs with the acquire loads of state by gateways and
         * ctl: the entry is dead, nobody will serve from it. */
        atomic_store_explicit(&rm_seg_sb(&M->seg, sb)->state, RM_PROC_DEAD, memory_order_release);
    } else if (expected > 0) {
        adopt(sb, expected);
    }
}

void adopt_tick(uint64_t now)
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

/*
 * preload = yes: the pool's current-generation preloader must be running and
 * ready (model loaded) before workers are requested from it. Preloaders of
 * older generations drain once no reload needs them any more.
 */
int preloader_ready(struct pool_rt *pr, unsigned pidx, uint64_t now)
{
    int ready = 0, have = 0;
    unsigned sb;
    struct proc *p;
    for_each_pool_proc(pidx, RM_ROLE_PRELOADER, sb, p) {
        if (!p->pid || p->retiring)
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
        sb = free_worker_entry(pidx);
        if (sb < NPROCS && spawn(sb, RM_ROLE_PRELOADER, pidx, 0) == 0)
            pr->zsb = sb;
    }
    return ready;
}

int request_worker(struct pool_rt *pr, unsigned pidx, unsigned sb)
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

/* ------------------------------------------------------------------ reaping */

void reap(void)
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
                    /* acquire: pairs with the worker's CAS of its pid (preloader.c). */
                    atomic_load_explicit(&rm_seg_sb(&M->seg, sb)->pid, memory_order_acquire) == pid)
                    break;
            if (sb == NPROCS)
                continue; /* not ours (a handler's grandchild re-parented to us) */
            adopt(sb, pid);
        }
        on_death(sb, status);
    }
}
