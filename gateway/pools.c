/*
 * pools.c - what the gateway knows of the pools: a per-tick snapshot of
 * the descriptors (name, active, a validated private view of the geometry)
 * and of the scoreboard (which pools have a ready worker).
 *
 * A pool's geometry never changes while its entry exists (a removed pool's
 * entry is never reused), so once a view opened it is kept: later scribbles
 * on the shared descriptor cannot move it.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/internal.h"
#include "shm/request.h"
#include "shm/segment.h"

void gw_scan_workers(const struct gw *gw, unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES])
{
    /* The master's published counts (ctrl: workers cannot write them):
     * only processes it knows to be alive, by the state they report. */
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct rm_shm_pool *p = rm_seg_pool(gw->seg, i);
        for (unsigned st = 0; st < RM_PROC_NSTATES; st++)
            /* relaxed: gauges (layout.h) */
            counts[i][st] = atomic_load_explicit(&((struct rm_shm_pool *)p)->workers[st], memory_order_relaxed);
    }
}

bool gw_server_stopping(const struct gw *gw)
{
    const struct rm_shm_header *h = gw->seg->hdr;
    /* acquire: pairs with the master's release stores of unready and draining (master.c) */
    return gw->draining || atomic_load_explicit(&((struct rm_shm_header *)h)->unready, memory_order_acquire) ||
           atomic_load_explicit(&((struct rm_shm_header *)h)->draining, memory_order_acquire);
}

const char *gw_pool_not_ready(const struct gw *gw, unsigned i,
                              const unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES])
{
    if (i >= RM_SHM_MAX_POOLS || !gw->pools[i].active || !gw->pools[i].valid)
        return "not available";
    const struct rm_shm_pool *p = rm_seg_pool(gw->seg, i);
    /* acquire: pairs with the master's release store of failed */
    if (atomic_load_explicit(&p->failed, memory_order_acquire))
        return "failed to load";
    /* acquire: pairs with the master's release store of healing (heal.c) */
    if (atomic_load_explicit(&((struct rm_shm_pool *)p)->healing, memory_order_acquire))
        return "restarting: a worker corrupted its memory";
    if (counts[i][RM_PROC_READY] + counts[i][RM_PROC_BUSY] == 0)
        return "no ready worker";
    return NULL;
}

void gw_chan_drain(struct gw *gw)
{
    while (gw->chan_fd >= 0) {
        uint32_t idx;
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {.iov_base = &idx, .iov_len = sizeof idx};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        ssize_t n = recvmsg(gw->chan_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            /* The master is gone (or the channel broke): no more pools. */
            if (n < 0)
                rm_err("recvmsg(master channel): %s", strerror(errno));
            epoll_ctl(gw->epfd, EPOLL_CTL_DEL, gw->chan_fd, NULL);
            close(gw->chan_fd);
            gw->chan_fd = -1;
            return;
        }
        int fd = -1;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);
        if (n != sizeof idx || fd < 0) {
            rm_err("master channel: malformed message (%zd bytes, %s descriptor)", n, fd < 0 ? "no" : "a");
            if (fd >= 0)
                close(fd);
            continue;
        }
        char err[256];
        if (rm_seg_pool_map(gw->seg, idx, fd, err, sizeof err) < 0)
            rm_err("pool %u from the master: %s: not served", idx, err);
        close(fd);
    }
}

void gw_pools_refresh(struct gw *gw)
{
    gw_chan_drain(gw);
    unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES];
    gw_scan_workers(gw, counts);
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct rm_shm_pool *p = rm_seg_pool(gw->seg, i);
        struct gw_pool *gp = &gw->pools[i];
        /* acquire: pairs with the master's release store of active
         * (rm_seg_pool_add), so the descriptor below is complete. */
        if (!atomic_load_explicit(&p->active, memory_order_acquire)) {
            /* Removed (or never configured). Requests already in flight in
             * a removed pool keep their view and are answered; new ones get
             * 404. */
            gp->active = gp->has_worker = false;
            continue;
        }
        gp->active = true;
        if (!gp->valid && gw->seg->pool[i].base) {
            gp->valid = rm_pool_view_open(gw->seg, i, &gp->view) == 0;
            if (gp->valid) {
                /* acquire: pairs with the master's release store (heal.c) */
                gp->epoch = atomic_load_explicit(&p->heal_epoch, memory_order_acquire);
                memcpy(gp->name, p->name, sizeof gp->name);
                gp->name[sizeof gp->name - 1] = '\0';
                gp->name_len = strlen(gp->name);
            } else if (!gp->said_invalid) {
                gp->said_invalid = true;
                rm_err("pool %u: descriptor out of bounds of the shared memory, not served", i);
            }
        }
        gp->has_worker = counts[i][RM_PROC_READY] + counts[i][RM_PROC_BUSY] > 0;
        if (!gp->valid)
            continue;
        /* The master is rebuilding the pool's memory (heal.c): let go of
         * every request of the old epoch, then say so. acquire: pairs with
         * the master's release store of heal_epoch. */
        uint32_t e = atomic_load_explicit(&p->heal_epoch, memory_order_acquire);
        if (e != gp->epoch) {
            gw_pending_fail_pool(gw, i);
            gp->epoch = e;
        }
        /* release: pairs with the master's acquire load: our requests of
         * older epochs are answered and their slots untouched from now on. */
        atomic_store_explicit(&rm_seg_gw_stats(gw->seg, gw->index, i)->heal_ack, e, memory_order_release);
    }
}

bool gw_pool_has_worker_now(struct gw *gw, unsigned pi)
{
    unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES];
    gw_scan_workers(gw, counts);
    gw->pools[pi].has_worker = counts[pi][RM_PROC_READY] + counts[pi][RM_PROC_BUSY] > 0;
    return gw->pools[pi].has_worker;
}

int gw_pool_find(const struct gw *gw, const char *name, size_t len)
{
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct gw_pool *gp = &gw->pools[i];
        if (gp->active && gp->valid && gp->name_len == len && memcmp(gp->name, name, len) == 0)
            return (int)i;
    }
    return -1;
}
