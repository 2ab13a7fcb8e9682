/*
 * ring.pml - a SPIN model of ringmaster's request protocol: the
 * crash-tolerant ring (shm/ring.c: one CAS per enqueue and per dequeue, on
 * a cell word seq|value), the slot state machine (shm/slot.h), the steps of
 * shm/request.c, and the master's recovery (shm/recovery.c). Any process
 * may die between any two of its shared-memory steps (DIE below), at most
 * MAXDEATHS times in a run. tests/model_check.sh verifies exhaustively:
 *   - no request is answered twice (assert in Producer);
 *   - a request runs at most 1 + (times re-queued) times (assert in Consumer);
 *   - every request of a producer that survives is answered (assert in
 *     Checker), and survivors never block: SPIN's "invalid end state" is
 *     a process stuck waiting (a lost request, a wedged ring).
 * Built with -DVYUKOV the ring's operations are Vyukov's claim-then-publish
 * (tests/vyukov_ring.c): the same check must find a counterexample.
 * What it abstracts: see docs/model.md.
 */
#ifndef NP
#define NP 2            /* producers (gateways), one request each */
#endif
#ifndef NC
#define NC 2            /* consumers (workers) */
#endif
#ifndef NCELLS
#define NCELLS 2        /* ring cells (2 x slots in ringmaster; here >= 2) */
#endif
#define NSLOTS NP       /* one slot per request */
#ifndef MAXDEATHS
#define MAXDEATHS 1
#endif
#define MAXATT 2        /* max_attempts */
#define EMPTYV 255      /* value of an empty cell */
#define NOSLOT 255

mtype = { FREE, FILLING, QUEUED, RUNNING, DONE, ABORTED };

typedef Slot {
    mtype st;
    byte owner;         /* 1..NP: producer p-1 (FILLING); 10+c: consumer c (RUNNING, ABORTED) */
    byte att;           /* runs started */
    byte req;           /* the producer whose request it holds */
};
Slot slot[NSLOTS];

byte cseq[NCELLS];      /* cell word: sequence... */
byte cval[NCELLS];      /* ...and value, changed together by one CAS (atomic) */
byte head, tail;        /* hints */

bool palive[NP], calive[NC], precovered[NP], crecovered[NC];
byte cintent[NC];       /* dequeue intent: slot + 1, 0 none */
byte deaths;
byte answered[NP], errs[NP], runs[NP], requeues[NP];
byte accepted[NP];      /* 1: its slot went QUEUED; 2: withdrawn (ring full) */
byte pending = NOSLOT;  /* master: a re-queue the full ring refused, retried */
byte finished;          /* producers that ended (answered or dead) */

#define DIE_P(who)                                                           \
    if                                                                       \
    :: atomic { deaths < MAXDEATHS -> deaths++; palive[who] = false }; goto dead \
    :: skip                                                                  \
    fi
#define DIE_C(who)                                                           \
    if                                                                       \
    :: atomic { deaths < MAXDEATHS -> deaths++; calive[who] = false }; goto dead \
    :: skip                                                                  \
    fi

/* ---- the ring, as shm/ring.c (or Vyukov's, with -DVYUKOV) ---- */

#ifndef VYUKOV
/* One enqueue: read the hint, read the cell, CAS the cell; then help the
 * hint. Death only before the cell CAS (nothing changed yet) or after it
 * (the value is in: the hint lags, others help it). ok: 1 put, 0 full. */
inline enqueue(v, ok, who)
{
    do
    :: t = tail; s0 = cseq[t % NCELLS];
       if
       :: s0 == t ->
          atomic {
              if
              :: cseq[t % NCELLS] == s0 -> cseq[t % NCELLS] = t + 1; cval[t % NCELLS] = v; ok = 1
              :: else -> ok = 2 /* lost the race: retry */
              fi
          };
          if
          :: ok == 1 -> DIE_P(who); atomic { if :: tail == t -> tail = t + 1 :: else -> skip fi }; break
          :: else -> skip
          fi
       :: s0 > t -> atomic { if :: tail == t -> tail = t + 1 :: else -> skip fi }
       :: s0 < t -> if :: tail == t -> ok = 0; break :: else -> skip fi
       fi
    od
}

