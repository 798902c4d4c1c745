/* l_session.c: placeholder, replaced by the real binding. */
#include "lbt.h"

void bt_open_session(lua_State *L, int mod)
{
    (void)L;
    (void)mod;
}
