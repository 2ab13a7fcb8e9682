/*
 * gateway.c - the gateway process: its epoll loop, accepting, the tick
 * (heartbeat, master liveness, pool snapshot, deadlines, connection
 * timeouts), signals and the drain. See gateway.h and internal.h.
 *
 * Connections are set up and torn down in conn.c; epoll tags in internal.h.
 */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "gateway/internal.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "core/log.h"
#include "core/proctitle.h"

static struct gw the_gw;  /* one gateway per process */

/* ------------------------------------------------------------------ exit */

static void gw_cleanup(struct gw *gw)
{
    for (uint32_t i = 0; i < gw->nconns; i++) {
        struct gw_conn *c = gw->conns[i];
        if (c->fd >= 0)
            gw_conn_close(gw, c);
        gw_buf_free(&c->out);
        gw_buf_free(&c->body);
        gw_stream_free(gw, c);
        gw_buf_free(&c->coll);
        free(c);
    }
    free(gw->conns);
    gw->conns = NULL;
    gw->nconns = 0;
    for (size_t i = 0; i < gw->nlisten; i++)
        if (gw->lfds[i] >= 0)
            close(gw->lfds[i]);
    free(gw->lfds);
    gw->lfds = NULL;
    free(gw->lmetrics);
    gw->lmetrics = NULL;
    gw_buf_free(&gw->scratch);
    if (gw->epfd >= 0)
        close(gw->epfd);
    if (gw->tfd >= 0)
        close(gw->tfd);
    if (gw->sfd >= 0)
        close(gw->sfd);
}

static _Noreturn void gw_exit(struct gw *gw, int code)
{
    /* release: pairs with the master's acquire load of our state */
    atomic_store_explicit(&gw->sb->state, RM_PROC_DRAINING, memory_order_release);
    gw_cleanup(gw);
    exit(code);
}

static void listeners_set(struct gw *gw, bool on)
{
    for (size_t i = 0; i < gw->nlisten; i++) {
        if (gw->lfds[i] < 0)
            continue;
        if (on) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = EV_MAKE(EVK_LISTEN, i)};
            if (epoll_ctl(gw->epfd, EPOLL_CTL_ADD, gw->lfds[i], &ev) < 0 && errno != EEXIST)
                rm_err("epoll_ctl(ADD listening socket %d): %s", gw->lfds[i], strerror(errno));
        } else {
            epoll_ctl(gw->epfd, EPOLL_CTL_DEL, gw->lfds[i], NULL);
        }
    }
}

