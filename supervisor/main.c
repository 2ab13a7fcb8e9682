/*
 * main.c - ringmaster: the daemon (always in the foreground).
 *
 *   ringmaster [-c FILE]      run
 *   ringmaster -t [-c FILE]   check the configuration ("FILE:LINE: message", exit 1) and exit
 *   ringmaster -V             print the version
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <config.h>
#include "core/config.h"
#include "core/log.h"
#include "core/proctitle.h"
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

/* Handlers of every pool must resolve (built-in or a loadable .so). */
static int check_handlers(const struct rm_config *cfg)
{
    int bad = 0;
    for (size_t i = 0; i < cfg->npools; i++) {
        char err[512];
        if (rm_handler_check(cfg->pools[i].handler, err, sizeof err) < 0) {
            fprintf(stderr, "%s:%u: pool %s: handler %s: %s\n", cfg->path, cfg->pools[i].line, cfg->pools[i].name,
                    cfg->pools[i].handler, err);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
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
    if (check_handlers(cfg) < 0) {
        free(cfg);
        return 1;
    }
    if (test) {
        printf("%s: configuration ok (%zu pool%s)\n", path, cfg->npools, cfg->npools == 1 ? "" : "s");
        free(cfg);
        return 0;
    }
    rm_proctitle_init(argc, argv);
    int rc = rm_master_run(cfg);
    free(cfg);
    return rc;
}
