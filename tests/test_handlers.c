/*
 * test_handlers.c - the built-in handlers (echo, chaos) and handler
 * resolution (built-in names, shared objects, ABI checks).
 *
 * The shared objects come from `make check` (tests/handlers/example_upper.so
 * and tests/handlers/bad_abi.so); RM_EXAMPLE_SO and RM_BAD_ABI_SO override
 * the paths. Chaos faults that
 * kill or hang are run in a forked child, so they end the child, not us.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/cunit_util.h"
#include "tests/helpers.h"
#include "worker/handler.h"

#define CAP 4096

static char out[CAP];

static struct rm_request mkreq(const char *body, const char *ct, unsigned attempt)
{
    struct rm_request r = {
        .body = body,
        .body_len = strlen(body),
        .content_type = ct,
        .attempt = attempt,
        .deadline_ns = UINT64_MAX,
        .pool = "test",
    };
    return r;
}

/* A response as the worker prepares it: defaults set, buffer of cap bytes. */
static struct rm_response mkresp(size_t cap)
{
    struct rm_response r = { .status = 200, .body = out, .body_cap = cap };
    strcpy(r.content_type, "application/octet-stream");
    memset(out, 0, sizeof out);
    return r;
}

static bool body_is(const struct rm_response *r, const char *s)
{
    return r->body_len == strlen(s) && memcmp(r->body, s, r->body_len) == 0;
}

static const char *so_path(const char *env, const char *def)
{
    const char *p = getenv(env);
    return p && *p ? p : def;
}

#define EXAMPLE_SO so_path("RM_EXAMPLE_SO", "tests/handlers/example_upper.so")
#define BAD_ABI_SO so_path("RM_BAD_ABI_SO", "tests/handlers/bad_abi.so")
#define ABI_V1_SO so_path("RM_ABI_V1_SO", "tests/handlers/abi_v1.so")
#define ABI_V2_SO so_path("RM_ABI_V2_SO", "tests/handlers/abi_v2.so")

/* ------------------------------------------------------------ fork helpers */

/* Run chaos with body on the given attempt in a child. The child exits 0 when
 * process() returned 0 with the body echoed, 1 otherwise. */
static int chaos_in_child(const char *body, unsigned attempt, unsigned timeout_ms)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -2;
    if (pid == 0) {
        struct rm_request req = mkreq(body, "text/plain", attempt);
        struct rm_response resp = mkresp(CAP);
        int rc = rm_handler_chaos.process(NULL, &req, &resp);
        _exit(rc == 0 && resp.status == 200 && body_is(&resp, body) ? 0 : 1);
    }
    return wait_child(pid, timeout_ms);
}

static bool killed_by_sigkill(int status)
{
    return status != CHILD_TIMED_OUT && WIFSIGNALED(status) &&
           WTERMSIG(status) == SIGKILL;
}

