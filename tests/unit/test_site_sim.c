/* tests/unit/test_site_sim.c - a simulated site in virtual time: berth's site code over libraft's in-memory fixture, with datagram loss, partitions and kills. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/loop.h"
#include "agent/model/config.h"
#include "agent/model/deploy.h"
#include "agent/site/consensus.h"
#include "agent/site/consensus_sim.h"
#include "agent/site/site.h"
#include "ports/sim/sim.h"

/*
 * The site logic (site.c, sitestate.c, placement.c, siteconf.c) is the core's own; only the
 * consensus module is replaced, at link time, by agent/site/consensus_sim.c: the same interface
 * over raft/fixture.h (libraft's deterministic in-memory cluster, the same Raft code berthd runs),
 * its time driven by the sim port's virtual clock. Datagrams (heartbeats, forwards) go through
 * its queue with a latency, a seeded loss rate and partitions (berth-sim --site uses the same).
 */

#define N 3               /* founding members */
#define NMAX 4            /* with one that joins */
#define STEP_MS 5

/* --- the simulated site ----------------------------------------------------------- */

struct member {
	struct site *site;
	struct deploy_set desired, local;
	unsigned runs;          /* replicas of det this member runs (its supervisor, instantly) */
};

static struct member M[NMAX];
static struct loop *L;

static const char *const deployments =
	"{\"version\":1,\"deployments\":[{\"name\":\"det\",\"image\":\"i\",\"resources\":{\"cpu\":\"100m\","
	"\"memory\":\"32Mi\"},\"sla\":{\"class\":\"urgent\"},\"placement\":{\"scope\":\"site\",\"replicas\":2,"
	"\"spread\":true}},{\"name\":\"edge\",\"image\":\"i\",\"inference\":{\"port\":9000}}]}";

static void reapply(void *arg)
{
	struct member *m = arg;
	(void)site_filter(m->site, &m->desired, &m->local);
	const struct deploy_spec *d = deploy_find(&m->local, "det");
	m->runs = d ? d->replicas : 0;
}

static uint64_t now_ms(void) { return loop_now_ms(L); }
static struct consensus *C(unsigned i) { return consensus_sim_get(i); }

static void step(void)
{
	sim_clock_advance_ms(STEP_MS);
	consensus_sim_step(now_ms());
	(void)loop_run_once(L, 0);
}

static void run_ms(unsigned ms)
{
	for (unsigned t = 0; t < ms; t += STEP_MS)
		step();
}

static unsigned total_runs(void)
{
	unsigned t = 0;
	for (unsigned i = 0; i < consensus_sim_n(); i++)
		t += consensus_sim_dead(i) ? 0 : M[i].runs;
	return t;
}

/* Gateway i (gw<i+1>): a founding member for i < N, else one that joins (site.address). */
static void add_member(unsigned i)
{
	static struct berth_config cfg;
	struct config_error err;
	char text[512], addr[64] = "";
	if (i >= N)
		snprintf(addr, sizeof(addr), ",\"address\":\"10.0.0.%u:7400\"", i + 1);
	snprintf(text, sizeof(text),
		 "{\"device_id\":\"gw%u\",\"data_dir\":\"/tmp/unused\",\"site\":{\"enabled\":true,"
		 "\"members\":\"gw1=10.0.0.1:7400,gw2=10.0.0.2:7400,gw3=10.0.0.3:7400\"%s}}",
		 i + 1, addr);
	assert_int_equal(config_parse(text, strlen(text), &cfg, &err), 0);
	struct deploy_error de;
	assert_int_equal(deploy_parse(deployments, strlen(deployments), &M[i].desired, &de), 0);
	struct site_deps sd = { .loop = L, .reapply = reapply, .arg = &M[i] };
	M[i].site = site_create(&sd, &cfg);
	assert_non_null(M[i].site);
	reapply(&M[i]); /* the desired state arrives (actions -> site_filter) */
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(consensus_sim_init(N, 0x9e3779b97f4a7c15ull), 0);
	struct hal_node_stats ns = { .ncpu = 2, .mem_total_bytes = 2ull << 30 };
	sim_sys_set_node(&ns);
	L = loop_create();
	assert_non_null(L);
	for (unsigned i = 0; i < N; i++)
		add_member(i);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (unsigned i = 0; i < consensus_sim_n(); i++)
		site_destroy(M[i].site);
	memset(M, 0, sizeof(M));
	loop_destroy(L);
	consensus_sim_close();
	return 0;
}

/* Until every live member holds the lease and det runs twice, spread. */
static bool settled(void)
{
	for (unsigned i = 0; i < N; i++)
		if (!consensus_sim_dead(i) && !consensus_sim_is_cut(i) && (!site_lease_held(M[i].site) || M[i].runs > 1))
			return false;
	return total_runs() == 2;
}

static unsigned settle(unsigned max_ms)
{
	unsigned t = 0;
	while (!settled() && t < max_ms) {
		step();
		t += STEP_MS;
	}
	assert_true(settled());
	return t;
}

