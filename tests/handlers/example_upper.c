/*
 * example_upper.c - an example out-of-tree ringmaster handler.
 *
 * It needs nothing from ringmaster but the public ABI header. It answers a
 * text body upper-cased (ASCII letters only) as text/plain, optionally
 * preceded by the pool key `prefix`.
 *
 * Build (ringmaster_handler.h is installed in $(includedir)):
 *
 *     cc -std=gnu11 -Wall -Wextra -shared -fPIC -o example_upper.so example_upper.c
 *
 * and use it in ringmaster.ini (a handler path must contain a '/'):
 *
 *     [pool upper]
 *     handler = /usr/local/lib/ringmaster/example_upper.so
 *     workers = 2
 *     prefix = >>            ; any key ringmaster does not know goes to init()
 *
 *     $ curl -H 'Content-Type: text/plain' -d 'hello' \
 *           http://127.0.0.1:8080/v2/models/upper/infer
 *     >> HELLO
 *
 * `make check` builds this file into tests/handlers/example_upper.so and
 * tests/test_handlers loads it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmaster_handler.h"

/* Per-worker state made by init(). The pool config is only valid during
 * init(), so keep copies of what process() needs. */
struct upper_state {
    char *prefix;
    size_t prefix_len;
};

static int upper_init(void **state, const struct rm_handler_config *cfg,
                      char *err, size_t errlen)
{
    struct upper_state *st = calloc(1, sizeof *st);
    if (st)
        st->prefix = strdup(rm_handler_get(cfg, "prefix", ""));
    if (!st || !st->prefix) {
        free(st);
        /* A permanent failure: the pool is marked failed, not respawned. */
        snprintf(err, errlen, "example_upper: out of memory");
        return RM_INIT_FAILED;
    }
    st->prefix_len = strlen(st->prefix);
    *state = st;
    return 0;
}

/* Fill resp with a message, status and a negative return: the pattern for a
 * request this handler refuses. */
static int upper_refuse(struct rm_response *resp, int status, const char *msg)
{
    if (rm_response_set(resp, status, "text/plain", msg, strlen(msg)) != 0) {
        resp->status = status;
        resp->body_len = 0;
    }
    return status == 500 ? -1 : 0;
}

static int upper_process(void *state, const struct rm_request *req,
                         struct rm_response *resp)
{
    const struct upper_state *st = state;

    /* Only text can be upper-cased; say so with 415 instead of mangling a
     * binary body. No Content-Type at all is taken as text. */
    if (req->content_type[0] && strncmp(req->content_type, "text/", 5) != 0)
        return upper_refuse(resp, 415, "example_upper: send a text/* body");

    if (st->prefix_len > resp->body_cap ||
        req->body_len > resp->body_cap - st->prefix_len)
        return upper_refuse(resp, 500, "example_upper: answer larger than max_response_size");

    /* Write straight into the response buffer (shared memory): no copy. The
     * request is read-only and is never modified, so a re-run after a worker
     * death sees it intact. */
    char *out = resp->body;
    const unsigned char *in = req->body;
    memcpy(out, st->prefix, st->prefix_len);
    for (size_t i = 0; i < req->body_len; i++) {
        unsigned char c = in[i];
        out[st->prefix_len + i] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    resp->status = 200;
    strcpy(resp->content_type, "text/plain");
    resp->body_len = st->prefix_len + req->body_len;
    return 0;
}

static void upper_fini(void *state)
{
    struct upper_state *st = state;
    if (st)
        free(st->prefix);
    free(st);
}

/* The pool keys it reads: any other key in its pool section is an error. */
static const char *const upper_keys[] = {"prefix", NULL};

static const struct rm_handler upper_handler = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .keys = upper_keys,
    .name = "example_upper",
    .init = upper_init,
    .process = upper_process,
    .fini = upper_fini,
};

/* The one exported symbol. The prototype keeps -Wmissing-prototypes quiet;
 * the visibility attribute keeps it exported under -fvisibility=hidden. */
__attribute__((visibility("default")))
const struct rm_handler *ringmaster_handler(void);

const struct rm_handler *ringmaster_handler(void)
{
    return &upper_handler;
}
