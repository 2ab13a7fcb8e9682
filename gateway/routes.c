/*
 * routes.c - which endpoint a request is for (decided when its headers are
 * complete, so body limits apply before the body is read) and the answers
 * the gateway gives from shared memory itself: health, readiness, server
 * and model metadata, metrics. Inference goes to submit.c.
 */
#include <config.h> /* autoconf: PACKAGE_VERSION */

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "gateway/internal.h"
#include "shm/segment.h"

#define JSON "application/json"

static bool path_is(const char *path, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(path, lit, len) == 0;
}

void gw_route_classify(struct gw *gw, struct gw_conn *c)
{
    c->route = GW_R_NOT_FOUND;
    c->pool = -1;
    c->store_body = false;
    c->body_limit = GW_DISCARD_LIMIT;
    if (c->url_too_long) {
        c->route = GW_R_URL_TOO_LONG;
        return;
    }
    /* Only the origin form ("/path?query", RFC 9112 3.2.1) is for us: the
     * absolute form (meant for proxies), the authority form (CONNECT) and
     * the asterisk form (OPTIONS *) are 400, as is a fragment, which a
     * request-target never carries. The path is what precedes '?'. */
    if (c->method == HTTP_CONNECT || c->url_len == 0 || c->url[0] != '/' ||
        memchr(c->url, '#', c->url_len)) {
        c->route = GW_R_BAD;
        return;
    }
    const char *path = c->url;
    const char *query = memchr(c->url, '?', c->url_len);
    size_t len = query ? (size_t)(query - c->url) : c->url_len;
    if (gw->metrics_apart) {
        /* metrics_listen is set: its sockets answer /metrics and the health
         * paths only (a scraper or a probe, never inference); the listen
         * sockets answer everything but /metrics. */
        bool metrics = path_is(path, len, "/metrics");
        if (c->metrics_port && metrics)
            c->route = GW_R_METRICS;
        else if (c->metrics_port && path_is(path, len, "/v2/health/live"))
            c->route = GW_R_LIVE;
        else if (c->metrics_port && path_is(path, len, "/v2/health/ready"))
            c->route = GW_R_READY;
        if (c->metrics_port || metrics)
            return;
    }
    if (path_is(path, len, "/v2/health/live")) {
        c->route = GW_R_LIVE;
    } else if (path_is(path, len, "/v2/health/ready")) {
        c->route = GW_R_READY;
    } else if (path_is(path, len, "/v2")) {
        c->route = GW_R_SERVER_META;
    } else if (path_is(path, len, "/metrics")) {
        c->route = GW_R_METRICS;
    } else if (len > 11 && memcmp(path, "/v2/models/", 11) == 0) {
        const char *name = path + 11;
        size_t rest = len - 11;
        const char *slash = memchr(name, '/', rest);
        size_t nlen = slash ? (size_t)(slash - name) : rest;
        const char *suffix = name + nlen;
        size_t slen = rest - nlen;
        if (nlen == 0)
            return;
        if (slen == 0)
            c->route = GW_R_MODEL_META;
        else if (path_is(suffix, slen, "/ready"))
            c->route = GW_R_MODEL_READY;
        else if (path_is(suffix, slen, "/infer"))
            c->route = GW_R_INFER;
        else if (path_is(suffix, slen, "/generate"))
            c->route = GW_R_GENERATE;
        else if (path_is(suffix, slen, "/generate_stream"))
            c->route = GW_R_GENERATE_STREAM;
        else
            return;
        c->pool = gw_pool_find(gw, name, nlen);
        bool inference = c->route == GW_R_INFER || c->route == GW_R_GENERATE || c->route == GW_R_GENERATE_STREAM;
        if (inference && c->pool >= 0 && c->method == HTTP_POST) {
            c->store_body = true;
            c->body_limit = gw->pools[c->pool].view.max_req; /* private copy (found pools are valid) */
        }
    }
}

/* Why the whole server is not ready, or NULL. reason is filled for a pool. */
static const char *server_not_ready(const struct gw *gw, char *buf, size_t len)
{
    if (gw_server_stopping(gw))
        return "draining";
    unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES];
    gw_scan_workers(gw, counts);
    bool any = false;
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        if (!gw->pools[i].active || !gw->pools[i].valid)
            continue;
        any = true;
        const char *why = gw_pool_not_ready(gw, i, counts);
        if (why) {
            snprintf(buf, len, "model %s: %s", gw->pools[i].name, why);
            return buf;
        }
    }
    return any ? NULL : "no model configured";
}

static void answer_ready(struct gw *gw, struct gw_conn *c, const char *why)
{
    if (!why) {
        static const char ok[] = "{\"ready\":true}";
        gw_respond(gw, c, 200, JSON, ok, sizeof ok - 1, NULL);
        return;
    }
    struct gw_buf *j = &gw->scratch;
    j->len = 0;
    gw_buf_puts(j, "{\"ready\":false,\"reason\":\"");
    gw_json_escape(j, why, strlen(why));
    gw_buf_puts(j, "\"}");
    if (j->oom) {
        c->broken = true;
        return;
    }
    gw_respond(gw, c, 503, JSON, j->data, j->len, NULL);
}

static void answer_model_ready(struct gw *gw, struct gw_conn *c)
{
    const char *why = NULL;
    if (gw_server_stopping(gw)) {
        why = "draining";
    } else {
        unsigned counts[RM_SHM_MAX_POOLS][RM_PROC_NSTATES];
        gw_scan_workers(gw, counts);
        why = gw_pool_not_ready(gw, (unsigned)c->pool, counts);
    }
    answer_ready(gw, c, why);
}

