/*
 * submit.c - the gateway's requests in shared memory: hand a request to
 * its pool (shm/request.h: claim, publish), keep it on the pending list,
 * and turn what rm_req_poll reports into the HTTP answer; abandon it when
 * the client goes. The protocol steps themselves are in shm/request.c;
 * this file is the policy around them (which status, which message, which
 * counter).
 *
 * A slot stays ours from the claim until we free it (the master only
 * touches the slots of a dead gateway), so the pending list needs no
 * locking.
 */
#include <jansson.h>
#include <string.h>

#include "core/log.h"
#include "core/names.h"
#include "gateway/internal.h"
#include "shm/clock.h"
#include "shm/request.h"
#include "shm/segment.h"
#include "shm/slot.h"
#include "shm/stream.h"

/* ------------------------------------------------------------------ pending list */

static void pending_add(struct gw *gw, struct gw_conn *c)
{
    c->pprev = NULL;
    c->pnext = gw->pending;
    if (gw->pending)
        gw->pending->pprev = c;
    gw->pending = c;
    gw->npending++;
    c->phase = GW_WAIT;
    c->streaming = false;
    c->stream_more = false;
    c->sse_mid = false;
    c->srpos = 0;
    c->schunks = 0;
    c->smode = c->route == GW_R_GENERATE_STREAM ? GW_SM_SSE : c->route == GW_R_GENERATE ? GW_SM_COLLECT
                                                                                          : GW_SM_CHUNKED;
}

static void pending_remove(struct gw *gw, struct gw_conn *c)
{
    if (c->pprev)
        c->pprev->pnext = c->pnext;
    else if (gw->pending == c)
        gw->pending = c->pnext;
    if (c->pnext)
        c->pnext->pprev = c->pprev;
    c->pnext = c->pprev = NULL;
    gw->npending--;
    c->phase = GW_BODY;  /* message read, answer not yet queued */
}

static void reject(struct gw *gw, struct gw_conn *c, unsigned pool, const char *why)
{
    gw_count(gw, pool, RM_OUT_REJECTED);
    gw_respond_error_s(gw, c, 503, why);
}

/* ------------------------------------------------------------------ submit */

void gw_submit(struct gw *gw, struct gw_conn *c)
{
    struct rm_seg *seg = gw->seg;
    unsigned pi = (unsigned)c->pool;
    struct gw_pool *gp = &gw->pools[pi];
    struct rm_shm_pool *p = rm_seg_pool(seg, pi);

    /* acquire: pairs with the master's release store of active. A pool
     * removed since the last tick is unknown now, like any other. */
    if (!atomic_load_explicit(&p->active, memory_order_acquire)) {
        gw_respond_error_s(gw, c, 404, "unknown model");
        return;
    }
    if (!gp->valid) {
        reject(gw, c, pi, "model not available");
        return;
    }
    if (c->ctype_bad) {
        gw_respond_error_s(gw, c, 400, "Content-Type longer than 127 bytes or sent twice");
        return;
    }
    if (c->body.oom) {
        reject(gw, c, pi, "out of memory");
        return;
    }
    if (c->body.len > gp->view.max_req) {
        gw_count(gw, pi, RM_OUT_TOO_LARGE);
        gw_respond_error_s(gw, c, 413, "request body larger than the model's max_request_size");
        return;
    }
    /* acquire: pairs with the master's release stores of draining/failed */
    if (atomic_load_explicit(&seg->hdr->draining, memory_order_acquire)) {
        reject(gw, c, pi, "draining");
        return;
    }
    /* acquire: pairs with the master's release store of failed */
    if (atomic_load_explicit(&p->failed, memory_order_acquire)) {
        reject(gw, c, pi, "model failed to load");
        return;
    }
    /* acquire: pairs with the master's release stores (heal.c) */
    if (atomic_load_explicit(&p->healing, memory_order_acquire) ||
        atomic_load_explicit(&p->heal_epoch, memory_order_acquire) != gp->epoch) {
        reject(gw, c, pi, "model restarting: a worker corrupted its memory");
        return;
    }
    if (!gp->has_worker && !gw_pool_has_worker_now(gw, pi)) {
        reject(gw, c, pi, "no ready worker");
        return;
    }

    uint32_t slot = rm_req_claim(&gp->view, gw->index, &gp->cursor);
    if (slot == RM_NO_SLOT) {
        reject(gw, c, pi, "queue full");
        return;
    }
    struct rm_req_in in = {
        .gw = gw->index, .req_id = ++gw->req_seq, .now_ns = rm_now_ns(),
        .body = c->body.data, .len = c->body.len, .ctype = c->ctype, .ctype_len = c->ctype_len,
    };
    if (c->route == GW_R_GENERATE || c->route == GW_R_GENERATE_STREAM) {
        /* routes.c checked that the body is a JSON object */
        in.ctype = "application/json";
        in.ctype_len = 16;
    }
    switch (rm_req_publish(&gp->view, slot, &in, &c->ticket)) {
    case RM_PUBLISH_OK:
        pending_add(gw, c);
        return;
    case RM_PUBLISH_FULL:
        reject(gw, c, pi, "queue full");
        return;
    case RM_PUBLISH_LOST:
        rm_err("pool %s slot %u: FILLING slot changed under us: request refused", gp->name, slot);
        reject(gw, c, pi, "internal error: slot lost");
        return;
    }
}

