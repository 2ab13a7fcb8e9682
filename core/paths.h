/* paths.h - where the master's control socket and pid file live. */
#ifndef RM_PATHS_H
#define RM_PATHS_H

#include <stddef.h>

#include "core/config.h"

/* Control socket path for cfg (runtime_dir/ringmaster.sock). */
void rm_control_path(const struct rm_config *cfg, char *buf, size_t len);
/* PID file path for cfg (runtime_dir/ringmaster.pid): "PID SHM_FD\n". */
void rm_pidfile_path(const struct rm_config *cfg, char *buf, size_t len);
/* Apply $RUNTIME_DIRECTORY / $XDG_RUNTIME_DIR to the default runtime_dir. */
void rm_runtime_dir_resolve(struct rm_config *cfg);

#endif
