/* master.h - the master process: supervision loop. */
#ifndef RM_MASTER_H
#define RM_MASTER_H

#include "supervisor/config.h"

/* Run the master with cfg (already validated) until stopped. Returns the
 * process exit code: 0 after a graceful stop, 1 on a startup error. */
int rm_master_run(const struct rm_config *cfg);

/* Control socket path for cfg (runtime_dir/ringmaster.sock). */
void rm_control_path(const struct rm_config *cfg, char *buf, size_t len);
/* PID file path for cfg (runtime_dir/ringmaster.pid): "PID SHM_FD\n". */
void rm_pidfile_path(const struct rm_config *cfg, char *buf, size_t len);
/* Apply $RUNTIME_DIRECTORY / $XDG_RUNTIME_DIR to the default runtime_dir. */
void rm_runtime_dir_resolve(struct rm_config *cfg);

#endif
