/* listen.c - listening sockets. See listen.h. */
#include "supervisor/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

/*
 * Resolve a TCP address, make a socket for it (flags: SOCK_NONBLOCK or 0)
 * and bind it: what start-up does and what -t tries. Returns the bound
 * socket, or -1 with the failing call in err; *bind_errno is the errno of a
 * failed bind (0 when something else failed). addr/addrlen, when given, get
 * the resolved address.
 */
static int tcp_bound(const struct rm_listen_addr *a, int flags, struct sockaddr_storage *addr, socklen_t *addrlen,
                     int *bind_errno, char *err, size_t errlen)
{
    const char *host = a->host[0] ? a->host : "*";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%u", a->port);
    *bind_errno = 0;
    int r = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &res);
    if (r != 0) {
        snprintf(err, errlen, "listen %s:%u: getaddrinfo: %s", host, a->port, gai_strerror(r));
        return -1;
    }
    if (addr && res->ai_addrlen <= sizeof *addr) {
        memcpy(addr, res->ai_addr, res->ai_addrlen);
        *addrlen = res->ai_addrlen;
    } else if (addr) {
        *addrlen = 0;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen %s:%u: socket: %s", host, a->port, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        *bind_errno = errno;
        snprintf(err, errlen, "bind %s:%u: %s", host, a->port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int open_tcp(const struct rm_listen_addr *a, char *name, size_t namelen, char *err, size_t errlen)
{
    int bind_errno;
    int fd = tcp_bound(a, SOCK_NONBLOCK, NULL, NULL, &bind_errno, err, errlen);
    if (fd < 0)
        return -1;
    if (listen(fd, 1024) < 0) {
        snprintf(err, errlen, "listen %s:%u: %s", a->host, a->port, strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(name, namelen, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
    return fd;
}

static int open_unix(const struct rm_listen_addr *a, char *name, size_t namelen, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", a->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_UNIX): %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(a->path); /* a stale socket of a previous run */
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        snprintf(err, errlen, "bind unix:%s: %s", a->path, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 1024) < 0) {
        snprintf(err, errlen, "listen unix:%s: %s", a->path, strerror(errno));
        close(fd);
        return -1;
    }
    snprintf(name, namelen, "unix:%s", a->path);
    return fd;
}

/* Bind addrs (listen or metrics_listen) and add them to l. */
static int open_list(struct rm_listeners *l, const struct rm_listen_addr *addrs, size_t naddrs, bool metrics,
                     char *err, size_t errlen)
{
    for (size_t i = 0; i < naddrs && l->n < RM_MAX_LISTENERS; i++) {
        const struct rm_listen_addr *a = &addrs[i];
        int fd = a->kind == RM_LISTEN_UNIX ? open_unix(a, l->names[l->n], sizeof l->names[0], err, errlen)
                                           : open_tcp(a, l->names[l->n], sizeof l->names[0], err, errlen);
        if (fd < 0)
            return -1;
        l->metrics[l->n] = metrics;
        l->nmetrics += metrics;
        l->fds[l->n++] = fd;
    }
    return 0;
}

int rm_listen_open(struct rm_listeners *l, const struct rm_config *cfg, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    char **names = NULL;
    /* unset_environment=1: LISTEN_* must not reach the children. */
    int n = sd_listen_fds_with_names(1, &names);
    if (n < 0) {
        snprintf(err, errlen, "sd_listen_fds_with_names: %s", strerror(-n));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        const char *name = names && names[i] ? names[i] : "?";
        if (l->n == RM_MAX_LISTENERS) {
            snprintf(err, errlen, "systemd passed more than %d sockets", RM_MAX_LISTENERS);
            rc = -1;
        } else if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
            snprintf(err, errlen, "systemd passed fd %d (%s) that is not a listening stream socket", fd, name);
            rc = -1;
        } else if (set_flags(fd) < 0) {
            snprintf(err, errlen, "fcntl(fd %d): %s", fd, strerror(errno));
            rc = -1;
        } else {
            bool metrics = strcmp(name, "metrics") == 0;
            l->fds[l->n] = fd;
            l->metrics[l->n] = metrics;
            l->nmetrics += metrics;
            snprintf(l->names[l->n], sizeof l->names[0], "systemd:%s", name);
            l->n++;
        }
    }
    if (names) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
    }
    if (rc == 0 && n > 0) {
        l->from_systemd = 1;
        l->metrics_from_systemd = l->nmetrics > 0;
        if (l->n == l->nmetrics) {
            snprintf(err, errlen, "systemd passed only sockets named \"metrics\": no socket to serve requests on");
            rc = -1;
        } else if (l->nmetrics == 0) {
            rc = open_list(l, cfg->metrics_addrs, cfg->nmetrics, true, err, errlen);
        }
    } else if (rc == 0) {
        rc = open_list(l, cfg->listen_addrs, cfg->nlisten, false, err, errlen);
        if (rc == 0)
            rc = open_list(l, cfg->metrics_addrs, cfg->nmetrics, true, err, errlen);
        if (rc == 0 && l->n == l->nmetrics) {
            snprintf(err, errlen, "no listen address");
            rc = -1;
        }
    }
    if (rc < 0)
        rm_listen_close(l);
    return rc;
}

void rm_listen_close(struct rm_listeners *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    l->n = 0;
    l->nmetrics = 0;
}

int rm_listen_check(const struct rm_config *cfg, char *err, size_t errlen)
{
    /* listen, then metrics_listen: one list, so that an address given in
     * both is caught like one given twice. */
    const struct rm_listen_addr *all[RM_MAX_LISTENERS];
    size_t nall = 0;
    for (size_t i = 0; i < cfg->nlisten && nall < RM_MAX_LISTENERS; i++)
        all[nall++] = &cfg->listen_addrs[i];
    for (size_t i = 0; i < cfg->nmetrics && nall < RM_MAX_LISTENERS; i++)
        all[nall++] = &cfg->metrics_addrs[i];

    struct sockaddr_storage seen[RM_MAX_LISTENERS];
    socklen_t seen_len[RM_MAX_LISTENERS];
    size_t nseen = 0;
    for (size_t i = 0; i < nall; i++) {
        const struct rm_listen_addr *a = all[i];
        if (a->kind == RM_LISTEN_UNIX) {
            char dir[sizeof a->path];
            snprintf(dir, sizeof dir, "%s", a->path);
            char *slash = strrchr(dir, '/');
            if (slash && slash != dir)
                *slash = '\0';
            struct stat st;
            if (slash && stat(slash == dir ? "/" : dir, &st) < 0) {
                snprintf(err, errlen, "listen unix:%s: its folder: %s", a->path, strerror(errno));
                return -1;
            }
            for (size_t k = 0; k < i; k++)
                if (all[k]->kind == RM_LISTEN_UNIX && strcmp(all[k]->path, a->path) == 0) {
                    snprintf(err, errlen, "listen unix:%s is given twice (listen and metrics_listen count as one list)",
                             a->path);
                    return -1;
                }
            continue;
        }
        /* Bound and closed at once: start-up binds it for real. In use
         * (a running ringmaster holds it) is not an error here. */
        struct sockaddr_storage addr;
        socklen_t addrlen = 0;
        int bind_errno;
        int fd = tcp_bound(a, 0, &addr, &addrlen, &bind_errno, err, errlen);
        if (fd >= 0)
            close(fd);
        else if (bind_errno != EADDRINUSE)
            return -1;
        for (size_t k = 0; k < nseen; k++)
            if (addrlen && seen_len[k] == addrlen && memcmp(&seen[k], &addr, addrlen) == 0) {
                snprintf(err, errlen, "listen %s:%u is given twice (listen and metrics_listen count as one list)",
                         a->host[0] ? a->host : "*", a->port);
                return -1;
            }
        if (nseen < RM_MAX_LISTENERS && addrlen) {
            seen[nseen] = addr;
            seen_len[nseen++] = addrlen;
        }
    }
    return 0;
}
