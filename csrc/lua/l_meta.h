/* l_meta.h: what l_meta.c offers the other binding files. */
#ifndef BT_L_META_H
#define BT_L_META_H

#include "lua/lutil.h"
#include "codec/metainfo.h"

#define BT_META_MT "bt.Metainfo"

/* The parsed metainfo held by the "bt.Metainfo" userdata at idx (raises an
 * argument error naming bt.Metainfo otherwise). The pointer stays valid while
 * that userdata is alive: keep a reference to it (e.g. in a uservalue). */
BT_HIDDEN const bt_meta *bt_lmeta_check(lua_State *L, int idx);

BT_HIDDEN void bt_open_meta(lua_State *L, int mod);

#endif
