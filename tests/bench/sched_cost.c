/* tests/bench/sched_cost.c - instructions per scheduling decision (admit, enqueue, dequeue) at 10,000 queued vs a bare binary heap, under callgrind. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valgrind/callgrind.h>

#include "agent/base/log.h"
#include "agent/infer/sched.h"

#define QUEUED 10000
#define ROUNDS 10000
#define MS 1000ull

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* --- the baseline: a bare binary min-heap of 64-bit keys ------------------- */
static uint64_t *bh;
static unsigned bn;

static __attribute__((noinline)) void bh_push(uint64_t k)
{
	unsigned i = bn++;
	while (i > 0) {
		unsigned p = (i - 1) / 2;
		if (bh[p] <= k)
			break;
		bh[i] = bh[p];
		i = p;
	}
	bh[i] = k;
}

static __attribute__((noinline)) uint64_t bh_pop(void)
{
	uint64_t top = bh[0], last = bh[--bn];
	unsigned i = 0;
	for (;;) {
		unsigned c = 2 * i + 1;
		if (c >= bn)
			break;
		if (c + 1 < bn && bh[c + 1] < bh[c])
			c++;
		if (last <= bh[c])
			break;
		bh[i] = bh[c];
		i = c;
	}
	if (bn)
		bh[i] = last;
	return top;
}

/* --- the scheduler ---------------------------------------------------------- */
static uint64_t running_id;
static uint64_t dispatched;

static void on_dispatch(void *arg, const struct sched_dispatch *d)
{
	(void)arg;
	running_id = d->id;
	dispatched++;
}

static void on_refuse(void *arg, const struct sched_dispatch *d, enum sched_refusal why)
{
	(void)arg;
	(void)d;
	fprintf(stderr, "sched_cost: unexpected refusal %s\n", sched_refusal_name(why));
	exit(1);
}

static uint64_t deadline_at(uint64_t now)
{
	/* spread over 200..400 s: all admitted (queued work is ~100 s), random heap positions */
	return now + 200000 * MS + xorshift() % (200000 * MS);
}

int main(int argc, char **argv)
{
	log_set_level(LOG_LEVEL_WRN);
	struct sched_params p;
	sched_params_default(&p, 1);
	p.policy = SCHED_EDF_ADMIT;
	if (argc > 1) {
		int pol = sched_policy_parse(argv[1]);
		if (pol < 0) {
			fprintf(stderr, "sched_cost: unknown policy '%s'\n", argv[1]);
			return 2;
		}
		p.policy = (enum sched_policy)pol;
	}
	/* argv[2]: divide the service times (edf-mc refuses lower classes when
	 * the measured urgent load leaves no capacity: with 1 ms between
	 * arrivals, 0.8..1.2 ms keeps the slot at a load of about 1) */
	uint32_t svc_div = argc > 2 ? (uint32_t)atoi(argv[2]) : 1;
	if (!svc_div)
		svc_div = 1;
	for (int c = 0; c < SLA_NCLASSES; c++)
		p.queue_cap[c] = CONFIG_SCHED_MAX_QUEUED;
	struct sched_callbacks cb = { .dispatch = on_dispatch, .refuse = on_refuse };
	struct sched *s = sched_create(&p, &cb);
	if (!s || CONFIG_SCHED_MAX_QUEUED < QUEUED + 1) {
		fprintf(stderr, "sched_cost: needs CONFIG_SCHED_MAX_QUEUED > %d (have %d)\n", QUEUED,
			CONFIG_SCHED_MAX_QUEUED);
		return 1;
	}
	int m = sched_model_add(s, "m", SCHED_EST_INITIAL_US / svc_div);
	if (m < 0 || sched_replica_add(s, m, 0, 1) < 0 || sched_replica_set_ready(s, m, 0, true, 0) < 0)
		return 1;
	uint64_t now = 1000 * MS;
	/* One request holds the only slot; QUEUED wait behind it. */
	for (int i = 0; i <= QUEUED; i++) {
		struct sched_req rq = { .model = m, .cls = (enum sla_class)(i % SLA_NCLASSES),
					.deadline_us = deadline_at(now) };
		if (sched_submit(s, &rq, now, NULL, NULL) < 0)
			return 1;
	}
	bh = calloc(QUEUED + 1, sizeof(*bh));
	if (!bh)
		return 1;
	for (int i = 0; i < QUEUED; i++)
		bh_push(deadline_at(now));

	/* Pre-draw the keys and service times so the RNG is outside both
	 * measured regions. Each completion reports a measured service time
	 * (8..12 ms), as the dispatcher does, so the estimator update is part
	 * of the decision. */
	uint64_t *keys = calloc(ROUNDS, sizeof(*keys));
	uint32_t *svc = calloc(ROUNDS, sizeof(*svc));
	if (!keys || !svc)
		return 1;
	for (int i = 0; i < ROUNDS; i++) {
		keys[i] = deadline_at(now + (uint64_t)i * MS);
		svc[i] = (uint32_t)(8 * MS + xorshift() % (4 * MS)) / svc_div;
	}

	/* One decision: a request arrives (admission + enqueue), the running one
	 * completes (estimator, counters, latency histogram) and the earliest
	 * deadline is dequeued and dispatched. */
	CALLGRIND_ZERO_STATS;
	CALLGRIND_TOGGLE_COLLECT;
	for (int i = 0; i < ROUNDS; i++) {
		now += MS;
		struct sched_req rq = { .model = m, .cls = (enum sla_class)(i % SLA_NCLASSES), .deadline_us = keys[i] };
		if (sched_submit(s, &rq, now, NULL, NULL) < 0 ||
		    sched_complete(s, running_id, SCHED_DONE_OK, svc[i], now) < 0)
			return 1;
	}
	CALLGRIND_TOGGLE_COLLECT;
	CALLGRIND_DUMP_STATS_AT("sched");

	uint64_t sink = 0;
	CALLGRIND_TOGGLE_COLLECT;
	for (int i = 0; i < ROUNDS; i++) {
		bh_push(keys[i]);
		sink += bh_pop();
	}
	CALLGRIND_TOGGLE_COLLECT;
	CALLGRIND_DUMP_STATS_AT("heap");

	printf("sched_cost: queued=%d rounds=%d dispatched=%llu sink=%llu\n", QUEUED, ROUNDS,
	       (unsigned long long)dispatched, (unsigned long long)(sink & 0xff));
	free(svc);
	free(keys);
	free(bh);
	sched_destroy(s);
	return 0;
}
