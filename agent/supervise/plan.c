/* agent/supervise/plan.c - the supervisor's pure planner: removal, rolling update, scale down/up with draining, and missing replicas, decided from a snapshot. */
#include "agent/supervise/plan.h"

#include <string.h>

struct plan_out {
	struct plan_action *a;
	unsigned n, max;
};

static void emit(struct plan_out *o, enum plan_op op, unsigned slot, enum plan_why why)
{
	if (o->n >= o->max)
		return;
	o->a[o->n++] = (struct plan_action){ .op = op, .slot = slot, .why = why };
}

/* Counts toward the deployment: there, and neither going nor asked to go. */
static bool counted(const struct plan_replica *r)
{
	return r->st != SUP_R_EMPTY && r->intent == REPLICA_KEEP && r->st != SUP_R_REMOVING;
}

/* Decided to go: later decisions of this plan see it going. */
static void retire(struct plan_out *o, struct plan_replica *r, unsigned slot, enum plan_why why)
{
	emit(o, PLAN_RETIRE, slot, why);
	r->intent = REPLICA_RETIRE;
}

/* A removed deployment: every replica goes; forgotten once none is left. */
static void plan_removal(struct plan_dep *d, struct plan_out *o)
{
	bool any = false;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
		struct plan_replica *r = &d->r[i];
		if (r->st == SUP_R_EMPTY)
			continue;
		any = true;
		if (r->op == REPLICA_OP_NONE && r->intent == REPLICA_KEEP && r->st != SUP_R_REMOVING &&
		    r->st != SUP_R_CREATING)
			retire(o, r, i, PLAN_WHY_REMOVED);
	}
	if (!any)
		emit(o, PLAN_FORGET, 0, PLAN_WHY_REMOVED);
}

struct plan_counts {
	unsigned cur, old, ready;
};

/* Old replicas: the not-ready ones go at once (they serve nothing, once their
 * readiness probe had its say); a ready one goes only when one more than
 * desired is ready, so the ready count never drops during a roll. */
static void plan_roll(struct plan_dep *d, struct plan_counts *c, struct plan_out *o)
{
	const struct deploy_spec *sp = d->spec;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS && c->old; i++) {
		struct plan_replica *r = &d->r[i];
		if (!counted(r) || r->current || r->op != REPLICA_OP_NONE)
			continue;
		bool judged = r->st != SUP_R_RUNNING || r->probed || sp->readiness.kind == PROBE_NONE;
		if (!r->serving && judged && r->st != SUP_R_CREATING && r->st != SUP_R_STARTING) {
			retire(o, r, i, PLAN_WHY_ROLL_UNREADY);
			c->old--;
		} else if (r->serving && c->ready >= sp->replicas + 1) {
			retire(o, r, i, PLAN_WHY_ROLL);
			o->a[o->n - 1].ready = c->ready;
			c->old--;
			c->ready--;
		}
	}
}

/* Too many current replicas: draining first, then not serving, then the highest slot. */
static void plan_scale_down(struct plan_dep *d, struct plan_counts *c, struct plan_out *o)
{
	while (c->cur > d->spec->replicas) {
		int victim = -1, best = -1;
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
			const struct plan_replica *r = &d->r[i];
			if (!counted(r) || !r->current)
				continue;
			int score = (r->draining ? 4 : 0) + (r->serving ? 0 : 2);
			if (score >= best) {
				best = score;
				victim = (int)i;
			}
		}
		if (victim < 0)
			break;
		retire(o, &d->r[victim], (unsigned)victim, PLAN_WHY_SCALE_DOWN);
		c->cur--;
	}
}

/* Too few: a current replica still draining is kept before another is made. */
static void plan_unretire(struct plan_dep *d, struct plan_counts *c, struct plan_out *o)
{
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS && c->cur < d->spec->replicas; i++) {
		struct plan_replica *r = &d->r[i];
		if (r->intent != REPLICA_RETIRE || r->st != SUP_R_RUNNING || !r->current)
			continue;
		emit(o, PLAN_UNRETIRE, i, PLAN_WHY_NONE);
		r->intent = REPLICA_KEEP;
		c->cur++;
	}
}

