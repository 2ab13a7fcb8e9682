/*
 * request.h - the request protocol: every step a gateway and a worker take
 * on a slot and its pool's ring, written once. gateway/submit.c,
 * worker/worker.c, the crash test and the gateway test all call these
 * functions; the crash test's build (librmshm_crash.a) arms the crash points
 * between their shared-memory steps. Recovery after a death is in
 * recovery.c; the slot state machine in slot.h.
 *
 * A request's life, with the slot state after each step:
 *
 *   gateway                      worker                       state
 *   rm_req_claim                                              FREE -> FILLING
 *   rm_req_publish (fill, then)                               FILLING -> QUEUED, on the ring
 *                                rm_req_take                  QUEUED -> RUNNING
 *                                (handler runs)
 *                                rm_req_finish                RUNNING -> DONE
 *   rm_req_poll -> RM_POLL_DONE
 *   rm_req_release                                            DONE -> FREE
 *
 * and the ways it ends otherwise: rm_req_poll frees a slot still QUEUED at
 * its deadline (RM_POLL_TIMEOUT), and gives up on one still RUNNING well past
 * it (RM_POLL_STUCK, the slot is left ABORTED to its worker); rm_req_abandon
 * (client gone) frees QUEUED and DONE slots and marks RUNNING ones ABORTED,
 * which rm_req_finish then frees.
 *
 * Nothing here logs or knows HTTP: results are enums and numbers, callers
 * map them to answers and log lines.
 */
#ifndef RM_REQUEST_H
#define RM_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"
#include "shm/segment.h"

/*
 * A process's private view of one pool: the descriptor's geometry copied
 * once out of shared memory and validated, with the pointers it gives.
 * Every step below indexes with these private values only, so a process
 * that scribbles over the descriptor later cannot steer another process's
 * memory accesses through it.
 */
struct rm_pool_view {
    struct rm_shm_pool *desc;  /* policy atomics (ctrl: only the master writes) */
    struct rm_pool_bell *bell; /* doorbell and sleepers (W area) */
    unsigned index;            /* pool index in the segment */
    uint32_t nslots;
    uint32_t ring_cells;
    uint64_t max_req, max_resp;
    struct rm_ring *ring;
    _Atomic uint64_t *states;
    struct rm_req_meta *req_meta;    /* R area: gateways write, workers read */
    struct rm_resp_meta *resp_meta;  /* W area: workers write, gateways read */
    unsigned char *req_base, *resp_base;
    uint64_t req_stride, resp_stride;
};

/* Copy pool idx's descriptor and validate the copy (rm_pool_valid's rules).
 * Returns 0, or -1 (view zeroed) when it is out of bounds or inconsistent. */
int rm_pool_view_open(const struct rm_seg *seg, unsigned idx, struct rm_pool_view *v);

static inline unsigned char *rm_view_req(const struct rm_pool_view *v, uint32_t slot)
{
    return v->req_base + (uint64_t)slot * v->req_stride;
}
static inline unsigned char *rm_view_resp(const struct rm_pool_view *v, uint32_t slot)
{
    return v->resp_base + (uint64_t)slot * v->resp_stride;
}

/* ------------------------------------------------------------------ gateway */

/* What the gateway keeps about a request it published. */
struct rm_req_ticket {
    uint32_t slot;
    uint32_t gw;           /* the gateway's scoreboard index */
    uint64_t req_id;       /* gateway-local, never 0 */
    uint64_t accept_ns;
    uint64_t deadline_ns;  /* UINT64_MAX: none */
};

/* The request, as the gateway hands it over. */
struct rm_req_in {
    uint32_t gw;
    uint64_t req_id;
    uint64_t now_ns;          /* accept time; the deadline is now + request_timeout */
    const void *body;
    uint64_t len;             /* <= max_req (the caller answered 413 otherwise) */
    const char *ctype;        /* may be NULL */
    size_t ctype_len;         /* < RM_SHM_CTYPE */
};

/*
 * FREE -> FILLING: claim a free slot for gateway gw, scanning from *cursor
 * (advanced past the slot taken). Returns the slot, or RM_NO_SLOT when every
 * slot is in use (the queue is full).
 */
uint32_t rm_req_claim(const struct rm_pool_view *v, unsigned gw, uint32_t *cursor);

enum rm_publish {
    RM_PUBLISH_OK = 0,   /* QUEUED (on the ring, or already taken by a worker) */
    RM_PUBLISH_FULL,     /* ring full and withdrawn: the slot is FREE again */
    RM_PUBLISH_LOST,     /* the FILLING slot changed under us: not ours any more */
};

/*
 * Fill claimed slot (meta, body) and accept it: FILLING -> QUEUED (release:
 * publishes meta and body to the worker's claim), enqueue its index, ring
 * the doorbell. On RM_PUBLISH_OK *t describes it for rm_req_poll.
 */
