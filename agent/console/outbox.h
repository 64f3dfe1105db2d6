/* agent/console/outbox.h - drains the store's outbox to the broker: batches, QoS 1, bounded window, delete on PUBACK. */
#ifndef BERTH_OUTBOX_H
#define BERTH_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct store;
struct outbox;

/* How a message leaves: publishes payload (len bytes, valid during the call)
 * on topic at QoS 1, not retained, and sets *mid, which
 * outbox_on_published() is later called with. Returns 0, -ENOTCONN (not
 * connected), -ENOBUFS (the link's queue is full: tried again on the next
 * kick), or another negative errno (logged). The console passes the
 * uplink's publish; the unit tests a recorder. */
typedef int (*outbox_publish_fn)(void *arg, const char *topic, const void *payload, size_t len, int *mid);
/* The same for a queued command reply, with the command's correlation data (corr_len 0: none). */
typedef int (*outbox_publish_reply_fn)(void *arg, const char *topic, const void *payload, size_t len,
				       const void *corr, size_t corr_len, int *mid);

/* How the batches leave. Two lanes share the window of in-flight messages:
 *  - fresh: rows appended since the current connection came up, sent as soon
 *    as they are written;
 *  - backlog: rows buffered before it, oldest first.
 * The backlog may hold at most inflight_max - 1 messages in flight, so one
 * slot is always free for fresh rows: a long backlog never delays live
 * telemetry or events by more than one round trip. Each message carries one
 * contiguous range of sequence numbers of one kind; a row is deleted only
 * when the PUBACK of the message carrying it arrives. A lost connection
 * forgets everything in flight and the rows are sent again (consumers drop
 * duplicates by seq).
 * Command replies (the store's reply queue) go first, one per message, to
 * the topic and with the correlation data they were queued with, holding at
 * most inflight_max - 1 slots too; a reply is deleted on its PUBACK, and one
 * in flight when the connection drops is sent again. */
struct outbox_opts {
	const char *telemetry_topic;   /* berth/v1/<device>/telemetry */
	const char *events_topic;      /* berth/v1/<device>/events */
	const char *device_id;
	uint32_t batch_max_bytes;      /* payload cap of one message (one larger row goes alone) */
	uint32_t inflight_max;         /* messages in flight, >= 1 */
	outbox_publish_reply_fn publish_reply; /* NULL: the store's reply queue is not sent */
	uint32_t forward_rate;         /* backlog messages per second at most (0: the window only); a new
	                                * connection starts with one, the bucket holds one second's worth */
};

struct outbox_stats {
	uint64_t msgs_sent;
	uint64_t rows_sent;
	uint64_t msgs_acked;
	uint64_t rows_acked;
	uint64_t msgs_refused;         /* PUBACK with a failure reason: rows kept, sent again later */
	uint64_t replies_sent;         /* command replies from the store's reply queue */
	uint64_t replies_acked;
	uint32_t inflight;
	int64_t backlog_end;           /* rows below this seq are backlog */
	uint64_t backlog_paced;        /* times the backlog waited for forward_rate */
};

/* Buffers (batch_max_bytes and the window) are allocated once here.
 * loop and store are borrowed; publish(arg, ...) sends (see above). Nothing
 * is sent before outbox_on_connected(). Returns NULL on allocation failure.
 * Acknowledged ranges are deleted together, in one transaction at the end
 * of the loop iteration in which their PUBACKs arrived. */
struct outbox *outbox_create(struct loop *l, struct store *st, outbox_publish_fn publish, void *arg,
			     const struct outbox_opts *o);
void outbox_destroy(struct outbox *f);

/* Hooks from the link's callbacks: connected (CONNACK), disconnected (every
 * message in flight is forgotten and sent again once connected), published
 * (the PUBACK of mid; reason >= 0x80: refused). */
void outbox_on_connected(struct outbox *f);
void outbox_on_disconnected(struct outbox *f);
/* The store opened after berthd ran without it: what it holds is sent from the start. */
void outbox_store_back(struct outbox *f);
void outbox_on_published(struct outbox *f, int mid, int reason);

/* Sends what the window allows; call after appending rows. Never blocks
 * beyond one indexed SQLite read per message. */
void outbox_kick(struct outbox *f);

void outbox_get_stats(const struct outbox *f, struct outbox_stats *out);

#endif
