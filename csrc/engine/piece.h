/* piece.h: internal to the engine (session.c, peer.c): piece I/O and partial pieces. */
#ifndef BT_PIECE_H
#define BT_PIECE_H

#include "engine/session.h"
#include "storage/storage.h"

/* Piece bytes: bt_storage_read/bt_storage_write on t->st (storage.h), from the loop
 * thread and the worker. */
/* Start-up: hash-check what the storage holds, pieces not had yet. 0 / -1 with err. */
int  bt_files_check(bt_torrent *t, char *err, size_t errlen);
/* Mark piece i had at start-up (counted, out of the pool). 0 / -1 out of memory. */
int  bt_files_had(bt_torrent *t, uint32_t i);

bt_partial *bt_partial_get(bt_torrent *t, uint32_t piece);   /* find or create; NULL: OOM */
void bt_partial_drop(bt_torrent *t, bt_partial *p, bool back_to_pool);
int  bt_partial_hash(bt_torrent *t, bt_partial *p, uint32_t b, const uint8_t *data, uint8_t *scratch);
bool bt_partial_verify(bt_torrent *t, bt_partial *p);
int  bt_partial_store(bt_torrent *t, bt_partial *p, uint32_t b, const uint8_t *data, uint32_t len,
                      uint8_t *scratch);
int  bt_partial_flush(bt_torrent *t, bt_partial *p);

/* peer.c entry points used by session.c */
bt_peer *bt_peer_new(bt_session *s, int fd, bool incoming, const struct sockaddr *sa, socklen_t salen);
void bt_peer_free(bt_peer *p);
void bt_peer_flush(bt_peer *p);
void bt_peer_serve(bt_peer *p);
void bt_torrent_unchoke_some(bt_torrent *t);
void bt_peer_attach(bt_peer *p, bt_torrent *t);
void bt_peer_tick(bt_peer *p, double now, double dt);
void bt_peer_update_interest(bt_peer *p);
void bt_sess_event(bt_session *s, bt_event_kind kind, bt_torrent *t, uint32_t piece, int ok,
                   bt_peer *p, const char *text);

/* worker.c */
bt_worker *bt_worker_start(bt_session *s);
void bt_worker_submit(bt_worker *w, bt_partial *p);
void bt_worker_forget(bt_worker *w, bt_torrent *t);
void bt_worker_stop(bt_worker *w);
/* peer.c: a piece's verdict (from the worker or inline); err: errno of a failed write */
void bt_piece_finish(bt_torrent *t, bt_partial *pp, bool ok, int err);

#endif
