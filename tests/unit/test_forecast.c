/* tests/unit/test_forecast.c - the request-rate forecaster on known series, its fallback, scoring and persistence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/scale/forecast.h"

#define BUCKET_S 60u
#define BUCKET_MS (BUCKET_S * 1000u)

/* Feeds bucket k with y requests, then closes it. */
static void feed(struct forecast *f, uint64_t k, uint32_t y)
{
	forecast_observe(f, k * BUCKET_MS + 10, y);
	forecast_advance(f, (k + 1) * BUCKET_MS);
}

static struct forecast *make(uint32_t season_s, uint32_t horizon)
{
	struct forecast_params p = { .bucket_s = BUCKET_S, .season_s = season_s, .horizon = horizon,
				     .alpha = 0, .beta = -1, .gamma = -1 };
	struct forecast *f = forecast_create(&p, 0);
	assert_non_null(f);
	return f;
}

static void constant_series_forecasts_the_constant(void **state)
{
	struct forecast *f = make(86400, 2);
	for (uint64_t k = 0; k < 50; k++)
		feed(f, k, 100);
	assert_float_equal(forecast_predict(f, 1), 100.0, 1e-6);
	assert_float_equal(forecast_predict(f, 5), 100.0, 1e-6);
	assert_float_equal(forecast_peak_rate(f, 3), 100.0 / BUCKET_S, 1e-6);
	struct forecast_stats st;
	forecast_get_stats(f, &st);
	assert_int_equal(st.buckets, 50);
	assert_int_equal(st.scored, 48);
	assert_float_equal(st.abs_err_model, 0.0, 1e-9);
	assert_int_equal(st.using_naive, 0);
	forecast_destroy(f);
}

static void linear_ramp_is_extrapolated(void **state)
{
	struct forecast *f = make(86400, 1);
	for (uint64_t k = 0; k < 300; k++)
		feed(f, k, (uint32_t)(10 + 5 * k));
	/* last bucket 299 held 1505; the next ones 1510, 1515, ... */
	assert_float_equal(forecast_predict(f, 1), 1510.0, 0.5);
	assert_float_equal(forecast_predict(f, 4), 1525.0, 0.5);
	struct forecast_stats st;
	forecast_get_stats(f, &st);
	assert_int_equal(st.using_naive, 0);
	assert_true(st.mase < 0.5);
	forecast_destroy(f);
}

static double sine(uint64_t k) { return 100.0 + 50.0 * sin(2 * M_PI * (double)(k % 24) / 24.0); }

static void daily_sine_is_learnt_after_one_day(void **state)
{
	/* 24 buckets of one hour per day. */
	struct forecast_params p = { .bucket_s = 3600, .season_s = 86400, .horizon = 1, .beta = -1, .gamma = -1 };
	struct forecast *f = forecast_create(&p, 0);
	assert_non_null(f);
	struct forecast_stats st;
	for (uint64_t k = 0; k < 24 * 3; k++) {
		forecast_observe(f, k * 3600000u + 1, (uint32_t)lround(sine(k)));
		forecast_advance(f, (k + 1) * 3600000u);
		forecast_get_stats(f, &st);
		assert_int_equal(st.seasonal, k >= 23);
	}
	/* Next buckets are 72 (= phase 0), 73, ... */
	for (uint32_t h = 1; h <= 6; h++)
		assert_float_equal(forecast_predict(f, h), sine(72 + h - 1), 1.0);
	forecast_get_stats(f, &st);
	assert_true(st.mase < 0.6);
	forecast_destroy(f);
}

static double sine72(uint64_t k) { return 400.0 + 300.0 * sin(2 * M_PI * (double)(k % 72) / 72.0); }

