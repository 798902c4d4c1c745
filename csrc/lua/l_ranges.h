/* l_ranges.h: C-level access to bt.Ranges userdata for other binding files
 * (the engine hands piece sets to Lua and reads them back). */
#ifndef BT_L_RANGES_H
#define BT_L_RANGES_H

#include "core/ranges.h"
#include "lua/lutil.h"

#define BT_RANGES_MT "bt.Ranges"

/* The set at stack index idx; raises "bt.Ranges expected" otherwise. [-0, +0, v] */
BT_HIDDEN bt_ranges *bt_lranges_check(lua_State *L, int idx);
/* Push a new empty set of `size` pieces (size <= BT_RANGES_MAX_SIZE; the
 * caller checks) and return it. The set's array is freed by __gc. [-0, +1, m] */
BT_HIDDEN bt_ranges *bt_lranges_push(lua_State *L, uint32_t size);
/* A set to read at idx: a bt.Ranges or a bt.RangesView (raises otherwise, or
 * when the view's owner is gone). Valid until the engine next runs.  [-0, +0, v] */
BT_HIDDEN const bt_ranges *bt_lranges_read(lua_State *L, int idx);
/* Finds the owner's set: owner is a stack index; raises if the owner is gone. */
typedef const bt_ranges *(*bt_lranges_resolve)(lua_State *L, int owner);
/* Push a read-only view of the set `resolve` finds for the object at `owner`. [-0, +1, m] */
BT_HIDDEN void bt_lranges_push_view(lua_State *L, int owner, bt_lranges_resolve resolve);

BT_HIDDEN void bt_open_ranges(lua_State *L, int mod);

#endif
