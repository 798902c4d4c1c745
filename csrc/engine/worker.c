/* worker.c: one thread that verifies and writes whole pieces.
 *
 * On two cores the loop thread (recv, framing, bookkeeping) and the hashing plus
 * page-cache writes of finished pieces overlap instead of adding up. The worker
 * touches only what the job hands it: the piece buffer (owned by the job until it
 * comes back), the torrent's storage through bt_storage_write (writes may run while the
 * loop thread reads other pieces: storage.h, "Threads") and the read-only piece
 * hashes. Results return through a list and an ev_async; Lua is
 * never touched off the loop thread.
 */
#define _GNU_SOURCE
#include "engine/session.h"
#include "engine/piece.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct bt_worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* work arrived, or quit */
    pthread_cond_t idle;      /* the input list emptied and nothing is in progress */
    bt_partial *in_head, *in_tail, *out_head, *out_tail;
    bool busy, quit;
    ev_async as;
    bt_session *s;
};

static void *worker_main(void *arg)
{
    bt_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && !w->in_head)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->in_head)
            break;
        bt_partial *p = w->in_head;
        w->in_head = p->qnext;
        if (!w->in_head)
            w->in_tail = NULL;
        w->busy = true;
        pthread_mutex_unlock(&w->mu);

        bt_torrent *t = p->t;
        int64_t size = bt_piece_size(t, p->piece);
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        p->job_ok = EVP_Digest(p->buf, (size_t)size, md, &mdlen, EVP_sha1(), NULL) == 1 &&
                    memcmp(md, t->meta->pieces + (size_t)p->piece * 20, 20) == 0;
        p->job_err = 0;
        if (p->job_ok && bt_storage_write(t->st, p->piece, 0, p->buf, (size_t)size) != 0)
            p->job_err = errno ? errno : EIO;

        pthread_mutex_lock(&w->mu);
        p->qnext = NULL;
        if (w->out_tail)
            w->out_tail->qnext = p;
        else
            w->out_head = p;
        w->out_tail = p;
        w->busy = false;
        if (!w->in_head)
            pthread_cond_broadcast(&w->idle);
        pthread_mutex_unlock(&w->mu);
        ev_async_send(w->s->loop, &w->as);
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
    bt_partial *p = w->out_head;
    w->out_head = w->out_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (p) {
        bt_partial *n = p->qnext;
        p->qnext = NULL;
        p->verifying = false;
        bt_piece_finish(p->t, p, p->job_ok, p->job_err);
        p = n;
    }
}

bt_worker *bt_worker_start(bt_session *s)
{
    bt_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->s = s;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->idle, NULL);
    ev_async_init(&w->as, on_async);
    w->as.data = w;
    ev_async_start(s->loop, &w->as);
    /* The thread starts with every signal blocked: SIGINT/SIGTERM are the loop's
     * (an ev_signal watcher; with signalfd libev only blocks them in the loop's
     * thread, and a thread that did not block them would take the default action). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->th, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        ev_async_stop(s->loop, &w->as);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        pthread_cond_destroy(&w->idle);
        free(w);
        return NULL;
    }
    return w;
}

void bt_worker_submit(bt_worker *w, bt_partial *p)
{
    p->verifying = true;
    p->qnext = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->in_tail)
        w->in_tail->qnext = p;
    else
        w->in_head = p;
    w->in_tail = p;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Wait for every queued job, then forget finished jobs of torrent t (it is being
 * freed: its partials are freed with it). */
void bt_worker_forget(bt_worker *w, bt_torrent *t)
{
    pthread_mutex_lock(&w->mu);
    while (w->in_head || w->busy)
        pthread_cond_wait(&w->idle, &w->mu);
    bt_partial **pp = &w->out_head;
    w->out_tail = NULL;
    while (*pp) {
        if ((*pp)->t == t) {
            (*pp)->verifying = false;
            *pp = (*pp)->qnext;
        } else {
            w->out_tail = *pp;
            pp = &(*pp)->qnext;
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
    ev_async_stop(w->s->loop, &w->as);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle);
    free(w);
}