static int holder(int skip)
{
	for (int i = 0; i < N; i++)
		if (i != skip && !consensus_sim_dead(i) && M[i].runs)
			return i;
	return -1;
}

static int spare(void)
{
	for (int i = 0; i < N; i++)
		if (!consensus_sim_dead(i) && !M[i].runs)
			return i;
	return -1;
}

static void converges_spread_with_a_leader(void **state)
{
	(void)state;
	unsigned t = settle(15000);
	print_message("settled after %u ms of virtual time\n", t);
	int leader = consensus_leader(C(0));
	assert_true(leader >= 0);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(consensus_leader(C(i)), leader);
		const struct deploy_spec *e = deploy_find(&M[i].local, "edge");
		assert_non_null(e); /* node-scoped: everywhere */
	}
	char view[4096];
	assert_true(site_report_json(M[leader].site, view, sizeof(view)) > 0);
	assert_non_null(strstr(view, "\"lease\":true"));
}

/* Virtual time at which a member stops/starts running det, at STEP_MS resolution. */
static void partition_then_heal(unsigned loss_pct)
{
	settle(15000);
	consensus_sim_set_loss(loss_pct);
	int v = holder(-1), s = spare();
	assert_true(v >= 0 && s >= 0);
	consensus_sim_cut((unsigned)v, true);
	int keep = holder(v);
	assert_true(keep >= 0);
	uint64_t t0 = now_ms(), t_stop = 0, t_start = 0;
	while (now_ms() - t0 < 15000 && (!t_stop || !t_start)) {
		step();
		if (!t_stop && !M[v].runs)
			t_stop = now_ms() - t0;
		if (!t_start && M[s].runs)
			t_start = now_ms() - t0;
		/* the majority's holder keeps its replica; the replacement never starts before the
		 * cut-off member has stopped its own (no double run) */
		assert_int_equal(M[keep].runs, 1);
		assert_true(!M[s].runs || !M[v].runs);
	}
	print_message("loss %u%%: minority stopped at %llu ms, replacement at %llu ms\n", loss_pct,
		      (unsigned long long)t_stop, (unsigned long long)t_start);
	assert_true(t_stop > 0 && t_stop <= 2000 + 2 * 250);
	assert_true(t_start > 0 && t_start >= t_stop);
	assert_true(t_start <= 3000 + 2000);
	assert_false(site_lease_held(M[v].site));
	/* heal: the cut-off member comes back and runs nothing (its replica moved) */
	consensus_sim_cut((unsigned)v, false);
	run_ms(5000);
	assert_true(site_lease_held(M[v].site));
	assert_int_equal(M[v].runs, 0);
	assert_int_equal(total_runs(), 2);
}

static void partition_moves_the_replica_within_the_lease(void **state)
{
	(void)state;
	partition_then_heal(0);
}

static void datagram_loss_does_not_break_the_bound(void **state)
{
	(void)state;
	partition_then_heal(20);
	print_message("datagrams lost: %llu\n", (unsigned long long)consensus_sim_dropped());
}

static void leader_killed_a_new_one_moves_its_replica(void **state)
{
	(void)state;
	settle(15000);
	int leader = consensus_leader(C(0));
	if (!M[leader].runs) { /* make the leader a holder: kill a holder that leads, else any holder */
		leader = holder(-1);
	}
	bool was_leader = leader == consensus_leader(C(0));
	/* slow disks: the new leader's barrier takes longer than a site tick, so a lease
	 * that waited for it would be seen dropping */
	consensus_sim_set_disk_latency(400);
	int other = holder(leader);
	assert_true(other >= 0);
	consensus_sim_kill((unsigned)leader);
	M[leader].runs = 0; /* the whole member is gone, its containers with it */
	uint64_t t0 = now_ms();
	unsigned t = 0;
	while (total_runs() < 2 && t < 15000) {
		step();
		t += STEP_MS;
		/* the surviving holder keeps its replica through the election (no bounce) */
		assert_int_equal(M[other].runs, 1);
		assert_true(site_lease_held(M[other].site));
	}
	print_message("%s gw%d killed; replacement after %llu ms\n", was_leader ? "leader" : "holder", leader + 1,
		      (unsigned long long)(now_ms() - t0));
	assert_int_equal(total_runs(), 2);
	assert_true(now_ms() - t0 <= 3000 + 2500);
	int nl = -1;
	for (unsigned i = 0; i < N; i++)
		if (!consensus_sim_dead(i)) {
			assert_int_equal(M[i].runs, 1);
			nl = consensus_leader(C(i));
			assert_true(nl >= 0 && nl != leader);
		}
}

/* A fourth gateway joins by a command given to a follower; then a member holding a det replica
 * leaves by command: its replica moves, it runs nothing, and the Raft configuration follows. */
