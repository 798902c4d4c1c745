/* buf.h: a growable byte buffer, the one dynamic array of the pure C layer. */
#ifndef BT_BUF_H
#define BT_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct bt_buf {
    uint8_t *data;
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated */
} bt_buf;

/* All return 0 on success, -1 when memory runs out (the buffer is unchanged). */
int  bt_buf_reserve(bt_buf *b, size_t extra);           /* room for `extra` more bytes */
int  bt_buf_append(bt_buf *b, const void *p, size_t n);
int  bt_buf_putc(bt_buf *b, uint8_t c);
void bt_buf_consume(bt_buf *b, size_t n);               /* drop n bytes from the front */
void bt_buf_free(bt_buf *b);                            /* back to {0} */

#endif
