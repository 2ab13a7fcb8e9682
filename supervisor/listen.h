/* listen.h - the listening sockets: from systemd (socket activation) or the
 * INI's listen list. */
#ifndef RM_LISTEN_H
#define RM_LISTEN_H

#include <stddef.h>

#include "core/config.h"

/* At most RM_MAX_LISTEN of each kind: listen, then metrics_listen. */
#define RM_MAX_LISTENERS (2 * RM_MAX_LISTEN)

struct rm_listeners {
    int fds[RM_MAX_LISTENERS];
    char names[RM_MAX_LISTENERS][128];  /* "127.0.0.1:8080", or the systemd name */
    unsigned char metrics[RM_MAX_LISTENERS]; /* 1: a metrics_listen socket (/metrics and health only) */
    size_t n;
    size_t nmetrics;                    /* how many metrics[] are 1 */
    int from_systemd;                   /* the listen sockets came from systemd */
    int metrics_from_systemd;           /* and a "metrics" one among them */
};

/*
 * Sockets passed by systemd (sd_listen_fds_with_names, LISTEN_PID checked)
 * win over the INI's listen: one named "metrics" (FileDescriptorName=) is a
 * metrics socket, the others are listen sockets. Without a passed "metrics"
 * socket, cfg's metrics_listen addresses are bound. Otherwise bind cfg's
 * listen, then metrics_listen addresses. The descriptors are non-blocking
 * and close-on-exec. Returns 0 or -1 with the reason.
 */
int rm_listen_open(struct rm_listeners *l, const struct rm_config *cfg, char *err, size_t errlen);
void rm_listen_close(struct rm_listeners *l);

/*
 * For `ringmaster -t`: would start-up bind cfg's listen and metrics_listen
 * addresses? Each host must resolve, no two addresses (of both lists) may be
 * the same, and a test bind
 * must not fail for any reason but EADDRINUSE (the running ringmaster
 * itself may hold it: a check before a reload). Unix paths: the folder
 * must exist. 0, or -1 with "listen ADDRESS: why" in err.
 */
int rm_listen_check(const struct rm_config *cfg, char *err, size_t errlen);

#endif
