/*
 * gateway.h - the HTTP gateway process.
 *
 * A gateway is forked by the master with everything it needs already open:
 * the shared-memory segment (inherited mapping), the listening sockets, and
 * its own eventfd, which workers write to when a slot of this gateway's
 * becomes DONE. Gateway number N uses scoreboard entry N (gateways occupy
 * entries 0..max_gateways-1), so a slot's meta.gw is also the index of the
 * eventfd to wake and of the statistics block.
 */
#ifndef RM_GATEWAY_H
#define RM_GATEWAY_H

#include <stddef.h>
#include <sys/types.h>

#include "shm/segment.h"
#include "supervisor/config.h"

struct rm_gw_ctx {
    struct rm_seg *seg;
    const struct rm_config *cfg;
    unsigned index;          /* gateway number == scoreboard index */
    const int *listen_fds;   /* non-blocking listening sockets */
    size_t nlisten;
    int wake_fd;             /* eventfd: a slot of ours is DONE */
    pid_t master_pid;
};

/* Run the gateway until told to stop (SIGTERM or RM_SBF_DRAIN: stop
 * accepting, finish in-flight requests, close) or its master dies.
 * Returns the process exit code. */
int rm_gateway_main(const struct rm_gw_ctx *ctx);

#endif
