/*
 * master.c - the supervising master process.
 *
 * One thread, one epoll: signalfd (HUP, TERM, INT, QUIT, TTIN, TTOU, CHLD),
 * a timerfd tick, the control socket and its clients. The master does no
 * request I/O and loads no model. Every tick it:
 *   - reaps children, runs recovery for each death (shm/recovery.c) and logs
 *     an obituary (spawn.c);
 *   - checks heartbeats of idle processes and deadlines of busy workers, and
 *     kills (SIGTERM, then SIGKILL after a grace) those that miss them
 *     (pools.c);
 *   - reconciles: spawns gateways and workers until every pool has its
 *     target, honouring each pool's exponential backoff (never sleeping)
 *     (pools.c);
 *   - drives reloads (generation handover, reload.c) and the graceful stop
 *     (here);
 *   - talks to systemd (READY, STATUS, RELOADING, STOPPING, WATCHDOG,
 *     notify.c).
 * This file holds the loop, the signals, setup and teardown, and the stop.
 * The state all these files share is in master_int.h.
 * See docs/supervision.md.
 */
#include "supervisor/master.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/paths.h"
#include "core/proctitle.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "supervisor/listen.h"
#include "supervisor/master_int.h"

struct master *M;

/* ------------------------------------------------------------------ stop */

/*
 * SIGTERM, SIGINT, SIGQUIT or `ringmasterctl stop`. Readiness turns 503 at
 * once; with drain_delay the server goes on serving (and respawning) for
 * that long, so that load balancers and Kubernetes endpoints see it
 * unready and stop sending before anything is refused; then the graceful
 * stop. A second stop request does not wait.
 */
void request_stop(void)
{
    if (M->stopping || M->stop_at) {
        begin_stop(1);
        return;
    }
    notify_stopping();
    /* release: pairs with the gateways' acquire load of unready (readiness, routes.c) */
    atomic_store_explicit(&M->seg.hdr->unready, 1, memory_order_release);
    if (M->cfg.drain_delay == 0) {
        begin_stop(0);
        return;
    }
    M->stop_at = rm_now_ns() + M->cfg.drain_delay * MS;
    rm_notice("stop asked: readiness is 503 now; requests are served for drain_delay %.1f s, then the graceful stop",
              M->cfg.drain_delay / 1e3);
}

/* The drain_delay of a stop request has passed. */
static void stop_delay_tick(uint64_t now)
{
    if (M->stop_at && !M->stopping && now >= M->stop_at)
        begin_stop(0);
}

