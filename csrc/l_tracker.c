/* l_tracker.c: placeholder, replaced by the real binding. */
#include "lbt.h"

void bt_open_tracker(lua_State *L, int mod)
{
    (void)L;
    (void)mod;
}