static void first_day_burst_is_not_replayed(void **state)
{
	/* 72 buckets of 20 min per day; on day 0, bucket 30 carries a burst
	 * (3x its load). The day-1 forecast for that phase follows the curve,
	 * not the burst. */
	struct forecast_params p = { .bucket_s = 1200, .season_s = 86400, .horizon = 1, .beta = -1, .gamma = -1 };
	struct forecast *f = forecast_create(&p, 0);
	assert_non_null(f);
	for (uint64_t k = 0; k < 72 + 30; k++) {
		double y = sine72(k) * (k == 30 ? 3.0 : 1.0);
		forecast_observe(f, k * 1200000u + 1, (uint32_t)lround(y));
		forecast_advance(f, (k + 1) * 1200000u);
	}
	/* The open bucket is 102 = phase 30 of day 1. */
	assert_float_equal(forecast_predict(f, 1), sine72(30), 0.05 * sine72(30));
	struct forecast_stats st;
	forecast_get_stats(f, &st);
	assert_int_equal(st.seasonal, 1);
	forecast_destroy(f);
}

static void step_falls_back_to_naive_then_holds_new_level(void **state)
{
	struct forecast *f = make(86400, 1);
	for (uint64_t k = 0; k < 30; k++)
		feed(f, k, 50);
	feed(f, 30, 200);
	feed(f, 31, 200);
	struct forecast_stats st;
	forecast_get_stats(f, &st);
	assert_int_equal(st.using_naive, 1);
	assert_float_equal(forecast_predict(f, 1), 200.0, 1e-6);
	for (uint64_t k = 32; k < 60; k++)
		feed(f, k, 200);
	assert_float_equal(forecast_predict(f, 1), 200.0, 0.5);
	forecast_destroy(f);
}

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static void flat_noise_beats_naive(void **state)
{
	struct forecast *f = make(86400, 1);
	uint32_t seed = 7;
	for (uint64_t k = 0; k < 500; k++)
		feed(f, k, 80 + lcg(&seed) % 41);
	struct forecast_stats st;
	forecast_get_stats(f, &st);
	assert_true(st.mase > 0.4);
	assert_true(st.mase <= 0.9);
	forecast_destroy(f);
}

static void noisy_first_buckets_leave_no_trend(void **state)
{
	/* Two unequal first buckets, then a flat noisy load (100..140): the
	 * first difference is not extrapolated as a trend, so the forecaster
	 * beats the naive forecast from the start. */
	struct forecast *f = make(86400, 1);
	uint32_t seed = 11;
	feed(f, 0, 60);
	feed(f, 1, 180);
	for (uint64_t k = 2; k < 60; k++)
		feed(f, k, 100 + lcg(&seed) % 41);
	struct forecast_stats st;
	forecast_get_stats(f, &st);
	assert_true(st.mase < 0.9);
	forecast_destroy(f);
}

static void empty_buckets_count_as_zero_and_long_gaps_are_skipped(void **state)
{
	struct forecast *f = make(3600, 1); /* a season of 60 buckets */
	for (uint64_t k = 0; k < 10; k++)
		feed(f, k, 100);
	forecast_advance(f, 13 * BUCKET_MS); /* 3 empty buckets */
	struct forecast_stats st;
	forecast_get_stats(f, &st);
	assert_int_equal(st.buckets, 13);
	assert_true(forecast_predict(f, 1) < 100.0);
	/* Longer than a season: skipped as missing, model untouched. */
	double before = forecast_predict(f, 1);
	forecast_advance(f, 500 * BUCKET_MS);
	forecast_get_stats(f, &st);
	assert_int_equal(st.buckets, 14);
	assert_int_equal(st.skipped, 500 - 14);
	assert_float_equal(forecast_predict(f, 1), before, 20.0);
	forecast_destroy(f);
}

static void time_going_back_adds_to_open_bucket(void **state)
{
	struct forecast *f = make(86400, 1);
	feed(f, 0, 10);
	forecast_observe(f, 5 * BUCKET_MS, 3);
	forecast_observe(f, 2 * BUCKET_MS, 4); /* clock stepped back */
	forecast_advance(f, 6 * BUCKET_MS);
	struct forecast_stats st;
	forecast_get_stats(f, &st);
	assert_int_equal(st.buckets, 6);
	forecast_destroy(f);
}

