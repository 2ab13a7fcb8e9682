/*
 * worker/handlers/chaos.c - built-in `chaos`, for testing failure handling
 * (docs/contract.md). The request body chooses the fault:
 *
 *   crash-once...   SIGKILL the worker on attempt 1; later attempts echo
 *   crash...        SIGKILL the worker on every attempt (-> 502 after
 *                   max_attempts)
 *   hang...         never return (-> the deadline kills the worker, 504)
 *   sleep N         wait N milliseconds, then echo (a slow but healthy model)
 *   anything else   echo
 *
 * Matching is by prefix of the raw body, case-sensitive. "crash-once" is
 * tested before "crash", since every crash-once body also starts with crash.
 * Stateless: no init, no fini.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "worker/handler.h"

/* Longest sleep honoured: about 11.5 days. Larger N saturates instead of
 * overflowing; any request deadline has long killed the worker by then. */
#define CHAOS_SLEEP_MAX_MS 1000000000ULL

static bool has_prefix(const struct rm_request *req, const char *p)
{
    size_t n = strlen(p);
    return req->body_len >= n && memcmp(req->body, p, n) == 0;
}

/* SIGKILL, not abort() or a segfault: it is what the OOM killer does, cannot
 * be caught or blocked, leaves no core and runs no atexit handler, so the
 * master sees exactly a worker dying at an arbitrary instruction. */
__attribute__((noreturn))
static void die_now(void)
{
    raise(SIGKILL);
    /* Unreachable: SIGKILL cannot be blocked. Should a sandbox ever deny it,
     * still end the process without cleanup rather than answer. */
    _exit(128 + SIGKILL);
}

__attribute__((noreturn))
static void hang_forever(void)
{
    /* pause() returns after every caught signal; go back to waiting. Only a
     * fatal signal (the master's SIGTERM/SIGKILL on deadline) ends this. */
    for (;;)
        pause();
}

/*
 * Parse "sleep N" from the body (not NUL-terminated): "sleep", at least one
 * blank, decimal N, then only whitespace to the end. Returns false for any
 * other body, which then simply echoes.
 */
static bool parse_sleep(const struct rm_request *req, uint64_t *ms)
{
    const char *b = req->body;
    size_t len = req->body_len, i = 5; /* strlen("sleep") */
    if (!has_prefix(req, "sleep") || i >= len || (b[i] != ' ' && b[i] != '\t'))
        return false;
    while (i < len && (b[i] == ' ' || b[i] == '\t'))
        i++;
    if (i >= len || b[i] < '0' || b[i] > '9')
        return false;
    uint64_t v = 0;
    for (; i < len && b[i] >= '0' && b[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(b[i] - '0');
        if (v > CHAOS_SLEEP_MAX_MS)
            v = CHAOS_SLEEP_MAX_MS; /* saturate; keeps v*10 from overflowing */
    }
    for (; i < len; i++)
        if (b[i] != ' ' && b[i] != '\t' && b[i] != '\r' && b[i] != '\n')
            return false;
    *ms = v;
    return true;
}

/*
 * Sleep ms milliseconds in full. An absolute CLOCK_MONOTONIC deadline makes
 * EINTR harmless: the retry sleeps only what is left, never longer, however
 * often a signal (heartbeat timer, SIGCHLD, ...) interrupts it.
 */
static void sleep_ms(uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    /* clock_nanosleep returns the error number instead of setting errno. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ;
}

static int chaos_process(void *state, const struct rm_request *req,
                         struct rm_response *resp)
{
    uint64_t ms;

    if (has_prefix(req, "crash-once")) {
        if (req->attempt == 1)
            die_now();
    } else if (has_prefix(req, "crash")) {
        die_now();
    } else if (has_prefix(req, "hang")) {
        hang_forever();
    } else if (parse_sleep(req, &ms)) {
        sleep_ms(ms);
    }
    return rm_handler_echo.process(NULL, req, resp);
}

static const char *const chaos_keys[] = {NULL};

const struct rm_handler rm_handler_chaos = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .name = "chaos",
    .keys = chaos_keys,
    .init = NULL,
    .process = chaos_process,
    .fini = NULL,
};
