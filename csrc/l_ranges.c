/* l_ranges.c: placeholder, replaced by the real binding. */
#include "lbt.h"

void bt_open_ranges(lua_State *L, int mod)
{
    (void)L;
    (void)mod;
}
