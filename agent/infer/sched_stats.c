/* agent/infer/sched_stats.c - sums and ratios over the scheduler's counters (read through its public calls). */
#include <math.h>
#include <string.h>

#include "agent/infer/sched.h"

double sched_compliance(const struct sched_class_stats *st)
{
	uint64_t decided = st->on_time + st->late + st->failed + sched_refused_total(st) + st->cancelled;
	return decided ? (double)st->on_time / (double)decided : 1.0;
}

uint64_t sched_refused_total(const struct sched_class_stats *st)
{
	uint64_t n = 0;
	for (int r = 1; r < SCHED_NREFUSALS; r++)
		n += st->refused[r];
	return n;
}

void sched_class_totals(const struct sched *s, struct sched_class_stats out[SLA_NCLASSES])
{
	memset(out, 0, sizeof(struct sched_class_stats) * SLA_NCLASSES);
	if (!s)
		return;
	for (int m = 0; m < SCHED_MAX_MODELS; m++) {
		struct sched_model_stats ms;
		if (sched_model_stats(s, m, &ms) < 0)
			continue;
		for (unsigned c = 0; c < SLA_NCLASSES; c++) {
			const struct sched_class_stats *a = &ms.cls[c];
			struct sched_class_stats *o = &out[c];
			o->offered += a->offered;
			o->on_time += a->on_time;
			o->late += a->late;
			o->failed += a->failed;
			for (unsigned r = 0; r < SCHED_NREFUSALS; r++)
				o->refused[r] += a->refused[r];
			o->cancelled += a->cancelled;
			o->retries += a->retries;
			o->preempted += a->preempted;
			for (unsigned b = 0; b < SCHED_LAT_NBUCKETS; b++)
				o->lat_bucket[b] += a->lat_bucket[b];
			o->lat_sum_us += a->lat_sum_us;
			o->service_sum_us += a->service_sum_us;
			o->queued += a->queued;
			o->running += a->running;
		}
	}
}

double sched_model_compliance(const struct sched *s, int model)
{
	struct sched_model_stats ms;
	if (!s || model < 0 || sched_model_stats(s, model, &ms) < 0)
		return NAN;
	uint64_t on_time = 0, decided = 0;
	for (unsigned c = 0; c < SLA_NCLASSES; c++) {
		on_time += ms.cls[c].on_time;
		decided += ms.cls[c].on_time + ms.cls[c].late + ms.cls[c].failed + sched_refused_total(&ms.cls[c]) +
			   ms.cls[c].cancelled;
	}
	return decided ? (double)on_time / (double)decided : NAN;
}
