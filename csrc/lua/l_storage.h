/* l_storage.h: what l_storage.c offers the module entry. */
#ifndef BT_L_STORAGE_H
#define BT_L_STORAGE_H

#include "lua/lutil.h"

BT_HIDDEN void bt_open_storage(lua_State *L, int mod);

#endif
