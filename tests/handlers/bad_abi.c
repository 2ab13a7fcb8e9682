/*
 * bad_abi.c - a handler built for a future ABI (abi_version 999), so that
 * tests/test_handlers can check ringmaster refuses to load it. Built into
 * tests/handlers/bad_abi.so by `make check`, like example_upper.so.
 */
#include "ringmaster_handler.h"

static int bad_process(void *state, const struct rm_request *req,
                       struct rm_response *resp)
{
    (void)state, (void)req, (void)resp;
    return -1;
}

static const struct rm_handler bad_handler = {
    .abi_version = 999,
    .name = "bad_abi",
    .process = bad_process,
};

__attribute__((visibility("default")))
const struct rm_handler *ringmaster_handler(void);

const struct rm_handler *ringmaster_handler(void)
{
    return &bad_handler;
}