static void answer_server_meta(struct gw *gw, struct gw_conn *c)
{
    static const char meta[] =
        "{\"name\":\"ringmaster\",\"version\":\"" PACKAGE_VERSION "\",\"extensions\":[]}";
    gw_respond(gw, c, 200, JSON, meta, sizeof meta - 1, NULL);
}

static void answer_model_meta(struct gw *gw, struct gw_conn *c)
{
    const struct gw_pool *gp = &gw->pools[c->pool];
    const struct rm_shm_pool *p = rm_seg_pool(gw->seg, (unsigned)c->pool);
    /* ctrl (only the master writes it): still copied with bounds */
    char handler[sizeof p->handler + 1];
    memcpy(handler, p->handler, sizeof p->handler);
    handler[sizeof p->handler] = '\0';
    char io[sizeof p->io[0]];
    rm_pool_io_read(p, io, sizeof io);

    struct gw_buf *j = &gw->scratch;
    j->len = 0;
    gw_buf_puts(j, "{\"name\":\"");
    gw_json_escape(j, gp->name, gp->name_len);
    gw_buf_puts(j, "\",\"versions\":[\"1\"],\"platform\":\"ringmaster\",\"handler\":\"");
    gw_json_escape(j, handler, strlen(handler));
    gw_buf_puts(j, "\",");
    /* No tensors declared: the model takes and returns raw bytes. */
    gw_buf_puts(j, io[0] ? io
                         : "\"inputs\":[{\"name\":\"body\",\"datatype\":\"BYTES\",\"shape\":[-1]}],"
                           "\"outputs\":[{\"name\":\"body\",\"datatype\":\"BYTES\",\"shape\":[-1]}]");
    gw_buf_puts(j, "}");
    if (j->oom) {
        c->broken = true;
        return;
    }
    gw_respond(gw, c, 200, JSON, j->data, j->len, NULL);
}

static void answer_metrics(struct gw *gw, struct gw_conn *c)
{
    struct gw_buf *b = &gw->scratch;
    b->len = 0;
    gw_metrics_render(gw, b);
    if (b->oom) {
        b->oom = false;
        gw_respond_error_s(gw, c, 500, "out of memory");
        return;
    }
    gw_respond(gw, c, 200, "text/plain; version=0.0.4; charset=utf-8", b->data, b->len, NULL);
}

/* The generate extension takes a JSON object (its text_input and
 * parameters are the model's business). Anything else: 400, in JSON. */
static bool generate_input_ok(struct gw *gw, struct gw_conn *c)
{
    if (c->body.oom || c->body.len > gw->pools[c->pool].view.max_req)
        return true; /* gw_submit answers 503 / 413 */
    json_error_t je;
    json_t *j = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, &je);
    bool ok = json_is_object(j), parsed = j != NULL;
    json_decref(j);
    if (ok)
        return true;
    char msg[256];
    if (parsed)
        snprintf(msg, sizeof msg, "generate: the request body must be a JSON object");
    else
        snprintf(msg, sizeof msg, "generate: the request body is not JSON: %s (line %d, column %d)", je.text,
                 je.line, je.column);
    gw_respond_error_s(gw, c, 400, msg);
    return false;
}

void gw_dispatch(struct gw *gw, struct gw_conn *c)
{
    bool get = c->method == HTTP_GET || c->method == HTTP_HEAD;
    switch (c->route) {
    case GW_R_BAD:
        c->keepalive = false;  /* a malformed request: nothing after it is read */
        gw_respond_error_s(gw, c, 400, "malformed request: the request-target is not an origin-form path");
        return;
    case GW_R_URL_TOO_LONG:
        gw_respond_error_s(gw, c, 414, "URL too long");
        return;
    case GW_R_NONE:
    case GW_R_NOT_FOUND:
        gw_respond_error_s(gw, c, 404, "not found");
        return;
    case GW_R_INFER:
    case GW_R_GENERATE:
    case GW_R_GENERATE_STREAM:
        if (c->pool < 0)
            gw_respond_error_s(gw, c, 404, "unknown model");
        else if (c->method != HTTP_POST)
            gw_respond_error(gw, c, 405, "method not allowed", 18, "POST");
        else if (c->route != GW_R_INFER && !generate_input_ok(gw, c))
            return; /* answered 400 */
        else
            gw_submit(gw, c);
        return;
    case GW_R_MODEL_META:
    case GW_R_MODEL_READY:
        if (c->pool < 0) {
            gw_respond_error_s(gw, c, 404, "unknown model");
            return;
        }
        break;
    default:
        break;
    }
    if (!get) {
        gw_respond_error(gw, c, 405, "method not allowed", 18, "GET, HEAD");
        return;
    }
    char reason[RM_SHM_POOL_NAME + 64];
    switch (c->route) {
    case GW_R_LIVE: {
        static const char live[] = "{\"live\":true}";
        gw_respond(gw, c, 200, JSON, live, sizeof live - 1, NULL);
        break;
    }
    case GW_R_READY:
        answer_ready(gw, c, server_not_ready(gw, reason, sizeof reason));
        break;
    case GW_R_SERVER_META:
        answer_server_meta(gw, c);
        break;
    case GW_R_METRICS:
        answer_metrics(gw, c);
        break;
    case GW_R_MODEL_META:
        answer_model_meta(gw, c);
        break;
    case GW_R_MODEL_READY:
        answer_model_ready(gw, c);
        break;
    default:
        gw_respond_error_s(gw, c, 404, "not found");
        break;
    }
}
