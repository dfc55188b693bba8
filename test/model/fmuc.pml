/*
 * fmuc.pml -- Promela model of the FMUC (XEP-0289, federated MUC) relay,
 * leave, loss, rejoin and backfill rules that Portcullis implements in
 * guard/rooms/.  Checked with spin 6 by test/model/run-spin.sh (CTest test
 * fmuc_model_spin); see test/model/README.md.
 *
 * One room is mirrored on N nodes.  The nodes form a tree; every tree edge
 * is an FMUC primary-primary link carried by two bounded FIFO channels (one
 * per direction).  M messages are originated at nondeterministically chosen
 * nodes at nondeterministic times.  Exactly one link goes down at a
 * nondeterministic point (the messages in flight on it are lost) and later
 * comes back, at which point the two ends exchange backfill.
 *
 * Topology (exactly one): -DCHAIN2  -DCHAIN3  -DCHAIN4  -DSTAR4
 * Messages:               -DM=<n>   (default 3)
 * Backfill source:        default: the receiver's rejoin names the last id it
 *                         received on that link ("since"), the sender sends
 *                         every later message of its history;
 *                         -DBACKFILL_FULL: the sender sends its whole history.
 * Deliberately broken variants (run-spin.sh requires spin to find a
 * violation for each):
 *   -DBROKEN_NO_DEDUPE        receiver does not check its history: delivers
 *                             and forwards every copy it gets
 *   -DBROKEN_NO_BACKFILL      link heals, no backfill is exchanged
 *   -DBROKEN_RELAY_BACK       relay also sends back over the link the message
 *                             came in on (caught by the FULL_GHOSTS checks)
 *   -DBROKEN_LOSS_POINT_LOCAL the sender backfills from its OWN history
 *                             index at the time it noticed the loss, so
 *                             messages that were in flight when the link
 *                             died are never resent
 *
 * Ghost checks:           -DFULL_GHOSTS adds per (link, direction, id) relay
 *                         counters and the originator of each id, so that
 *                         property 2 is checked literally (see below); these
 *                         variables record provenance and multiply the state
 *                         space, so run-spin.sh uses them on the smaller
 *                         configurations only.
 *
 * Properties (each an explicit CHECK(cond, "text"): on violation the text is
 * printed -- visible when the trail is replayed with spin -t -- and
 * assert(cond) fails):
 *   P1  no node delivers a message to its occupants twice
 *   P2  no relay loop: a node relays a given id live at most once (so at most
 *       one live copy per link direction, relay() visits each link once), and
 *       backfills a link at most once per heal from a duplicate-free history
 *       (so at most one backfill copy per link direction): at most
 *       1 live + 1 backfill copy per (link, direction, id).  With
 *       -DFULL_GHOSTS the per (link, direction, id) counts are asserted
 *       directly, and a live copy must never reach its originator.
 *   P3  convergence: once the link has healed and nothing is in flight or
 *       owed, every node has every message in its history, has delivered it
 *       exactly once, and its remote occupants are back.
 *   Invalid end states (a node blocked on a full channel) are errors too.
 */

/* ---------------------------------------------------------------- topology */
/* Edge e joins node EA(e) and node EB(e).  Channel 2e carries EA->EB,
 * channel 2e+1 carries EB->EA. */
#if defined(CHAIN2)
#define N 2
#define E 1
#define EA(e) (e)
#define EB(e) ((e) + 1)
#elif defined(CHAIN3)
#define N 3
#define E 2
#define EA(e) (e)
#define EB(e) ((e) + 1)
#elif defined(CHAIN4)
#define N 4
#define E 3
#define EA(e) (e)
#define EB(e) ((e) + 1)
#elif defined(STAR4)
#define N 4
#define E 3
#define EA(e) 0
#define EB(e) ((e) + 1)
#else
#error "select a topology: -DCHAIN2, -DCHAIN3, -DCHAIN4 or -DSTAR4"
#endif

#ifndef M
#define M 3                 /* messages originated over the whole run */
#endif
#define NONE 255
#define CAP (2 * M)         /* per direction: <= 1 live + 1 backfill copy per id,
                               so a send never blocks in a correct model */

#define INCIDENT(n, e) (EA(e) == (n) || EB(e) == (n))
#define OUTCH(n, e) (2 * (e) + (EB(e) == (n)))   /* channel n sends on   */
#define INCH(n, e)  (2 * (e) + (EA(e) == (n)))   /* channel n reads from */
#define DIR(n, e)   (EB(e) == (n))               /* direction of n's sends */

