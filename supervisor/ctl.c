/*
 * ctl.c - ringmasterctl: talk to a running master.
 *
 *   ringmasterctl [-c FILE] status [--json]   read the shared memory (no request to the master)
 *   ringmasterctl [-c FILE] reload            returns when the reload has finished: 0 served, 1 refused/rolled back
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
#include "shm/clock.h"
#include "shm/request.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "core/config.h"
#include "supervisor/master.h"
#include "core/names.h"
#include "core/paths.h"


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
    int master_pid = read_pid(cfg);
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
        uint64_t limit_ms = cfg->shutdown_timeout + 10000;
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

/* A string from shared memory as a JSON string body: quotes, backslashes
 * and control bytes escaped, stopping at len (the field's size). */
static void json_str(const char *sv, size_t len)
{
    for (size_t i = 0; i < len && sv[i]; i++) {
        unsigned char ch = (unsigned char)sv[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
}

static int status(const struct rm_config *cfg, int json)
{
    char path[4096];
    rm_pidfile_path(cfg, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ringmasterctl: open %s: %s (is ringmaster running?)\n", path, strerror(errno));
        return 1;
    }
    int pid = 0;
    char extra;
    int ok = fscanf(f, "%d", &pid) == 1 && fscanf(f, " %c", &extra) != 1;
    fclose(f);
    if (!ok || pid <= 0) {
        fprintf(stderr, "ringmasterctl: %s: malformed (expected one pid)\n", path);
        return 1;
    }
    struct rm_seg seg;
    char err[512];
    if (rm_seg_attach_pid(&seg, pid, err, sizeof err) < 0) {
        fprintf(stderr, "ringmasterctl: %s\n", err);
        return 1;
    }
    if (seg.hdr->master_pid != pid) {
        fprintf(stderr, "ringmasterctl: segment belongs to pid %d, pid file says %d\n", seg.hdr->master_pid, pid);
        return 1;
    }
    uint64_t now = rm_now_ns();
    /* acquire: pairs with the master's release store of draining (begin_stop). */
    unsigned draining = atomic_load_explicit(&seg.hdr->draining, memory_order_acquire);
    if (json)
        printf("{\"master_pid\":%d,\"uptime_s\":%.1f,\"draining\":%s,\"reloads\":%u,\"pools\":[", pid,
               (now - seg.hdr->birth_mono_ns) / 1e9, draining ? "true" : "false",
               /* relaxed: a counter, printed only (the master's relaxed add). */
               atomic_load_explicit(&seg.hdr->reloads, memory_order_relaxed));
    else
        printf("ringmaster %s: master pid %d, up %.0f s%s, %u reload(s)\n", PACKAGE_VERSION, pid,
               (now - seg.hdr->birth_mono_ns) / 1e9, draining ? ", STOPPING" : "",
               /* relaxed: a counter, printed only (the master's relaxed add). */
               atomic_load_explicit(&seg.hdr->reloads, memory_order_relaxed));
    int firstp = 1;
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        struct rm_shm_pool *p = rm_seg_pool(&seg, i);
        /* acquire: pairs with the master's release store of active
         * (rm_seg_pool_add): the descriptor below is complete. */
        if (!atomic_load_explicit(&p->active, memory_order_acquire))
            continue;
        /* A private, validated copy of the geometry: a scribbled descriptor
         * cannot make ctl read outside the mapping. */
        struct rm_pool_view v;
        if (rm_pool_view_open(&seg, i, &v) < 0) {
            fprintf(stderr, "ringmasterctl: pool %u: descriptor out of bounds of the shared memory: skipped\n", i);
            continue;
        }
        unsigned busy_slots = 0;
        for (uint32_t s = 0; s < v.nslots; s++)
            busy_slots += RM_SLOT_STATE(rm_slot_load(&v.states[s])) != RM_SLOT_FREE;
        unsigned count[RM_PROC_NSTATES] = {0};
        uint64_t served = 0;
        /* Bounds: the private copies rm_seg_attach validated, not the header. */
        for (unsigned sb = seg.max_gateways; sb < seg.nprocs; sb++) {
            struct rm_sb_entry *e = rm_seg_sb(&seg, sb);
            /* acquire: pairs with the master's release store of pid (spawn). */
            if (e->role != RM_ROLE_WORKER || e->pool != i || !atomic_load_explicit(&e->pid, memory_order_acquire))
                continue;
            /* acquire: pairs with the process's release stores of its state. */
            unsigned st = atomic_load_explicit(&e->state, memory_order_acquire);
            if (st < RM_PROC_NSTATES)
                count[st]++;
            /* relaxed: a counter, summed for display (the worker's relaxed store). */
            served += atomic_load_explicit(&e->served, memory_order_relaxed);
        }
        /* acquire: pairs with the master's release store of failed. */
        unsigned failed = atomic_load_explicit(&p->failed, memory_order_acquire);
        if (json) {
            printf("%s{\"name\":\"", firstp ? "" : ",");
            json_str(p->name, sizeof p->name);
            printf("\",\"handler\":\"");
            json_str(p->handler, sizeof p->handler);
            printf("\",\"failed\":%s,\"queue\":%u,\"queue_depth\":%u,"
                   "\"workers\":{\"starting\":%u,\"ready\":%u,\"busy\":%u,\"draining\":%u},\"served\":%llu}",
                   failed ? "true" : "false", busy_slots, v.nslots,
                   count[RM_PROC_STARTING], count[RM_PROC_READY], count[RM_PROC_BUSY], count[RM_PROC_DRAINING],
                   (unsigned long long)served);
        } else {
            printf("pool %-16s handler %-10s %s queue %u/%u  workers: %u ready, %u busy, %u starting, %u draining  served %llu\n",
                   p->name, p->handler, failed ? "FAILED" : "ok    ", busy_slots, v.nslots, count[RM_PROC_READY],
                   count[RM_PROC_BUSY], count[RM_PROC_STARTING], count[RM_PROC_DRAINING], (unsigned long long)served);
        }
        firstp = 0;
    }
    if (json) {
        printf("],\"processes\":[");
        int first = 1;
        for (unsigned sb = 0; sb < seg.nprocs; sb++) {
            struct rm_sb_entry *e = rm_seg_sb(&seg, sb);
            /* acquire: pairs with the master's release store of pid (spawn). */
            int epid = atomic_load_explicit(&e->pid, memory_order_acquire);
            if (!epid)
                continue;
            /* acquire: pairs with the process's release stores of its state. */
            unsigned st = atomic_load_explicit(&e->state, memory_order_acquire);
            printf("%s{\"pid\":%d,\"role\":\"%s\",\"pool\":%u,\"index\":%u,\"generation\":%u,\"state\":\"%s\","
                   "\"served\":%llu,\"heartbeat_age_ms\":%.0f}",
                   first ? "" : ",", epid, rm_role_name(e->role), e->pool, e->index,
                   e->generation, rm_proc_state_name(st),
                   /* relaxed (both): a counter and a timestamp, printed only. */
                   (unsigned long long)atomic_load_explicit(&e->served, memory_order_relaxed),
                   (now - atomic_load_explicit(&e->heartbeat_ns, memory_order_relaxed)) / 1e6);
            first = 0;
        }
        printf("]}\n");
    } else {
        for (unsigned sb = 0; sb < seg.nprocs; sb++) {
            struct rm_sb_entry *e = rm_seg_sb(&seg, sb);
            /* acquire: pairs with the master's release store of pid (spawn). */
            int epid = atomic_load_explicit(&e->pid, memory_order_acquire);
            if (!epid)
                continue;
            /* acquire: pairs with the process's release stores of its state. */
            unsigned st = atomic_load_explicit(&e->state, memory_order_acquire);
            if (e->role == RM_ROLE_GATEWAY)
                printf("  pid %-7d gateway %-12u gen %-3u %-9s\n", epid, e->index, e->generation,
                       rm_proc_state_name(st));
            else if (e->role == RM_ROLE_PRELOADER)
                printf("  pid %-7d preloader %-10s gen %-3u %-9s\n", epid,
                       e->pool < RM_SHM_MAX_POOLS ? rm_seg_pool(&seg, e->pool)->name : "?", e->generation,
                       rm_proc_state_name(st));
            else
                printf("  pid %-7d worker %-8s %-4u gen %-3u %-9s served %llu\n", epid,
                       e->pool < RM_SHM_MAX_POOLS ? rm_seg_pool(&seg, e->pool)->name : "?", e->index, e->generation,
                       rm_proc_state_name(st),
                       /* relaxed: a counter, printed only. */
                       (unsigned long long)atomic_load_explicit(&e->served, memory_order_relaxed));
        }
    }
    rm_seg_close(&seg);
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
            fprintf(c == 'h' ? stdout : stderr, "usage: ringmasterctl [-c FILE] status [--json] | reload | stop\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: ringmasterctl [-c FILE] status [--json] | reload | stop\n");
        return 2;
    }
    struct rm_config *cfg = calloc(1, sizeof *cfg);
    char err[1024];
    if (!cfg || rm_config_load(cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "ringmasterctl: %s\n", cfg ? err : "out of memory");
        return 1;
    }
    rm_runtime_dir_resolve(cfg);
    const char *verb = argv[optind];
    int nargs = argc - optind - 1;
    bool json = nargs == 1 && strcmp(argv[optind + 1], "--json") == 0;
    int rc = 2;
    if (strcmp(verb, "status") == 0 && (nargs == 0 || json))
        rc = status(cfg, json);
    else if ((strcmp(verb, "reload") == 0 || strcmp(verb, "stop") == 0) && nargs == 0)
        rc = command(cfg, verb);
    else if (strcmp(verb, "status") == 0 || strcmp(verb, "reload") == 0 || strcmp(verb, "stop") == 0)
        fprintf(stderr, "ringmasterctl: %s: unexpected argument %s\nusage: ringmasterctl [-c FILE] status [--json] | reload | stop\n",
                verb, argv[optind + 1]);
    else
        fprintf(stderr, "ringmasterctl: unknown command %s\nusage: ringmasterctl [-c FILE] status [--json] | reload | stop\n", verb);
    free(cfg);
    fflush(stdout);
    return rc;
}
