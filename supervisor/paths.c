/* paths.c - where the master's control socket and pid file live. */
#include <stdio.h>

#include "supervisor/master.h"

void rm_control_path(const struct rm_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "%s/ringmaster.sock", cfg->runtime_dir);
}

void rm_pidfile_path(const struct rm_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "%s/ringmaster.pid", cfg->runtime_dir);
}