/* ------------------------------------------------------------------ completion */

static const char *safe_ctype(const char *ct)
{
    size_t n = strlen(ct);
    if (n == 0)
        return "application/octet-stream";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)ct[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return "application/octet-stream";  /* no header injection */
    }
    return ct;
}

/* The answer of a DONE slot as HTTP; returns the outcome to count. */
static enum rm_outcome answer(struct gw *gw, struct gw_conn *c, const struct rm_req_answer *a)
{
    if (a->error) {
        unsigned status = (a->error >= 400 && a->error <= 599) ? a->error : 500;
        if (a->error == 502) {
            gw_respond_error_s(gw, c, 502, "every attempt's worker died");
            return RM_OUT_CRASHED;
        }
        if (a->error == 504) {
            gw_respond_error_s(gw, c, 504, "deadline exceeded");
            return RM_OUT_TIMEOUT;
        }
        if (a->len > 0 && a->len_ok)
            gw_respond_error(gw, c, status, (const char *)a->body, a->len < GW_ERRMSG_MAX ? a->len : GW_ERRMSG_MAX,
                             NULL);
        else
            gw_respond_error_s(gw, c, status, "handler error");
        return RM_OUT_HANDLER_ERROR;
    }
    unsigned status = a->status ? a->status : 200;
    if (status < 200 || status > 599) {
        gw_respond_error_s(gw, c, 500, "handler returned an invalid HTTP status");
        return RM_OUT_HANDLER_ERROR;
    }
    if (!a->len_ok) {
        gw_respond_error_s(gw, c, 500, "handler answer larger than max_response_size");
        return RM_OUT_HANDLER_ERROR;
    }
    if (c->route == GW_R_GENERATE_STREAM && status < 300) {
        /* A handler that answers in one piece: one event. */
        c->smode = GW_SM_SSE;
        gw_stream_head(gw, c, status, "text/event-stream");
        gw_stream_piece(gw, c, a->body, a->len, true);
        gw_stream_end(gw, c, NULL);
        return RM_OUT_OK;
    }
    gw_respond(gw, c, status, safe_ctype(a->ctype), a->body, a->len, NULL);
    return RM_OUT_OK;
}

/* ------------------------------------------------------------------ streams */

void gw_stream_free(struct gw *gw, struct gw_conn *c)
{
    (void)gw;
    json_decref((json_t *)c->genj);
    c->genj = NULL;
    gw_buf_reset(&c->coll, 0);
    c->coll_start = 0;
    c->gen_plain = false;
}

/* generate: one more chunk collected (coll[coll_start..len)): merge it
 * into the answer object, string values of a key concatenated (the
 * generate extension's text_output, token by token), others replaced. */
