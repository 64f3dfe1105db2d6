/* agent/scale/forecast.h - per-deployment request-rate forecaster: Holt-Winters with a naive fallback, scored by MASE. */
#ifndef BERTH_FORECAST_H
#define BERTH_FORECAST_H

#include <stddef.h>
#include <stdint.h>

/*
 * Requests are counted in buckets of bucket_s seconds. Each closed bucket
 * updates additive Holt smoothing (level and trend); once one full season
 * (a day: 86400 / bucket_s buckets) of history exists, a seasonal term is
 * initialised from it and the model becomes additive Holt-Winters. Until
 * then (and for good when the season does not fit) a second, faster Holt
 * pair (FORECAST_*_FAST) runs beside the one with alpha and beta: a steady
 * load is forecast best by the slow one, a daily curve that level and trend
 * must follow by themselves by the fast one; the one with the lower mean
 * absolute error over the last CONFIG_FORECAST_MAE_WINDOW scored buckets is
 * the model. Trends start at 0. The first season's profile is a running
 * median, then a moving average, over +-season/36 buckets of that day, so
 * its bursts are not replayed every day.
 *
 * Every closed bucket also scores the forecasts made h buckets earlier
 * (h = the scoring horizon): the smoothed model's and the naive one's (the
 * last closed bucket). forecast_predict() returns the smoothed forecast while
 * its mean absolute error over the last CONFIG_FORECAST_MAE_WINDOW scored
 * buckets is no worse than the naive one's, and the naive forecast otherwise.
 * The running MASE is the mean absolute error of the forecasts actually
 * returned (at horizon h) divided by the naive forecast's over the same
 * buckets.
 *
 * Time: every call takes now_ms on one clock chosen by the caller. The
 * seasonal phase is now_ms / bucket_ms modulo the season, so the agent
 * passes wall-clock ms (time of day matters); the simulator passes its
 * virtual time. A clock that goes back adds to the open bucket; a jump
 * forward by more than one season is treated as missing data (the buckets
 * in between are skipped, not counted as zero).
 *
 * Memory: one allocation at create, bounded by CONFIG_FORECAST_MAX_SEASON;
 * nothing is allocated afterwards. Not thread-safe (single loop thread).
 */

struct forecast;

struct forecast_params {
	uint32_t bucket_s;      /* bucket width, s (autoscale.bucket_s) */
	uint32_t season_s;      /* season length, s (86400; shorter in compressed traces) */
	uint32_t horizon;       /* scoring horizon in buckets, 1..CONFIG_FORECAST_MAX_HORIZON */
	double alpha;           /* level smoothing, (0,1]; 0 picks the default */
	double beta;            /* trend smoothing, [0,1]; <0 picks the default */
	double gamma;           /* seasonal smoothing, [0,1]; <0 picks the default */
};

/* Default smoothing constants (used for 0 / negative values above). */
#define FORECAST_ALPHA_DEFAULT 0.2
#define FORECAST_BETA_DEFAULT 0.02
#define FORECAST_GAMMA_DEFAULT 0.1
/* The faster level and trend smoothing, before the seasonal term is active. */
#define FORECAST_ALPHA_FAST 0.5
#define FORECAST_BETA_FAST 0.1

/* Running figures, for telemetry and the simulator. */
struct forecast_stats {
	uint64_t buckets;         /* closed buckets seen */
	uint64_t scored;          /* buckets scored at the horizon */
	uint64_t skipped;         /* buckets skipped as missing data */
	double abs_err_model;     /* sum of |returned forecast - actual| at the horizon */
	double abs_err_naive;     /* sum of |naive forecast - actual| at the horizon */
	double mase;              /* abs_err_model / abs_err_naive; 0 before any score */
	int seasonal;             /* 1 once the seasonal term is active */
	int using_naive;          /* 1 while the naive forecast is the one returned */
};

/* Creates a forecaster starting at now_ms. Returns NULL on allocation
 * failure or invalid params (bucket_s 0, season shorter than 2 buckets).
 * A season longer than CONFIG_FORECAST_MAX_SEASON buckets disables the
 * seasonal term (level and trend only). Free with forecast_destroy(). */
struct forecast *forecast_create(const struct forecast_params *p, uint64_t now_ms);
void forecast_destroy(struct forecast *f);

/* Counts n requests at now_ms. Closes every bucket that ended before now_ms
 * first. O(1) unless buckets close; never allocates. */
void forecast_observe(struct forecast *f, uint64_t now_ms, uint32_t n);

/* Closes every bucket that ended before now_ms (buckets without requests
 * count as zero, up to one season; see the time note above). */
void forecast_advance(struct forecast *f, uint64_t now_ms);

/* Marks the time up to now_ms as missing (e.g. the agent was down) and moves
 * to the bucket holding now_ms without updating the model. */
void forecast_skip_to(struct forecast *f, uint64_t now_ms);

/* Forecast of the requests in the bucket h buckets after the last closed
 * one (h = 1: the bucket now open), h clamped to 1..CONFIG_FORECAST_MAX_HORIZON.
 * Never negative. Before any bucket closed, returns the open bucket's count. */
double forecast_predict(const struct forecast *f, uint32_t h);

/* Highest forecast over horizons 1..h, in requests per second. */
double forecast_peak_rate(const struct forecast *f, uint32_t h);

/* Changes the scoring horizon (e.g. when the measured start-up time changes);
 * forecasts pending at the old horizon are dropped from scoring. */
void forecast_set_horizon(struct forecast *f, uint32_t horizon);

void forecast_get_stats(const struct forecast *f, struct forecast_stats *out);

/* Serialised size of f's state, in bytes (fixed for a given season length). */
size_t forecast_blob_size(const struct forecast *f);

/* Writes f's state (model, history, scores; little-endian, versioned, with a
 * checksum) into buf. Returns the bytes written, or -ENOSPC when len is
 * smaller than forecast_blob_size(). */
long forecast_save(const struct forecast *f, uint8_t *buf, size_t len)
	__attribute__((warn_unused_result));

/* Restores state saved by forecast_save() into f. The blob must match f's
 * bucket and season lengths (else -EINVAL: a changed bucket_s starts a fresh
 * history); a truncated or corrupt blob is -EINVAL too, and f is unchanged on
 * every error. The caller then calls forecast_skip_to(now) so the time spent
 * down counts as missing, not as zero load. Returns 0 or -errno. */
int forecast_load(struct forecast *f, const uint8_t *buf, size_t len)
	__attribute__((warn_unused_result));

#endif
