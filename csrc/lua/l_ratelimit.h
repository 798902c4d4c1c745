/* l_ratelimit.h: what l_ratelimit.c offers the module entry. */
#ifndef BT_L_RATELIMIT_H
#define BT_L_RATELIMIT_H

#include "lua/lutil.h"

BT_HIDDEN void bt_open_ratelimit(lua_State *L, int mod);

#endif
