/*
 * orphans.c - a test handler whose requests leave orphans behind, for the
 * PID 1 test (tests/integration/test_pid1.py): ringmaster as PID 1 of a PID
 * namespace, as in a container, must reap every process re-parented to it.
 *
 * Request body (text):
 *   "fork"      a double fork: a grandchild, named rm-orphan, whose parent
 *               exits at once, so that it is re-parented to PID 1 (or the
 *               nearest subreaper); it sleeps 100 ms and exits. Plus a
 *               child, also rm-orphan, that the worker never waits for and
 *               that sleeps 300 ms: with max_requests = 1 the worker exits
 *               before it, so it is re-parented too.
 *   "sleep MS"  answers after MS milliseconds (a request in flight).
 * Answer: 200 "ok" and what was forked.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringmaster_handler.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void orphan_life(long ms)
{
    prctl(PR_SET_NAME, "rm-orphan", 0, 0, 0);
    /* Not the worker's: no signal mask or handlers of its own matter. */
    sleep_ms(ms);
    _exit(0);
}

static int orphans_process(void *state, const struct rm_request *req, struct rm_response *resp)
{
    (void)state;
    char body[64];
    size_t n = req->body_len < sizeof body - 1 ? req->body_len : sizeof body - 1;
    memcpy(body, req->body, n);
    body[n] = '\0';
    char msg[128];
    if (strncmp(body, "sleep ", 6) == 0) {
        sleep_ms(atol(body + 6));
        snprintf(msg, sizeof msg, "ok slept %ld ms", atol(body + 6));
    } else if (strcmp(body, "fork") == 0) {
        pid_t child = fork();
        if (child == 0) {
            pid_t grandchild = fork();
            if (grandchild == 0)
                orphan_life(100);
            _exit(grandchild < 0 ? 1 : 0);
        }
        if (child > 0)
            while (waitpid(child, NULL, 0) < 0)
                ;
        pid_t outliver = fork();
        if (outliver == 0)
            orphan_life(300);
        if (child < 0 || outliver < 0)
            return -1;
        snprintf(msg, sizeof msg, "ok forked %d", (int)outliver);
    } else {
        snprintf(msg, sizeof msg, "send 'fork' or 'sleep MS'");
        rm_response_set(resp, 400, "text/plain", msg, strlen(msg));
        return 0;
    }
    return rm_response_set(resp, 200, "text/plain", msg, strlen(msg)) == 0 ? 0 : -1;
}

static const char *const orphans_keys[] = {NULL};

static const struct rm_handler orphans_handler = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .keys = orphans_keys,
    .name = "orphans",
    .process = orphans_process,
};

__attribute__((visibility("default")))
const struct rm_handler *ringmaster_handler(void);

const struct rm_handler *ringmaster_handler(void)
{
    return &orphans_handler;
}
