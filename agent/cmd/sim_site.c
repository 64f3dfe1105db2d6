/* agent/cmd/sim_site.c - berth-sim --site N: a site of simulated gateways in virtual time, with berthd's own site code over libraft's fixture. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/cmd/sim_args.h"
#include "agent/model/config.h"
#include "agent/model/deploy.h"
#include "agent/site/consensus.h"
#include "agent/site/consensus_sim.h"
#include "agent/site/site.h"
#include "hal/sys.h"
#include "ports/sim/sim.h"

/*
 * Every gateway runs berthd's site code (site.c, sitestate.c, placement.c, siteconf.c) with its
 * consensus module linked to consensus_sim.c: libraft's in-memory fixture (the Raft code berthd
 * runs) and a simulated LAN (delay, seeded loss, partitions, kills). A gateway "runs" what
 * site_filter() gives it, at once (no engine): what is measured is the site's decisions.
 * Faults come from --at T:kill|cut|heal:I; --joiners J more gateways start outside the site
 * (site.address) and --at T:join:I / T:leave:I asks a live member to add or remove gateway I, as
 * the console's site_join / site_leave would. Printed: every change of leader, lease and what a
 * gateway runs, each failover's time (fault or leave to the replicas all running again on the
 * others), then a RESULT line.
 */

#define SS_STEP_MS 5u
#define SS_MAX_FAULTS 32
#define SS_DEP "det"

struct ss_fault {
	uint64_t at_ms;
	enum { SS_KILL, SS_CUT, SS_HEAL, SS_JOIN, SS_LEAVE } what;
	unsigned gw;                   /* 0-based */
};

struct ss_gw {
	struct site *site;
	struct deploy_set desired, local;
	unsigned runs;                 /* replicas of SS_DEP it runs now */
	bool lease;
	int leader;                    /* slot it believes leads, -1 */
	bool left;                     /* a leave was asked for it: not counted on the majority's side */
};

struct ss {
	unsigned n, total, replicas, delay_ms, loss_pct, failover_ms, lease_ms, duration_s; /* founders, all */
	uint64_t seed;
	bool verbose;
	struct ss_fault f[SS_MAX_FAULTS];
	unsigned nf, next_f;
	struct ss_gw g[CONSENSUS_SIM_MAX];
	struct loop *loop;
	/* figures */
	uint64_t fault_ms;             /* the open failover's fault time; 0: none open */
	bool open;
	uint64_t failover[SS_MAX_FAULTS];
	unsigned nfailover;
	uint64_t double_ms, leader_changes;
};

static void ss_reapply(void *arg)
{
	struct ss_gw *g = arg;
	(void)site_filter(g->site, &g->desired, &g->local);
	const struct deploy_spec *d = deploy_find(&g->local, SS_DEP);
	g->runs = d ? d->replicas : 0;
}

static int ss_usage(const char *why)
{
	if (why)
		fprintf(stderr, "berth-sim: %s\n", why);
	fprintf(stderr, "usage: berth-sim --site N [--joiners J] [--replicas R] [--duration-s S] [--seed X]\n"
			"         [--delay-ms D] [--loss-pct P] [--failover-ms F] [--lease-ms L]\n"
			"         [--at T:kill|cut|heal|join|leave:I]... [--verbose]\n"
			"  N gateways (2..%d) found a site, J more start outside it; a site deployment of R replicas\n"
			"  (spread) is placed; --at 10:cut:1 cuts gateway 1 off at 10 s (heal ends it), kill removes\n"
			"  it for good, join/leave asks a member to add or remove it (site_join, site_leave).\n",
		CONSENSUS_SIM_MAX);
	return why ? 2 : 0;
}

