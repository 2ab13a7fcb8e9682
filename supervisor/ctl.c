/*
 * ctl.c - ringmasterctl: talk to a running master.
 *
 *   ringmasterctl [-c FILE] status [--json] [--interval S] [--watch [S]]
 *                                             read the shared memory (no request to the master):
 *                                             supervisor/ctl_status.c
 *   ringmasterctl [-c FILE] reload            returns when the reload has finished:
 *                                             0 served, 1 refused/rolled back
 *   ringmasterctl [-c FILE] stop              graceful stop
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <config.h>
#include "core/config.h"
#include "core/paths.h"
#include "supervisor/ctl_status.h"


/* The master's pid from the pid file, or -1. */
static int read_pid(const struct rm_config *cfg)
{
    char path[4096];
    rm_pidfile_path(cfg, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int pid = -1;
    if (fscanf(f, "%d", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid;
}

/* pid is a process that has not ended (a zombie has ended). */
static bool process_alive(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

static int command(const struct rm_config *cfg, const char *cmd)
{
    char path[4096];
    rm_control_path(cfg, path, sizeof path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "ringmasterctl: socket: %s\n", strerror(errno));
        return 1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        fprintf(stderr, "ringmasterctl: connect %s: %s (is ringmaster running?)\n", path, strerror(errno));
        return 1;
    }
    /* The file we were given goes along: the master refuses a command meant
     * for another configuration (and says which one it runs). */
    char abs[PATH_MAX], line[PATH_MAX + 32];
    snprintf(line, sizeof line, "%s %s\n", cmd, realpath(cfg->path, abs) ? abs : cfg->path);
    /* The master, to follow a stop: the control socket's owner as the
     * kernel names it in our PID namespace (SO_PEERCRED), so that a
     * ringmasterctl outside a container finds the master that calls itself
     * PID 1 in its pid file. 0: not visible from here; then the pid file. */
    struct ucred peer = {0};
    socklen_t plen = sizeof peer;
    int master_pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) == 0 && peer.pid > 0 ? peer.pid
                                                                                               : read_pid(cfg);
    if (write(fd, line, strlen(line)) < 0) {
        fprintf(stderr, "ringmasterctl: write: %s\n", strerror(errno));
        return 1;
    }
    char reply[1024];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof reply - 1 && (n = read(fd, reply + len, sizeof reply - 1 - len)) > 0)
        len += (size_t)n;
    reply[len] = '\0';
    close(fd);
    if (strncmp(reply, "ok", 2) == 0 && strcmp(cmd, "stop") == 0) {
        /* Return when the service has stopped, or say why not. */
        if (master_pid <= 0) {
            printf("stop: asked (no pid file to follow it)\n");
            return 0;
        }
        uint64_t limit_ms = cfg->drain_delay + cfg->shutdown_timeout + 10000;
        for (uint64_t waited = 0;; waited += 20) {
            if (!process_alive(master_pid)) {
                printf("stop: stopped\n");
                return 0;
            }
            if (waited >= limit_ms) {
                fprintf(stderr, "ringmasterctl: stop: ringmaster (pid %d) still runs after %.0f s\n", master_pid,
                        limit_ms / 1e3);
                return 1;
            }
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (strncmp(reply, "ok", 2) == 0) {
        printf("%s: ok\n", cmd);
        return 0;
    }
    if (len == 0) {
        fprintf(stderr, "ringmasterctl: %s: no answer (master stopped?)\n", cmd);
        return 1;
    }
    fprintf(stderr, "ringmasterctl: %s: %s", cmd, strncmp(reply, "error: ", 7) == 0 ? reply + 7 : reply);
    return 1;
}

#define USAGE \
    "usage: ringmasterctl [-c FILE] status [--json] [--interval SECONDS] [--watch [SECONDS]]" \
    " | reload | stop\n"

/* A number of seconds for --interval (0 allowed: one look) or --watch (> 0). */
static bool parse_seconds(const char *s, bool zero_ok, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0) || v > RM_STATUS_MAX_INTERVAL || (!zero_ok && v < 0.01))
        return false;
    *out = v;
    return true;
}

/* status's arguments (argv[0] is "status"): 0, or 2 after saying why. */
static int status_args(int argc, char **argv, struct rm_status_opts *o)
{
    o->json = false;
    o->interval_s = 1.0;
    o->watch = false;
    bool have_watch_s = false;
    double watch_s = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--interval") == 0 || strncmp(a, "--interval=", 11) == 0) {
            const char *v = a[10] == '=' ? a + 11 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !parse_seconds(v, true, &o->interval_s)) {
                fprintf(stderr,
                        "ringmasterctl: status: --interval %s: not seconds from 0 to %.0f\n" USAGE,
                        v ? v : "(missing)", RM_STATUS_MAX_INTERVAL);
                return 2;
            }
        } else if (strcmp(a, "--watch") == 0 || strncmp(a, "--watch=", 8) == 0) {
            o->watch = true;
            /* An optional value: the next word, unless it is an option. */
            const char *v = a[7] == '=' ? a + 8
                            : i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 ? argv[++i] : NULL;
            if (v && !parse_seconds(v, false, &watch_s)) {
                fprintf(stderr,
                        "ringmasterctl: status: --watch %s: not seconds from 0.01 to %.0f\n" USAGE,
                        v, RM_STATUS_MAX_INTERVAL);
                return 2;
            }
            have_watch_s = v != NULL;
        } else {
            fprintf(stderr, "ringmasterctl: status: unexpected argument %s\n" USAGE, a);
            return 2;
        }
    }
    if (have_watch_s)
        o->interval_s = watch_s;
    if (o->watch && o->interval_s <= 0) {
        fprintf(stderr, "ringmasterctl: status: --watch needs an interval above 0, not --interval 0\n" USAGE);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = SYSCONFDIR "/ringmaster/ringmaster.ini";
    int c;
    while ((c = getopt(argc, argv, "+c:hV")) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'V': printf("ringmasterctl %s\n", PACKAGE_VERSION); return 0;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr, USAGE);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, USAGE);
        return 2;
    }
    /* The command line first: a bad one is 2 whatever the configuration. */
    const char *verb = argv[optind];
    int nargs = argc - optind - 1;
    struct rm_status_opts so;
    if (strcmp(verb, "status") == 0) {
        if (status_args(argc - optind, argv + optind, &so))
            return 2;
    } else if (strcmp(verb, "reload") == 0 || strcmp(verb, "stop") == 0) {
        if (nargs) {
            fprintf(stderr, "ringmasterctl: %s: unexpected argument %s\n" USAGE, verb, argv[optind + 1]);
            return 2;
        }
    } else {
        fprintf(stderr, "ringmasterctl: unknown command %s\n" USAGE, verb);
        return 2;
    }
    struct rm_config *cfg = calloc(1, sizeof *cfg);
    char err[1024];
    if (!cfg || rm_config_load(cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "ringmasterctl: %s\n", cfg ? err : "out of memory");
        free(cfg);
        return 1;
    }
    rm_runtime_dir_resolve(cfg);
    int rc = strcmp(verb, "status") == 0 ? rm_status_run(cfg, &so) : command(cfg, verb);
    free(cfg);
    fflush(stdout);
    return rc;
}
