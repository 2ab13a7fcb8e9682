/*
 * evil_ctor.c - a handler .so whose constructor misbehaves, chosen by the
 * environment variable EVIL_CTOR: "crash" (SIGSEGV), "loop" (never
 * returns), "thread" (starts a thread that spins). For the test that the
 * master never runs handler code: `ringmaster -t` and start-up check the
 * handlers in a child, so none of these can kill or hang ringmaster.
 * Built like an out-of-tree handler: cc -shared -fPIC -o evil_ctor.so evil_ctor.c
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringmaster_handler.h"

static void *spin(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

__attribute__((constructor)) static void misbehave(void)
{
    const char *how = getenv("EVIL_CTOR");
    if (!how)
        return;
    if (strcmp(how, "crash") == 0)
        raise(SIGSEGV);
    if (strcmp(how, "loop") == 0)
        for (;;)
            pause();
    if (strcmp(how, "thread") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, spin, NULL);
    }
}

static int process(void *state, const struct rm_request *req, struct rm_response *resp)
{
    (void)state;
    return rm_response_set(resp, 200, req->content_type, req->body, req->body_len);
}

static const struct rm_handler handler = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .name = "evil_ctor",
    .process = process,
};

const struct rm_handler *ringmaster_handler(void) { return &handler; }