static void collect_chunk_end(struct gw_conn *c)
{
    if (c->gen_plain || c->coll.oom)
        return;
    json_error_t je;
    json_t *o = json_loadb(c->coll.data + c->coll_start, c->coll.len - c->coll_start, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        c->gen_plain = true;
        return;
    }
    if (!c->genj) {
        c->genj = o;
        return;
    }
    json_t *g = c->genj;
    const char *k;
    json_t *val;
    json_object_foreach(o, k, val) {
        json_t *old = json_object_get(g, k);
        if (json_is_string(old) && json_is_string(val)) {
            size_t a = json_string_length(old), b = json_string_length(val);
            char *cat = malloc(a + b + 1);
            if (!cat) {
                c->coll.oom = true;
                break;
            }
            memcpy(cat, json_string_value(old), a);
            memcpy(cat + a, json_string_value(val), b);
            json_object_set_new(g, k, json_stringn_nocheck(cat, a + b));
            free(cat);
        } else {
            json_object_set(g, k, val);
        }
    }
    json_decref(o);
}

static void sink(void *arg, const unsigned char *data, uint32_t len, bool chunk_end)
{
    struct gw_conn *c = arg;
    if (c->smode == GW_SM_COLLECT) {
        if (c->coll.len + len > GW_GEN_MAX) {
            c->coll.oom = true;
            return;
        }
        gw_buf_put(&c->coll, data, len);
        if (chunk_end) {
            collect_chunk_end(c);
            c->coll_start = c->coll.len;
        }
    } else {
        gw_stream_piece(c->gw, c, data, len, chunk_end);
    }
    if (chunk_end)
        c->schunks++;
}

/* The stream ended; err NULL: completed. */
static void stream_finish(struct gw *gw, struct gw_conn *c, const char *err, unsigned err_status,
                          uint64_t run_start_ns)
{
    unsigned pi = (unsigned)c->pool;
    if (err)
        rm_notice("pool %s slot %u: stream ended after %llu chunks: %s", gw->pools[pi].name, c->ticket.slot,
                  (unsigned long long)c->schunks, err);
    if (c->smode == GW_SM_COLLECT) {
        if (err) {
            gw_respond_error_s(gw, c, err_status ? err_status : 502, err);
        } else if (c->coll.oom) {
            gw_respond_error_s(gw, c, 502, "answer too large to collect: use generate_stream");
            err = "too large";
        } else if (c->genj && !c->gen_plain) {
            char *j = json_dumps((json_t *)c->genj, JSON_COMPACT);
            if (j) {
                gw_respond(gw, c, 200, "application/json", j, strlen(j), NULL);
                free(j);
            } else {
                gw_respond_error_s(gw, c, 500, "out of memory");
            }
        } else {
            gw_respond(gw, c, 200, "application/octet-stream", c->coll.data, c->coll.len, NULL);
        }
        gw_stream_free(gw, c);
    } else {
        gw_stream_end(gw, c, err);
    }
    gw_count_stream(gw, pi, err ? RM_STREAMS_FAILED : RM_STREAMS_COMPLETED);
    gw_count(gw, pi, err ? (err_status == 504 ? RM_OUT_TIMEOUT : err_status == 500 ? RM_OUT_HANDLER_ERROR
                                                                                    : RM_OUT_CRASHED)
                         : RM_OUT_OK);
    gw->now = rm_now_ns();
    gw_observe(gw, pi, c->ticket.accept_ns, run_start_ns, gw->now);
}

static const char *stream_error(const struct rm_req_answer *a, unsigned *status)
{
    *status = a->error;
    switch (a->stream_end) {
    case RM_STREAM_END_CRASHED:
        return "the worker died mid-stream";
    case RM_STREAM_END_IDLE:
        return "the worker was silent past stream_idle_timeout: killed";
    case RM_STREAM_END_CAP:
        return "the stream ran past stream_timeout: worker killed";
    default:
        break;
    }
    if (a->error == 502)
        return "every attempt's worker died";
    if (a->error == 504)
        return "deadline exceeded";
    return "the handler failed mid-stream";
}

