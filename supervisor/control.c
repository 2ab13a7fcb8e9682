/*
 * control.c - the control socket (runtime_dir/ringmaster.sock, mode 0600)
 * that ringmasterctl talks to: one line in ("reload", "stop"), one line out
 * ("ok", "error: ..."). A reload's answer waits until the reload ends
 * (reload_finished). At most MAX_CTL clients at a time.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/paths.h"
#include "supervisor/master_int.h"

int open_control(char *err, size_t errlen)
{
    char path[4096];
    rm_control_path(&M->cfg, path, sizeof path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_UNIX): %s", strerror(errno));
        return -1;
    }
    /* Refuse to run twice on one runtime_dir: a live master answers. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
        snprintf(err, errlen, "another ringmaster is running on %s", path);
        close(fd);
        return -1;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 16) < 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    chmod(path, 0600);
    return fd;
}

void ctl_reply(struct ctl_client *c, const char *msg)
{
    if (c->fd < 0)
        return;
    ssize_t r = write(c->fd, msg, strlen(msg));
    (void)r;
    epoll_ctl(M->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->waiting_reload = 0;
    c->len = 0;
}

static void ctl_command(struct ctl_client *c)
{
    c->buf[c->len] = '\0';
    char *nl = strchr(c->buf, '\n');
    if (!nl)
        return;
    *nl = '\0';
    /* "COMMAND [PATH]": PATH is the file ringmasterctl was given; a command
     * meant for another configuration is refused, with the one we run. */
    char *arg = strchr(c->buf, ' ');
    if (arg) {
        *arg++ = '\0';
        char mine[PATH_MAX], theirs[PATH_MAX];
        if (!realpath(M->cfg.path, mine))
            snprintf(mine, sizeof mine, "%s", M->cfg.path);
        if (!realpath(arg, theirs))
            snprintf(theirs, sizeof theirs, "%s", arg);
        if (strcmp(mine, theirs) != 0) {
            char msg[2 * PATH_MAX + 128];
            snprintf(msg, sizeof msg, "error: this ringmaster runs %s, not %s (use -c %s)\n", mine, theirs, mine);
            ctl_reply(c, msg);
            return;
        }
    }
    if (strcmp(c->buf, "reload") == 0) {
        char why[512];
        if (M->stopping || M->stop_at) {
            ctl_reply(c, "error: stopping\n");
        } else if (M->reloading) {
            /* The file may have changed after this reload read it: another
             * reload follows, and this client gets its result. */
            c->waiting_reload = 2;
            M->reload_queued = 1;
        } else if (begin_reload(why, sizeof why) < 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "error: %s\n", why);
            ctl_reply(c, msg);
        } else {
            c->waiting_reload = 1;
        }
    } else if (strcmp(c->buf, "stop") == 0) {
        ctl_reply(c, "ok\n");
        request_stop();
    } else {
        ctl_reply(c, "error: unknown command (reload, stop)\n");
    }
}

void ctl_accept(void)
{
    for (;;) {
        int fd = accept4(M->ctlfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered epoll would spin on the pending client:
                 * stop watching the socket until the next tick. */
                rm_err("accept4(control socket): %s: control requests wait", strerror(errno));
                epoll_ctl(M->epfd, EPOLL_CTL_DEL, M->ctlfd, NULL);
                M->ctl_paused = 1;
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                rm_err("accept4(control socket): %s", strerror(errno));
            }
            return;
        }
        int slot = -1;
        for (int i = 0; i < MAX_CTL; i++)
            if (M->ctl[i].fd < 0) {
                slot = i;
                break;
            }
        if (slot < 0) {
            const char *m = "error: busy\n";
            ssize_t r = write(fd, m, strlen(m));
            (void)r;
            close(fd);
            continue;
        }
        M->ctl[slot].fd = fd;
        M->ctl[slot].len = 0;
        M->ctl[slot].waiting_reload = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EP_CTL_CLIENT_BASE + (uint64_t)slot};
        if (epoll_ctl(M->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            rm_err("epoll_ctl(control client): %s", strerror(errno));
            close(fd);
            M->ctl[slot].fd = -1;
        }
    }
}

void ctl_resume(void)
{
    if (!M->ctl_paused)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EP_CONTROL};
    if (epoll_ctl(M->epfd, EPOLL_CTL_ADD, M->ctlfd, &ev) == 0)
        M->ctl_paused = 0;
}

void ctl_read(int slot)
{
    struct ctl_client *c = &M->ctl[slot];
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            epoll_ctl(M->epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
        }
        return;
    }
    c->len += (size_t)n;
    if (c->len >= sizeof c->buf - 1) {
        ctl_reply(c, "error: command too long\n");
        return;
    }
    if (!c->waiting_reload)
        ctl_command(c);
}