/* Flat 2-D arrays. */
#define HIST(n, k)  hist[(n) * M + (k)]
#define HAVE(n, m)  have[(n) * M + (m)]
#define DELIV(n, m) delivered[(n) * M + (m)]
#define LASTRX(n, e) lastRx[(n) * E + (e)]
#define SINCE(n, e)  since[(n) * E + (e)]
#define LOSSIDX(n, e) lossIdx[(n) * E + (e)]
#define BFPEND(n, e) bfPending[(n) * E + (e)]
#define BFDONE(n, e) bfDone[(n) * E + (e)]
#define GONE(n, e)   remoteGone[(n) * E + (e)]
#define LIVESENT(e, d, m) liveSent[((e) * 2 + (d)) * M + (m)]
#define BFSENT(e, d, m)   bfSent[((e) * 2 + (d)) * M + (m)]

#define CHECK(c, msg) if :: (c) -> skip :: else -> printf(msg); assert(c) fi
/* printf is only executed when a trail is replayed (spin -t); run-spin.sh
 * keeps the EVENT lines as a readable counterexample.  No cost in pan. */

/* ------------------------------------------------------------------ state */
/* Links: FIFO per direction; a message is (stanza-id, backfill flag). */
chan ch[2 * E] = [CAP] of { byte, bit };
bit  up[E] = 1;             /* link state, both ends agree (see README) */

/* Per node room state (guard/rooms): history in arrival order, the dedupe
 * set derived from it, and the per-occupant delivery counter. */
byte hist[N * M];
byte hlen[N];
bit  have[N * M];
byte delivered[N * M];
bit  relayed[N * M];        /* n has run the live relay for m (P2) */
#ifdef FULL_GHOSTS
byte origin[M];             /* node that originated message m */
#endif

/* Per node, per link: last id received on the link (what its rejoin names
 * as "since"), the "since" the peer asked for at heal time, the local loss
 * point (broken variant only), backfill still to send, and whether the
 * remote occupants behind the link have been removed (status 333). */
byte lastRx[N * E];
byte since[N * E];
#ifdef BROKEN_LOSS_POINT_LOCAL
byte lossIdx[N * E];
#endif
bit  bfPending[N * E];
bit  bfDone[N * E];         /* n has sent its backfill over e (P2) */
bit  remoteGone[N * E];

#ifdef FULL_GHOSTS
/* Literal relay accounting for property 2, per (link, direction, id). */
byte liveSent[E * 2 * M];
byte bfSent[E * 2 * M];
#endif

/* Environment bookkeeping. */
byte nextId;                /* ids 0..M-1 are globally unique */
bit  partitioned;
bit  healed;

/* Temporaries, only used inside atomic / d_step sequences. */
hidden byte tE, tK, tS, tId;
hidden byte tBf;

/* ------------------------------------------------------ rule: live relay */
/* Send one live copy of id from n over link e, if the link is up.
 * Property 2 (FULL_GHOSTS): at most one live copy per (link, direction, id),
 * at most two copies in all (1 live + 1 backfill). */
inline send_live(n, e, id) {
  if
  :: up[e] ->
#ifdef FULL_GHOSTS
     LIVESENT(e, DIR(n, e), id)++;
     CHECK(LIVESENT(e, DIR(n, e), id) <= 1,
           "FMUC VIOLATION P2: same id relayed live twice over one link direction\n");
     CHECK(LIVESENT(e, DIR(n, e), id) + BFSENT(e, DIR(n, e), id) <= 2,
           "FMUC VIOLATION P2: id sent more than twice over one link direction\n");
#endif
     ch[OUTCH(n, e)]!id, 0
  :: else -> skip           /* link known down: nothing is sent */
  fi
}

/* Forward id to every up neighbour of n except over link `except`
 * (the link it came in on; NONE when n originated it). */
inline relay(n, except, id) {
  CHECK(!relayed[(n) * M + (id)],
        "FMUC VIOLATION P2: a node relayed the same message live twice (relay loop)\n");
  relayed[(n) * M + (id)] = 1;
  tE = 0;
  do
  :: tE < E ->
     if
#ifdef BROKEN_RELAY_BACK
     :: INCIDENT(n, tE) -> send_live(n, tE, id)     /* also back to the sender */
#else
     :: INCIDENT(n, tE) && tE != except -> send_live(n, tE, id)
#endif
     :: else -> skip
     fi;
     tE++
  :: else -> break
  od;
  tE = 0
}

/* Store in history and deliver to the local occupants.
 * Property 1: no node delivers a message twice. */
inline store_and_deliver(n, id) {
  if
  :: !HAVE(n, id) ->
     HIST(n, hlen[n]) = id;
     hlen[n]++;
     HAVE(n, id) = 1
  :: else -> skip           /* only reachable in BROKEN_NO_DEDUPE */
  fi;
  DELIV(n, id)++;
  CHECK(DELIV(n, id) <= 1,
        "FMUC VIOLATION P1: message delivered twice to the occupants of one node\n")
}

