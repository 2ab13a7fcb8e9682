/*
 * abi_v2.c - a handler built against version 2 of the handler ABI (before
 * struct rm_request had emit, cancelled and priv at its end): it reads the
 * request through the version 2 layout, declared here as it was, and must
 * keep working with the longer request ringmaster now passes. Answers "v2:"
 * followed by the body and the content type.
 * Built like an out-of-tree handler: cc -shared -fPIC -o abi_v2.so abi_v2.c
 */
#include <stdint.h>
#include <string.h>

#include "ringmaster_handler.h"

/* The version 2 request, exactly. */
struct rm_request_v2 {
    const void *body;
    size_t body_len;
    const char *content_type;
    unsigned attempt;
    uint64_t deadline_ns;
    const char *pool;
};

static int process(void *state, const struct rm_request *req3, struct rm_response *resp)
{
    (void)state;
    const struct rm_request_v2 *req = (const struct rm_request_v2 *)(const void *)req3;
    size_t ct = strlen(req->content_type);
    if (req->body_len + ct + 4 > resp->body_cap)
        return -1;
    char *out = resp->body;
    memcpy(out, "v2:", 3);
    memcpy(out + 3, req->body, req->body_len);
    out[3 + req->body_len] = ' ';
    memcpy(out + 4 + req->body_len, req->content_type, ct);
    resp->body_len = req->body_len + ct + 4;
    return 0;
}

static const struct rm_handler handler = {
    .abi_version = 2, .name = "abi_v2", .init = NULL, .process = process, .fini = NULL,
    .atfork = NULL, .keys = NULL,
};

const struct rm_handler *ringmaster_handler(void)
{
    return &handler;
}