static void on_accept(struct gw *gw, size_t li)
{
    static uint64_t last_log_ns;
    if (li >= gw->nlisten || gw->lfds[li] < 0)
        return;
    for (int k = 0; k < GW_ACCEPT_BURST; k++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(gw->lfds[li], (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM)
                continue;
            if (gw->now - last_log_ns > 1000000000u) {
                rm_err("accept4: %s", strerror(errno));
                last_log_ns = gw->now;
            }
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: give up a spare to take this one
                 * connection, so a health probe still gets its answer. */
                for (int s = 0; s < GW_SPARE_FDS; s++) {
                    if (gw->spare_fds[s] < 0)
                        continue;
                    close(gw->spare_fds[s]);
                    gw->spare_fds[s] = -1;
                    plen = sizeof peer;
                    fd = accept4(gw->lfds[li], (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    break;
                }
                if (fd >= 0) {
                    gw_conn_open(gw, fd, (struct sockaddr *)&peer, plen, true, gw->lmetrics[li]);
                    continue;
                }
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting until the next tick
                 * instead of spinning on a readable listening socket. */
                listeners_set(gw, false);
                gw->accept_paused = true;
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  /* fails on unix sockets: fine */
        gw_conn_open(gw, fd, (struct sockaddr *)&peer, plen, false, gw->lmetrics[li]);
    }
}

static void on_conn_event(struct gw *gw, uint64_t data, uint32_t events)
{
    uint32_t idx = (uint32_t)data;
    uint32_t gen = (uint32_t)(data >> 32) & GEN_MASK;
    if (idx >= gw->nconns)
        return;
    struct gw_conn *c = gw->conns[idx];
    if (c->fd < 0 || (c->gen & GEN_MASK) != gen)
        return;  /* closed earlier in this batch */
    if (events & (EPOLLERR | EPOLLHUP))
        c->broken = true;
    if (events & EPOLLOUT)
        c->writable = true;
    if (events & EPOLLIN)
        c->readable = true;
    if (events & EPOLLRDHUP) {
        c->rdhup = true;
        c->readable = true;
    }
    gw_conn_run(gw, c);
}

/* ------------------------------------------------------------------ drain */

static void begin_drain(struct gw *gw, const char *why)
{
    if (gw->draining)
        return;
    gw->draining = true;
    gw->drain_start_ns = gw->now;
    /* release: pairs with the master's acquire load of our state */
    atomic_store_explicit(&gw->sb->state, RM_PROC_DRAINING, memory_order_release);
    /* A graceful stop of the whole server (draining in the header, acquire:
     * pairs with the master's release store): keep accepting while requests
     * finish, so that probes and new requests get a 503 instead of hanging
     * in the backlog. This gateway alone retired: leave the listening
     * sockets to the others. */
    bool all = atomic_load_explicit(&gw->seg->hdr->draining, memory_order_acquire);
    if (!all) {
        listeners_set(gw, false);
        for (size_t i = 0; i < gw->nlisten; i++) {
            if (gw->lfds[i] >= 0)
                close(gw->lfds[i]);
            gw->lfds[i] = -1;
        }
    }
    rm_notice("draining (%s): %u connections open, %u requests pending%s", why, gw->nactive,
              gw->npending, all ? ", still answering new connections with 503" : "");
}

/* ------------------------------------------------------------------ timeouts */

static void timeout_408(struct gw *gw, struct gw_conn *c, const char *msg)
{
    c->keepalive = false;
    c->head = false;
    gw_respond_error_s(gw, c, 408, msg);
    gw_conn_run(gw, c);
}

static void check_timeout(struct gw *gw, struct gw_conn *c)
{
    uint64_t now = gw->now;
    if (c->phase == GW_LINGER) {
        if (now >= c->linger_until_ns)
            gw_conn_close(gw, c);
        return;
    }
    if (c->out_off < c->out.len) {
        /* a client that does not read its answers */
        if (now - c->last_write_ns > gw->idle_timeout_ns)
            gw_conn_close(gw, c);
        return;
    }
    if (c->close_after)
        return;
    switch (c->phase) {
    case GW_HEADERS:
        if (now - c->phase_start_ns > gw->header_timeout_ns)
            timeout_408(gw, c, "request headers not complete in time");
        break;
    case GW_BODY:
        if (now - c->last_read_ns > gw->header_timeout_ns)
            timeout_408(gw, c, "request body stalled");
        break;
    case GW_IDLE:
        /* Draining: idle keep-alive connections go; a brand-new one gets a
         * moment for its first request (a probe during a graceful stop). */
        if (now - c->phase_start_ns > gw->idle_timeout_ns ||
            (gw->draining && (c->answers > 0 || now - c->phase_start_ns > GW_DRAIN_FRESH_NS)))
            gw_conn_close(gw, c);
        break;
    default:
        break;
    }
}

/* Returns how many connections hold a request in a slot or an answer not
 * yet written: what a draining gateway waits for. */
static unsigned check_timeouts(struct gw *gw)
{
    unsigned busy = 0;
    struct gw_conn *next;
    for (struct gw_conn *c = gw->active; c; c = next) {
        next = c->next;
        check_timeout(gw, c);
        if (c->fd >= 0 && (c->phase == GW_WAIT || c->out_off < c->out.len))
            busy++;
    }
    return busy;
}

/* ------------------------------------------------------------------ tick */

static void on_tick(struct gw *gw)
{
    uint64_t expirations;
    ssize_t r = read(gw->tfd, &expirations, sizeof expirations);
    (void)r;
    gw->now = rm_now_ns();
    /* relaxed: the master only compares it with its own clock */
    atomic_store_explicit(&gw->sb->heartbeat_ns, gw->now, memory_order_relaxed);
    if (getppid() != gw->ctx->master_pid) {
        rm_notice("master (pid %d) is gone: exiting", (int)gw->ctx->master_pid);
        gw_exit(gw, 0);
    }
    /* acquire: pairs with the master's release store of the flag */
    if (atomic_load_explicit(&gw->sb->flags, memory_order_acquire) & RM_SBF_DRAIN)
        begin_drain(gw, "asked by the master");
    gw_pools_refresh(gw);
    gw_pending_scan(gw);
    if (gw->accept_paused) {
        gw->accept_paused = false;
        listeners_set(gw, true);
    }
    unsigned busy = 1;
    if (++gw->ticks % GW_TIMEOUT_TICKS == 0 || gw->draining)
        busy = check_timeouts(gw);
    if (gw->draining) {
        /* Every accepted request is answered and written. Connections still
         * lingering or half-read (a request not yet complete) are dropped. */
        if (busy == 0) {
            rm_info("drained: exiting");
            gw_exit(gw, 0);
        }
        if (gw->now - gw->drain_start_ns >= gw->shutdown_timeout_ns) {
            rm_warn("shutdown timeout: exiting with %u connections open, %u requests pending",
                    gw->nactive, gw->npending);
            gw_exit(gw, 0);
        }
    }
}

static void on_signal(struct gw *gw)
{
    struct signalfd_siginfo si;
    while (read(gw->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (++gw->stop_signals > 1) {
            rm_notice("signal %u again: exiting now", si.ssi_signo);
            gw_exit(gw, 0);
        }
        begin_drain(gw, strsignal((int)si.ssi_signo));
    }
}

static void on_wake(struct gw *gw)
{
    uint64_t v;
    ssize_t r = read(gw->ctx->wake_fd, &v, sizeof v);  /* resets the eventfd */
    (void)r;
    gw->wake = true;
}

/* ------------------------------------------------------------------ setup */

static _Noreturn void setup_failed(struct gw *gw, const char *what)
{
    rm_err("%s: %s", what, strerror(errno));
    gw_exit(gw, 1);
}

static void signals_setup(struct gw *gw)
{
    /* Signals: TERM/INT/QUIT drain (a second one: exit now), through a
     * signalfd; a terminal's HUP and writes to closed sockets are ignored. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    if (sigprocmask(SIG_SETMASK, &set, NULL) < 0)
        setup_failed(gw, "sigprocmask");
    gw->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (gw->sfd < 0)
        setup_failed(gw, "signalfd");

    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_MAKE(EVK_SIGNAL, 0)};
    if (epoll_ctl(gw->epfd, EPOLL_CTL_ADD, gw->sfd, &ev) < 0)
        setup_failed(gw, "epoll_ctl(ADD signalfd)");
}

/* whole_process: the gateway process itself (confined, signals, process
 * title); false only for tests/fuzz/fuzz_gateway.c, which drives this
 * gateway's connections in its own process (gw_open/gw_poll). */
static void setup(struct gw *gw, const struct rm_gw_ctx *ctx, bool whole_process)
{
    memset(gw, 0, sizeof *gw);
    gw->ctx = ctx;
    gw->seg = ctx->seg;
    gw->index = ctx->index;
    gw->epfd = gw->tfd = gw->sfd = -1;
    gw->chan_fd = ctx->chan_fd;
    gw->access_fd = ctx->access_fd;
    gw->free_head = UINT32_MAX;
    /* Before anything else: the master's memory read-only, no memfd
     * descriptor left open. */
    char cerr[256];
    if (whole_process && rm_seg_confine_gateway(gw->seg, cerr, sizeof cerr) < 0) {
        rm_err("gateway %u: %s", ctx->index, cerr);
        exit(1);
    }
    const struct rm_shm_header *h = gw->seg->hdr;
    if (ctx->index >= h->max_gateways || ctx->index >= h->nprocs) {
        rm_err("gateway number %u out of range (%u gateways, %u scoreboard entries)", ctx->index,
               h->max_gateways, h->nprocs);
        exit(1);
    }
    gw->sb = rm_seg_sb(gw->seg, ctx->index);
    if (whole_process)
        rm_proctitle_set("ringmaster: gateway %u", ctx->index);

    const struct rm_gw_limits *lim = &ctx->limits;
    gw->header_timeout_ns = lim->header_timeout_ms * 1000000u;
    gw->idle_timeout_ns = lim->idle_timeout_ms * 1000000u;
    gw->shutdown_timeout_ns = lim->shutdown_timeout_ms * 1000000u;
    gw->max_connections = lim->max_connections ? lim->max_connections : 1;
    /* max_connections within RLIMIT_NOFILE: each connection is a
     * descriptor, and the over-the-limit answers, the reserve and our own
     * descriptors need some too. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        uint64_t others = 64 + GW_SPARE_FDS + GW_OVERFLOW_CONNS + ctx->nlisten;
        uint64_t room = rl.rlim_cur > others ? rl.rlim_cur - others : 1;
        if (gw->max_connections > room) {
            rm_warn("max_connections %u exceeds what RLIMIT_NOFILE (%llu descriptors) allows: capped at %llu",
                    gw->max_connections, (unsigned long long)rl.rlim_cur, (unsigned long long)room);
            gw->max_connections = (unsigned)room;
        }
    }
    /* Large buffers (bodies, answers) from mmap, given back to the kernel
     * when freed: a fixed threshold stops glibc from raising it after the
     * first free, which would keep the high-water mark of a burst. */
    if (whole_process)
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    for (int s = 0; s < GW_SPARE_FDS; s++)
        gw->spare_fds[s] = -1;
    gw_spares_refill(gw);
    gw->max_header_size = lim->max_header_size ? lim->max_header_size : 16384;
    gw_http_settings(&gw->settings);

    gw->lfds = malloc(sizeof(int) * (ctx->nlisten ? ctx->nlisten : 1));
    gw->lmetrics = calloc(ctx->nlisten ? ctx->nlisten : 1, 1);
    if (!gw->lfds || !gw->lmetrics)
        setup_failed(gw, "malloc");
    gw->nlisten = ctx->nlisten;
    for (size_t i = 0; i < ctx->nlisten; i++) {
        gw->lfds[i] = ctx->listen_fds[i];
        gw->lmetrics[i] = ctx->listen_metrics ? ctx->listen_metrics[i] : 0;
        gw->metrics_apart |= gw->lmetrics[i] != 0;
    }

    gw->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (gw->epfd < 0)
        setup_failed(gw, "epoll_create1");
    if (whole_process)
        signals_setup(gw);
    gw->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (gw->tfd < 0)
        setup_failed(gw, "timerfd_create");
    struct itimerspec its = {
        .it_interval = {.tv_sec = 0, .tv_nsec = GW_TICK_NS},
        .it_value = {.tv_sec = 0, .tv_nsec = GW_TICK_NS},
    };
    if (timerfd_settime(gw->tfd, 0, &its, NULL) < 0)
        setup_failed(gw, "timerfd_settime");

    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_MAKE(EVK_TIMER, 0)};
    if (epoll_ctl(gw->epfd, EPOLL_CTL_ADD, gw->tfd, &ev) < 0)
        setup_failed(gw, "epoll_ctl(ADD timerfd)");
    if (ctx->wake_fd >= 0) {
        ev.data.u64 = EV_MAKE(EVK_WAKE, 0);
        if (epoll_ctl(gw->epfd, EPOLL_CTL_ADD, ctx->wake_fd, &ev) < 0)
            setup_failed(gw, "epoll_ctl(ADD wake eventfd)");
    }
    if (gw->chan_fd >= 0) {
        ev.data.u64 = EV_MAKE(EVK_CHAN, 0);
        if (epoll_ctl(gw->epfd, EPOLL_CTL_ADD, gw->chan_fd, &ev) < 0)
            setup_failed(gw, "epoll_ctl(ADD master channel)");
    }
    listeners_set(gw, true);

    gw->now = rm_now_ns();
    gw_pools_refresh(gw);
    /* relaxed: a heartbeat; the master only compares it with its clock */
    atomic_store_explicit(&gw->sb->heartbeat_ns, gw->now, memory_order_relaxed);
    /* release: pairs with the master's acquire load of our state */
    atomic_store_explicit(&gw->sb->state, RM_PROC_READY, memory_order_release);
}

struct rm_gw_limits rm_gw_limits_from(const struct rm_config *cfg)
{
    return (struct rm_gw_limits){
        .max_connections = cfg->max_connections,
        .max_header_size = cfg->max_header_size,
        .header_timeout_ms = cfg->header_timeout,
        .idle_timeout_ms = cfg->idle_timeout,
        .shutdown_timeout_ms = cfg->shutdown_timeout,
    };
}

/* One epoll_wait (timeout_ms as epoll_wait's) and what its events ask for. */
void gw_poll(struct gw *gw, int timeout_ms)
{
    struct epoll_event evs[GW_MAX_EVENTS];
    /* Streams with records left for clients that can take them: look at
     * the events, do not wait for one. */
    int n = epoll_wait(gw->epfd, evs, GW_MAX_EVENTS, gw->stream_backlog ? 0 : timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return;
        setup_failed(gw, "epoll_wait");
    }
    gw->now = rm_now_ns();
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        switch (EV_KIND(d)) {
        case EVK_CONN:
            on_conn_event(gw, d, evs[i].events);
            break;
        case EVK_LISTEN:
            on_accept(gw, (size_t)(d & 0xffffffffu));
            break;
        case EVK_CHAN:
            gw_chan_drain(gw);
            break;
        case EVK_WAKE:
            on_wake(gw);
            break;
        case EVK_TIMER:
            on_tick(gw);
            break;
        case EVK_SIGNAL:
            on_signal(gw);
            break;
        default:
            break;
        }
    }
    if (gw->wake || gw->stream_backlog) {
        gw->wake = false;
        gw->stream_backlog = false;
        gw_pending_scan(gw);
    }
}

struct gw *gw_open(const struct rm_gw_ctx *ctx)
{
    setup(&the_gw, ctx, false);
    return &the_gw;
}

int rm_gateway_main(const struct rm_gw_ctx *ctx)
{
    struct gw *gw = &the_gw;
    setup(gw, ctx, true);
    rm_info("serving on %zu listening socket(s)", gw->nlisten);
    for (;;)
        gw_poll(gw, -1);
}
