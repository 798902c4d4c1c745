/* worker.c: the verify-and-write thread (worker.h). */
#define _GNU_SOURCE
#include "engine/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha1.h"

/* A piece without a buffer is read back and hashed in chunks of this size. */
#define READ_BACK_CHUNK (1u << 20)
/* The thread takes queued jobs together, up to this many bytes of pieces (at least one
 * job): with 16 KiB pieces, one wake-up, one answer to the loop and one write for a run
 * of consecutive pieces instead of one each (per piece they cost an eventfd write and
 * read, an epoll_wait and a pwrite: about 60 us, measured with strace -c); large pieces
 * still go one by one, so their verdicts are not held back. */
#define BATCH_BYTES (1u << 20)
#define BATCH_JOBS  256
_Static_assert(BATCH_JOBS <= BT_STORAGE_RUN_MAX, "a batch's run fits one storage call");

struct bt_worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* work arrived, or quit */
    pthread_cond_t idle;      /* the input list emptied and nothing is in progress */
    bt_job *in_head, *in_tail, *out_head, *out_tail;
    bool busy, quit;
    ev_async as;
    struct ev_loop *loop;
    uint8_t *chunk;           /* read-back buffer, the thread's own */
};

static void hash_from_storage(bt_job *j, uint8_t *chunk, uint8_t md[BT_SHA1_LEN])
{
    bt_sha1_ctx c;
    if (bt_sha1_init(&c) != 0) {
        j->err = ENOMEM;
        return;
    }
    for (uint64_t off = 0; off < j->size && j->err == 0; off += READ_BACK_CHUNK) {
        size_t n = j->size - off < READ_BACK_CHUNK ? (size_t)(j->size - off) : READ_BACK_CHUNK;
        if (bt_storage_read(j->st, j->piece, (uint32_t)off, chunk, n) != 0)
            j->err = errno ? errno : EIO;
        else
            bt_sha1_update(&c, chunk, n);
    }
    if (j->err == 0)
        bt_sha1_final(&c, md);
    bt_sha1_free(&c);
}

/* The hash (reading the piece back when it has no buffer); no write yet. */
static void verify(bt_job *j, uint8_t *chunk)
{
    uint8_t md[BT_SHA1_LEN];
    j->ok = false;
    j->err = 0;
    if (j->buf) {
        j->ok = bt_sha1(j->buf, (size_t)j->size, md) == 0 && memcmp(md, j->hash, BT_SHA1_LEN) == 0;
        return;
    }
    if (!chunk) {
        j->err = ENOMEM;
        return;
    }
    hash_from_storage(j, chunk, md);
    j->ok = j->err == 0 && memcmp(md, j->hash, BT_SHA1_LEN) == 0;
}

/* A verified piece with a buffer goes to storage. */
static bool to_write(const bt_job *j)
{
    return j->ok && j->buf && j->err == 0;
}

/* Verify jobs[0..n) and write the verified ones; a run of consecutive pieces of one
 * storage goes to it in one call, from the pieces' own buffers. `chunk` is for pieces
 * read back from storage. */
static void run_batch(bt_job **jobs, uint32_t n, uint8_t *chunk)
{
    for (uint32_t i = 0; i < n; i++)
        verify(jobs[i], chunk);
    for (uint32_t i = 0; i < n;) {
        bt_job *a = jobs[i];
        if (!to_write(a)) {
            i++;
            continue;
        }
        struct iovec iov[BATCH_JOBS];
        uint32_t k = i;
        do {
            iov[k - i] = (struct iovec){ .iov_base = jobs[k]->buf, .iov_len = (size_t)jobs[k]->size };
            k++;
        } while (k < n && to_write(jobs[k]) && jobs[k]->st == a->st && jobs[k]->piece == a->piece + (k - i) &&
                 jobs[k - 1]->size == a->size);
        int rc = bt_storage_write_run(a->st, a->piece, iov, (int)(k - i));
        int err = rc != 0 ? (errno ? errno : EIO) : 0;
        for (uint32_t q = i; q < k; q++)
            jobs[q]->err = err;
        i = k;
    }
}

void bt_job_run(bt_job *j)
{
    uint8_t *chunk = j->buf ? NULL : malloc(READ_BACK_CHUNK);
    run_batch(&j, 1, chunk);
    free(chunk);
}

static void *worker_main(void *arg)
{
    bt_worker *w = arg;
    bt_job *batch[BATCH_JOBS];
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && !w->in_head)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->in_head)
            break;
        uint32_t n = 0;
        uint64_t bytes = 0;
        while (w->in_head && n < BATCH_JOBS && (n == 0 || bytes + w->in_head->size <= BATCH_BYTES)) {
            bt_job *j = w->in_head;
            w->in_head = j->next;
            bytes += j->size;
            batch[n++] = j;
        }
        if (!w->in_head)
            w->in_tail = NULL;
        w->busy = true;
        pthread_mutex_unlock(&w->mu);

        run_batch(batch, n, w->chunk);

        pthread_mutex_lock(&w->mu);
        for (uint32_t i = 0; i < n; i++) {
            batch[i]->next = NULL;
            if (w->out_tail)
                w->out_tail->next = batch[i];
            else
                w->out_head = batch[i];
            w->out_tail = batch[i];
        }
        w->busy = false;
        if (!w->in_head)
            pthread_cond_broadcast(&w->idle);
        pthread_mutex_unlock(&w->mu);
        ev_async_send(w->loop, &w->as);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Finished jobs, in order, on the loop thread. */
static void on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    bt_worker *w = a->data;
    pthread_mutex_lock(&w->mu);
    bt_job *j = w->out_head;
    w->out_head = w->out_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (j) {
        bt_job *n = j->next;
        j->next = NULL;
        j->busy = false;
        j->done(j);
        j = n;
    }
}

bt_worker *bt_worker_start(struct ev_loop *loop)
{
    bt_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->chunk = malloc(READ_BACK_CHUNK);
    if (!w->chunk) {
        free(w);
        return NULL;
    }
    w->loop = loop;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->idle, NULL);
    ev_async_init(&w->as, on_async);
    w->as.data = w;
    ev_async_start(loop, &w->as);
    /* The thread starts with every signal blocked: SIGINT/SIGTERM are the loop's
     * (an ev_signal watcher; with signalfd libev only blocks them in the loop's
     * thread, and a thread that did not block them would take the default action). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->th, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        ev_async_stop(loop, &w->as);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        pthread_cond_destroy(&w->idle);
        free(w->chunk);
        free(w);
        return NULL;
    }
    return w;
}

void bt_worker_submit(bt_worker *w, bt_job *j)
{
    j->next = NULL;
    if (!w) {
        bt_job_run(j);
        j->done(j);
        return;
    }
    j->busy = true;
    pthread_mutex_lock(&w->mu);
    if (w->in_tail)
        w->in_tail->next = j;
    else
        w->in_head = j;
    w->in_tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void bt_worker_forget(bt_worker *w, void *owner)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    while (w->in_head || w->busy)
        pthread_cond_wait(&w->idle, &w->mu);
    bt_job **pp = &w->out_head;
    w->out_tail = NULL;
    while (*pp) {
        if ((*pp)->owner == owner) {
            (*pp)->busy = false;
            *pp = (*pp)->next;
        } else {
            w->out_tail = *pp;
            pp = &(*pp)->next;
        }
    }
    pthread_mutex_unlock(&w->mu);
}

void bt_worker_stop(bt_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    ev_async_stop(w->loop, &w->as);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle);
    free(w->chunk);
    free(w);
}
