/* agent/scale/forecast.c - Holt-Winters request-rate forecaster with naive fallback, MASE scoring and a persistable state. */
#include "agent/scale/forecast.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"

#define LOG_TAG "forecast"

#define FC_MAGIC 0x31434642u /* "BFC1" little-endian */
#define FC_VERSION 3u
#define FC_W CONFIG_FORECAST_MAE_WINDOW
#define FC_HALF_MAX (CONFIG_FORECAST_MAX_SEASON / 36) /* first-day smoothing: +-season/36 buckets */
#define FC_H CONFIG_FORECAST_MAX_HORIZON
#ifndef FC_NAIVE_MARGIN
#define FC_NAIVE_MARGIN 1.2 /* naive must be this much better to take over */
#endif

struct pending {
	uint64_t target;     /* bucket index the forecast is for */
	float model, naive, chosen;
	float slow, fast;    /* the two pre-season smoothers' forecasts */
	uint8_t valid;
};

struct forecast {
	uint32_t bucket_ms;
	uint32_t season;       /* buckets per season */
	uint32_t ntab;         /* season when the seasonal term fits, else 0 */
	uint32_t horizon;
	double alpha, beta, gamma;

	uint64_t cur_idx;      /* open bucket */
	uint64_t cur_count;    /* requests in the open bucket */
	uint32_t init;         /* 0: no bucket closed, 1: level set, 2: trend running */
	double level, trend, last;
	/* Before the seasonal term: a second, faster Holt pair beside the slow
	 * one (level, trend); the one with the lower recent error is used. */
	double level_fast, trend_fast;
	uint32_t using_fast;
	double mad;            /* EWMA of |one-step residual|: the scale for clipping */
	uint32_t seasonal;     /* seasonal term active */
	uint32_t hist_valid;   /* consecutive closed buckets in hist (capped at season) */
	uint32_t using_naive;

	float err_m[FC_W], err_n[FC_W], err_slow[FC_W], err_fast[FC_W];
	uint32_t err_pos, err_count;

	uint64_t buckets, scored, skipped;
	double abs_err_model, abs_err_naive;

	struct pending pend[FC_H];
	float *seas;           /* ntab seasonal offsets, by phase */
	float *hist;           /* ntab last bucket values, by phase */
	float *scratch;        /* ntab, for building the first profile (not saved) */
};

static uint32_t clamp_h(uint32_t h)
{
	if (h < 1)
		return 1;
	return h > FC_H ? FC_H : h;
}

struct forecast *forecast_create(const struct forecast_params *p, uint64_t now_ms)
{
	if (!p || p->bucket_s == 0 || p->season_s / p->bucket_s < 2)
		return NULL;
	uint32_t season = p->season_s / p->bucket_s;
	uint32_t ntab = season <= CONFIG_FORECAST_MAX_SEASON ? season : 0;
	struct forecast *f = calloc(1, sizeof(*f) + 3u * ntab * sizeof(float));
	if (!f)
		return NULL;
	if (!ntab)
		log_wrn("event=season_too_long buckets=%u max=%u seasonal=off", season,
			(unsigned)CONFIG_FORECAST_MAX_SEASON);
	f->bucket_ms = p->bucket_s * 1000u;
	f->season = season;
	f->ntab = ntab;
	f->horizon = clamp_h(p->horizon);
	f->alpha = p->alpha > 0 && p->alpha <= 1 ? p->alpha : FORECAST_ALPHA_DEFAULT;
	f->beta = p->beta >= 0 && p->beta <= 1 ? p->beta : FORECAST_BETA_DEFAULT;
	f->gamma = p->gamma >= 0 && p->gamma <= 1 ? p->gamma : FORECAST_GAMMA_DEFAULT;
	f->seas = (float *)(f + 1);
	f->hist = f->seas + ntab;
	f->scratch = f->hist + ntab;
	f->cur_idx = now_ms / f->bucket_ms;
	return f;
}

void forecast_destroy(struct forecast *f) { free(f); }

static uint32_t phase(const struct forecast *f, uint64_t idx) { return (uint32_t)(idx % f->season); }

/* Smoothed model's forecast for bucket last_idx + h (last_idx = cur_idx - 1). */
static double model_at(const struct forecast *f, uint32_t h)
{
	if (f->init == 0)
		return (double)f->cur_count;
	double v;
	if (f->seasonal)
		v = f->level + (double)h * f->trend + f->seas[phase(f, f->cur_idx - 1 + h)];
	else if (f->using_fast)
		v = f->level_fast + (double)h * f->trend_fast;
	else
		v = f->level + (double)h * f->trend;
	return v > 0 ? v : 0;
}