static void save_load_round_trip(void **state)
{
	struct forecast_params p = { .bucket_s = 3600, .season_s = 86400, .horizon = 2, .beta = -1, .gamma = -1 };
	struct forecast *a = forecast_create(&p, 0);
	struct forecast *b = forecast_create(&p, 0);
	assert_non_null(a);
	assert_non_null(b);
	for (uint64_t k = 0; k < 40; k++) {
		forecast_observe(a, k * 3600000u + 1, (uint32_t)lround(sine(k)));
		forecast_advance(a, (k + 1) * 3600000u);
	}
	size_t n = forecast_blob_size(a);
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(forecast_save(a, buf, n - 1), -ENOSPC);
	assert_int_equal(forecast_save(a, buf, n), (long)n);
	assert_int_equal(forecast_load(b, buf, n - 1), -EINVAL);
	assert_int_equal(forecast_load(b, buf, n), 0);
	for (uint32_t h = 1; h <= 4; h++)
		assert_float_equal(forecast_predict(a, h), forecast_predict(b, h), 0);
	struct forecast_stats sa, sb;
	forecast_get_stats(a, &sa);
	forecast_get_stats(b, &sb);
	assert_memory_equal(&sa, &sb, sizeof(sa));
	/* Both continue identically. */
	for (uint64_t k = 40; k < 50; k++) {
		forecast_observe(a, k * 3600000u + 1, (uint32_t)lround(sine(k)));
		forecast_advance(a, (k + 1) * 3600000u);
		forecast_observe(b, k * 3600000u + 1, (uint32_t)lround(sine(k)));
		forecast_advance(b, (k + 1) * 3600000u);
	}
	assert_float_equal(forecast_predict(a, 1), forecast_predict(b, 1), 0);

	/* A flipped byte is refused and leaves the target untouched. */
	double keep = forecast_predict(b, 1);
	buf[n / 2] ^= 0x40;
	assert_int_equal(forecast_load(b, buf, n), -EINVAL);
	assert_float_equal(forecast_predict(b, 1), keep, 0);
	/* A blob of another bucket width is refused. */
	struct forecast_params q = p;
	q.bucket_s = 1800;
	struct forecast *c = forecast_create(&q, 0);
	assert_non_null(c);
	buf[n / 2] ^= 0x40;
	assert_int_equal(forecast_load(c, buf, n), -EINVAL);
	forecast_destroy(c);
	/* After a restart the downtime is skipped, not counted as zero load. */
	forecast_skip_to(b, 60 * 3600000ull);
	forecast_get_stats(b, &sb);
	assert_int_equal(sb.skipped, 10);
	assert_true(forecast_predict(b, 1) > 40.0);
	free(buf);
	forecast_destroy(a);
	forecast_destroy(b);
}

static void rejects_bad_params(void **state)
{
	struct forecast_params p = { .bucket_s = 0, .season_s = 86400, .horizon = 1 };
	assert_null(forecast_create(&p, 0));
	p.bucket_s = 60;
	p.season_s = 60;
	assert_null(forecast_create(&p, 0));
	forecast_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(constant_series_forecasts_the_constant),
		cmocka_unit_test(linear_ramp_is_extrapolated),
		cmocka_unit_test(daily_sine_is_learnt_after_one_day),
		cmocka_unit_test(first_day_burst_is_not_replayed),
		cmocka_unit_test(noisy_first_buckets_leave_no_trend),
		cmocka_unit_test(step_falls_back_to_naive_then_holds_new_level),
		cmocka_unit_test(flat_noise_beats_naive),
		cmocka_unit_test(empty_buckets_count_as_zero_and_long_gaps_are_skipped),
		cmocka_unit_test(time_going_back_adds_to_open_bucket),
		cmocka_unit_test(save_load_round_trip),
		cmocka_unit_test(rejects_bad_params),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