/* Rule: a node originates a message: store, deliver, send to every up
 * neighbour. */
inline originate(n) {
  printf("EVENT node %d originates m%d\n", n, nextId);
#ifdef FULL_GHOSTS
  origin[nextId] = n;
#endif
  store_and_deliver(n, nextId);
  relay(n, NONE, nextId);
  nextId++
}

/* Rule: receive (id, bf) from the neighbour on link e.  Already in the
 * history: drop (dedupe, which is also the loop guard) -- no delivery, no
 * relay.  Otherwise store, deliver, forward to every up neighbour except the
 * one it came from.  Backfilled and live copies are treated alike. */
inline receive(n, e, id, bf) {
  if
  :: !partitioned -> LASTRX(n, e) = id
  :: else -> skip           /* one partition only: no longer needed */
  fi;
#ifdef FULL_GHOSTS
  CHECK(bf || origin[id] != n,
        "FMUC VIOLATION P2: live relay loop, a message came back to its originator\n");
#endif
  printf("EVENT node %d receives m%d on link %d (backfill=%d, already had it=%d)\n",
         n, id, e, bf, HAVE(n, id));
#ifdef BROKEN_NO_DEDUPE
  store_and_deliver(n, id);
  relay(n, e, id)
#else
  if
  :: HAVE(n, id) -> skip    /* duplicate: dropped */
  :: else ->
     store_and_deliver(n, id);
     relay(n, e, id)
  fi
#endif
}

/* ----------------------------------------------- rule: loss (link down) */
/* Link e goes down: both ends mark it down, the copies in flight in both
 * directions are lost, the remote occupants behind the link leave (333). */
inline link_down(e) {
  up[e] = 0;
  printf("EVENT link %d (node %d - node %d) goes down, losing %d copies in flight\n",
         e, EA(e), EB(e), len(ch[2 * e]) + len(ch[2 * e + 1]));
  do
  :: len(ch[2 * e]) > 0 -> ch[2 * e]?tId, tBf
  :: else -> break
  od;
  do
  :: len(ch[2 * e + 1]) > 0 -> ch[2 * e + 1]?tId, tBf
  :: else -> break
  od;
  tId = 0; tBf = 0;
  GONE(EA(e), e) = 1;
  GONE(EB(e), e) = 1;
#ifdef BROKEN_LOSS_POINT_LOCAL
  LOSSIDX(EA(e), e) = hlen[EA(e)];
  LOSSIDX(EB(e), e) = hlen[EB(e)];
#endif
  partitioned = 1
}

/* ------------------------------------------ rule: heal / rejoin (link up) */
/* Link e comes back: each end rejoins the other; the rejoin names the last
 * id it received on this link, which the peer keeps as the "since" of the
 * backfill it owes.  The snapshot is taken now: live traffic may use the
 * link again before the backfill is sent. */
inline link_up(e) {
  printf("EVENT link %d heals; rejoins name since m%d (node %d) and m%d (node %d), 255 = none\n",
         e, LASTRX(EA(e), e), EA(e), LASTRX(EB(e), e), EB(e));
  up[e] = 1;
  GONE(EA(e), e) = 0;
  GONE(EB(e), e) = 0;
#ifndef BROKEN_NO_BACKFILL
  SINCE(EA(e), e) = LASTRX(EB(e), e);
  SINCE(EB(e), e) = LASTRX(EA(e), e);
  BFPEND(EA(e), e) = 1;
  BFPEND(EB(e), e) = 1;
#endif
  /* lastRx is dead from here on (one partition only): clear it so that
   * states differing only in it are merged. */
  tE = 0;
  do
  :: tE < N * E -> lastRx[tE] = NONE; tE++
  :: else -> break
  od;
  tE = 0;
  healed = 1
}

/* Rule: backfill.  Node n sends over link e, in history order and marked
 * backfill, every message of its history after the "since" id the peer
 * named (everything if the peer named none).  The receiver dedupes. */