static void score(struct forecast *f, uint64_t idx, double y)
{
	struct pending *pe = &f->pend[idx % FC_H];
	if (!pe->valid || pe->target != idx)
		return;
	pe->valid = 0;
	f->err_m[f->err_pos] = (float)fabs(pe->model - y);
	f->err_n[f->err_pos] = (float)fabs(pe->naive - y);
	f->err_slow[f->err_pos] = (float)fabs(pe->slow - y);
	f->err_fast[f->err_pos] = (float)fabs(pe->fast - y);
	f->err_pos = (f->err_pos + 1) % FC_W;
	if (f->err_count < FC_W)
		f->err_count++;
	f->scored++;
	f->abs_err_model += fabs(pe->chosen - y);
	f->abs_err_naive += fabs(pe->naive - y);
	double sm = 0, sn = 0, ss = 0, sf = 0;
	for (uint32_t i = 0; i < f->err_count; i++) {
		sm += f->err_m[i];
		sn += f->err_n[i];
		ss += f->err_slow[i];
		sf += f->err_fast[i];
	}
	f->using_naive = sm > FC_NAIVE_MARGIN * sn;
	f->using_fast = sf < ss;
}

/* The k-th smallest of v[0..n-1] (Hoare's selection; reorders v). */
static float select_kth(float *v, uint32_t n, uint32_t k)
{
	uint32_t lo = 0, hi = n - 1;
	while (lo < hi) {
		float pivot = v[lo + (hi - lo) / 2];
		uint32_t i = lo, j = hi;
		for (;;) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i >= j)
				break;
			float t = v[i];
			v[i] = v[j];
			v[j] = t;
			i++;
			j--;
		}
		/* v[lo..j] <= pivot <= v[j+1..hi] */
		if (k <= j)
			hi = j;
		else
			lo = j + 1;
	}
	return v[k];
}

static void seasonal_start(struct forecast *f)
{
	/* One day of buckets is noisy and holds that day's bursts, which are
	 * not a daily pattern. The profile is a circular running median over
	 * +-season/36 buckets (it removes bursts up to that wide, where a mean
	 * would only spread them and replay them every day after), then the
	 * moving average of those medians over the same window (noise). */
	uint32_t half = f->ntab / 36, w = 2 * half + 1;
	float win[2 * FC_HALF_MAX + 1];
	double mean = 0;
	for (uint32_t i = 0; i < f->ntab; i++) {
		for (uint32_t k = 0; k < w; k++)
			win[k] = f->hist[(i + f->ntab - half + k) % f->ntab];
		f->scratch[i] = select_kth(win, w, half);
		mean += f->scratch[i];
	}
	mean /= f->ntab;
	for (uint32_t i = 0; i < f->ntab; i++) {
		double sum = 0;
		for (uint32_t k = 0; k < w; k++)
			sum += f->scratch[(i + f->ntab - half + k) % f->ntab];
		f->seas[i] = (float)(sum / w - mean);
	}
	/* The trend Holt learnt inside the first day is the slope of the daily
	 * curve, not a trend across days: start the trend afresh. */
	f->level = mean;
	f->trend = 0;
	f->seasonal = 1;
	log_inf("event=seasonal_on season=%u mean=%.2f", f->season, mean);
}

/* Robust smoothing: a residual beyond FC_CLIP x the running mean absolute
 * residual is clipped before it updates level, trend and season, so a burst
 * does not drag the level or get replayed by the seasonal term the next day.
 * A real level shift still gets through (the scale grows while residuals
 * stay large), and the naive fallback covers the time until it has. */
#define FC_CLIP 2.0
#define FC_MAD_W 0.1

static double clip(struct forecast *f, double y)
{
	double fc = f->level + f->trend + (f->seasonal ? f->seas[phase(f, f->cur_idx)] : 0);
	double r = y - fc, a = fabs(r);
	double lim = FC_CLIP * f->mad;
	if (f->mad <= 0)
		f->mad = a;
	else
		f->mad = FC_MAD_W * a + (1 - FC_MAD_W) * f->mad;
	if (f->mad < 1)
		f->mad = 1;
	if (lim > 0 && a > lim)
		return fc + (r > 0 ? lim : -lim);
	return y;
}

