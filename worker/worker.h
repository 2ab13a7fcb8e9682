/*
 * worker.h - the worker process: loads the handler once, then takes slots
 * from its pool's ring until drained, recycled or orphaned.
 */
#ifndef RM_WORKER_H
#define RM_WORKER_H

#include <sys/types.h>

#include "ringmaster_handler.h"
#include "shm/segment.h"

/* What a worker needs, and nothing more: the master fills it before fork. */
struct rm_worker_ctx {
    struct rm_seg *seg;
    const char *pool_name;   /* [pool NAME] */
    const char *handler;     /* the pool's handler = spec */
    const char *config_dir;  /* folder of the configuration file */
    const char *config_path; /* the file itself (messages) */
    const struct rm_handler_kv *kv;  /* the handler's own keys */
    size_t nkv;
    uint64_t heartbeat_ns;   /* heartbeat_interval: also the idle sleep */
    unsigned pool;           /* shm pool index */
    unsigned sb_index;       /* own scoreboard entry */
    unsigned sb_first;       /* the pool's scoreboard range: all the worker keeps mapped */
    unsigned sb_count;       /* (0: the whole scoreboard, for tests) */
    unsigned worker_index;   /* N in "ringmaster: worker POOL N" */
    const int *gw_wake_fds;  /* eventfd per gateway number */
    unsigned ngw_wake_fds;
    pid_t master_pid;
    /* Set when forked by a preloader: the handler is already initialised. */
    const struct rm_handler *preloaded;
    void *preloaded_state;
};

int rm_worker_main(const struct rm_worker_ctx *ctx);

/* The handler's view of its configuration (rm_handler_config) for ctx. */
void rm_worker_handler_config(const struct rm_worker_ctx *ctx, struct rm_handler_config *hc);

/* Handler init errors are reported up to this many bytes (a Python
 * ImportError with its cause needs more than a line). */
#define RM_HANDLER_ERR_MAX 4096

/*
 * The preloader ("preload = yes"): a per-pool process that loads the model
 * once (handler init) and then forks the pool's workers on the master's
 * request, so they share the model's pages copy-on-write. It never runs a
 * request. Each worker is forked through an intermediate process that exits
 * at once, so the worker is re-parented to the master (a child subreaper) and
 * supervised like any other; the worker writes its own pid into the
 * scoreboard entry the master reserved for it (docs/ocr.md, docs/supervision.md).
 */
struct rm_spawn_req {
    uint32_t sb;      /* scoreboard entry reserved by the master */
    uint32_t index;   /* worker number */
};

struct rm_preloader_ctx {
    struct rm_worker_ctx worker;  /* template for the workers it forks */
    int cmd_fd;                   /* reads struct rm_spawn_req from the master */
};

int rm_preloader_main(struct rm_preloader_ctx *ctx);

#endif
