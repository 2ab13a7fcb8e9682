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

#include "core/config.h"
#include "shm/segment.h"

/* The [ringmaster] keys a gateway obeys (durations in ms, as configured). */
struct rm_gw_limits {
    unsigned max_connections;
    uint64_t max_header_size;
    uint64_t header_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t shutdown_timeout_ms;
};

/* The gateway's limits from a configuration. */
struct rm_gw_limits rm_gw_limits_from(const struct rm_config *cfg);

/* What a gateway needs, and nothing more: the master fills it before fork. */
struct rm_gw_ctx {
    struct rm_seg *seg;
    struct rm_gw_limits limits;
    unsigned index;          /* gateway number == scoreboard index */
    const int *listen_fds;   /* non-blocking listening sockets */
    const unsigned char *listen_metrics; /* per socket, 1: metrics_listen (/metrics and health only) */
    size_t nlisten;
    int wake_fd;             /* eventfd: a slot of ours is DONE */
    int chan_fd;             /* the master's channel: memfds of pools created later; -1 none */
    int access_fd;           /* access log (O_APPEND), -1 off */
    pid_t master_pid;
};

/*
 * Run the gateway. Never returns: it exit()s.
 *  - exit 0 when drained: after SIGTERM/SIGINT/SIGQUIT or RM_SBF_DRAIN it
 *    stops taking new work (keep-alive connections close; new inference is
 *    503 once the header says draining), answers every pending request, and
 *    exits when none is left or after limits.shutdown_timeout_ms. During a
 *    whole-server stop (hdr->draining set) it keeps accepting, so probes and
 *    new requests get a 503 instead of hanging; when only this gateway is
 *    retired it closes its listening sockets at once. A second stop signal:
 *    exit at once (the master's recovery frees our slots).
 *  - exit 0 when its master is gone (getppid() != master_pid, checked every
 *    20 ms).
 *  - exit 1 when setup fails (logged with the failing syscall).
 * Expects: rm_log_init() already called; the caller's signal mask may be
 * anything (it installs its own: TERM/INT/QUIT blocked for a signalfd, PIPE
 * and HUP ignored). PR_SET_PDEATHSIG is the caller's to set.
 */
int rm_gateway_main(const struct rm_gw_ctx *ctx);

#endif