static void update(struct forecast *f, uint64_t idx, double y_raw)
{
	uint32_t p = phase(f, idx);
	double y = f->init == 2 ? clip(f, y_raw) : y_raw;
	if (f->init == 0) {
		f->level = f->level_fast = y;
		f->trend = f->trend_fast = 0;
		f->init = 1;
	} else if (f->seasonal) {
		double prev = f->level;
		f->level = f->alpha * (y - f->seas[p]) + (1 - f->alpha) * (prev + f->trend);
		f->trend = f->beta * (f->level - prev) + (1 - f->beta) * f->trend;
		f->seas[p] = (float)(f->gamma * (y - f->level) + (1 - f->gamma) * f->seas[p]);
	} else {
		/* No seasonal term yet. A steady load wants slow smoothing; a
		 * daily curve, which level and trend must then follow themselves,
		 * wants fast smoothing: both run, and the one with the lower
		 * recent error is used (see score()). The trends start at 0: the
		 * first difference of two noisy buckets is noise, and a small beta
		 * would carry it into the level for a long time. */
		double prev = f->level, prev_fast = f->level_fast;
		f->level = f->alpha * y + (1 - f->alpha) * (prev + f->trend);
		f->level_fast = FORECAST_ALPHA_FAST * y + (1 - FORECAST_ALPHA_FAST) * (prev_fast + f->trend_fast);
		if (f->init == 1) {
			f->init = 2;
		} else {
			f->trend = f->beta * (f->level - prev) + (1 - f->beta) * f->trend;
			f->trend_fast = FORECAST_BETA_FAST * (f->level_fast - prev_fast) +
					(1 - FORECAST_BETA_FAST) * f->trend_fast;
		}
	}
	f->last = y_raw;
	if (f->ntab) {
		f->hist[p] = (float)y;
		if (f->hist_valid < f->ntab)
			f->hist_valid++;
		if (!f->seasonal && f->hist_valid == f->ntab)
			seasonal_start(f);
	}
}

static void close_bucket(struct forecast *f)
{
	uint64_t idx = f->cur_idx;
	double y = (double)f->cur_count;
	score(f, idx, y);
	update(f, idx, y);
	f->buckets++;
	f->cur_idx = idx + 1;
	f->cur_count = 0;
	/* Forecast for idx + horizon, made now, scored when that bucket closes. */
	struct pending *pe = &f->pend[(idx + f->horizon) % FC_H];
	pe->target = idx + f->horizon;
	pe->model = (float)model_at(f, f->horizon);
	if (f->seasonal) {
		pe->slow = pe->fast = pe->model;
	} else {
		double vs = f->level + (double)f->horizon * f->trend;
		double vf = f->level_fast + (double)f->horizon * f->trend_fast;
		pe->slow = (float)(vs > 0 ? vs : 0);
		pe->fast = (float)(vf > 0 ? vf : 0);
	}
	pe->naive = (float)y;
	pe->chosen = f->using_naive ? pe->naive : pe->model;
	pe->valid = 1;
}

static void jump(struct forecast *f, uint64_t idx)
{
	f->skipped += idx - f->cur_idx;
	f->cur_idx = idx;
	f->cur_count = 0;
	f->hist_valid = 0; /* a seasonal start needs one unbroken day */
	for (uint32_t i = 0; i < FC_H; i++)
		f->pend[i].valid = 0;
}

void forecast_advance(struct forecast *f, uint64_t now_ms)
{
	uint64_t idx = now_ms / f->bucket_ms;
	if (idx <= f->cur_idx)
		return;
	if (idx - f->cur_idx > f->season) {
		close_bucket(f);
		if (idx > f->cur_idx) {
			log_inf("event=gap buckets=%llu", (unsigned long long)(idx - f->cur_idx));
			jump(f, idx);
		}
		return;
	}
	while (f->cur_idx < idx)
		close_bucket(f);
}

void forecast_observe(struct forecast *f, uint64_t now_ms, uint32_t n)
{
	forecast_advance(f, now_ms);
	f->cur_count += n;
}

void forecast_skip_to(struct forecast *f, uint64_t now_ms)
{
	uint64_t idx = now_ms / f->bucket_ms;
	if (idx > f->cur_idx)
		jump(f, idx);
}

double forecast_predict(const struct forecast *f, uint32_t h)
{
	h = clamp_h(h);
	if (f->init == 0)
		return (double)f->cur_count;
	return f->using_naive ? f->last : model_at(f, h);
}

double forecast_peak_rate(const struct forecast *f, uint32_t h)
{
	h = clamp_h(h);
	double peak = 0;
	for (uint32_t i = 1; i <= h; i++) {
		double v = forecast_predict(f, i);
		if (v > peak)
			peak = v;
	}
	return peak * 1000.0 / f->bucket_ms;
}

