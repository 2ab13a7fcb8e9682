/*
 * preloader.c - load the model once, fork workers that share it.
 * See worker.h (struct rm_preloader_ctx).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/clock.h"
#include "core/log.h"
#include "worker/handler.h"
#include "worker/worker.h"
#include "core/proctitle.h"
#include "core/config.h"
#include "core/exitcodes.h"

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* In the grandchild: wait to be re-parented to the master, then serve. */
static void become_worker(struct rm_preloader_ctx *ctx, const struct rm_spawn_req *req,
                          const struct rm_handler *h, void *state)
{
    struct rm_worker_ctx w = ctx->worker;
    close(ctx->cmd_fd);
    /* The intermediate exits right after fork; until it has, our parent is
     * not the master yet. Bounded wait (the intermediate does nothing else). */
    for (int i = 0; i < 2000 && getppid() != w.master_pid; i++) {
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        rm_warn("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    if (getppid() != w.master_pid)
        _exit(0); /* the master is gone (or is no subreaper): nothing to serve */
    struct rm_sb_entry *e = rm_seg_sb(w.seg, req->sb);
    /* Claim the entry the master reserved: 0 -> our pid. If the master gave
     * up on us meanwhile it wrote -1 first, and we must not serve. acq_rel:
     * pairs with the master's acquire load when adopting and with its
     * tombstone CAS (give_up_reservation in supervisor/spawn.c). */
    int32_t expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&e->pid, &expected, (int32_t)getpid(),
                                                 memory_order_acq_rel, memory_order_acquire))
        _exit(0);
    /* Its own process group, like a worker the master forks: the master
     * kills the group when the worker dies. */
    if (setpgid(0, 0) < 0)
        rm_warn("setpgid: %s", strerror(errno));
    w.sb_index = req->sb;
    w.worker_index = req->index;
    w.preloaded = h;
    w.preloaded_state = state;
    char role[96];
    snprintf(role, sizeof role, "worker %s %u", w.pool_name, w.worker_index);
    rm_log_init(role);
    _exit(rm_worker_main(&w));
}

int rm_preloader_main(struct rm_preloader_ctx *ctx)
{
    struct rm_worker_ctx *w = &ctx->worker;
    struct rm_sb_entry *me = rm_seg_sb(w->seg, w->sb_index);
    rm_proctitle_set("ringmaster: preloader %s", w->pool_name);
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGCHLD, SIG_DFL);
    setenv("OMP_THREAD_LIMIT", "1", 0);
    setenv("OMP_NUM_THREADS", "1", 0);
    /* relaxed: a heartbeat; the master only compares it with its clock */
    atomic_store_explicit(&me->heartbeat_ns, rm_now_ns(), memory_order_relaxed);

    const struct rm_handler *h = NULL;
    void *dl = NULL, *state = NULL;
    char err[RM_HANDLER_ERR_MAX] = "";
    /* Before the handler's init: only the pool's memory (the workers it
     * forks inherit exactly this). */
    if (rm_seg_confine_worker(w->seg, w->pool, w->sb_first, w->sb_count, err, sizeof err) < 0) {
        rm_err("pool %s: confining the preloader to its pool's memory: %s", w->pool_name, err);
        return RM_EXIT_FAILURE;
    }
    if (rm_handler_resolve(w->handler, &h, &dl, err, sizeof err) < 0) {
        rm_err("pool %s: handler %s: %s", w->pool_name, w->handler, err);
        return RM_EXIT_INIT_FAILED;
    }
    struct rm_handler_config hc;
    rm_worker_handler_config(w, &hc);
    hc.worker_index = 0;
    if (rm_check_handler_keys(w->config_path ? w->config_path : "config", w->pool_name, w->kv, NULL, w->nkv, h->name,
                              h->keys, err, sizeof err) < 0) {
        rm_err("pool %s: %s", w->pool_name, err);
        return RM_EXIT_INIT_FAILED;
    }
    if (h->init && h->init(&state, &hc, err, sizeof err) != 0) {
        rm_err("pool %s: handler %s init failed: %s", w->pool_name, h->name, err[0] ? err : "no reason given");
        return RM_EXIT_INIT_FAILED;
    }
    rm_info("pool %s: model loaded once; forking workers from it", w->pool_name);
    /* release: pairs with the master's acquire load of state (loaded model) */
    atomic_store_explicit(&me->state, RM_PROC_READY, memory_order_release);

    const int tick_ms = (int)(w->heartbeat_ns >= 1000000u ? w->heartbeat_ns / 1000000u : 100);
    for (;;) {
        /* relaxed: heartbeat. acquire (flags): pairs with the master's release store of RM_SBF_DRAIN */
        atomic_store_explicit(&me->heartbeat_ns, rm_now_ns(), memory_order_relaxed);
        if (stop_requested || (atomic_load_explicit(&me->flags, memory_order_acquire) & RM_SBF_DRAIN) ||
            getppid() != w->master_pid)
            break;
        struct pollfd pfd = {.fd = ctx->cmd_fd, .events = POLLIN};
        int n = poll(&pfd, 1, tick_ms);
        if (n < 0 && errno != EINTR) {
            rm_err("poll: %s", strerror(errno));
            break;
        }
        if (n <= 0)
            continue;
        struct rm_spawn_req req;
        ssize_t r = read(ctx->cmd_fd, &req, sizeof req);
        if (r == 0)
            break; /* the master closed its end */
        if (r != (ssize_t)sizeof req)
            continue;
        if (req.sb >= w->seg->nprocs)
            continue; /* bounds-checked like any index from outside */
        fflush(NULL);
        if (h->atfork)
            h->atfork(state, RM_FORK_PREPARE);
        pid_t mid = fork();
        if (mid < 0) {
            rm_err("fork: %s", strerror(errno));
            if (h->atfork)
                h->atfork(state, RM_FORK_PARENT);
            continue;
        }
        if (mid == 0) {
            pid_t wk = fork();
            if (wk == 0) {
                if (h->atfork)
                    h->atfork(state, RM_FORK_CHILD);
                become_worker(ctx, &req, h, state);
            }
            _exit(wk < 0 ? 1 : 0);
        }
        if (h->atfork)
            h->atfork(state, RM_FORK_PARENT);
        while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (h->fini)
        h->fini(state);
    return RM_EXIT_OK;
}
