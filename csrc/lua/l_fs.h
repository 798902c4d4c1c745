/* l_fs.h: what l_fs.c offers the module entry. */
#ifndef BT_L_FS_H
#define BT_L_FS_H

#include "lua/lutil.h"

BT_HIDDEN void bt_open_fs(lua_State *L, int mod);

#endif