/* Missing replicas: all at once, or one surge replica at a time while old
 * ones remain; one trial while the circuit is half-open; none while it is
 * open, the engine is away, the list is stale or a failed create backs off. */
static void plan_create(const struct plan_dep *d, const struct plan_world *w, struct plan_counts *c,
			struct plan_out *o)
{
	const struct deploy_spec *sp = d->spec;
	if (!w->list_fresh || !w->engine_up || w->now_ms < d->create_not_before_ms)
		return;
	if (d->circuit == SUP_CIRCUIT_OPEN)
		return;
	unsigned limit = c->old ? sp->replicas + 1 : sp->replicas;
	unsigned total = c->cur + c->old;
	unsigned slots = sp->replicas_max + 1 <= DEPLOY_MAX_REPLICAS ? sp->replicas_max + 1 : DEPLOY_MAX_REPLICAS;
	if (sp->replicas + 1 > slots)
		slots = sp->replicas + 1 <= DEPLOY_MAX_REPLICAS ? sp->replicas + 1 : DEPLOY_MAX_REPLICAS;
	if (d->circuit == SUP_CIRCUIT_HALF_OPEN && c->cur < sp->replicas)
		limit = total + 1;
	for (unsigned i = 0; i < slots && c->cur < sp->replicas && total < limit; i++) {
		const struct plan_replica *r = &d->r[i];
		if (r->st != SUP_R_EMPTY || r->calls)
			continue;
		emit(o, PLAN_CREATE, i, PLAN_WHY_NONE);
		o->a[o->n - 1].trial = d->circuit == SUP_CIRCUIT_HALF_OPEN;
		c->cur++;
		total++;
	}
}

unsigned plan_deployment(const struct plan_dep *in, const struct plan_world *w, struct plan_action *out,
			 unsigned max)
{
	struct plan_out o = { out, 0, max };
	if (!w->applied || !w->engine_up)
		return 0;
	struct plan_dep d = *in; /* decisions mark replicas in this copy */
	/* Replicas left in back-off while the engine was away restart now. */
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
		const struct plan_replica *r = &d.r[i];
		if (r->st == SUP_R_BACKOFF && r->op == REPLICA_OP_NONE && !r->restart_armed &&
		    d.circuit == SUP_CIRCUIT_CLOSED)
			emit(&o, PLAN_RESTART, i, PLAN_WHY_NONE);
	}
	if (d.removing) {
		plan_removal(&d, &o);
		return o.n;
	}
	struct plan_counts c = { 0, 0, 0 };
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
		const struct plan_replica *r = &d.r[i];
		if (!counted(r))
			continue;
		if (r->current)
			c.cur++;
		else
			c.old++;
		if (r->serving)
			c.ready++;
	}
	if (d.image_pending) {
		plan_scale_down(&d, &c, &o);
		return o.n;
	}
	plan_roll(&d, &c, &o);
	plan_scale_down(&d, &c, &o);
	plan_unretire(&d, &c, &o);
	plan_create(&d, w, &c, &o);
	return o.n;
}

const char *plan_op_name(enum plan_op op)
{
	switch (op) {
	case PLAN_RESTART: return "restart";
	case PLAN_RETIRE: return "retire";
	case PLAN_UNRETIRE: return "unretire";
	case PLAN_CREATE: return "create";
	case PLAN_FORGET: return "forget";
	default: return "?";
	}
}

const char *plan_why_name(enum plan_why why)
{
	switch (why) {
	case PLAN_WHY_REMOVED: return "removed";
	case PLAN_WHY_ROLL_UNREADY: return "roll";
	case PLAN_WHY_ROLL: return "roll";
	case PLAN_WHY_SCALE_DOWN: return "scale_down";
	case PLAN_WHY_NONE: return "none";
	default: return "?";
	}
}
