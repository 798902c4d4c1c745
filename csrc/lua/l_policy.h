/* l_policy.h: calling policy hooks (l_policy.c), the binding's side of the policy
 * scheduler's contract (engine/policy.h: bt_policy_ops).
 *
 * Every call goes through one protected call with a traceback, on the main Lua
 * thread, under a count hook that stops a hook running longer than the session's
 * policy_time_limit. Arguments are pushed from C values; results come back as
 * bt_values, converted without coercion, for the scheduler to validate.
 */
#ifndef BT_L_POLICY_H
#define BT_L_POLICY_H

#include "engine/policy.h"
#include "lua/lutil.h"

typedef struct lpolicy {
    lua_State *L;             /* the main thread, never a coroutine */
    double time_limit;        /* seconds one hook call may run */
    double deadline;          /* of the call in progress */
    uint64_t mem_limit;       /* bytes of Lua memory the state may hold after a hook (0: none) */
    const char *hook;         /* its name */
    char *err;                /* the last failure's message */
    bt_value *elems;          /* the last array result's elements */
    uint32_t elems_cap;
} lpolicy;

BT_HIDDEN extern const bt_policy_ops bt_lpolicy_ops;   /* ud: an lpolicy */
BT_HIDDEN void bt_lpolicy_init(lpolicy *lp, lua_State *L, double time_limit, uint64_t mem_limit);
BT_HIDDEN void bt_lpolicy_free(lpolicy *lp);
/* A complete policy table at idx (bt.policy.load makes one): every hook a function,
 * upload_slots an integer >= 0 (into *slots), choke_interval a number of seconds from
 * BT_LPOLICY_MIN_INTERVAL to BT_LPOLICY_MAX_INTERVAL (into *interval).
 * Raises naming what is wrong. [-0, +0, v] */
#define BT_LPOLICY_MIN_INTERVAL 1.0
#define BT_LPOLICY_MAX_INTERVAL 600.0
BT_HIDDEN void bt_lpolicy_check(lua_State *L, int idx, uint32_t *slots, double *interval);

#endif
