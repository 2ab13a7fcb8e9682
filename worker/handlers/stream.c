/*
 * worker/handlers/stream.c - built-in `stream`: a streaming handler for
 * tests and benchmarks (docs/streaming.md). The request body is a command:
 *
 *   N [every MS] [size B] [first MS] [status S] [whole] [crash-at K]
 *     [crash-once-at K] [hang-at K] [fail-at K] [count PATH]
 *
 * emits N chunks, chunk i being "i:" followed by letters up to B bytes
 * (default: just "i:" and a newline), waiting MS milliseconds between
 * chunks (first MS: before the first one). crash-at K SIGKILLs the worker
 * before chunk K on every attempt, crash-once-at K on the first attempt
 * only, hang-at K stops emitting before chunk K and sleeps for good,
 * fail-at K returns an error there. whole answers the same bytes in one
 * piece instead of streaming (the benchmark's baseline). count PATH writes
 * "emitted=E cancelled=C\n" to PATH when it stops: C is 1 when it stopped
 * because the client went away (emit or cancelled() said so).
 *
 * With Content-Type application/json the body is a JSON object whose
 * "text_input" holds the command (the generate extension's request), and
 * each chunk is {"text_output":"<chunk>"}.
 */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/handler.h"

struct cmd {
    long n, every_ms, size, first_ms, status;
    long crash_at, crash_once_at, hang_at, fail_at;
    bool whole;
    char count[256];
};

static void sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static bool parse(const char *text, struct cmd *c, char *err, size_t errlen)
{
    *c = (struct cmd){.n = 0, .size = 0, .status = 200, .crash_at = -1, .crash_once_at = -1, .hang_at = -1,
                      .fail_at = -1};
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL, *tok = strtok_r(buf, " \t\r\n", &save);
    if (!tok) {
        snprintf(err, errlen, "empty command");
        return false;
    }
    c->n = strtol(tok, NULL, 10);
    while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
        if (strcmp(tok, "whole") == 0) {
            c->whole = true;
            continue;
        }
        char *val = strtok_r(NULL, " \t\r\n", &save);
        if (!val) {
            snprintf(err, errlen, "%s: missing value", tok);
            return false;
        }
        long v = strtol(val, NULL, 10);
        if (strcmp(tok, "every") == 0) c->every_ms = v;
        else if (strcmp(tok, "size") == 0) c->size = v;
        else if (strcmp(tok, "first") == 0) c->first_ms = v;
        else if (strcmp(tok, "status") == 0) c->status = v;
        else if (strcmp(tok, "crash-at") == 0) c->crash_at = v;
        else if (strcmp(tok, "crash-once-at") == 0) c->crash_once_at = v;
        else if (strcmp(tok, "hang-at") == 0) c->hang_at = v;
        else if (strcmp(tok, "fail-at") == 0) c->fail_at = v;
        else if (strcmp(tok, "count") == 0) snprintf(c->count, sizeof c->count, "%s", val);
        else {
            snprintf(err, errlen, "unknown word %s", tok);
            return false;
        }
    }
    if (c->n < 0 || c->size < 0 || c->size > (64L << 20)) {
        snprintf(err, errlen, "bad count or size");
        return false;
    }
    return true;
}

/* Chunk i's text into b (cap bytes); returns its length. */
static size_t chunk_text(long i, long size, char *b, size_t cap)
{
    int n = snprintf(b, cap, "%ld:", i);
    size_t len = (size_t)n;
    if (size <= 0) {
        b[len++] = '\n';
        return len;
    }
    while (len < (size_t)size && len < cap)
        b[len] = (char)('a' + (len % 26)), len++;
    return len;
}

static void write_count(const struct cmd *c, long emitted, bool cancelled)
{
    if (!c->count[0])
        return;
    int fd = open(c->count, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[96];
    int n = snprintf(line, sizeof line, "emitted=%ld cancelled=%d\n", emitted, cancelled ? 1 : 0);
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

static int stream_process(void *state, const struct rm_request *req, struct rm_response *resp)
{
    (void)state;
    bool json = strncmp(req->content_type, "application/json", 16) == 0;
    char text[1024], err[128] = "";
    if (json) {
        json_error_t je;
        json_t *root = json_loadb(req->body, req->body_len, 0, &je);
        const char *in = root ? json_string_value(json_object_get(root, "text_input")) : NULL;
        if (!in) {
            json_decref(root);
            rm_response_set(resp, 400, "text/plain", "text_input missing", 18);
            return 0;
        }
        snprintf(text, sizeof text, "%s", in);
        json_decref(root);
    } else {
        size_t n = req->body_len < sizeof text - 1 ? req->body_len : sizeof text - 1;
        memcpy(text, req->body, n);
        text[n] = '\0';
    }
    struct cmd c;
    if (!parse(text, &c, err, sizeof err)) {
        rm_response_set(resp, 400, "text/plain", err, strlen(err));
        return 0;
    }
    resp->status = (int)c.status;
    snprintf(resp->content_type, sizeof resp->content_type, "%s", json ? "application/json" : "text/plain");
    size_t cap = (size_t)(c.size > 64 ? c.size : 64) + 32;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    size_t used = 0;
    long emitted = 0;
    bool cancelled = false;
    int rc = 0;
    sleep_ms(c.first_ms);
    for (long i = 0; i < c.n; i++) {
        if (i == c.crash_at || (i == c.crash_once_at && req->attempt == 1))
            raise(SIGKILL);
        if (i == c.hang_at)
            for (;;)
                pause();
        if (i == c.fail_at) {
            rc = -1;
            break;
        }
        if (i > 0)
            sleep_ms(c.every_ms);
        size_t len;
        char *chunk = buf;
        if (c.whole) {
            /* one answer: append to the answer buffer */
            if (used + cap > resp->body_cap) {
                rc = -1;
                break;
            }
            len = chunk_text(i, c.size, (char *)resp->body + used, cap);
            used += len;
            emitted++;
            continue;
        }
        len = chunk_text(i, c.size, buf, cap);
        if (json) {
            json_t *o = json_pack("{s:s#}", "text_output", buf, (int)len);
            char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            if (!s) {
                rc = -1;
                break;
            }
            if (req->emit(req, s, strlen(s)) != 0) {
                free(s);
                cancelled = true;
                break;
            }
            free(s);
        } else if (req->emit(req, chunk, len) != 0) {
            cancelled = true;
            break;
        }
        emitted++;
        if (req->cancelled(req)) {
            cancelled = true;
            break;
        }
    }
    if (c.whole)
        resp->body_len = used;
    write_count(&c, emitted, cancelled);
    free(buf);
    if (rc < 0)
        rm_response_set(resp, 500, "text/plain", "fail-at reached", 15);
    return rc;
}

static const char *const stream_keys[] = {NULL};

const struct rm_handler rm_handler_stream = {
    .abi_version = RM_HANDLER_ABI_VERSION,
    .name = "stream",
    .keys = stream_keys,
    .init = NULL,
    .process = stream_process,
    .fini = NULL,
};
