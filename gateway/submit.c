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
#include <string.h>

#include "core/log.h"
#include "core/names.h"
#include "gateway/internal.h"
#include "shm/clock.h"
#include "shm/request.h"
#include "shm/segment.h"
#include "shm/slot.h"

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
    gw_respond(gw, c, status, safe_ctype(a->ctype), a->body, a->len, NULL);
    return RM_OUT_OK;
}

static void end_with_error(struct gw *gw, struct gw_conn *c, unsigned status, const char *msg,
                           enum rm_outcome o)
{
    unsigned pi = (unsigned)c->pool;
    pending_remove(gw, c);
    gw_respond_error_s(gw, c, status, msg);
    gw_count(gw, pi, o);
    gw_observe(gw, pi, c->ticket.accept_ns, 0, gw->now);
}

/* Look at one pending request; true if it ended (answer queued). */
static bool check_one(struct gw *gw, struct gw_conn *c)
{
    unsigned pi = (unsigned)c->pool;
    if (pi >= RM_SHM_MAX_POOLS || !gw->pools[pi].valid) {
        pending_remove(gw, c);
        gw_respond_error_s(gw, c, 500, "internal error: model removed");
        return true;
    }
    struct gw_pool *gp = &gw->pools[pi];
    /* relaxed: a pool being rebuilt is answered by gw_pending_fail_pool on
     * the tick (which loads with acquire); until then, its slots are not
     * looked at. */
    if (atomic_load_explicit(&gp->view.desc->heal_epoch, memory_order_relaxed) != gp->epoch)
        return false;
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
}
