/*
 * stream.h - a streamed answer: the slot's answer area as a bounded
 * single-producer single-consumer queue of chunk records
 * (docs/streaming.md). The producer is the worker that owns the RUNNING
 * slot, the consumer the gateway whose request it is. Nothing here blocks
 * except rm_stream_wait (bounded by its timeout), logs or knows HTTP.
 *
 * Records are 8-byte aligned: a header {len:32, flags:32} and len bytes of
 * data, padded to 8. A record never wraps: when it does not fit before the
 * end of the area, a WRAP header fills the rest and the record starts at
 * offset 0. An emit larger than half the area is split into several records,
 * all but the last flagged CONT (one chunk, several pieces).
 *
 * Positions (s_wpos, s_rpos) are byte counters that only grow. The worker
 * writes records in [wpos, rpos + cap) and then release-stores wpos; the
 * gateway reads [rpos, wpos) after an acquire load of wpos, copies the
 * records out and release-stores rpos. Each side keeps its own position
 * privately and bounds-checks the other's: a worker that scribbles on the
 * queue can only spoil its own answer (the gateway ends the stream as
 * failed), never make the gateway read out of the slot's area.
 */
#ifndef RM_STREAM_H
#define RM_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/request.h"

#define RM_REC_HDR 8u
#define RM_REC_CONT 1u   /* more pieces of the same chunk follow */
#define RM_REC_WRAP 2u   /* filler: the next record starts at offset 0 */

/* Queue capacity of a view's answer areas (the private stride, 8-aligned),
 * 0 when too small to stream. */
uint64_t rm_stream_cap(const struct rm_pool_view *v);

/* ------------------------------------------------------------------ worker */

struct rm_stream_w {
    const struct rm_pool_view *v;
    unsigned owner;     /* RM_OWNER(our scoreboard index): the RUNNING word's owner */
    uint32_t slot;
    unsigned char *area;
    uint64_t cap;
    uint64_t wpos;      /* private copy of what we published */
    uint64_t seen_rpos; /* s_rpos as the last put saw it (rm_stream_wait sleeps while it stays) */
    bool wake;          /* the last put published a chunk the gateway waits for: write its eventfd */
    bool started;
};

/* Reset the stream fields of a slot just taken (the worker owns them now). */
void rm_stream_w_init(struct rm_stream_w *s, const struct rm_pool_view *v, unsigned me_idx,
                      const struct rm_req_job *job, uint64_t now_ns);

enum rm_emit {
    RM_EMIT_OK = 0,      /* all of it queued */
    RM_EMIT_FULL,        /* *done bytes queued so far: wait for room, call again with the rest */
    RM_EMIT_CANCELLED,   /* the client is gone (slot ABORTED) or the slot is not ours any more */
};

/*
 * Queue data[0..len) as (the rest of) one chunk, as far as there is room.
 * first_piece: this call starts the chunk (false when continuing after
 * FULL). status and ctype are published with the first chunk of the stream.
 */
enum rm_emit rm_stream_put(struct rm_stream_w *s, unsigned status, const char *ctype, const void *data,
                           size_t len, size_t *done, uint64_t now_ns);

/* True when the request's client is gone (slot ABORTED, or not ours). */
bool rm_stream_cancelled(const struct rm_stream_w *s);

/* Sleep until the gateway consumed something or abandoned the request, or
 * timeout_ns passed (the caller heart-beats between waits). */
void rm_stream_wait(struct rm_stream_w *s, uint64_t timeout_ns, uint64_t now_ns);

/* ------------------------------------------------------------------ gateway */

struct rm_stream_head {
    unsigned status;
    char ctype[RM_SHM_CTYPE];
};

/* Has the request's stream started (first chunk published)? If so, *h gets
 * its status and Content-Type. */
bool rm_stream_started(const struct rm_pool_view *v, const struct rm_req_ticket *t, struct rm_stream_head *h);

enum rm_sread {
    RM_SREAD_MORE = 0,  /* records left: call again when the client took what it got */
    RM_SREAD_EMPTY,     /* caught up; the worker still runs */
    RM_SREAD_END,       /* slot DONE and every record consumed: rm_req_poll for how it ended */
    RM_SREAD_CORRUPT,   /* positions or a record out of bounds: a scribbled queue */
    RM_SREAD_LOST,      /* the slot holds another request, or an impossible state */
};

/* One record piece: data, and whether it ends its chunk. */
typedef void (*rm_stream_sink)(void *arg, const unsigned char *data, uint32_t len, bool chunk_end);

/*
 * Consume records of ticket t's stream, from *rpos (the caller's private
 * position, 0 at the start), until budget bytes were handed to sink or the
 * queue is empty; publish the new position and wake the worker if it waits
 * for room.
 */
enum rm_sread rm_stream_read(const struct rm_pool_view *v, const struct rm_req_ticket *t, uint64_t *rpos,
                             size_t budget, rm_stream_sink sink, void *arg);

/* Wake the worker of t's slot should it sleep waiting for room (after an
 * abandon: it then sees the slot ABORTED). */
void rm_stream_kick(const struct rm_pool_view *v, const struct rm_req_ticket *t);

#endif