static int ss_num(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int ss_fault(struct ss *s, const char *arg)
{
	char what[8];
	unsigned t, gw;
	if (s->nf == SS_MAX_FAULTS || sscanf(arg, "%u:%7[a-z]:%u", &t, what, &gw) != 3 || gw < 1 ||
	    gw > CONSENSUS_SIM_MAX)
		return -EINVAL;
	struct ss_fault *f = &s->f[s->nf];
	static const char *const names[] = { "kill", "cut", "heal", "join", "leave" };
	f->what = 99;
	for (unsigned k = 0; k < 5; k++)
		if (!strcmp(what, names[k]))
			f->what = k;
	if ((int)f->what == 99 || (s->nf && t * 1000ull < s->f[s->nf - 1].at_ms))
		return -EINVAL;
	f->at_ms = t * 1000ull;
	f->gw = gw - 1;
	s->nf++;
	return 0;
}

static int ss_args(struct ss *s, int argc, char **argv)
{
	*s = (struct ss){ .replicas = 2, .delay_ms = 2, .failover_ms = 3000, .lease_ms = 2000, .duration_s = 60,
			  .seed = 1 };
	if (argc < 3 || ss_num(argv[2], 2, CONSENSUS_SIM_MAX, &s->n))
		return ss_usage("--site N: N must be 2..5");
	for (int i = 3; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned x = 0;
		int rc = -EINVAL;
		if (!strcmp(o, "--verbose")) {
			s->verbose = true;
			continue;
		}
		if (!strcmp(o, "--help"))
			return ss_usage(NULL) - 1;
		if (!v)
			return ss_usage("an option needs a value");
		if (!strcmp(o, "--replicas"))
			rc = ss_num(v, 1, DEPLOY_MAX_REPLICAS - 1, &s->replicas);
		else if (!strcmp(o, "--duration-s"))
			rc = ss_num(v, 1, 86400, &s->duration_s);
		else if (!strcmp(o, "--seed"))
			rc = ss_num(v, 0, 0xffffffffu, &x), s->seed = x;
		else if (!strcmp(o, "--delay-ms"))
			rc = ss_num(v, 0, 10000, &s->delay_ms);
		else if (!strcmp(o, "--loss-pct"))
			rc = ss_num(v, 0, 100, &s->loss_pct);
		else if (!strcmp(o, "--failover-ms"))
			rc = ss_num(v, 500, 60000, &s->failover_ms);
		else if (!strcmp(o, "--lease-ms"))
			rc = ss_num(v, 200, 60000, &s->lease_ms);
		else if (!strcmp(o, "--joiners"))
			rc = ss_num(v, 0, CONSENSUS_SIM_MAX - s->n, &s->total);
		else if (!strcmp(o, "--at"))
			rc = ss_fault(s, v);
		else
			return ss_usage("unknown option");
		if (rc) {
			fprintf(stderr, "berth-sim: %s %s: out of range or malformed\n", o, v);
			return 2;
		}
		i++;
	}
	s->total += s->n; /* --joiners counted */
	for (unsigned k = 0; k < s->nf; k++)
		if (s->f[k].gw >= s->total) {
			fprintf(stderr, "berth-sim: --at: there is no gateway %u (%u gateways)\n", s->f[k].gw + 1, s->total);
			return 2;
		}
	return 0;
}

static int ss_start(struct ss *s)
{
	static const char dep_fmt[] =
		"{\"version\":1,\"deployments\":[{\"name\":\"" SS_DEP "\",\"image\":\"i\",\"resources\":{\"cpu\":"
		"\"100m\",\"memory\":\"32Mi\"},\"sla\":{\"class\":\"urgent\"},\"placement\":{\"scope\":\"site\","
		"\"replicas\":%u,\"spread\":true}}]}";
	char members[256] = "", text[1024], deps[512];
	for (unsigned i = 0; i < s->n; i++)
		snprintf(members + strlen(members), sizeof(members) - strlen(members), "%sgw%u=10.0.0.%u:7400", i ? "," : "",
			 i + 1, i + 1);
	snprintf(deps, sizeof(deps), dep_fmt, s->replicas);
	struct hal_node_stats ns = { .ncpu = 2, .mem_total_bytes = 2ull << 30 };
	sim_sys_set_node(&ns);
	if (consensus_sim_init(s->n, s->seed) || !(s->loop = loop_create()))
		return -ENOMEM;
	consensus_sim_set_delay(s->delay_ms);
	consensus_sim_set_loss(s->loss_pct);
	for (unsigned i = 0; i < s->total; i++) {
		static struct berth_config cfg;
		struct config_error err;
		struct deploy_error de;
		char addr[48] = "";
		if (i >= s->n) /* outside site.members: it joins by command */
			snprintf(addr, sizeof(addr), ",\"address\":\"10.0.0.%u:7400\"", i + 1);
		snprintf(text, sizeof(text),
			 "{\"device_id\":\"gw%u\",\"data_dir\":\"/nonexistent\",\"site\":{\"enabled\":true,\"members\":\"%s\"%s,"
			 "\"failover_ms\":%u,\"lease_ms\":%u,\"election_timeout_ms\":%u}}",
			 i + 1, members, addr, s->failover_ms, s->lease_ms, s->lease_ms < 1000 ? s->lease_ms : 1000);
		if (config_parse(text, strlen(text), &cfg, &err)) {
			fprintf(stderr, "berth-sim: %s: %s\n", err.key, err.message);
			return -EINVAL;
		}
		if (deploy_parse(deps, strlen(deps), &s->g[i].desired, &de))
			return -EINVAL;
		struct site_deps sd = { .loop = s->loop, .reapply = ss_reapply, .arg = &s->g[i] };
		if (!(s->g[i].site = site_create(&sd, &cfg)))
			return -EIO;
		s->g[i].leader = -1;
		ss_reapply(&s->g[i]);
	}
	return 0;
}

static double ss_t(const struct ss *s) { return (double)loop_now_ms(s->loop) / 1000.0; }

/* site_join / site_leave of gateway f->gw, asked of the first live member not cut off. */
static void ss_membership(struct ss *s, const struct ss_fault *f)
{
	char id[16], addr[32], why[200] = "";
	snprintf(id, sizeof(id), "gw%u", f->gw + 1);
	snprintf(addr, sizeof(addr), "10.0.0.%u:7400", f->gw + 1);
	int rc = -ENOENT;
	for (unsigned i = 0; i < s->total && rc == -ENOENT; i++) {
		if (i == f->gw || consensus_sim_dead(i) || consensus_sim_is_cut(i) || s->g[i].left ||
		    !site_lease_held(s->g[i].site))
			continue;
		rc = site_member_request(s->g[i].site, id, f->what == SS_JOIN ? addr : NULL, why, sizeof(why));
		printf("t=%.3f %s %s asked of gw%u: %s%s\n", ss_t(s), f->what == SS_JOIN ? "site_join" : "site_leave", id,
		       i + 1, rc ? "refused: " : "requested", why);
		if (rc == 0 && f->what == SS_LEAVE && !s->open) {
			s->g[f->gw].left = true;
			s->open = true;
			s->fault_ms = loop_now_ms(s->loop);
		}
		if (rc == -ENOENT)
			rc = 1; /* asked: an unknown member is an answer too */
	}
	if (rc == -ENOENT)
		printf("t=%.3f %s %s: no member holds the lease to ask\n", ss_t(s),
		       f->what == SS_JOIN ? "site_join" : "site_leave", id);
}

static void ss_apply_fault(struct ss *s, const struct ss_fault *f)
{
	static const char *const names[] = { "kill", "cut", "heal" };
	if (f->what == SS_JOIN || f->what == SS_LEAVE) {
		ss_membership(s, f);
		return;
	}
	printf("t=%.3f fault: %s gw%u\n", ss_t(s), names[f->what], f->gw + 1);
	if (f->what == SS_KILL) {
		consensus_sim_kill(f->gw);
		s->g[f->gw].runs = 0; /* the gateway is gone, its containers with it */
	} else {
		consensus_sim_cut(f->gw, f->what == SS_CUT);
	}
	if (f->what != SS_HEAL && !s->open) {
		s->open = true;
		s->fault_ms = loop_now_ms(s->loop);
	}
}

/* Replicas running where the majority is (live, not cut off), and everywhere alive. */
static void ss_count(const struct ss *s, unsigned *majority, unsigned *all)
{
	*majority = *all = 0;
	for (unsigned i = 0; i < s->total; i++) {
		if (consensus_sim_dead(i))
			continue;
		*all += s->g[i].runs;
		if (!consensus_sim_is_cut(i) && !s->g[i].left)
			*majority += s->g[i].runs;
	}
}

static void ss_observe(struct ss *s)
{
	for (unsigned i = 0; i < s->total; i++) {
		struct ss_gw *g = &s->g[i];
		if (consensus_sim_dead(i))
			continue;
		bool lease = site_lease_held(g->site);
		int leader = consensus_leader(consensus_sim_get(i));
		if (lease != g->lease)
			printf("t=%.3f gw%u %s the lease\n", ss_t(s), i + 1, lease ? "holds" : "lost");
		if (leader != g->leader && leader >= 0 && (unsigned)leader == i) {
			printf("t=%.3f gw%u leads\n", ss_t(s), i + 1);
			s->leader_changes++;
		}
		g->lease = lease;
		g->leader = leader;
	}
	static unsigned last[CONSENSUS_SIM_MAX];
	for (unsigned i = 0; i < s->total; i++)
		if (s->g[i].runs != last[i]) {
			printf("t=%.3f gw%u runs %s x%u\n", ss_t(s), i + 1, SS_DEP, s->g[i].runs);
			last[i] = s->g[i].runs;
		}
	unsigned maj, all;
	ss_count(s, &maj, &all);
	if (all > s->replicas)
		s->double_ms += SS_STEP_MS;
	if (s->open && maj >= s->replicas) {
		uint64_t ms = loop_now_ms(s->loop) - s->fault_ms;
		printf("t=%.3f failover: %u replicas run on the majority again, %" PRIu64 " ms after the fault or leave\n", ss_t(s),
		       maj, ms);
		if (s->nfailover < SS_MAX_FAULTS)
			s->failover[s->nfailover++] = ms;
		s->open = false;
	}
}

static int ss_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int sim_site_main(int argc, char **argv)
{
	struct ss *s = calloc(1, sizeof(*s));
	int rc = s ? ss_args(s, argc, argv) : 1;
	if (rc) {
		free(s);
		return rc < 0 ? 0 : rc;
	}
	log_set_level(s->verbose ? LOG_LEVEL_INF : LOG_LEVEL_ERR);
	printf("site: %u gateways (%u join later), %s %u replicas spread, failover %u ms, lease %u ms, delay %u ms, loss %u%%, seed %" PRIu64
	       "\n", s->n, s->total - s->n, SS_DEP, s->replicas, s->failover_ms, s->lease_ms, s->delay_ms, s->loss_pct, s->seed);
	if ((rc = ss_start(s)) == 0) {
		uint64_t end = (uint64_t)s->duration_s * 1000u;
		while (loop_now_ms(s->loop) < end) {
			sim_clock_advance_ms(SS_STEP_MS);
			while (s->next_f < s->nf && s->f[s->next_f].at_ms <= loop_now_ms(s->loop))
				ss_apply_fault(s, &s->f[s->next_f++]);
			consensus_sim_step(loop_now_ms(s->loop));
			(void)loop_run_once(s->loop, 0);
			ss_observe(s);
		}
		qsort(s->failover, s->nfailover, sizeof(s->failover[0]), ss_cmp);
		unsigned maj, all;
		ss_count(s, &maj, &all);
		printf("RESULT sim=site gateways=%u events=%u failovers=%u failover_ms_p50=%" PRIu64
		       " failover_ms_max=%" PRIu64 " double_run_ms=%" PRIu64 " leader_changes=%" PRIu64
		       " running_end=%u unrecovered=%u dgram_dropped=%" PRIu64 "\n",
		       s->n, s->nf, s->nfailover, s->nfailover ? s->failover[s->nfailover / 2] : 0,
		       s->nfailover ? s->failover[s->nfailover - 1] : 0, s->double_ms, s->leader_changes, maj,
		       s->open ? 1u : 0u, consensus_sim_dropped());
	}
	for (unsigned i = 0; i < s->total; i++)
		site_destroy(s->g[i].site);
	loop_destroy(s->loop);
	consensus_sim_close();
	free(s);
	return rc ? 1 : 0;
}
