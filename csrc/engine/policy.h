/* policy.h: the policy scheduler. It owns the contract between the engine and a
 * policy: when each hook is called, in what order, with what, and what its
 * results may be. The hooks themselves are Lua functions, but nothing here knows
 * Lua: the binding (csrc/lua/l_policy.c) implements bt_policy_ops, declared here,
 * which calls a hook and hands its results back as bt_values; this file validates
 * them and acts on them.
 *
 * Order, per torrent:
 *   tick (every tick_ms): while downloading: timeout for each peer whose oldest
 *     request has stalled >= BT_TIMEOUT_MIN_STALL, then queue_depth for each peer,
 *     then endgame; always: a choke round when due, then tick.
 *   each loop iteration (the session's prepare watcher): events (on_piece, and
 *     queue_depth for a peer that just connected), then while downloading pick for
 *     every peer whose pipeline has room.
 * A hook that raises, runs out of time, or returns something the contract does
 * not allow stops its torrent with a message naming the hook and the value
 * (bt_torrent_stop): no further hook of that torrent runs.
 */
#ifndef BT_POLICY_H
#define BT_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/peer.h"
#include "engine/torrent.h"

#define BT_CHOKE_INTERVAL     10.0   /* seconds between choke rounds (BitTorrent's classic value), unless
                                       * the policy sets choke_interval (t->choke_interval) */
#define BT_CHOKE_EXTRA_GAP    1.0    /* an extra round for a newly interested peer, at most this often */
#define BT_TIMEOUT_MIN_STALL  1.0    /* a request must stall this long before timeout() is asked */
#define BT_QUEUE_DEPTH_MAX    BT_PEER_MAX_QUEUE   /* largest queue_depth a policy may ask */

typedef enum {
    BT_HOOK_PICK, BT_HOOK_TICK, BT_HOOK_ENDGAME, BT_HOOK_TIMEOUT, BT_HOOK_ON_PIECE, BT_HOOK_QUEUE_DEPTH,
    BT_HOOK_CHOKE, BT_NHOOKS
} bt_hook;
extern const char *const bt_hook_names[BT_NHOOKS];

/* A value a hook returned, as the binding converted it (no coercion). */
typedef enum {
    BT_V_NOTHING,   /* no value at all */
    BT_V_NIL, BT_V_BOOLEAN, BT_V_INTEGER, BT_V_FLOAT, BT_V_STRING,
    BT_V_PEER,      /* a bt.Peer handle */
    BT_V_ARRAY,     /* a table: its elements [1..#t] */
    BT_V_OTHER      /* anything else (function, other userdata, ...) */
} bt_vtype;

typedef struct bt_value {
    bt_vtype type;
    bool b;
    int64_t i;
    double f;
    char s[48];                 /* string: its first 47 bytes, NUL-terminated */
    size_t len;                 /* string: its whole length */
    bt_peer *peer;              /* peer: the live peer, or NULL if it has left */
    char address[64];           /* peer: its address, for messages */
    const struct bt_value *elems;   /* array */
    uint32_t nelems;
    const char *tname;          /* other: its type's name ("function", "bt.Torrent"...), static or the
                                   binding's until the next call */
} bt_value;

/* How a message names a value: `a string ("drop")`, `a number (7.5)`, `nil`, `nothing`. */
void bt_value_describe(const bt_value *v, char *out, size_t n);

/* The arguments of one call; which fields a hook gets is in docs/policy.md. */
typedef struct bt_hook_args {
    bt_peer *peer;              /* pick, timeout, queue_depth, on_piece (NULL: it has left) */
    uint32_t slots;             /* pick */
    uint32_t piece, block;      /* timeout, on_piece (piece) */
    bool ok;                    /* on_piece */
    double age;                 /* timeout: seconds since the request was sent */
    double expected;            /* timeout: seconds after sending it should have come (HUGE_VAL: unknown) */
    double stalled;             /* timeout: seconds the peer has sent nothing while it waited */
    double now;                 /* tick, choke: the loop's clock */
    bt_peer *const *peers;      /* choke: the interested peers */
    uint32_t npeers;
    uint32_t round;             /* choke */
} bt_hook_args;

typedef struct bt_policy_ops {
    /* the policy of t has this hook */
    bool (*has)(void *ud, bt_torrent *t, bt_hook h);
    /* Call it with a's arguments. Its first result goes to *res (BT_V_NOTHING when
     * there is none), the number of results to *nres; both valid until the next call.
     * Returns 0, or -1 when the hook raised or ran out of time: *err is the message
     * with its traceback, valid until the next call. */
    int (*call)(void *ud, bt_torrent *t, bt_hook h, const bt_hook_args *a, bt_value *res, int *nres,
                const char **err);
} bt_policy_ops;

/* The scheduler's state for t (kept in t->sched). 0, or -1 out of memory. */
int  bt_policy_attach(bt_torrent *t, const bt_policy_ops *ops, void *ud, double now);
void bt_policy_detach(bt_torrent *t);

void bt_policy_tick(bt_torrent *t, double now);
void bt_policy_picks(bt_torrent *t);
void bt_policy_on_piece(bt_torrent *t, uint32_t piece, bool ok, bt_peer *p);
void bt_policy_on_connect(bt_torrent *t, bt_peer *p);
/* Inside a hook call of t's (operations that would re-enter the scheduler are refused). */
bool bt_policy_in_hook(const bt_torrent *t);

#endif
