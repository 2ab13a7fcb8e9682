/* listen.h - the listening sockets: from systemd (socket activation) or the
 * INI's listen list. */
#ifndef RM_LISTEN_H
#define RM_LISTEN_H

#include <stddef.h>

#include "core/config.h"

struct rm_listeners {
    int fds[RM_MAX_LISTEN];
    char names[RM_MAX_LISTEN][128];  /* "127.0.0.1:8080", or the systemd name */
    size_t n;
    int from_systemd;
};

/*
 * Sockets passed by systemd (sd_listen_fds_with_names, LISTEN_PID checked)
 * win over the INI. Otherwise bind cfg's listen addresses. The descriptors
 * are non-blocking and close-on-exec. Returns 0 or -1 with the reason.
 */
int rm_listen_open(struct rm_listeners *l, const struct rm_config *cfg, char *err, size_t errlen);
void rm_listen_close(struct rm_listeners *l);

/*
 * For `ringmaster -t`: would start-up bind cfg's listen addresses? Each
 * host must resolve, no two addresses may be the same, and a test bind
 * must not fail for any reason but EADDRINUSE (the running ringmaster
 * itself may hold it: a check before a reload). Unix paths: the folder
 * must exist. 0, or -1 with "listen ADDRESS: why" in err.
 */
int rm_listen_check(const struct rm_config *cfg, char *err, size_t errlen);

#endif
