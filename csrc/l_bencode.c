/* l_bencode.c: placeholder, replaced by the real binding. */
#include "lbt.h"

void bt_open_bencode(lua_State *L, int mod)
{
    (void)L;
    (void)mod;
}
