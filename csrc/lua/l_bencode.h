/* l_bencode.h: what l_bencode.c offers the module entry. */
#ifndef BT_L_BENCODE_H
#define BT_L_BENCODE_H

#include "lua/lutil.h"

BT_HIDDEN void bt_open_bencode(lua_State *L, int mod);

#endif
