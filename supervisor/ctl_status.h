/*
 * ctl_status.h - `ringmasterctl status`: pools, workers, rates and latency
 * from the master's shared memory (read-only, validated private views) and
 * /proc. ctl.c parses the command line; ctl_status.c samples and prints.
 */
#ifndef RM_CTL_STATUS_H
#define RM_CTL_STATUS_H

#include <stdbool.h>

#include "core/config.h"

#define RM_STATUS_MAX_INTERVAL 3600.0 /* seconds, --interval and --watch */

struct rm_status_opts {
    bool json;
    double interval_s; /* between the two samples; 0: one sample, no rates */
    bool watch;        /* print a screen every interval_s (> 0) until SIGINT/SIGTERM */
};

/* 0, or 1 with the reason on stderr (no master, memory not readable). */
int rm_status_run(const struct rm_config *cfg, const struct rm_status_opts *o);

#endif
