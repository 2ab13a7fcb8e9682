/*
 * worker/handlers/echo.c - built-in `echo`: answers 200 with the request body
 * and its Content-Type (application/octet-stream when the client sent none).
 * Stateless: no init, no fini.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "worker/handler.h"

#define ECHO_DEFAULT_TYPE "application/octet-stream"

/* A handler error: status 500 and, when it fits, the reason as the body (the
 * gateway turns it into {"error": ...}). Returns -1 for process() to pass on. */
__attribute__((format(printf, 2, 3)))
static int echo_fail(struct rm_response *resp, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : ((size_t)n >= sizeof msg ? sizeof msg - 1 : (size_t)n);
    if (rm_response_set(resp, 500, "text/plain", msg, len) != 0) {
        /* Not even the message fits: an empty 500 still says "failed". */
        resp->status = 500;
        resp->body_len = 0;
    }
    return -1;
}

static int echo_process(void *state, const struct rm_request *req,
                        struct rm_response *resp)
{
    const char *ct = req->content_type && *req->content_type
                         ? req->content_type : ECHO_DEFAULT_TYPE;
    /* rm_response_set would cut a long type silently; an echo that changes
     * the type (e.g. loses a multipart boundary) is worse than an error. */
    if (strlen(ct) >= RM_CONTENT_TYPE_MAX)
        return echo_fail(resp, "echo: Content-Type of %zu bytes is longer "
                               "than the %d bytes a response can carry",
                         strlen(ct), RM_CONTENT_TYPE_MAX - 1);
    if (req->body_len > resp->body_cap)
        return echo_fail(resp, "echo: request body of %zu bytes exceeds "
                               "max_response_size (%zu bytes)",
                         req->body_len, resp->body_cap);
    return rm_response_set(resp, 200, ct, req->body, req->body_len);
}

static const char *const echo_keys[] = {NULL};

const struct rm_handler rm_handler_echo = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .name = "echo",
    .keys = echo_keys,
    .init = NULL,
    .process = echo_process,
    .fini = NULL,
};