inline send_backfill(n, e) {
#if defined(BACKFILL_FULL)
  tS = 0;
#elif defined(BROKEN_LOSS_POINT_LOCAL)
  tS = LOSSIDX(n, e);
#else
  if
  :: SINCE(n, e) == NONE -> tS = 0
  :: else ->
     tS = 0;
     do
     :: tS < hlen[n] && HIST(n, tS) != SINCE(n, e) -> tS++
     :: else -> break
     od;
     CHECK(tS < hlen[n], "FMUC MODEL ERROR: since id not in the sender's history\n");
     tS++
  fi;
#endif
  printf("EVENT node %d backfills link %d: history[%d..%d)\n", n, e, tS, hlen[n]);
  CHECK(!BFDONE(n, e), "FMUC VIOLATION P2: backfill sent twice over one link\n");
  BFDONE(n, e) = 1;
  tK = tS;
  do
  :: tK < hlen[n] ->
#ifdef FULL_GHOSTS
     BFSENT(e, DIR(n, e), HIST(n, tK))++;
     CHECK(BFSENT(e, DIR(n, e), HIST(n, tK)) <= 1,
           "FMUC VIOLATION P2: same id backfilled twice over one link direction\n");
     CHECK(LIVESENT(e, DIR(n, e), HIST(n, tK)) + BFSENT(e, DIR(n, e), HIST(n, tK)) <= 2,
           "FMUC VIOLATION P2: id sent more than twice over one link direction\n");
#endif
     ch[OUTCH(n, e)]!HIST(n, tK), 1;
     tK++
  :: else -> break
  od;
  tK = 0; tS = 0;
  SINCE(n, e) = NONE;       /* dead from here on */
#ifdef BROKEN_LOSS_POINT_LOCAL
  LOSSIDX(n, e) = 0;
#endif
  BFPEND(n, e) = 0
}

/* ------------------------------------------------------------- processes */
/* One process per node (pids 0..N-1): handles one incoming stanza, or sends
 * its owed backfill, per atomic step (one event-loop turn of guard/rooms). */
#define RX_OPTION(e) \
  :: d_step { (e) < E && INCIDENT(_pid, e) && len(ch[INCH(_pid, e)]) > 0 -> \
       ch[INCH(_pid, e)]?tId, tBf; \
       receive(_pid, e, tId, tBf); \
       tId = 0; tBf = 0 }

active [N] proctype Node() {
end:
  do
  RX_OPTION(0)
  RX_OPTION(1)
  RX_OPTION(2)
  :: d_step { (0 < E && BFPEND(_pid, 0)) || (1 < E && BFPEND(_pid, 1)) ||
              (2 < E && BFPEND(_pid, 2)) ->
       tE = 0;
       do
       :: tE < E ->
          if
          :: BFPEND(_pid, tE) -> tId = tE; send_backfill(_pid, tId)
          :: else -> skip
          fi;
          tE++
       :: else -> break
       od;
       tE = 0; tId = 0 }
  od
}

/* The environment: originates the M messages at nondeterministic nodes and
 * times, takes exactly one nondeterministically chosen link down at a
 * nondeterministic point and heals it later.  Then, at quiescence, checks
 * convergence (property 3). */
active proctype Env() {
  byte o, pe;
  /* the backfill markers start as "nothing received yet" */
  d_step {
    tE = 0;
    do
    :: tE < N * E -> lastRx[tE] = NONE; since[tE] = NONE; tE++
    :: else -> break
    od;
    tE = 0
  }
  do
  :: nextId < M ->
     atomic { select(o : 0 .. N - 1); originate(o); o = 0 }
  :: !partitioned ->
     atomic { select(pe : 0 .. E - 1); link_down(pe) }
  :: partitioned && !healed ->
     d_step { link_up(pe) }
  :: nextId == M && healed -> break
  od;

  /* Quiescence: no node can act (every channel empty, no backfill owed). */
  timeout ->
  printf("EVENT quiescent: checking convergence\n");
  d_step {
    tE = 0;
    do
    :: tE < 2 * E ->
       CHECK(len(ch[tE]) == 0, "FMUC MODEL ERROR: quiescent with a message in flight\n");
       tE++
    :: else -> break
    od;
    tE = 0;
    do
    :: tE < N * E ->
       CHECK(!bfPending[tE], "FMUC MODEL ERROR: quiescent with backfill owed\n");
       CHECK(!remoteGone[tE],
             "FMUC VIOLATION P3: remote occupants still gone after the link healed\n");
       tE++
    :: else -> break
    od;
    tE = 0;
    do
    :: tE < N * M ->
       if
       :: !have[tE] || delivered[tE] != 1 ->
          printf("EVENT node %d: m%d in history=%d, delivered %d times\n",
                 tE / M, tE % M, have[tE], delivered[tE])
       :: else -> skip
       fi;
       CHECK(have[tE],
             "FMUC VIOLATION P3: after heal and quiescence a node lacks a message\n");
       CHECK(delivered[tE] == 1,
             "FMUC VIOLATION P3: after heal and quiescence a message was not delivered exactly once\n");
       tE++
    :: else -> break
    od;
    tE = 0
  }
}
