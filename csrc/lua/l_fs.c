/* l_fs.c: the few file-system calls the Lua side needs (bt.fs): listing and
 * stat for torrent creation, atomic writes and folder fsync for resume data.
 * Misuse raises; runtime failure returns nil, message.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lua/l_fs.h"
#include "storage/storage.h"

#define BT_DIR_MT  "bt.Dir"

/* ---- bt.fs ------------------------------------------------------------------- */

typedef struct ldir { DIR *d; } ldir;

static int l_dir_gc(lua_State *L)
{
    ldir *u = luaL_checkudata(L, 1, BT_DIR_MT);
    if (u->d)
        closedir(u->d);
    u->d = NULL;
    return 0;
}

/* bt.fs.list(dir) -> array of entry names (no "." nor ".."; unsorted) | nil, message  [-0, +1|2, m]
 * The DIR handle lives in a userdata so a memory error while pushing names
 * cannot leak it. */
static int l_fs_list(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    ldir *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->d = NULL;
    luaL_setmetatable(L, BT_DIR_MT);
    u->d = opendir(path);
    if (!u->d)
        return bt_push_fail(L, "%s: %s", path, strerror(errno));
    lua_newtable(L);
    lua_Integer n = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(u->d);
        if (!e)
            break;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    int err = errno;
    closedir(u->d);
    u->d = NULL;
    if (err)
        return bt_push_fail(L, "%s: %s", path, strerror(err));
    return 1;
}

/* lstat(path) as a table; mtime_ns only when with_ns (bt.fs.stat_ns).
 * lstat: a symbolic link is reported as "link", never followed. */
static int push_lstat(lua_State *L, int with_ns)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st))
        return bt_push_fail(L, "%s: %s", path, strerror(errno));
    lua_createtable(L, 0, with_ns ? 4 : 3);
    const char *type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir"
                       : S_ISLNK(st.st_mode) ? "link" : "other";
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_sec);
    lua_setfield(L, -2, "mtime");
    if (with_ns) {
        lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_nsec);
        lua_setfield(L, -2, "mtime_ns");
    }
    return 1;
}

/* bt.fs.stat(path) -> {type = "file"|"dir"|"link"|"other", size =, mtime =} | nil, message
 * lstat: a symbolic link is reported as "link", never followed.  [-0, +1|2, m] */
static int l_fs_stat(lua_State *L)
{
    return push_lstat(L, 0);
}

/* bt.fs.realpath(path) -> absolute path with no symlink, "." or ".." | nil, message
 * (torrent creation names a torrent after the folder "." really is).  [-0, +1|2, m] */
static int l_fs_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char out[PATH_MAX];
    if (!realpath(path, out))
        return bt_push_fail(L, "%s: %s", path, strerror(errno));
    lua_pushstring(L, out);
    return 1;
}

/* ---- bt.fs: resume data -------------------------------------------------------- */

/* true for rc >= 0, else nil, err: the storage layer's status convention. */
static int push_status(lua_State *L, int rc, const char *err)
{
    if (rc < 0)
        return bt_push_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* bt.fs.write_atomic(path, bytes) -> true | nil, message  [-0, +1|2, e]
 * Temporary file in the same folder (O_EXCL, 0644), fsync, rename over path,
 * fsync the folder: after a crash path holds the old or the new bytes. */
static int l_fs_write_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *p = luaL_checklstring(L, 2, &len);
    char err[BT_STORAGE_ERRLEN];
    return push_status(L, bt_write_atomic(path, p, len, err, sizeof err), err);
}

/* bt.fs.fsync_dir(path) -> true | nil, message  [-0, +1|2, e] */
static int l_fs_fsync_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char err[BT_STORAGE_ERRLEN];
    return push_status(L, bt_fsync_dir(path, err, sizeof err), err);
}

/* bt.fs.stat_ns(path) -> {type =, size =, mtime =, mtime_ns =} | nil, message  [-0, +1|2, m]
 * As bt.fs.stat (lstat: a symlink is "link", never followed) with the
 * nanoseconds of the modification time, which resume data compares. */
static int l_fs_stat_ns(lua_State *L)
{
    return push_lstat(L, 1);
}

/* bt.fs.mkdir(path) -> true | nil, message  [-0, +1|2, e]
 * One folder, mode 0755 minus the umask; an existing folder is success (the
 * resume folder <dir>/.bt-lua is made on every save). */
static int l_fs_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (mkdir(path, 0755) < 0) {
        struct stat st;
        int e = errno;
        if (e == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            lua_pushboolean(L, 1);
            return 1;
        }
        return bt_push_fail(L, "%s: %s", path, strerror(e));
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg fs_funcs[] = {
    { "list", l_fs_list },
    { "stat", l_fs_stat },
    { "realpath", l_fs_realpath },
    { "write_atomic", l_fs_write_atomic },
    { "fsync_dir", l_fs_fsync_dir },
    { "stat_ns", l_fs_stat_ns },
    { "mkdir", l_fs_mkdir },
    { NULL, NULL },
};

void bt_open_fs(lua_State *L, int mod)
{
    luaL_newmetatable(L, BT_DIR_MT);
    lua_pushcfunction(L, l_dir_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    bt_setfuncs_sub(L, mod, "fs", fs_funcs);
}

