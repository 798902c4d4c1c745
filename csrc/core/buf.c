#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

int bt_buf_reserve(bt_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int bt_buf_append(bt_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (bt_buf_reserve(b, n))
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int bt_buf_putc(bt_buf *b, uint8_t c)
{
    if (bt_buf_reserve(b, 1))
        return -1;
    b->data[b->len++] = c;
    return 0;
}

void bt_buf_consume(bt_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void bt_buf_free(bt_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