static bool echoed_ok(int status)
{
    return status != CHILD_TIMED_OUT && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

/* -------------------------------------------------------------------- echo */

static void test_echo_returns_body_and_content_type(void)
{
    struct rm_request req = mkreq("hello, world", "text/plain; charset=utf-8", 1);
    struct rm_response resp = mkresp(CAP);
    CU_ASSERT_EQUAL(rm_handler_echo.process(NULL, &req, &resp), 0);
    CU_ASSERT_EQUAL(resp.status, 200);
    CU_ASSERT_TRUE(body_is(&resp, "hello, world"));
    CU_ASSERT_STRING_EQUAL(resp.content_type, "text/plain; charset=utf-8");
}

static void test_echo_without_content_type_answers_octet_stream(void)
{
    struct rm_request req = mkreq("\x01\x02", "", 1);
    struct rm_response resp = mkresp(CAP);
    strcpy(resp.content_type, "garbage/left-over");
    CU_ASSERT_EQUAL(rm_handler_echo.process(NULL, &req, &resp), 0);
    CU_ASSERT_STRING_EQUAL(resp.content_type, "application/octet-stream");
    CU_ASSERT_TRUE(body_is(&resp, "\x01\x02"));

    req.content_type = NULL; /* tolerated, same as "" */
    resp = mkresp(CAP);
    CU_ASSERT_EQUAL(rm_handler_echo.process(NULL, &req, &resp), 0);
    CU_ASSERT_STRING_EQUAL(resp.content_type, "application/octet-stream");
}

static void test_echo_empty_body_answers_empty(void)
{
    struct rm_request req = mkreq("", "text/plain", 1);
    req.body = NULL;
    struct rm_response resp = mkresp(0);
    CU_ASSERT_EQUAL(rm_handler_echo.process(NULL, &req, &resp), 0);
    CU_ASSERT_EQUAL(resp.status, 200);
    CU_ASSERT_EQUAL(resp.body_len, 0);
}

static void test_echo_too_large_response_is_error(void)
{
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct rm_request req = mkreq(big, "text/plain", 1);

    /* The message fits: it is the body of the 500. */
    struct rm_response resp = mkresp(150);
    CU_ASSERT_EQUAL(rm_handler_echo.process(NULL, &req, &resp), -1);
    CU_ASSERT_EQUAL(resp.status, 500);
    CU_ASSERT_TRUE(resp.body_len > 0 && resp.body_len <= 150);
    CU_ASSERT_PTR_NOT_NULL(memmem(resp.body, resp.body_len, "max_response_size", 17));
    CU_ASSERT_PTR_NOT_NULL(memmem(resp.body, resp.body_len, "199", 3));

    /* Not even the message fits: an empty 500, nothing written past cap. */
    resp = mkresp(10);
    CU_ASSERT_EQUAL(rm_handler_echo.process(NULL, &req, &resp), -1);
    CU_ASSERT_EQUAL(resp.status, 500);
    CU_ASSERT_EQUAL(resp.body_len, 0);
    CU_ASSERT_EQUAL(out[0], 0);
}

static void test_echo_overlong_content_type_is_error_not_truncated(void)
{
    char ct[RM_CONTENT_TYPE_MAX + 20];
    strcpy(ct, "multipart/form-data; boundary=");
    size_t n = strlen(ct);
    memset(ct + n, 'b', sizeof ct - n - 1);
    ct[sizeof ct - 1] = '\0';
    struct rm_request req = mkreq("x", ct, 1);
    struct rm_response resp = mkresp(CAP);
    CU_ASSERT_EQUAL(rm_handler_echo.process(NULL, &req, &resp), -1);
    CU_ASSERT_EQUAL(resp.status, 500);
    CU_ASSERT_PTR_NOT_NULL(memmem(resp.body, resp.body_len, "Content-Type", 12));
}

/* ------------------------------------------------------------------- chaos */

static void test_chaos_other_bodies_echo_at_once(void)
{
    const char *bodies[] = { "hello", "sleepy 300", "sleep", "sleep x",
                             "sleep 300ms", "Crash", "  crash", "han", NULL };
    for (const char **b = bodies; *b; b++) {
        struct rm_request req = mkreq(*b, "text/plain", 1);
        struct rm_response resp = mkresp(CAP);
        uint64_t t0 = ms_now();
        CU_ASSERT_EQUAL(rm_handler_chaos.process(NULL, &req, &resp), 0);
        CU_ASSERT_TRUE(ms_now() - t0 < 100);
        CU_ASSERT_EQUAL(resp.status, 200);
        CU_ASSERT_TRUE(body_is(&resp, *b));
        CU_ASSERT_STRING_EQUAL(resp.content_type, "text/plain");
    }
}

static void test_chaos_sleep_waits_then_echoes(void)
{
    struct rm_request req = mkreq("sleep 150\n", "text/plain", 1);
    struct rm_response resp = mkresp(CAP);
    uint64_t t0 = ms_now();
    CU_ASSERT_EQUAL(rm_handler_chaos.process(NULL, &req, &resp), 0);
    uint64_t took = ms_now() - t0;
    CU_ASSERT_TRUE(took >= 150);
    CU_ASSERT_TRUE(took < 1500);
    CU_ASSERT_EQUAL(resp.status, 200);
    CU_ASSERT_TRUE(body_is(&resp, "sleep 150\n"));
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void test_chaos_sleep_survives_signal_interruptions(void)
{
    /* No SA_RESTART: every tick interrupts the sleep with EINTR. */
    struct sigaction sa = { .sa_handler = on_alarm }, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    struct itimerval tick = { { 0, 10000 }, { 0, 10000 } }, stop = { { 0, 0 }, { 0, 0 } };
    alarms = 0;
    setitimer(ITIMER_REAL, &tick, NULL);

    struct rm_request req = mkreq("sleep 120", "text/plain", 1);
    struct rm_response resp = mkresp(CAP);
    uint64_t t0 = ms_now();
    int rc = rm_handler_chaos.process(NULL, &req, &resp);
    uint64_t took = ms_now() - t0;

    setitimer(ITIMER_REAL, &stop, NULL);
    sigaction(SIGALRM, &old, NULL);

    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(alarms >= 3);
    CU_ASSERT_TRUE(took >= 120);
    CU_ASSERT_TRUE(took < 1200);
    CU_ASSERT_TRUE(body_is(&resp, "sleep 120"));
}

static void test_chaos_crash_once_kills_only_first_attempt(void)
{
    CU_ASSERT_TRUE(killed_by_sigkill(chaos_in_child("crash-once", 1, 5000)));
    CU_ASSERT_TRUE(killed_by_sigkill(chaos_in_child("crash-once please", 1, 5000)));
    CU_ASSERT_TRUE(echoed_ok(chaos_in_child("crash-once", 2, 5000)));
    CU_ASSERT_TRUE(echoed_ok(chaos_in_child("crash-once", 3, 5000)));
}

static void test_chaos_crash_kills_every_attempt(void)
{
    for (unsigned attempt = 1; attempt <= 3; attempt++) {
        CU_ASSERT_TRUE(killed_by_sigkill(chaos_in_child("crash", attempt, 5000)));
        CU_ASSERT_TRUE(killed_by_sigkill(chaos_in_child("crash now", attempt, 5000)));
    }
}

static void test_chaos_hang_never_returns(void)
{
    /* SIGUSR1 stays blocked in the child until its handler is installed, so
     * an early kill() below cannot end it by the default action. */
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* A worker has signal handlers; a caught signal wakes pause(), and
         * hang must go back to waiting rather than return. */
        struct sigaction sa = { .sa_handler = on_alarm };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, NULL);
        sigprocmask(SIG_UNBLOCK, &usr1, NULL);
        struct rm_request req = mkreq("hang", "text/plain", 1);
        struct rm_response resp = mkresp(CAP);
        rm_handler_chaos.process(NULL, &req, &resp);
        _exit(0); /* returning at all is the failure */
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    CU_ASSERT_FATAL(pid >= 0);
    usleep(100 * 1000);
    kill(pid, SIGUSR1);
    usleep(200 * 1000);
    int status;
    CU_ASSERT_EQUAL(waitpid(pid, &status, WNOHANG), 0); /* still running */
    kill(pid, SIGKILL);
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(killed_by_sigkill(status));
}

/* ---------------------------------------------------------------- resolve */

static void test_resolve_builtins_without_dl_handle(void)
{
    char err[256] = "";
    const struct rm_handler *h = NULL;
    void *dl = (void *)1;
    CU_ASSERT_EQUAL(rm_handler_resolve("echo", &h, &dl, err, sizeof err), 0);
    CU_ASSERT_PTR_EQUAL(h, &rm_handler_echo);
    CU_ASSERT_PTR_NULL(dl);
    CU_ASSERT_EQUAL(rm_handler_resolve("chaos", &h, &dl, err, sizeof err), 0);
    CU_ASSERT_PTR_EQUAL(h, &rm_handler_chaos);
    CU_ASSERT_EQUAL(h->abi_version, RM_HANDLER_ABI_VERSION);
    CU_ASSERT_STRING_EQUAL(h->name, "chaos");

    CU_ASSERT_TRUE(rm_handler_is_builtin("echo"));
    CU_ASSERT_TRUE(rm_handler_is_builtin("chaos"));
    CU_ASSERT_FALSE(rm_handler_is_builtin("Echo"));
    CU_ASSERT_FALSE(rm_handler_is_builtin("./echo"));
    CU_ASSERT_FALSE(rm_handler_is_builtin(""));
    CU_ASSERT_FALSE(rm_handler_is_builtin(NULL));
}

static void test_resolve_unknown_builtin_fails_with_list(void)
{
    char err[256] = "";
    const struct rm_handler *h = &rm_handler_echo;
    void *dl = (void *)1;
    CU_ASSERT_EQUAL(rm_handler_resolve("x", &h, &dl, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(h);
    CU_ASSERT_PTR_NULL(dl);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown built-in handler \"x\" (built-ins: echo, chaos"));
#ifdef RM_HAVE_OCR
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "chaos, stream, ocr"));
#endif
    /* A name without '/' is never looked up as a library. */
    CU_ASSERT_EQUAL(rm_handler_resolve("example_upper.so", &h, &dl, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown built-in handler"));

    CU_ASSERT_EQUAL(rm_handler_resolve("", &h, &dl, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty handler"));

    /* A tiny buffer is filled, truncated and terminated, never overrun. */
    char tiny[8];
    memset(tiny, 'z', sizeof tiny);
    CU_ASSERT_EQUAL(rm_handler_resolve("x", &h, &dl, tiny, sizeof tiny), -1);
    CU_ASSERT_EQUAL(tiny[sizeof tiny - 1], '\0');
}

static void test_resolve_ocr_reports_whether_built(void)
{
    char err[256] = "";
    const struct rm_handler *h;
    void *dl;
#ifdef RM_HAVE_OCR
    CU_ASSERT_EQUAL(rm_handler_resolve("ocr", &h, &dl, err, sizeof err), 0);
    CU_ASSERT_TRUE(rm_handler_is_builtin("ocr"));
#else
    CU_ASSERT_EQUAL(rm_handler_resolve("ocr", &h, &dl, err, sizeof err), -1);
    CU_ASSERT_FALSE(rm_handler_is_builtin("ocr"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "built without Tesseract"));
#endif
}

static void test_resolve_path_loads_example_so(void)
{
    const char *path = EXAMPLE_SO;
    char err[512] = "";
    const struct rm_handler *h = NULL;
    void *dl = NULL;
    int rc = rm_handler_resolve(path, &h, &dl, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n  resolve(%s): %s (build it with make check)\n", path, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(dl);
    CU_ASSERT_STRING_EQUAL(h->name, "example_upper");
    CU_ASSERT_FALSE(rm_handler_is_builtin(path));

    struct rm_handler_config cfg = { .pool = "upper", .worker_index = 0 };
    void *state = NULL;
    CU_ASSERT_FATAL(h->init != NULL && h->fini != NULL);
    CU_ASSERT_EQUAL_FATAL(h->init(&state, &cfg, err, sizeof err), 0);

    struct rm_request req = mkreq("hello", "text/plain", 1);
    struct rm_response resp = mkresp(CAP);
    CU_ASSERT_EQUAL(h->process(state, &req, &resp), 0);
    CU_ASSERT_EQUAL(resp.status, 200);
    CU_ASSERT_TRUE(body_is(&resp, "HELLO"));
    CU_ASSERT_STRING_EQUAL(resp.content_type, "text/plain");

    /* Not text: refused with its own status, not mangled. */
    req = mkreq("\x89PNG", "image/png", 1);
    resp = mkresp(CAP);
    CU_ASSERT_EQUAL(h->process(state, &req, &resp), 0);
    CU_ASSERT_EQUAL(resp.status, 415);

    h->fini(state);
    rm_handler_unload(dl);
}

static void test_example_so_prefix_key_is_prepended(void)
{
    char err[512] = "";
    const struct rm_handler *h = NULL;
    void *dl = NULL;
    CU_ASSERT_EQUAL_FATAL(rm_handler_resolve(EXAMPLE_SO, &h, &dl, err, sizeof err), 0);

    const struct rm_handler_kv kv[] = { { "colour", "blue" }, { "prefix", ">> " } };
    struct rm_handler_config cfg = { .pool = "upper", .kv = kv, .nkv = 2 };
    void *state = NULL;
    CU_ASSERT_EQUAL_FATAL(h->init(&state, &cfg, err, sizeof err), 0);

    struct rm_request req = mkreq("Mixed Case 123", "", 1);
    struct rm_response resp = mkresp(CAP);
    CU_ASSERT_EQUAL(h->process(state, &req, &resp), 0);
    CU_ASSERT_TRUE(body_is(&resp, ">> MIXED CASE 123"));

    /* Prefix + body larger than the buffer: handler error, nothing overrun. */
    resp = mkresp(10);
    CU_ASSERT_EQUAL(h->process(state, &req, &resp), -1);
    CU_ASSERT_EQUAL(resp.status, 500);
    CU_ASSERT_TRUE(resp.body_len <= 10);

    h->fini(state);
    rm_handler_unload(dl);
}

static void test_resolve_missing_so_names_dlerror(void)
{
    char err[512] = "";
    const struct rm_handler *h = &rm_handler_echo;
    void *dl = (void *)1;
    const char *path = "./no/such/dir/handler.so";
    CU_ASSERT_EQUAL(rm_handler_resolve(path, &h, &dl, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(h);
    CU_ASSERT_PTR_NULL(dl);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "dlopen(\"./no/such/dir/handler.so\")"));
    /* glibc's dlerror() text, passed on as is. */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open shared object file"));
}

static void test_resolve_abi_mismatch_rejected(void)
{
    char err[512] = "";
    const struct rm_handler *h = &rm_handler_echo;
    void *dl = (void *)1;
    const char *path = BAD_ABI_SO;
    CU_ASSERT_EQUAL(rm_handler_resolve(path, &h, &dl, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(h);
    CU_ASSERT_PTR_NULL(dl);
    if (!strstr(err, "abi_version 999, expected 1 to 3"))
        fprintf(stderr, "\n  got: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "abi_version 999, expected 1 to 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
}

static void test_abi_version_1_handler_loads_without_reading_past_its_descriptor(void)
{
    char err[512] = "";
    const struct rm_handler *h = NULL;
    void *dl = NULL;
    CU_ASSERT_EQUAL_FATAL(rm_handler_resolve(ABI_V1_SO, &h, &dl, err, sizeof err), 0);
    CU_ASSERT_EQUAL(h->abi_version, 1);
    CU_ASSERT_PTR_NULL(h->atfork); /* its descriptor ends before atfork (poison follows) */
    char buf[64];
    struct rm_request req = {.body = "hi", .body_len = 2, .content_type = "", .attempt = 1};
    struct rm_response resp = {.status = 200, .body = buf, .body_cap = sizeof buf};
    CU_ASSERT_EQUAL(h->process(NULL, &req, &resp), 0);
    CU_ASSERT_EQUAL(resp.body_len, 5);
    CU_ASSERT_EQUAL(memcmp(buf, "v1:hi", 5), 0);
    rm_handler_unload(dl);
}

/* ABI 3 appended emit, cancelled and priv to struct rm_request: a handler
 * built against version 2 reads the request through the old layout. */
static void test_abi_v2_handler_loads_and_reads_the_request(void)
{
    const struct rm_handler *h = NULL;
    void *dl = NULL;
    char err[512] = "";
    CU_ASSERT_EQUAL_FATAL(rm_handler_resolve(ABI_V2_SO, &h, &dl, err, sizeof err), 0);
    CU_ASSERT_EQUAL(h->abi_version, 2);
    char buf[64];
    struct rm_request req = {.body = "hi", .body_len = 2, .content_type = "text/x", .attempt = 1,
                             .emit = NULL, .cancelled = NULL, .priv = buf};
    struct rm_response resp = {.status = 200, .body = buf, .body_cap = sizeof buf};
    CU_ASSERT_EQUAL(h->process(NULL, &req, &resp), 0);
    CU_ASSERT_EQUAL(resp.body_len, 12);
    CU_ASSERT_EQUAL(memcmp(buf, "v2:hi text/x", 12), 0);
    rm_handler_unload(dl);
}

static void test_resolve_so_without_entry_symbol_names_dlsym(void)
{
    /* A real shared object without ringmaster_handler: the libc this test
     * runs with, found in /proc/self/maps (no multiarch path hard-coded). */
    FILE *maps = fopen("/proc/self/maps", "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(maps);
    char line[1024], libc[512] = "";
    while (fgets(line, sizeof line, maps)) {
        char *p = strchr(line, '/');
        if (p && strstr(p, "/libc.so")) {
            p[strcspn(p, "\n")] = '\0';
            snprintf(libc, sizeof libc, "%s", p);
            break;
        }
    }
    fclose(maps);
    CU_ASSERT_FATAL(libc[0] != '\0');

    char err[1024] = "";
    const struct rm_handler *h;
    void *dl;
    CU_ASSERT_EQUAL(rm_handler_resolve(libc, &h, &dl, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(dl);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "dlsym(\"ringmaster_handler\")"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "undefined symbol"));
}

static void test_check_validates_without_init(void)
{
    char err[512] = "";
    CU_ASSERT_EQUAL(rm_handler_check("echo", err, sizeof err), 0);
    CU_ASSERT_EQUAL(rm_handler_check("chaos", err, sizeof err), 0);
    CU_ASSERT_EQUAL(rm_handler_check(EXAMPLE_SO, err, sizeof err), 0);

    CU_ASSERT_EQUAL(rm_handler_check("nope", err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown built-in handler \"nope\""));

    CU_ASSERT_EQUAL(rm_handler_check("/nonexistent/h.so", err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "stat(\"/nonexistent/h.so\")"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));

    CU_ASSERT_EQUAL(rm_handler_check("tests/", err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));

    CU_ASSERT_EQUAL(rm_handler_check(BAD_ABI_SO, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "abi_version 999"));
}

static const rm_test tests[] = {
    RM_TEST(test_echo_returns_body_and_content_type),
    RM_TEST(test_echo_without_content_type_answers_octet_stream),
    RM_TEST(test_echo_empty_body_answers_empty),
    RM_TEST(test_echo_too_large_response_is_error),
    RM_TEST(test_echo_overlong_content_type_is_error_not_truncated),
    RM_TEST(test_chaos_other_bodies_echo_at_once),
    RM_TEST(test_chaos_sleep_waits_then_echoes),
    RM_TEST(test_chaos_sleep_survives_signal_interruptions),
    RM_TEST(test_chaos_crash_once_kills_only_first_attempt),
    RM_TEST(test_chaos_crash_kills_every_attempt),
    RM_TEST(test_chaos_hang_never_returns),
    RM_TEST(test_resolve_builtins_without_dl_handle),
    RM_TEST(test_resolve_unknown_builtin_fails_with_list),
    RM_TEST(test_resolve_ocr_reports_whether_built),
    RM_TEST(test_resolve_path_loads_example_so),
    RM_TEST(test_example_so_prefix_key_is_prepended),
    RM_TEST(test_resolve_missing_so_names_dlerror),
    RM_TEST(test_resolve_abi_mismatch_rejected),
    RM_TEST(test_abi_version_1_handler_loads_without_reading_past_its_descriptor),
    RM_TEST(test_abi_v2_handler_loads_and_reads_the_request),
    RM_TEST(test_resolve_so_without_entry_symbol_names_dlsym),
    RM_TEST(test_check_validates_without_init),
    { 0 },
};

int main(void)
{
    return rm_run_suite("handlers", tests);
}