void forecast_set_horizon(struct forecast *f, uint32_t horizon)
{
	horizon = clamp_h(horizon);
	if (horizon == f->horizon)
		return;
	f->horizon = horizon;
	for (uint32_t i = 0; i < FC_H; i++)
		f->pend[i].valid = 0;
}

void forecast_get_stats(const struct forecast *f, struct forecast_stats *out)
{
	out->buckets = f->buckets;
	out->scored = f->scored;
	out->skipped = f->skipped;
	out->abs_err_model = f->abs_err_model;
	out->abs_err_naive = f->abs_err_naive;
	out->mase = f->abs_err_naive > 0 ? f->abs_err_model / f->abs_err_naive : 0;
	out->seasonal = (int)f->seasonal;
	out->using_naive = (int)f->using_naive;
}

/* --- serialisation: explicit little-endian, so a blob moves between builds
 * of one configuration regardless of struct padding. ------------------- */

struct wr {
	uint8_t *p;
	size_t n, cap; /* cap 0: count only */
};

static void put(struct wr *w, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++, w->n++)
		if (w->n < w->cap)
			w->p[w->n] = (uint8_t)(v >> (8 * i));
}
static void put_f64(struct wr *w, double d)
{
	uint64_t v;
	memcpy(&v, &d, sizeof(v));
	put(w, v, 8);
}
static void put_f32(struct wr *w, float d)
{
	uint32_t v;
	memcpy(&v, &d, sizeof(v));
	put(w, v, 4);
}

struct rd {
	const uint8_t *p;
	size_t n, len;
	int bad;
};