/* One dequeue: the intent is recorded before the cell CAS. ok: 1 took v, 0 empty. */
inline dequeue(v, ok, who)
{
    do
    :: h = head; s0 = cseq[h % NCELLS];
       if
       :: s0 == h + 1 ->
          v = cval[h % NCELLS];
          cintent[who] = v + 1;
          DIE_C(who);
          atomic {
              if
              :: cseq[h % NCELLS] == s0 && cval[h % NCELLS] == v -> cseq[h % NCELLS] = h + NCELLS; cval[h % NCELLS] = EMPTYV; ok = 1
              :: else -> ok = 2
              fi
          };
          if
          :: ok == 1 -> DIE_C(who); atomic { if :: head == h -> head = h + 1 :: else -> skip fi }; break
          :: else -> skip
          fi
       :: s0 > h + 1 -> atomic { if :: head == h -> head = h + 1 :: else -> skip fi }
       :: s0 < h + 1 -> if :: head == h -> ok = 0; break :: else -> skip fi
       fi
    od
}
#else
/* Vyukov: claim the position (CAS on the hint), then publish the cell.
 * A death between the two leaves a position nobody ever publishes. */
inline enqueue(v, ok, who)
{
    do
    :: t = tail; s0 = cseq[t % NCELLS];
       if
       :: s0 == t ->
          atomic { if :: tail == t -> tail = t + 1; ok = 1 :: else -> ok = 2 fi };
          if
          :: ok == 1 -> DIE_P(who); cseq[t % NCELLS] = t + 1; cval[t % NCELLS] = v; break
          :: else -> skip
          fi
       :: s0 < t -> ok = 0; break
       :: s0 > t -> skip
       fi
    od
}

inline dequeue(v, ok, who)
{
    do
    :: h = head; s0 = cseq[h % NCELLS];
       if
       :: s0 == h + 1 ->
          v = cval[h % NCELLS];
          cintent[who] = v + 1;
          atomic { if :: head == h -> head = h + 1; ok = 1 :: else -> ok = 2 fi };
          if
          :: ok == 1 -> DIE_C(who); cseq[h % NCELLS] = h + NCELLS; cval[h % NCELLS] = EMPTYV; break
          :: else -> skip
          fi
       :: s0 < h + 1 -> ok = 0; break
       :: s0 > h + 1 -> skip
       fi
    od
}
#endif

/* ---- a gateway: claim, fill + publish, enqueue, wait, collect, free ---- */

proctype Producer(byte p)
{
    byte s = NOSLOT, t, s0, ok, i;
    /* claim: FREE -> FILLING (one CAS per slot tried) */
    for (i : 0 .. NSLOTS - 1) {
        atomic { if :: s == NOSLOT && slot[i].st == FREE -> slot[i].st = FILLING; slot[i].owner = p + 1; s = i :: else -> skip fi }
    }
    if :: s == NOSLOT -> goto done :: else -> skip fi;  /* queue full: 503, nothing accepted */
    DIE_P(p);
    /* fill, then FILLING -> QUEUED (release publishes the fill) */
    atomic { slot[s].req = p; slot[s].att = 0; slot[s].st = QUEUED; slot[s].owner = 0; accepted[p] = 1 };
    DIE_P(p);
    enqueue(s, ok, p);
    if
    :: ok == 0 ->  /* ring full: withdraw, unless a worker took it already */
       atomic { if :: slot[s].st == QUEUED -> slot[s].st = FREE; accepted[p] = 2 :: else -> skip fi };
       if :: accepted[p] == 2 -> goto done :: else -> skip fi
    :: else -> skip
    fi;
    DIE_P(p);
    /* wait for the answer (a survivor that waits forever: invalid end state) */
    atomic {
        slot[s].st == DONE && slot[s].req == p ->
        assert(answered[p] == 0);    /* never answered twice */
        answered[p]++
    };
    DIE_P(p);
    atomic { slot[s].st = FREE; slot[s].owner = 0 };
done:
    finished++;
    goto end;
dead:
    finished++;
end:
    skip
}

/* ---- a worker: take (dequeue, claim), run, finish ---- */

proctype Consumer(byte c)
{
    byte v, ok, h, s0, t, r;
end_loop:
    do
    :: finished == NP -> break
    :: else ->
       dequeue(v, ok, c);
       if
       :: ok == 1 && v < NSLOTS ->
          atomic {
              if
              :: slot[v].st == QUEUED -> slot[v].st = RUNNING; slot[v].owner = 10 + c; slot[v].att++; ok = 3
              :: else -> ok = 4    /* a stale duplicate: someone else has it */
              fi
          };
          cintent[c] = 0;
          if
          :: ok == 3 ->
             DIE_C(c);
             r = slot[v].req;
             atomic { runs[r]++; assert(runs[r] <= 1 + requeues[r]) };
             DIE_C(c);
             atomic {
                 if
                 :: slot[v].st == RUNNING && slot[v].owner == 10 + c -> slot[v].st = DONE; slot[v].owner = 0
                 :: slot[v].st == ABORTED && slot[v].owner == 10 + c -> slot[v].st = FREE; slot[v].owner = 0
                 :: else -> assert(false)  /* only the owner ends a RUNNING slot */
                 fi
             }
          :: else -> skip
          fi
       :: else ->
          /* empty: sleep on the doorbell until the ring changes or all is done */
          (tail != h || finished == NP || cseq[h % NCELLS] != s0)
       fi
    od;
    goto end;
dead:
    skip;
end:
    skip
}

