/*
 * example_stream.c - a streaming handler built out of tree against the
 * public header (ABI 3, docs/streaming.md): it sends each word of the
 * request body, upper-cased, as one chunk, and stops when the client is
 * gone. A body "fail W1 W2" fails after its first two words (the stream
 * ends with an error the client sees).
 * Built like any handler: cc -shared -fPIC -o example_stream.so example_stream.c
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ringmaster_handler.h"

static int process(void *state, const struct rm_request *req, struct rm_response *resp)
{
    (void)state;
    const char *b = req->body;
    size_t n = req->body_len, i = 0;
    int words = 0, fail = n >= 5 && memcmp(b, "fail ", 5) == 0;
    snprintf(resp->content_type, sizeof resp->content_type, "text/plain");
    resp->status = 200;
    while (i < n) {
        while (i < n && isspace((unsigned char)b[i]))
            i++;
        size_t start = i;
        while (i < n && !isspace((unsigned char)b[i]))
            i++;
        if (i == start)
            break;
        char word[256];
        size_t len = i - start < sizeof word ? i - start : sizeof word;
        for (size_t k = 0; k < len; k++)
            word[k] = (char)toupper((unsigned char)b[start + k]);
        if (req->cancelled(req) || req->emit(req, word, len) != 0)
            return 0; /* the client is gone: stop */
        if (fail && ++words == 3)
            return -1;
    }
    return 0;
}

static const struct rm_handler handler = {
    .abi_version = RM_HANDLER_ABI_VERSION, .name = "example_stream",
    .init = NULL, .process = process, .fini = NULL, .atfork = NULL, .keys = NULL,
};

const struct rm_handler *ringmaster_handler(void)
{
    return &handler;
}
