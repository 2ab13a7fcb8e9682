/*
 * attack.c - a hostile handler, for the isolation tests
 * (tests/integration/test_isolation.py). Each request body names an attack
 * on the shared memory the worker can see (every "memfd:ringmaster" mapping
 * in /proc/self/maps); the answer is a JSON report of what it managed.
 *
 *   scribble        random bytes over every shared mapping (writes into
 *                   read-only or unmapped pages fault; the fault is caught
 *                   and counted)
 *   zero            zeros over every writable shared mapping
 *   flip MS         a thread flips random words in the writable shared
 *                   mappings for MS milliseconds while the worker serves on
 *   grandchild MS   a forked child flips words for MS milliseconds, then
 *                   the worker answers with the child's pid (the test kills
 *                   the worker and checks the child dies with it)
 *   overflow N      writes N bytes from the start of its answer buffer, past
 *                   its end (a linear overflow)
 *   targeted        one write to every field of the header and the pool
 *                   descriptors (the master's memory), and mprotect() to
 *                   make it writable
 *   maps            reports the shared mappings it sees
 *   anything else   echoed, so the test can see the pool serve again
 *
 * Built like an out-of-tree handler: cc -shared -fPIC -o attack.so attack.c -lpthread
 */
#include <pthread.h>
#include <stdarg.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ringmaster_handler.h"

struct region {
    unsigned char *lo, *hi;
    int writable;
    char name[64];
};
#define MAX_REGIONS 64

static int regions(struct region *r, int max)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        if (!strstr(line, "memfd:ringmaster"))
            continue;
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        r[n].lo = (unsigned char *)lo;
        r[n].hi = (unsigned char *)hi;
        r[n].writable = perms[1] == 'w';
        const char *name = strstr(line, "memfd:");
        snprintf(r[n].name, sizeof r[n].name, "%.*s", (int)strcspn(name, " \n"), name);
        n++;
    }
    fclose(f);
    return n;
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state ? rng_state : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

/* One write that may fault: 1 if it landed, 0 if it faulted. */
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t in_probe;
static void on_fault(int sig)
{
    if (in_probe)
        siglongjmp(fault_jmp, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}
static int try_write(unsigned char *p, unsigned char v)
{
    in_probe = 1;
    if (sigsetjmp(fault_jmp, 1)) {
        in_probe = 0;
        return 0;
    }
    *(volatile unsigned char *)p = v;
    in_probe = 0;
    return 1;
}
static void catch_faults(void)
{
    struct sigaction sa = {.sa_handler = on_fault};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

static void flip_for(int ms)
{
    struct region r[MAX_REGIONS];
    int n = regions(r, MAX_REGIONS);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        for (int k = 0; k < 1000; k++) {
            struct region *g = &r[rnd() % (n ? n : 1)];
            if (!n || !g->writable)
                continue;
            size_t words = (size_t)(g->hi - g->lo) / 8;
            uint64_t *w = (uint64_t *)g->lo + rnd() % words;
            *w ^= rnd();
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
            return;
        usleep(200);
    }
}

static void *flip_thread(void *arg)
{
    flip_for((int)(intptr_t)arg);
    return NULL;
}

static int report(struct rm_response *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int report(struct rm_response *resp, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return rm_response_set(resp, 200, "application/json", buf, (size_t)n);
}

static int process(void *state, const struct rm_request *req, struct rm_response *resp)
{
    (void)state;
    char cmd[64] = "";
    size_t n = req->body_len < sizeof cmd - 1 ? req->body_len : sizeof cmd - 1;
    memcpy(cmd, req->body, n);
    int arg = 0;
    char *sp = strchr(cmd, ' ');
    if (sp)
        arg = atoi(sp + 1);
    catch_faults();
    struct region r[MAX_REGIONS];
    int nr = regions(r, MAX_REGIONS);

    if (strncmp(cmd, "scribble", 8) == 0 || strncmp(cmd, "zero", 4) == 0) {
        int zero = cmd[0] == 'z';
        unsigned long landed = 0, faulted = 0;
        for (int i = 0; i < nr; i++) {
            if (zero && !r[i].writable)
                continue;
            /* every page, a few bytes each (all of it for the small ones) */
            for (unsigned char *p = r[i].lo; p < r[i].hi; p += (r[i].hi - r[i].lo) > (1 << 20) ? 4096 : 1) {
                unsigned char v = zero ? 0 : (unsigned char)rnd();
                if (try_write(p, v))
                    landed++;
                else
                    faulted++;
                if (!zero && (r[i].hi - r[i].lo) > (1 << 20) && !try_write(p + 64 + rnd() % 3000, v))
                    faulted++;
            }
        }
        return report(resp, "{\"attack\":\"%s\",\"regions\":%d,\"landed\":%lu,\"faulted\":%lu}",
                      zero ? "zero" : "scribble", nr, landed, faulted);
    }
    if (strncmp(cmd, "flip", 4) == 0) {
        pthread_t t;
        pthread_create(&t, NULL, flip_thread, (void *)(intptr_t)(arg ? arg : 2000));
        pthread_detach(t);
        return report(resp, "{\"attack\":\"flip\",\"ms\":%d}", arg ? arg : 2000);
    }
    if (strncmp(cmd, "grandchild", 10) == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            flip_for(arg ? arg : 5000);
            _exit(0);
        }
        return report(resp, "{\"attack\":\"grandchild\",\"pid\":%d,\"worker\":%d}", (int)pid, (int)getpid());
    }
    if (strncmp(cmd, "overflow", 8) == 0) {
        size_t len = arg > 0 ? (size_t)arg : (size_t)2 << 20;
        /* A realistic bug: the handler believes its buffer is larger. */
        memset(resp->body, 'X', len);
        return report(resp, "{\"attack\":\"overflow\",\"bytes\":%zu}", len);
    }
    if (strncmp(cmd, "targeted", 8) == 0) {
        unsigned long landed = 0, faulted = 0, mprotected = 0;
        for (int i = 0; i < nr; i++) {
            if (!strstr(r[i].name, "ringmaster-ctrl"))
                continue;
            /* every 4-byte field of the header and the descriptors */
            for (unsigned char *p = r[i].lo; p < r[i].hi && p < r[i].lo + 65536; p += 4) {
                if (try_write(p, 0xff))
                    landed++;
                else
                    faulted++;
            }
            if (mprotect(r[i].lo, (size_t)(r[i].hi - r[i].lo), PROT_READ | PROT_WRITE) == 0)
                mprotected++;
        }
        return report(resp, "{\"attack\":\"targeted\",\"landed\":%lu,\"faulted\":%lu,\"mprotected\":%lu}", landed,
                      faulted, mprotected);
    }
    if (strncmp(cmd, "maps", 4) == 0) {
        char buf[900] = "";
        size_t off = 0;
        for (int i = 0; i < nr && off < sizeof buf - 80; i++)
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s\"%s %s\"", i ? "," : "", r[i].name,
                                    r[i].writable ? "rw" : "ro");
        return report(resp, "{\"attack\":\"maps\",\"maps\":[%s]}", buf);
    }
    return rm_response_set(resp, 200, req->content_type, req->body, req->body_len);
}

static const struct rm_handler handler = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .name = "attack",
    .process = process,
};

const struct rm_handler *ringmaster_handler(void)
{
    return &handler;
}