bool gw_stream_pump(struct gw *gw, struct gw_conn *c)
{
    unsigned pi = (unsigned)c->pool;
    struct gw_pool *gp = &gw->pools[pi];
    size_t pending = c->out.len - c->out_off;
    size_t budget = c->smode == GW_SM_COLLECT ? 1024u * 1024u
                    : pending < GW_STREAM_HIGH ? GW_STREAM_HIGH - pending : 0;
    if (!budget) {
        c->stream_more = true;
        return false;
    }
    const uint64_t before = c->srpos;
    enum rm_sread r = rm_stream_read(&gp->view, &c->ticket, &c->srpos, budget, sink, c);
    c->stream_more = r == RM_SREAD_MORE;
    switch (r) {
    case RM_SREAD_MORE:
    case RM_SREAD_EMPTY:
        /* Records taken: the caller flushes and, with MORE, comes back
         * (gw_conn_run) once the client took half; the worker wakes us
         * only when we caught up (rm_stream_read's s_rwant). */
        return c->srpos != before;
    case RM_SREAD_END: {
        struct rm_req_answer a;
        if (rm_req_poll(&gp->view, &c->ticket, gw->now, GW_STUCK_GRACE_NS, &a) != RM_POLL_DONE) {
            pending_remove(gw, c);
            stream_finish(gw, c, "request lost", 502, 0);
            return true;
        }
        pending_remove(gw, c);
        c->attempt = RM_SLOT_ATTEMPTS(a.word);
        unsigned st = 0;
        const char *err = a.error ? stream_error(&a, &st) : NULL;
        rm_req_release(&gp->view, &c->ticket, &a);
        stream_finish(gw, c, err, st, a.run_start_ns);
        return true;
    }
    case RM_SREAD_CORRUPT:
        rm_err("pool %s slot %u: stream queue out of bounds (shared memory scribbled on): stream ended",
               gp->name, c->ticket.slot);
        pending_remove(gw, c);
        rm_req_abandon(&gp->view, &c->ticket);
        rm_stream_kick(&gp->view, &c->ticket);
        stream_finish(gw, c, "the stream's queue was corrupted", 502, 0);
        return true;
    case RM_SREAD_LOST:
        pending_remove(gw, c);
        stream_finish(gw, c, "request lost", 502, 0);
        return true;
    }
    return false;
}

static void end_with_error(struct gw *gw, struct gw_conn *c, unsigned status, const char *msg,
                           enum rm_outcome o)
{
    unsigned pi = (unsigned)c->pool;
    pending_remove(gw, c);
    if (c->streaming) {
        if (c->smode == GW_SM_COLLECT) {
            gw_stream_free(gw, c);
            gw_respond_error_s(gw, c, status, msg);
        } else {
            gw_stream_end(gw, c, msg);
        }
        gw_count_stream(gw, pi, RM_STREAMS_FAILED);
    } else {
        gw_respond_error_s(gw, c, status, msg);
    }
    gw_count(gw, pi, o);
    gw_observe(gw, pi, c->ticket.accept_ns, 0, gw->now);
}

