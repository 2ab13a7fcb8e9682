/*
 * main.c - ringmaster: the daemon (always in the foreground).
 *
 *   ringmaster [-c FILE]      run
 *   ringmaster -t [-c FILE]   check the configuration ("FILE:LINE: message", exit 1) and exit
 *   ringmaster -V             print the version
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <config.h>
#include "core/config.h"
#include "core/log.h"
#include "core/proctitle.h"
#include "shm/segment.h"
#include "supervisor/listen.h"
#include "supervisor/master.h"
#include "worker/handler.h"
#include "core/exitcodes.h"

#define DEFAULT_CONFIG SYSCONFDIR "/ringmaster/ringmaster.ini"

static void usage(FILE *f)
{
    fprintf(f, "usage: ringmaster [-c FILE]       run (default FILE: %s)\n"
               "       ringmaster -t [-c FILE]    check the configuration and exit\n"
               "       ringmaster -V              print the version\n",
            DEFAULT_CONFIG);
}

/* Every pool's shared memory could be touched in full: refuse a
 * configuration whose pools need more than the machine has (RAM + swap). */
static int check_memory(const struct rm_config *cfg)
{
    struct sysinfo si;
    if (sysinfo(&si) < 0)
        return 0;
    unsigned long long have = ((unsigned long long)si.totalram + si.totalswap) * si.mem_unit;
    unsigned long long need = 0;
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct rm_pool_config *pc = &cfg->pools[i];
        struct rm_pool_spec s = {.nslots = pc->queue_depth, .max_req = pc->max_request_size,
                                 .max_resp = pc->max_response_size};
        unsigned long long b = rm_pool_bytes(&s);
        need += b;
        if (b > have || need > have) {
            fprintf(stderr, "%s:%u: pool %s: queue_depth x (max_request_size + max_response_size) needs %.1f GiB of "
                    "shared memory (all pools so far: %.1f GiB); this machine has %.1f GiB of RAM and swap\n",
                    cfg->path, pc->line, pc->name, b / 1073741824.0, need / 1073741824.0, have / 1073741824.0);
            return -1;
        }
    }
    return 0;
}

/* Handlers of every pool must resolve (built-in or a loadable .so). Runs in
 * a child: dlopen() runs the object's constructors. */
static int check_handlers(const struct rm_config *cfg)
{
    int bad = 0;
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct rm_pool_config *pc = &cfg->pools[i];
        char err[1600];
        if (rm_handler_check(pc->handler, err, sizeof err) < 0) {
            fprintf(stderr, "%s:%u: pool %s: handler %s: %s\n", cfg->path, pc->line, pc->name, pc->handler, err);
            bad = 1;
            continue;
        }
        /* Strict keys: the handler's declared keys (resolving a built-in
         * runs nothing; a .so is already loaded in this child). */
        const struct rm_handler *h;
        void *dl;
        if (rm_handler_resolve(pc->handler, &h, &dl, err, sizeof err) < 0)
            continue;
        if (!h->keys && pc->nkv)
            fprintf(stderr, "%s:%u: warning: pool %s: handler %s declares no keys (ABI 1): its keys (%s, ...) are "
                    "not checked\n", cfg->path, pc->line, pc->name, h->name, pc->kv[0].key);
        else if (rm_config_check_handler_keys(cfg, i, h->name, h->keys, err, sizeof err) < 0) {
            fprintf(stderr, "%s\n", err);
            bad = 1;
        }
        (void)dl; /* left loaded (see rm_handler_check): this child exits next */
    }
    return bad ? -1 : 0;
}

/*
 * The master runs no handler code: the handlers are checked in a child of
 * its own process group, so a constructor that crashes, starts threads or
 * loops can neither kill nor hang ringmaster (or -t). Past the timeout the
 * whole group is killed and the check fails.
 */
#define HANDLER_CHECK_TIMEOUT_MS 10000

static int check_handlers_isolated(const struct rm_config *cfg)
{
    bool any_so = false;
    for (size_t i = 0; i < cfg->npools; i++)
        any_so |= !rm_handler_is_builtin(cfg->pools[i].handler);
    if (!any_so)
        return check_handlers(cfg); /* built-ins only: nothing is loaded */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "ringmaster: fork (handler check): %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        int rc = check_handlers(cfg) < 0 ? 1 : 0;
        fflush(NULL);
        _exit(rc);
    }
    setpgid(pid, pid); /* both sides: no race with the kill below */
    int status;
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "ringmaster: waitpid (handler check): %s\n", strerror(errno));
            return -1;
        }
        if (waited >= HANDLER_CHECK_TIMEOUT_MS) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            fprintf(stderr, "%s: checking the handlers took over %d s (a handler's constructor hangs?): refused\n",
                    cfg->path, HANDLER_CHECK_TIMEOUT_MS / 1000);
            return -1;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL); /* whatever the check left behind (threads die with it; forks do not) */
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "%s: checking the handlers crashed (signal %d, %s): a handler's constructor is broken\n",
                cfg->path, WTERMSIG(status), strsignal(WTERMSIG(status)));
        return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int test = 0, c;
    while ((c = getopt(argc, argv, "c:tVh")) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 't': test = 1; break;
        case 'V': printf("ringmaster %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    struct rm_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        perror("calloc");
        return 1;
    }
    char err[1024];
    if (rm_config_load(cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check_handlers_isolated(cfg) < 0) {
        free(cfg);
        return 1;
    }
    if (check_memory(cfg) < 0) {
        free(cfg);
        return 1;
    }
    if (test) {
        /* What start-up would refuse, -t refuses: addresses it cannot bind. */
        if (rm_listen_check(cfg, err, sizeof err) < 0) {
            fprintf(stderr, "%s: %s\n", path, err);
            free(cfg);
            return 1;
        }
        printf("%s: configuration ok (%zu pool%s)\n", path, cfg->npools, cfg->npools == 1 ? "" : "s");
        free(cfg);
        return 0;
    }
    rm_proctitle_init(argc, argv);
    int rc = rm_master_run(cfg);
    free(cfg);
    return rc;
}