static void join_then_leave_by_command(void **state)
{
	(void)state;
	char why[200], view[4096];
	settle(15000);
	add_member(3);
	int leader = consensus_leader(C(0));
	unsigned f = (unsigned)(leader + 1) % N;
	static const struct { const char *id, *addr; int rc; } bad[] = {
		{ "gw2", "10.0.0.9:7400", -EEXIST }, { "gw9", "10.0.0.1:7400", -EEXIST },
		{ "gw9", "10.0.0.9", -EINVAL }, { "gw9", NULL, -ENOENT },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(site_member_request(M[f].site, bad[i].id, bad[i].addr, why, sizeof(why)), bad[i].rc);
		print_message("refused %s %s: %s\n", bad[i].id, bad[i].addr ? bad[i].addr : "(leave)", why);
	}
	assert_int_equal(site_member_request(M[f].site, "gw4", "10.0.0.4:7400", why, sizeof(why)), 0);
	assert_int_equal(site_member_request(M[f].site, "gw5", "10.0.0.5:7400", why, sizeof(why)), -EAGAIN);
	uint64_t t0 = now_ms();
	while (!site_lease_held(M[3].site) && now_ms() - t0 < 15000)
		step();
	print_message("gw4 joined and holds the lease after %llu ms\n", (unsigned long long)(now_ms() - t0));
	assert_true(site_lease_held(M[3].site));
	assert_int_equal(consensus_sim_config_n((unsigned)leader), 4);
	for (unsigned i = 0; i < 4; i++) {
		assert_true(site_report_json(M[i].site, view, sizeof(view)) > 0);
		assert_non_null(strstr(view, "\"id\":\"gw4\",\"address\":\"10.0.0.4:7400\""));
	}
	assert_int_equal(total_runs(), 2);
	/* a det holder that does not lead leaves, asked of another member */
	int h = -1;
	for (int i = 0; i < N && h < 0; i++)
		if (M[i].runs && i != leader)
			h = i;
	assert_true(h >= 0);
	unsigned asker = (unsigned)leader == (unsigned)(h + 1) % N ? (unsigned)(h + 2) % N : (unsigned)(h + 1) % N;
	char hid[8];
	snprintf(hid, sizeof(hid), "gw%d", h + 1);
	assert_int_equal(site_member_request(M[asker].site, hid, NULL, why, sizeof(why)), 0);
	t0 = now_ms();
	uint64_t both = 0;
	while ((M[h].runs || total_runs() != 2) && now_ms() - t0 < 15000) {
		step();
		if (total_runs() > 2)
			both += STEP_MS;
	}
	print_message("%s left: its replica moved after %llu ms, ran twice for %llu ms\n", hid,
		      (unsigned long long)(now_ms() - t0), (unsigned long long)both);
	assert_int_equal(M[h].runs, 0);
	assert_int_equal(total_runs(), 2);
	assert_true(both <= 200); /* the leaving member stops as it applies L, the new owner starts as it does */
	run_ms(3000);
	assert_int_equal(consensus_sim_config_n((unsigned)leader), 3);
	assert_false(site_lease_held(M[h].site));
	assert_true(site_report_json(M[h].site, view, sizeof(view)) > 0);
	assert_non_null(strstr(view, "\"member\":false"));
	/* leaving again, or a leave that leaves one member: refused */
	assert_int_equal(site_member_request(M[asker].site, hid, NULL, why, sizeof(why)), -ENOENT);
	print_message("refused leave of %s again: %s\n", hid, why);
	/* the leader itself leaves: it hands leadership to a member, which removes it; nothing is lost */
	char lid[16];
	snprintf(lid, sizeof(lid), "gw%u", (unsigned)leader % 10u + 1u);
	assert_int_equal(site_member_request(M[asker].site, lid, NULL, why, sizeof(why)), 0);
	t0 = now_ms();
	int nl = leader;
	while ((nl == leader || nl < 0 || M[leader].runs || total_runs() != 2) && now_ms() - t0 < 15000) {
		step();
		nl = consensus_leader(C(asker));
		assert_true(total_runs() - M[leader].runs <= 2);
	}
	print_message("leader %s left: gw%d leads after %llu ms\n", lid, nl + 1, (unsigned long long)(now_ms() - t0));
	assert_true(nl >= 0 && nl != leader && nl != h);
	assert_int_equal(M[leader].runs, 0);
	run_ms(3000);
	assert_int_equal(total_runs(), 2);
	assert_int_equal(consensus_sim_config_n((unsigned)nl), 2);
	assert_true(site_lease_held(M[nl].site));
	/* two members left: a leave that would leave one is refused */
	assert_int_equal(site_member_request(M[nl].site, "gw4", NULL, why, sizeof(why)), -EBUSY);
	print_message("refused: %s\n", why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(converges_spread_with_a_leader, setup, teardown),
		cmocka_unit_test_setup_teardown(partition_moves_the_replica_within_the_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(datagram_loss_does_not_break_the_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(leader_killed_a_new_one_moves_its_replica, setup, teardown),
		cmocka_unit_test_setup_teardown(join_then_leave_by_command, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
