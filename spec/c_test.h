/* c_test.h: the harness the C tests under spec/ share (persist_c_test.c,
 * storage_c_test.c, tracker_c_test.c). Each test is one translation unit built
 * by its spec with `cc ... -Icsrc spec/NAME_c_test.c ...`, so the statics here
 * are private to it.
 *
 * CHECK(cond, fmt, ...) counts a failure and prints "FAIL file:line: message"
 * without stopping, so one run reports every broken check; c_test_finish()
 * prints "all passed" (what the specs look for) and gives the exit status.
 */
#ifndef BT_C_TEST_H
#define BT_C_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                    \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
        }                                                                  \
    } while (0)

/* The whole file in a malloc'ed buffer (one spare byte so an empty file still
 * gets a non-NULL pointer), its size in *len; NULL if it cannot be read. */
static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    char *p = NULL;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = malloc((size_t)n + 1);
        if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
            free(p);
            p = NULL;
        }
    }
    fclose(f);
    *len = p ? (size_t)n : 0;
    return p;
}

/* End of main: the line the specs match, and the exit status. */
static inline int c_test_finish(void)
{
    if (!failures)
        printf("all passed\n");
    return failures ? 1 : 0;
}

#endif
