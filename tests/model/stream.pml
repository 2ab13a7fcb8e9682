/*
 * stream.pml - a SPIN model of a streamed answer's chunk queue
 * (shm/stream.c, docs/streaming.md): one worker (rm_stream_put,
 * rm_stream_wait) and one gateway (rm_stream_read, its doorbell wait) on a
 * slot's answer area used as a bounded single-producer/single-consumer
 * queue of records, with the two Dekker pairs that keep either side from
 * sleeping through the other's progress:
 *   - the gateway, caught up, stores s_rwant = its position and loads s_wpos
 *     again; the worker stores s_wpos and loads s_rwant (rings the doorbell
 *     when it equals the position its put began at);
 *   - the worker, out of room, loads s_rseq, stores s_waiting, loads s_rpos
 *     and sleeps on the futex only if s_rseq is still the value it loaded;
 *     the gateway stores s_rpos, bumps s_rseq and loads s_waiting (then
 *     FUTEX_WAKE).
 * SPIN interleaves whole statements in one global order: the model is the
 * protocol under sequential consistency, which the seq_cst operations of
 * those pairs give the C code.
 *
 * tests/model_check.sh verifies exhaustively that
 *   - every chunk arrives whole, once, in order, with its last piece marked
 *     (asserts in Gateway: a record overwritten before it was read, a
 *     skipped or repeated one, a wrong CONT flag all fail them);
 *   - no position is out of the bounds the C code checks (asserts);
 *   - neither side sleeps forever while the other has made progress: no
 *     futex or doorbell timeout is modelled, so a lost wake-up leaves a
 *     process blocked, which SPIN reports as an invalid end state.
 * With -DCANCEL the client may also leave at any point: the gateway marks
 * the slot ABORTED and kicks the futex (rm_stream_kick); the worker must
 * then stop (its next put says CANCELLED, or its wait ends) instead of
 * sleeping for ever. (A separate run: while the client can always leave,
 * the gateway is never blocked, so the data path's lost wake-ups would not
 * show as a deadlock.)
 * Built with -DMUT_WAKE_FIRST (the gateway loads s_waiting before it
 * publishes s_rpos) or -DMUT_NO_RECHECK (the gateway does not load s_wpos
 * again after storing s_rwant), the same check must find a lost wake-up;
 * with -DMUT_NO_ROOM (the worker's room check one unit too generous) it
 * must find a record overwritten before it was read or a position out of
 * bounds; with -DCANCEL -DMUT_KICK_NO_SEQ (the kick wakes a waiting worker
 * but does not bump s_rseq) a worker left asleep after the client left.
 *
 * Units: one unit is 8 bytes (records are 8-byte aligned); a record header
 * is one unit; CAP units of area; a piece holds at most CAP/2 - 1 units, as
 * in rm_stream_put. Positions grow without wrapping (byte: the total written
 * here stays far below 255).
 */
#ifndef CAP
#define CAP 4
#endif
#define MAXP (CAP / 2 - 1)
#define NEMIT 5
#define WRAPF 2         /* RM_REC_WRAP */
#define CONTF 1         /* RM_REC_CONT */

/* Chunk sizes in units, chosen to need wrap fillers, CONT pieces, an empty
 * chunk and waits for room: 1, 2 (two pieces), 0, 1, 2. */
byte emit_len[NEMIT];

/* The area: per unit, a record header (length, flags) or a data unit
 * (the sequence number of the data unit, to check order). */
byte hlen[CAP];
byte hflag[CAP];
byte data[CAP];

/* resp_meta fields and the slot state */
byte s_wpos;            /* worker: release/seq_cst store; gateway: loads */
byte s_rpos;            /* gateway: seq_cst store; worker: loads */
byte s_rwant;           /* gateway: seq_cst store; worker: seq_cst load */
byte s_rseq;            /* gateway: bumps; worker: futex word */
bit  s_waiting;         /* worker: stores; gateway: loads */
bit  done_state;        /* the slot is DONE (the worker's release CAS) */
bit  aborted;           /* the slot is ABORTED: the client left (the gateway's CAS) */

/* The kernel: a sleeper on the futex word s_rseq, the gateway's doorbell
 * (an eventfd: stays set until read). */
bit  futex_sleeping;
bit  bell;

/* FUTEX_WAIT: sleep only if the word still holds val (atomic check). */
inline futex_wait(val)
{
    atomic { if :: s_rseq == val -> futex_sleeping = 1 :: else -> skip fi };
    (futex_sleeping == 0)   /* blocks until FUTEX_WAKE */
}

inline futex_wake()
{
    futex_sleeping = 0
}

