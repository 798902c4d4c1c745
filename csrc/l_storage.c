/* l_storage.c: placeholder, replaced by the real binding. */
#include "lbt.h"

void bt_open_storage(lua_State *L, int mod)
{
    (void)L;
    (void)mod;
}