enum rm_publish rm_req_publish(const struct rm_pool_view *v, uint32_t slot, const struct rm_req_in *in,
                               struct rm_req_ticket *t);

enum rm_poll {
    RM_POLL_WAIT = 0,    /* not finished yet */
    RM_POLL_DONE,        /* answer in *a: copy it out, then rm_req_release */
    RM_POLL_TIMEOUT,     /* still QUEUED at its deadline: freed */
    RM_POLL_STUCK,       /* still RUNNING stuck_grace past its deadline: left ABORTED to its worker */
    RM_POLL_LOST,        /* the slot holds another request or an impossible state */
};

/* The answer of a DONE slot, read once out of shared memory. */
struct rm_req_answer {
    unsigned error;         /* nonzero: an error answer with this status (502, 504, 500, ...) */
    unsigned status;        /* handler's HTTP status (0: default) */
    uint32_t len;           /* bytes at body */
    bool len_ok;            /* len <= max_response_size; if false, body is not to be read */
    const unsigned char *body;
    char ctype[RM_SHM_CTYPE];  /* NUL-terminated copy */
    uint64_t run_start_ns;
    uint64_t word;          /* state word seen (for rm_req_release) */
    unsigned lost_state;    /* RM_POLL_LOST: the state found */
    unsigned stream_end;    /* RM_STREAM_END_*: why recovery ended a started stream */
};

/* Look at a published request. now_ns: the caller's clock. */
enum rm_poll rm_req_poll(const struct rm_pool_view *v, const struct rm_req_ticket *t, uint64_t now_ns,
                         uint64_t stuck_grace_ns, struct rm_req_answer *a);

/* DONE -> FREE, after the answer was copied out. */
void rm_req_release(const struct rm_pool_view *v, const struct rm_req_ticket *t, struct rm_req_answer *a);

/*
 * The client is gone: QUEUED or DONE -> FREE, RUNNING -> ABORTED (its worker
 * frees it). Returns true if the slot was still this request's.
 */
bool rm_req_abandon(const struct rm_pool_view *v, const struct rm_req_ticket *t);

/* ------------------------------------------------------------------ worker */

/* A request a worker took. */
struct rm_req_job {
    uint32_t slot;
    unsigned attempt;           /* 1 for the first run */
    const unsigned char *body;  /* in shared memory, len bytes (bounded by max_req) */
    uint32_t len;
    char ctype[RM_SHM_CTYPE];   /* NUL-terminated copy */
    uint64_t deadline_ns;
    unsigned char *resp;        /* answer area, resp_cap bytes */
    uint64_t resp_cap;
    uint64_t start_ns;
};

enum rm_take {
    RM_TAKE_OK = 0,  /* RUNNING and ours: run it, then rm_req_finish */
    RM_TAKE_EMPTY,   /* nothing on the ring: wait (rm_req_wait) */
    RM_TAKE_STALE,   /* a stale or out-of-range ring entry: try again */
};

/*
 * Take the next request for the worker at scoreboard entry me (index
 * me_idx): dequeue (the dequeue intent is recorded in me->intent), claim
 * QUEUED -> RUNNING, settle the intent, then show the run in the scoreboard
 * (cur_slot, cur_start_ns, state BUSY) and fill *job.
 */
enum rm_take rm_req_take(const struct rm_pool_view *v, struct rm_sb_entry *me, unsigned me_idx,
                         uint64_t now_ns, struct rm_req_job *job);

/* How the run ended. */
struct rm_req_result {
    unsigned error;      /* nonzero: error answer with this status (the handler failed: 500) */
    unsigned status;     /* handler's status */
    uint64_t len;        /* answer bytes written at job->resp (<= resp_cap, else an error) */
    const char *ctype;   /* may be NULL */
    /* A streamed answer (shm/stream.c: a chunk was written) keeps the
     * status and Content-Type of its first chunk; len and ctype are
     * ignored then, and error ends the stream with an error. */
};

/*
 * Publish the answer: meta, then RUNNING -> DONE (release), or ABORTED ->
 * FREE when the client went away; then clear cur_slot, count it served and
 * go READY. Returns the gateway index to wake (>= 0), RM_FINISH_NOBODY (the
 * client had gone: slot freed) or RM_FINISH_TAKEN (the slot was no longer
 * ours: shared memory was scribbled on; left to the master).
 */
#define RM_FINISH_NOBODY (-1)
#define RM_FINISH_TAKEN (-2)
int rm_req_finish(const struct rm_pool_view *v, struct rm_sb_entry *me, const struct rm_req_job *job,
                  const struct rm_req_result *res, uint64_t now_ns);

/* Sleep on the pool's doorbell until the ring may have work or timeout_ns
 * passes (the sleep is recorded in me->intent). */
void rm_req_wait(const struct rm_pool_view *v, struct rm_sb_entry *me, uint64_t timeout_ns);

#endif
