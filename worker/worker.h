/*
 * worker.h - the worker process: loads the handler once, then takes slots
 * from its pool's ring until drained, recycled or orphaned.
 */
#ifndef RM_WORKER_H
#define RM_WORKER_H

#include <sys/types.h>

#include "shm/segment.h"
#include "supervisor/config.h"

/* Exit codes: the master's contract with its workers (docs/supervision.md). */
#define RM_EXIT_OK 0            /* drained or stopped */
#define RM_EXIT_RECYCLE 3       /* served max_requests: replace me */
#define RM_EXIT_INIT_FAILED 78  /* handler init failed: permanent, do not respawn (EX_CONFIG) */

struct rm_worker_ctx {
    struct rm_seg *seg;
    const struct rm_config *cfg;
    const struct rm_pool_config *pool_cfg;
    unsigned pool;           /* shm pool index */
    unsigned sb_index;       /* own scoreboard entry */
    unsigned worker_index;   /* N in "ringmaster: worker POOL N" */
    const int *gw_wake_fds;  /* eventfd per gateway number */
    unsigned ngw_wake_fds;
    pid_t master_pid;
    unsigned max_requests;   /* 0: never recycle (jitter already applied) */
};

int rm_worker_main(const struct rm_worker_ctx *ctx);

#endif
