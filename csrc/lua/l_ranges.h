/* l_ranges.h: C-level access to bt.Ranges userdata for other binding files
 * (the engine hands piece sets to Lua and reads them back). */
#ifndef BT_L_RANGES_H
#define BT_L_RANGES_H

#include "lua/lbt.h"
#include "core/ranges.h"

#define BT_RANGES_MT "bt.Ranges"

/* The set at stack index idx; raises "bt.Ranges expected" otherwise. [-0, +0, v] */
BT_HIDDEN bt_ranges *bt_lranges_check(lua_State *L, int idx);
/* Push a new empty set of `size` pieces (size <= BT_RANGES_MAX_SIZE; the
 * caller checks) and return it. The set's array is freed by __gc. [-0, +1, m] */
BT_HIDDEN bt_ranges *bt_lranges_push(lua_State *L, uint32_t size);

#endif
