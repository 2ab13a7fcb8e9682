/*
 * abi_v1.c - a handler built against version 1 of the handler ABI (before
 * rm_handler.atfork existed): its descriptor is the version 1 layout,
 * declared here as it was, and ringmaster must load it without reading past
 * its end. Answers "v1:" followed by the body.
 * Built like an out-of-tree handler: cc -shared -fPIC -o abi_v1.so abi_v1.c
 */
#include <stdint.h>
#include <string.h>

#include "ringmaster_handler.h"

/* The version 1 descriptor, exactly. */
struct rm_handler_v1 {
    uint32_t abi_version;
    const char *name;
    int (*init)(void **state, const struct rm_handler_config *cfg, char *err, size_t errlen);
    int (*process)(void *state, const struct rm_request *req, struct rm_response *resp);
    void (*fini)(void *state);
};

static int process(void *state, const struct rm_request *req, struct rm_response *resp)
{
    (void)state;
    if (req->body_len + 3 > resp->body_cap)
        return -1;
    memcpy(resp->body, "v1:", 3);
    memcpy((char *)resp->body + 3, req->body, req->body_len);
    resp->body_len = req->body_len + 3;
    return 0;
}

/* In its own section, with a guard after it that a read past the end would
 * take for atfork: non-NULL garbage. */
static const struct {
    struct rm_handler_v1 h;
    uintptr_t poison;
} handler = {{1, "abi_v1", NULL, process, NULL}, (uintptr_t)0xdeadbeef};

const struct rm_handler *ringmaster_handler(void)
{
    return (const struct rm_handler *)&handler.h;
}