void begin_stop(int immediate)
{
    uint64_t now = rm_now_ns();
    if (M->stopping && !immediate)
        immediate = 1; /* a second stop signal: do not wait */
    if (!M->stopping) {
        if (!M->stop_at)
            notify_stopping();
        M->stop_at = M->stop_at ? M->stop_at : now;
        /* release: pairs with the gateways' acquire load of unready (readiness) */
        atomic_store_explicit(&M->seg.hdr->unready, 1, memory_order_release);
        /* release: gateways' readiness (acquire) turns 503 at once. */
        atomic_store_explicit(&M->seg.hdr->draining, 1, memory_order_release);
        M->stop_deadline = now + M->cfg.shutdown_timeout * MS;
        rm_notice("stopping: draining gateways, then workers (shutdown_timeout %.1f s)", M->cfg.shutdown_timeout / 1e3);
        for (unsigned g = 0; g < RM_MAX_GATEWAYS; g++)
            if (M->procs[g].pid) {
                M->procs[g].retiring = 1;
                /* release: pairs with the gateway's acquire load of flags. */
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

/*
 * runtime_dir holds the control socket and the pid file: whoever can write
 * it could put a symlink where ringmaster writes, or replace the socket
 * ctl talks to. It must be a real directory (not a symlink), owned by the
 * user ringmaster runs as, and writable by nobody else; otherwise start-up
 * refuses it with the reason.
 */
static int check_runtime_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        snprintf(err, errlen, "lstat(runtime_dir %s): %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "runtime_dir %s is %s, not a directory: refusing it", dir,
                 S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
        return -1;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen, "runtime_dir %s belongs to uid %u, not to uid %u that ringmaster runs as: refusing "
                 "it (chown it, or choose another)", dir, (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen, "runtime_dir %s is writable by %s (mode %04o): refusing it (chmod go-w %s)", dir,
                 (st.st_mode & S_IWOTH) ? "everyone" : "its group", (unsigned)(st.st_mode & 07777), dir);
        return -1;
    }
    return 0;
}

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
    if (mkdir(path, 0755) == 0)
        M->created_runtime_dir = 1;
    else if (errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    return check_runtime_dir(path, err, errlen);
}

/* A failed start leaves nothing behind: the socket and pid file it made,
 * and the runtime_dir if it made it (and it is empty now). */
static void undo_setup(void)
{
    char path[4096];
    if (M->created_socket) {
        rm_control_path(&M->cfg, path, sizeof path);
        unlink(path);
    }
    if (M->created_pidfile) {
        rm_pidfile_path(&M->cfg, path, sizeof path);
        unlink(path);
    }
    if (M->created_runtime_dir)
        rmdir(M->cfg.runtime_dir);
}

/*
 * The pid file holds the pid and nothing else (`kill $(cat FILE)` works).
 * Written through a temporary name of our own, created exclusively and
 * never through a symlink (O_EXCL | O_NOFOLLOW), mode 0644 at creation,
 * then renamed over the old file.
 */
static int write_pidfile(char *err, size_t errlen)
{
    char path[4096], tmp[4200], line[32];
    rm_pidfile_path(&M->cfg, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)M->pid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "open(%s, O_CREAT | O_EXCL | O_NOFOLLOW): %s", tmp, strerror(errno));
        return -1;
    }
    int n = snprintf(line, sizeof line, "%d\n", (int)M->pid);
    if (write(fd, line, (size_t)n) != n || close(fd) != 0) {
        snprintf(err, errlen, "write(%s): %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "rename(%s, %s): %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    M->created_pidfile = 1;
    return 0;
}

static int setup(const struct rm_config *cfg, char *err, size_t errlen)
{
    M->cfg = *cfg;
    M->pid = getpid();
    M->epfd = M->sigfd = M->timerfd = M->ctlfd = M->access_fd = -1;
    for (int i = 0; i < MAX_CTL; i++)
        M->ctl[i].fd = -1;
    for (unsigned i = 0; i < NPROCS; i++)
        M->procs[i].pidfd = -1;
    for (unsigned i = 0; i < RM_MAX_GATEWAYS; i++)
        M->wake_fds[i] = M->gw_chan[i] = -1;
    M->generation = 1;

    rm_runtime_dir_resolve(&M->cfg);
    /* Handlers resolve relative paths (python_path, model files) against
     * the configuration file's folder, wherever ringmaster was started. */
    char abs[PATH_MAX];
    if (realpath(M->cfg.path, abs)) {
        char *slash = strrchr(abs, '/');
        if (slash == abs)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        snprintf(M->config_dir, sizeof M->config_dir, "%s", abs);
    } else {
        snprintf(M->config_dir, sizeof M->config_dir, ".");
    }
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
    M->created_socket = 1;
    if (strcmp(M->cfg.access_log, "off") != 0) {
        /* Appended by every gateway, one write(2) per line; never through
         * a symlink; mode set at creation. */
        M->access_fd = open(M->cfg.access_log, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (M->access_fd < 0) {
            snprintf(err, errlen, "open(access_log %s, O_APPEND | O_CREAT | O_NOFOLLOW): %s", M->cfg.access_log,
                     strerror(errno));
            return -1;
        }
    }
    if (rm_listen_open(&M->lis, &M->cfg, err, errlen) < 0)
        return -1;

    /* Shared memory: ctrl, scoreboard, gateway counters; one memfd per pool
     * (virtual: only touched pages cost memory). */
    if (rm_seg_create(&M->seg, NPROCS, RM_MAX_GATEWAYS, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < M->cfg.npools; i++) {
        if (add_pool(&M->cfg.pools[i], err, errlen) < 0)
            return -1;
    }
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
    const struct {
        int fd;
        enum ep_tag tag;
    } watched[] = {{M->sigfd, EP_SIGNAL}, {M->timerfd, EP_TIMER}, {M->ctlfd, EP_CONTROL}};
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = watched[i].tag};
        if (epoll_ctl(M->epfd, EPOLL_CTL_ADD, watched[i].fd, &ev) < 0) {
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
    notify_watchdog_init();
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
            if (M->stopping || M->stop_at) {
                rm_warn("SIGHUP ignored: stopping");
            } else if (M->reloading) {
                /* The file may have changed after this reload read it:
                 * read it again once this one ends. */
                M->reload_queued = 1;
                rm_notice("SIGHUP during a reload: another reload follows this one");
            } else if (begin_reload(why, sizeof why) < 0) {
                rm_err("reload refused, nothing changed: %s", why);
            }
            break;
        }
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            request_stop();
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
        undo_setup();
        return 1;
    }
    srand((unsigned)(M->pid ^ rm_now_ns()));
    for (size_t i = 0; i < M->lis.n; i++)
        rm_notice("listening on %s%s", M->lis.names[i], M->lis.metrics[i] ? " (/metrics and health only)" : "");

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
            uint64_t tag = evs[i].data.u64;
            if (tag == EP_SIGNAL) {
                on_signal();
            } else if (tag == EP_TIMER) {
                uint64_t exp;
                ssize_t r = read(M->timerfd, &exp, sizeof exp);
                (void)r;
            } else if (tag == EP_CONTROL) {
                ctl_accept();
            } else if (tag >= EP_CTL_CLIENT_BASE && tag < EP_CTL_CLIENT_BASE + MAX_CTL) {
                ctl_read((int)(tag - EP_CTL_CLIENT_BASE));
            }
        }
        now = rm_now_ns();
        ctl_resume();
        reap();
        adopt_tick(now);
        retry_pending();
        check_procs(now);
        publish_worker_counts();
        heal_tick(now);
        stop_delay_tick(now);
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
