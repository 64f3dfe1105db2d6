/* agent/trust/replay.h - the replay window: every command applied at most once, judged by signed issue times, never by the gateway's clock. */
#ifndef BERTH_REPLAY_H
#define BERTH_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "agent/trust/envelope.h"

/* The window is a low-water mark (lwm_ms) on the console's signed issue
 * times plus the set of every id issued after it that was seen:
 *   - a command with iat_ms <= lwm_ms is refused (stale: issued before the window);
 *   - a command whose id is in the set is refused (replayed);
 *   - admitting one adds its id; the mark then rises to
 *     newest_iat_ms - window_ms (ids at or under it leave the set: they are
 *     refused by the mark from now on);
 *   - when the set is full (cap ids) the mark rises to the oldest issue time
 *     held, retiring the oldest ids (counted in evicted): an id is never
 *     forgotten without the mark covering it, so nothing is applied twice;
 *     the price is that a command issued before the new mark and still
 *     undelivered is refused as stale.
 * Issue times come from verified signatures; the gateway's clock, which can
 * step, is never consulted. The mark only rises. */
struct replay;

struct replay_stats {
	int64_t lwm_ms;
	int64_t newest_iat_ms;
	unsigned held;           /* ids in the set */
	unsigned cap;
	uint64_t evicted;        /* ids retired early because the set was full */
};

/* cap >= 1 ids, window_ms >= 1. NULL without memory. */
struct replay *replay_create(unsigned cap, int64_t window_ms);
void replay_destroy(struct replay *r);

/* 0 when (id, iat_ms) may be applied; -ESTALE (iat at or under the mark) or
 * -EALREADY (id seen). Pure. */
int replay_check(const struct replay *r, const char *id, int64_t iat_ms) __attribute__((warn_unused_result));

/* Admits a command: records its id, to be persisted before the command is
 * applied (at most once: a crash after this and before applying loses the
 * command, never repeats it). Returns 0, or -ESTALE / -EALREADY as
 * replay_check, or -ESTALE when the set was full and the mark, raised to
 * the oldest issue time held, now covers iat_ms (not admitted then). */
int replay_record(struct replay *r, const char *id, int64_t iat_ms) __attribute__((warn_unused_result));

/* replay_record that also says which slot (0..cap-1) now holds the id, for
 * incremental persistence (replay_save_slot). -EINVAL for an empty or too
 * long id. */
int replay_admit(struct replay *r, const char *id, int64_t iat_ms, unsigned *slot) __attribute__((warn_unused_result));

void replay_get_stats(const struct replay *r, struct replay_stats *out);

/* Incremental text form, one store key per slot plus a header: after an
 * admission only its slot and the header change (both a few dozen bytes).
 * Header "R2 LWM NEWEST EVICTED\n"; slot "IAT ID" or "-" (free).
 * save_* return the length or -ENOSPC (96 bytes always suffice).
 * load_header empties r and sets its mark (-EINVAL for malformed text, r
 * unchanged); load_slot then fills one slot: an entry at or under the mark
 * is stale (retired after it was written) and skipped; -EINVAL for
 * malformed text, a slot out of range or filled, or an id already held. */
int replay_save_header(const struct replay *r, char *buf, size_t len);
int replay_save_slot(const struct replay *r, unsigned slot, char *buf, size_t len);
int replay_load_header(struct replay *r, const char *text) __attribute__((warn_unused_result));
int replay_load_slot(struct replay *r, unsigned slot, const char *text) __attribute__((warn_unused_result));

/* Whole text form (legacy stores, tests): "R1 LWM NEWEST EVICTED\nIAT ID\n...". save returns
 * the length or -ENOSPC (cap * 90 + 64 bytes always suffice); load replaces
 * r's content and returns 0, or -EINVAL for malformed text (r unchanged). */
int replay_save(const struct replay *r, char *buf, size_t len);
int replay_load(struct replay *r, const char *text) __attribute__((warn_unused_result));
/* Adds the window saved in text to r's: the higher mark, and every id of either above it (ids
 * r recorded while the saved copy was out of reach stay). 0, -EINVAL (r unchanged), -ENOMEM. */
int replay_merge(struct replay *r, const char *text) __attribute__((warn_unused_result));

#endif