/* Look at one pending request; true if it ended (answer queued). */
static bool check_one(struct gw *gw, struct gw_conn *c)
{
    unsigned pi = (unsigned)c->pool;
    if (pi >= RM_SHM_MAX_POOLS || !gw->pools[pi].valid) {
        end_with_error(gw, c, 500, "internal error: model removed", RM_OUT_HANDLER_ERROR);
        return true;
    }
    struct gw_pool *gp = &gw->pools[pi];
    /* relaxed: a pool being rebuilt is answered by gw_pending_fail_pool on
     * the tick (which loads with acquire); until then, its slots are not
     * looked at. */
    if (atomic_load_explicit(&gp->view.desc->heal_epoch, memory_order_relaxed) != gp->epoch)
        return false;
    if (c->streaming) {
        /* Its worker is held to stream_idle_timeout and stream_timeout by
         * the master; should that never happen, give up well past the cap. */
        /* relaxed: a policy value the master stores */
        uint64_t cap = atomic_load_explicit(&gp->view.desc->stream_timeout_ns, memory_order_relaxed);
        if (cap < UINT64_MAX / 4 && gw->now - c->ticket.accept_ns > cap + GW_STUCK_GRACE_NS) {
            rm_warn("pool %s slot %u: stream still running well past stream_timeout: ended, slot left to its worker",
                    gp->name, c->ticket.slot);
            rm_req_abandon(&gp->view, &c->ticket);
            rm_stream_kick(&gp->view, &c->ticket);
            end_with_error(gw, c, 504, "the stream ran past stream_timeout", RM_OUT_TIMEOUT);
            return true;
        }
        return gw_stream_pump(gw, c);
    }
    struct rm_stream_head sh;
    if (rm_stream_started(&gp->view, &c->ticket, &sh)) {
        c->streaming = true;
        gw_count_stream(gw, pi, RM_STREAMS_STARTED);
        if (c->smode != GW_SM_COLLECT) {
            unsigned status = sh.status;
            if (status < 200 || status > 599 || status == 204 || status == 304)
                status = 200; /* a stream has a body */
            gw_stream_head(gw, c, status, safe_ctype(sh.ctype));
        }
        gw_stream_pump(gw, c);
        return true;
    }
    struct rm_req_answer a;
    switch (rm_req_poll(&gp->view, &c->ticket, gw->now, GW_STUCK_GRACE_NS, &a)) {
    case RM_POLL_WAIT:
        return false;
    case RM_POLL_DONE: {
        pending_remove(gw, c);
        c->attempt = RM_SLOT_ATTEMPTS(a.word);
        enum rm_outcome o = answer(gw, c, &a);
        /* The answer is copied into the connection's output: the slot may go. */
        rm_req_release(&gp->view, &c->ticket, &a);
        gw->now = rm_now_ns();
        gw_count(gw, pi, o);
        gw_observe(gw, pi, c->ticket.accept_ns, a.run_start_ns, gw->now);
        return true;
    }
    case RM_POLL_TIMEOUT:
        end_with_error(gw, c, 504, "deadline exceeded", RM_OUT_TIMEOUT);
        return true;
    case RM_POLL_STUCK:
        rm_warn("pool %s slot %u: still running %llu ms past its deadline: answered 504, slot left to its worker",
                gp->name, c->ticket.slot, (unsigned long long)((gw->now - c->ticket.deadline_ns) / 1000000));
        end_with_error(gw, c, 504, "deadline exceeded", RM_OUT_TIMEOUT);
        return true;
    case RM_POLL_LOST:
        rm_err("pool %s slot %u: request %llu lost (slot %s)", gp->name, c->ticket.slot,
               (unsigned long long)c->ticket.req_id, rm_slot_state_name(a.lost_state));
        pending_remove(gw, c);
        gw_respond_error_s(gw, c, 500, "internal error: request lost");
        return true;
    }
    return false;
}

void gw_pending_scan(struct gw *gw)
{
    gw->now = rm_now_ns();
    struct gw_conn *c = gw->pending;
    while (c) {
        struct gw_conn *next = c->pnext;
        /* gw_conn_run may queue c's next request: it goes to the head of
         * the list, behind us, and closing c touches no other entry. */
        if (check_one(gw, c))
            gw_conn_run(gw, c);
        c = next;
    }
}

void gw_pending_fail_pool(struct gw *gw, unsigned pool)
{
    gw->now = rm_now_ns();
    struct gw_conn *c = gw->pending;
    while (c) {
        struct gw_conn *next = c->pnext;
        if ((unsigned)c->pool == pool) {
            end_with_error(gw, c, 502, "model restarted: a worker corrupted its memory", RM_OUT_CRASHED);
            gw_conn_run(gw, c);
        }
        c = next;
    }
}

void gw_pending_abandon(struct gw *gw, struct gw_conn *c)
{
    unsigned pi = (unsigned)c->pool;
    pending_remove(gw, c);
    c->phase = GW_IDLE;
    if (pi >= RM_SHM_MAX_POOLS || !gw->pools[pi].valid)
        return;
    if (rm_req_abandon(&gw->pools[pi].view, &c->ticket))
        gw_count(gw, pi, RM_OUT_CLIENT_GONE);
    if (c->streaming) {
        /* A worker waiting for room sees ABORTED now, not at its next tick. */
        rm_stream_kick(&gw->pools[pi].view, &c->ticket);
        gw_count_stream(gw, pi, RM_STREAMS_CANCELLED);
        gw_stream_free(gw, c);
        c->streaming = false;
    }
}