/* ---- the master: recovery of the dead (shm/recovery.c), atomic here ---- */

inline master_enqueue(v)
{
    /* the master's enqueue: as a consumer's, but it never dies */
    t = tail;
    if
    :: cseq[t % NCELLS] == t -> cseq[t % NCELLS] = t + 1; cval[t % NCELLS] = v; tail = t + 1
    :: cseq[t % NCELLS] > t -> tail = t + 1; pending = v   /* hint lag: retry via pending */
    :: cseq[t % NCELLS] < t -> pending = v                 /* full: the pending list */
    fi
}

#define CDEAD(i) (!calive[i] && !crecovered[i])
#define PDEAD(i) (!palive[i] && !precovered[i])
#define ANY_CDEAD (CDEAD(0) || (NC > 1 && CDEAD(1)) || (NC > 2 && CDEAD(2)))
#define ANY_PDEAD (PDEAD(0) || (NP > 1 && PDEAD(1)) || (NP > 2 && PDEAD(2)))

proctype Master()
{
    byte i, s, t;
end_loop:
    do
    :: atomic {
           pending != NOSLOT && slot[pending].st == QUEUED ->
           s = pending; pending = NOSLOT; master_enqueue(s)
       }
    :: atomic {
           pending != NOSLOT && slot[pending].st != QUEUED -> pending = NOSLOT
       }
    :: atomic {
           ANY_CDEAD ->
           i = 0;
           do
           :: !CDEAD(i) -> i++
           :: CDEAD(i) -> break
           od;
           crecovered[i] = true;
           /* its dequeue intent: a slot still QUEUED goes back on the ring */
           if
           :: cintent[i] != 0 && slot[cintent[i] - 1].st == QUEUED -> master_enqueue(cintent[i] - 1)
           :: else -> skip
           fi;
           cintent[i] = 0;
           /* its RUNNING slot: re-queued, or 502 after MAXATT runs; ABORTED: freed */
           for (s : 0 .. NSLOTS - 1) {
               if
               :: slot[s].owner == 10 + i && slot[s].st == ABORTED -> slot[s].st = FREE; slot[s].owner = 0
               :: slot[s].owner == 10 + i && slot[s].st == RUNNING && !palive[slot[s].req] ->
                  slot[s].st = FREE; slot[s].owner = 0       /* nobody reads it any more */
               :: slot[s].owner == 10 + i && slot[s].st == RUNNING && palive[slot[s].req] && slot[s].att >= MAXATT ->
                  slot[s].st = DONE; slot[s].owner = 0; errs[slot[s].req]++
               :: slot[s].owner == 10 + i && slot[s].st == RUNNING && palive[slot[s].req] && slot[s].att < MAXATT ->
                  slot[s].st = QUEUED; slot[s].owner = 0; requeues[slot[s].req]++; master_enqueue(s)
               :: else -> skip
               fi
           }
       }
    :: atomic {
           ANY_PDEAD ->
           i = 0;
           do
           :: !PDEAD(i) -> i++
           :: PDEAD(i) -> break
           od;
           precovered[i] = true;
           for (s : 0 .. NSLOTS - 1) {
               if
               :: slot[s].st == FILLING && slot[s].owner == i + 1 -> slot[s].st = FREE; slot[s].owner = 0
               :: (slot[s].st == QUEUED || slot[s].st == DONE) && slot[s].req == i && slot[s].owner == 0 ->
                  slot[s].st = FREE
               :: slot[s].st == RUNNING && slot[s].req == i -> slot[s].st = ABORTED
               :: else -> skip
               fi
           }
       }
    od
}

/* ---- every surviving producer got exactly one answer ---- */

proctype Checker()
{
    byte p;
    finished == NP;
    for (p : 0 .. NP - 1) {
        if
        :: palive[p] && accepted[p] == 1 -> assert(answered[p] == 1)
        :: else -> skip
        fi
    }
}

init
{
    byte i;
    atomic {
        for (i : 0 .. NSLOTS - 1) { slot[i].st = FREE }
        for (i : 0 .. NCELLS - 1) { cseq[i] = i; cval[i] = EMPTYV }
        for (i : 0 .. NP - 1) { palive[i] = true }
        for (i : 0 .. NC - 1) { calive[i] = true }
        for (i : 0 .. NP - 1) { run Producer(i) }
        for (i : 0 .. NC - 1) { run Consumer(i) }
        run Master();
        run Checker()
    }
}
