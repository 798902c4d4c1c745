/* worker.h: one thread that verifies and writes whole pieces.
 *
 * On two cores the loop thread (recv, framing, bookkeeping) and the hashing plus
 * page-cache writes of finished pieces overlap instead of adding up. A job names
 * a piece of a storage and its expected SHA-1; it carries the piece's bytes (then
 * the worker hashes them and, when they match, writes them) or not (the blocks
 * are in the storage already: the worker reads them back to hash them). The
 * worker touches only what the job hands it: the buffer (the job's until it comes
 * back), the storage through bt_storage_read/write (storage.h "Threads": the loop
 * thread may read and write other pieces meanwhile) and the expected hash.
 *
 * A finished job comes back on the loop thread through its own `done` callback,
 * declared here and set by whoever submitted it (the torrent), once, in the order
 * the jobs were submitted. Without a worker (the thread could not start),
 * bt_worker_submit runs the job inline and calls `done` before returning.
 */
#ifndef BT_WORKER_H
#define BT_WORKER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/storage.h"

typedef struct bt_job bt_job;
struct bt_job {
    bt_job *next;             /* the worker's lists */
    bt_storage *st;
    uint32_t piece;
    uint64_t size;            /* the piece's bytes */
    const uint8_t *hash;      /* expected SHA-1, 20 bytes */
    uint8_t *buf;             /* the piece's bytes, or NULL: read them back from st */
    void *owner;              /* who submitted it (bt_worker_forget) */
    void (*done)(bt_job *j);  /* on the loop thread, once */
    /* results */
    bool ok;                  /* the hash matched */
    int err;                  /* errno of a failed read or write, 0 */
    bool busy;                /* submitted and not back yet */
};

typedef struct bt_worker bt_worker;

/* NULL: no thread (jobs then run inline). */
bt_worker *bt_worker_start(struct ev_loop *loop);
/* w may be NULL: the job runs now and done is called before this returns. */
void bt_worker_submit(bt_worker *w, bt_job *j);
/* Wait for every queued job, then drop the finished jobs of `owner` without
 * calling their done (the owner is going away and frees them itself). */
void bt_worker_forget(bt_worker *w, void *owner);
void bt_worker_stop(bt_worker *w);
/* The work itself: hash (reading back when buf is NULL) and, when it matches and
 * buf is set, write. Fills ok and err. */
void bt_job_run(bt_job *j);

#endif
