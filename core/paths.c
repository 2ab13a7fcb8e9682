/* paths.c - where the master's control socket and pid file live. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/paths.h"

void rm_control_path(const struct rm_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "%s/ringmaster.sock", cfg->runtime_dir);
}

void rm_pidfile_path(const struct rm_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "%s/ringmaster.pid", cfg->runtime_dir);
}

/*
 * The runtime_dir actually used: the configured one, except that the default
 * (/run/ringmaster) gives way to systemd's $RUNTIME_DIRECTORY
 * (RuntimeDirectory=), or, for a user who cannot write /run, to
 * $XDG_RUNTIME_DIR/ringmaster. ringmaster and ringmasterctl both call this,
 * so they agree on where the control socket is.
 */
void rm_runtime_dir_resolve(struct rm_config *cfg)
{
    if (strcmp(cfg->runtime_dir, "/run/ringmaster") != 0)
        return;
    const char *rd = getenv("RUNTIME_DIRECTORY");
    if (rd && rd[0] == '/' && !strchr(rd, ':')) {
        snprintf(cfg->runtime_dir, sizeof cfg->runtime_dir, "%s", rd);
        return;
    }
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (geteuid() != 0 && access("/run", W_OK) != 0 && xdg && xdg[0] == '/')
        snprintf(cfg->runtime_dir, sizeof cfg->runtime_dir, "%s/ringmaster", xdg);
}
