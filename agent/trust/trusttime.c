/* agent/trust/trusttime.c - trusted time: the wall clock floored by the newest verified signed time (pure). */
#include "agent/trust/trusttime.h"

int64_t trusttime_now(const struct trusttime *t, int64_t wall_ms)
{
	return wall_ms > t->floor_ms ? wall_ms : t->floor_ms;
}

bool trusttime_observe(struct trusttime *t, int64_t signed_ms)
{
	if (signed_ms <= t->floor_ms)
		return false;
	t->floor_ms = signed_ms;
	return true;
}