proctype Worker()
{
    byte e, clen, done, piece, rest, need, off, gap, r, seen, began, seq, nextv, wpos;
    bit wrote, complete;
    nextv = 1;
    e = 0;
    do
    :: e == NEMIT -> break
    :: e < NEMIT ->
        clen = emit_len[e];
        done = 0;
        do
        :: /* rm_stream_put: rm_stream_cancelled() first */
            if
            :: aborted -> goto cancelled
            :: else -> skip
            fi;
            r = s_rpos;                      /* acquire */
            assert(r <= wpos && wpos - r <= CAP);
            seen = r;
            began = wpos;
            wrote = 0;
            complete = 0;
            do
            :: rest = clen - done;
               piece = (rest < MAXP -> rest : MAXP);
               need = 1 + piece;
               off = wpos % CAP;
               gap = (CAP - off < need -> CAP - off : 0);
               if
#ifdef MUT_NO_ROOM
               :: gap + need > CAP + 1 - (wpos - r) -> break   /* one unit too generous */
#else
               :: gap + need > CAP - (wpos - r) -> break   /* full */
#endif
               :: else -> skip
               fi;
               if
               :: gap > 0 ->
                   hlen[off] = 0; hflag[off] = WRAPF;
                   wpos = wpos + gap;
                   off = 0
               :: else -> skip
               fi;
               hlen[off] = piece;
               hflag[off] = (rest > piece -> CONTF : 0);
               if
               :: piece > 0 -> data[(off + 1) % CAP] = nextv; nextv++
               :: else -> skip
               fi;
               wpos = wpos + need;
               done = done + piece;
               wrote = 1;
               if
               :: done == clen -> complete = 1; break
               :: else -> skip
               fi
            od;
            if
            :: wrote ->
                s_wpos = wpos;               /* release + seq_cst */
                if
                :: s_rwant == began -> bell = 1   /* the worker rings the doorbell */
                :: else -> skip
                fi
            :: else -> skip
            fi;
            if
            :: complete -> break
            :: else ->
                /* rm_stream_wait */
                seq = s_rseq;
                s_waiting = 1;
                if
                :: s_rpos == seen && !aborted -> futex_wait(seq)
                :: else -> skip
                fi;
                s_waiting = 0
            fi
        od;
        e++
    od;
    /* rm_req_finish: DONE (release CAS), then the doorbell */
    done_state = 1;
    bell = 1;
    goto finished;
cancelled:
    /* emit returned CANCELLED: the worker frees the slot (ABORTED -> FREE)
     * and takes its next request; nobody is waiting for this one */
    skip;
finished:
    skip
}

proctype Gateway()
{
    byte rpos, r, w, w2, off, need, expectv, units, pieces;
    bit st_done, ended, more, gone;
    byte e, left;         /* the chunk being received and its units still due */
    expectv = 1;
    e = 0;
    left = emit_len[0];
    do
    :: ended -> break
#ifdef CANCEL
    :: !ended && !gone -> gone = 1; break   /* the client leaves, at any point */
#endif
    :: !ended ->
        /* rm_stream_read */
        st_done = done_state;               /* acquire: a DONE slot's s_wpos is final */
        w = s_wpos;
        r = rpos;
        do
        :: assert(w >= r && w - r <= CAP);
           do
           :: r < w ->
               off = r % CAP;
               if
               :: hflag[off] == WRAPF ->
                   assert(CAP - off <= w - r);
                   r = r + CAP - off
               :: else ->
                   need = 1 + hlen[off];
                   assert(need <= CAP - off && need <= w - r);
                   /* the sink: content and chunk boundary */
                   assert(e < NEMIT && hlen[off] <= left);
                   if
                   :: hlen[off] > 0 -> assert(data[(off + 1) % CAP] == expectv); expectv++
                   :: else -> skip
                   fi;
                   left = left - hlen[off];
                   if
                   :: hflag[off] & CONTF -> assert(left > 0)
                   :: else ->
                       assert(left == 0);        /* the last piece of the chunk */
                       e++;
                       left = (e < NEMIT -> emit_len[e] : 0)
                   fi;
                   r = r + need
               fi
           :: r < w -> break                    /* budget spent: MORE */
           :: r >= w -> break
           od;
           if
           :: r < w || st_done -> break
           :: else -> skip
           fi;
           s_rwant = r;                         /* seq_cst */
#ifdef MUT_NO_RECHECK
           break
#else
           w2 = s_wpos;                         /* seq_cst */
           if
           :: w2 == w -> break
           :: else -> w = w2
           fi
#endif
        od;
        if
        :: r != rpos ->
            rpos = r;
#ifdef MUT_WAKE_FIRST
            if
            :: s_waiting -> s_rpos = r; s_rseq++; futex_wake()
            :: else -> s_rpos = r; s_rseq++
            fi
#else
            s_rpos = r;                         /* seq_cst */
            s_rseq++;
            if
            :: s_waiting -> futex_wake()
            :: else -> skip
            fi
#endif
        :: else -> skip
        fi;
        more = (r < w);
        if
        :: more -> skip                         /* MORE: read again */
        :: !more && st_done -> ended = 1        /* END */
        :: !more && !st_done ->
            /* EMPTY: sleep until the doorbell, or until the client leaves
             * (epoll watches both) */
            if
            :: atomic { bell -> bell = 0 }
#ifdef CANCEL
            :: !gone -> gone = 1; ended = 1
#endif
            fi
        fi
    od;
    if
    :: gone ->
        /* gw_pending_abandon: RUNNING -> ABORTED (rm_req_abandon), then
         * rm_stream_kick: bump s_rseq and wake a worker waiting for room */
        aborted = 1;
#ifndef MUT_KICK_NO_SEQ
        s_rseq++;
#endif
        if
        :: s_waiting -> futex_wake()
        :: else -> skip
        fi
    :: else ->
        /* every chunk, every data unit */
        assert(e == NEMIT && expectv == 1 + 1 + 2 + 0 + 1 + 2)
    fi
}

init {
    emit_len[0] = 1; emit_len[1] = 2; emit_len[2] = 0; emit_len[3] = 1; emit_len[4] = 2;
    atomic { run Worker(); run Gateway() }
}
