/*
 * crash_init.c - a handler whose model load crashes (SIGSEGV in init), for
 * the test that a reload to it is rolled back instead of respawning forever.
 * Built like an out-of-tree handler: cc -shared -fPIC -o crash_init.so crash_init.c
 */
#include <signal.h>

#include "ringmaster_handler.h"

static int init(void **state, const struct rm_handler_config *cfg, char *err, size_t errlen)
{
    (void)state;
    (void)cfg;
    (void)err;
    (void)errlen;
    raise(SIGSEGV); /* what a broken native model library does */
    return 0;
}

static int process(void *state, const struct rm_request *req, struct rm_response *resp)
{
    (void)state;
    return rm_response_set(resp, 200, req->content_type, req->body, req->body_len);
}

static const struct rm_handler handler = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .name = "crash_init",
    .init = init,
    .process = process,
};

const struct rm_handler *ringmaster_handler(void)
{
    return &handler;
}