static uint64_t get(struct rd *r, unsigned bytes)
{
	uint64_t v = 0;
	if (r->n + bytes > r->len) {
		r->bad = 1;
		return 0;
	}
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)r->p[r->n++] << (8 * i);
	return v;
}
static double get_f64(struct rd *r)
{
	uint64_t v = get(r, 8);
	double d;
	memcpy(&d, &v, sizeof(d));
	return d;
}
static float get_f32(struct rd *r)
{
	uint32_t v = (uint32_t)get(r, 4);
	float d;
	memcpy(&d, &v, sizeof(d));
	return d;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static void encode(const struct forecast *f, struct wr *w)
{
	put(w, FC_MAGIC, 4);
	put(w, FC_VERSION, 4);
	put(w, f->bucket_ms, 4);
	put(w, f->season, 4);
	put(w, f->ntab, 4);
	put(w, FC_W, 4);
	put(w, FC_H, 4);
	put(w, f->horizon, 4);
	put_f64(w, f->alpha);
	put_f64(w, f->beta);
	put_f64(w, f->gamma);
	put(w, f->cur_idx, 8);
	put(w, f->cur_count, 8);
	put(w, f->init, 4);
	put_f64(w, f->level);
	put_f64(w, f->trend);
	put_f64(w, f->level_fast);
	put_f64(w, f->trend_fast);
	put(w, f->using_fast, 4);
	put_f64(w, f->last);
	put_f64(w, f->mad);
	put(w, f->seasonal, 4);
	put(w, f->hist_valid, 4);
	put(w, f->using_naive, 4);
	put(w, f->err_pos, 4);
	put(w, f->err_count, 4);
	for (unsigned i = 0; i < FC_W; i++) {
		put_f32(w, f->err_m[i]);
		put_f32(w, f->err_n[i]);
		put_f32(w, f->err_slow[i]);
		put_f32(w, f->err_fast[i]);
	}
	put(w, f->buckets, 8);
	put(w, f->scored, 8);
	put(w, f->skipped, 8);
	put_f64(w, f->abs_err_model);
	put_f64(w, f->abs_err_naive);
	for (unsigned i = 0; i < FC_H; i++) {
		put(w, f->pend[i].target, 8);
		put_f32(w, f->pend[i].model);
		put_f32(w, f->pend[i].naive);
		put_f32(w, f->pend[i].chosen);
		put_f32(w, f->pend[i].slow);
		put_f32(w, f->pend[i].fast);
		put(w, f->pend[i].valid, 1);
	}
	for (unsigned i = 0; i < f->ntab; i++) {
		put_f32(w, f->seas[i]);
		put_f32(w, f->hist[i]);
	}
}

size_t forecast_blob_size(const struct forecast *f)
{
	struct wr w = { NULL, 0, 0 };
	encode(f, &w);
	return w.n + 8; /* + checksum */
}

long forecast_save(const struct forecast *f, uint8_t *buf, size_t len)
{
	size_t need = forecast_blob_size(f);
	if (len < need)
		return -ENOSPC;
	struct wr w = { buf, 0, len };
	encode(f, &w);
	uint64_t sum = fnv1a(buf, w.n);
	put(&w, sum, 8);
	return (long)w.n;
}

int forecast_load(struct forecast *f, const uint8_t *buf, size_t len)
{
	if (!buf || len < 8 || len != forecast_blob_size(f))
		return -EINVAL;
	struct rd r = { buf, 0, len - 8, 0 };
	struct rd tail = { buf, len - 8, len, 0 };
	if (get(&tail, 8) != fnv1a(buf, len - 8))
		return -EINVAL;
	if (get(&r, 4) != FC_MAGIC || get(&r, 4) != FC_VERSION || get(&r, 4) != f->bucket_ms ||
	    get(&r, 4) != f->season || get(&r, 4) != f->ntab || get(&r, 4) != FC_W || get(&r, 4) != FC_H)
		return -EINVAL;
	/* Decode into a copy so that f is untouched on any error. */
	struct forecast *t = malloc(sizeof(*t) + 2u * f->ntab * sizeof(float));
	if (!t)
		return -ENOMEM;
	memcpy(t, f, sizeof(*t));
	t->seas = (float *)(t + 1);
	t->hist = t->seas + t->ntab;
	t->horizon = clamp_h((uint32_t)get(&r, 4));
	t->alpha = get_f64(&r);
	t->beta = get_f64(&r);
	t->gamma = get_f64(&r);
	t->cur_idx = get(&r, 8);
	t->cur_count = get(&r, 8);
	t->init = (uint32_t)get(&r, 4);
	t->level = get_f64(&r);
	t->trend = get_f64(&r);
	t->level_fast = get_f64(&r);
	t->trend_fast = get_f64(&r);
	t->using_fast = (uint32_t)get(&r, 4);
	t->last = get_f64(&r);
	t->mad = get_f64(&r);
	t->seasonal = (uint32_t)get(&r, 4);
	t->hist_valid = (uint32_t)get(&r, 4);
	t->using_naive = (uint32_t)get(&r, 4);
	t->err_pos = (uint32_t)get(&r, 4);
	t->err_count = (uint32_t)get(&r, 4);
	for (unsigned i = 0; i < FC_W; i++) {
		t->err_m[i] = get_f32(&r);
		t->err_n[i] = get_f32(&r);
		t->err_slow[i] = get_f32(&r);
		t->err_fast[i] = get_f32(&r);
	}
	t->buckets = get(&r, 8);
	t->scored = get(&r, 8);
	t->skipped = get(&r, 8);
	t->abs_err_model = get_f64(&r);
	t->abs_err_naive = get_f64(&r);
	for (unsigned i = 0; i < FC_H; i++) {
		t->pend[i].target = get(&r, 8);
		t->pend[i].model = get_f32(&r);
		t->pend[i].naive = get_f32(&r);
		t->pend[i].chosen = get_f32(&r);
		t->pend[i].slow = get_f32(&r);
		t->pend[i].fast = get_f32(&r);
		t->pend[i].valid = (uint8_t)get(&r, 1);
	}
	for (unsigned i = 0; i < t->ntab; i++) {
		t->seas[i] = get_f32(&r);
		t->hist[i] = get_f32(&r);
	}
	int err = 0;
	if (r.bad || r.n != r.len || t->init > 2 || t->seasonal > 1 || t->err_pos >= FC_W ||
	    t->err_count > FC_W || t->hist_valid > t->ntab || (t->seasonal && !t->ntab) ||
	    !isfinite(t->level) || !isfinite(t->trend) || !isfinite(t->level_fast) ||
	    !isfinite(t->trend_fast) || t->using_fast > 1 || !(t->alpha > 0 && t->alpha <= 1) ||
	    !(t->beta >= 0 && t->beta <= 1) || !(t->gamma >= 0 && t->gamma <= 1))
		err = -EINVAL;
	if (!err) {
		float *seas = f->seas, *hist = f->hist, *scratch = f->scratch;
		memcpy(f, t, sizeof(*f));
		f->seas = seas;
		f->hist = hist;
		f->scratch = scratch;
		memcpy(f->seas, t->seas, t->ntab * sizeof(float));
		memcpy(f->hist, t->hist, t->ntab * sizeof(float));
	}
	free(t);
	return err;
}
