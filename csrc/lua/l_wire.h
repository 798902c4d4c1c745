/* l_wire.h: what l_wire.c offers the module entry. */
#ifndef BT_L_WIRE_H
#define BT_L_WIRE_H

#include "lua/lutil.h"

BT_HIDDEN void bt_open_wire(lua_State *L, int mod);

#endif
