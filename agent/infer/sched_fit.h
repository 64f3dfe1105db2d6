/* agent/infer/sched_fit.h - per-model online fit of service time against request size (exponentially weighted least squares), for the scheduler's estimator. */
#ifndef BERTH_SCHED_FIT_H
#define BERTH_SCHED_FIT_H

/*
 * Service time ~ a + b * size, fitted online by least squares with
 * exponential forgetting (weight SCHED_FIT_KEEP per older sample, i.e. an
 * effective window of about 1 / (1 - SCHED_FIT_KEEP) samples): the
 * recursive least-squares fit of a line with a forgetting factor, kept as
 * weighted sums. Fixed memory (a few doubles per model), no allocation, a
 * handful of multiplications per sample and four divisions when the
 * coefficients are refreshed (per sample).
 *
 * The fit is trusted (sched_fit_usable) only once its effective weight
 * reaches SCHED_FIT_MIN_WEIGHT samples, the sizes seen vary, and it
 * explains at least SCHED_FIT_MIN_R2 of the variance of the service time
 * (R^2); otherwise the caller falls back to its size-blind estimate. A
 * request's own estimate is the line plus a tracked upper quantile
 * (SCHED_FIT_PCT) of the residuals, so a size-aware estimate is as
 * conservative as the size-blind percentile; the work a request adds to a
 * queue is the line alone (a mean is the right figure for a sum).
 *
 * Pure: no clock, no I/O; shared by sched.c and the unit tests.
 */

#include <stdbool.h>
#include <stdint.h>

#define SCHED_FIT_KEEP (1.0 - 1.0 / 256.0) /* forgetting factor */
#define SCHED_FIT_MIN_WEIGHT 16.0          /* effective samples before the fit is used */
#define SCHED_FIT_MIN_R2 0.25              /* share of the variance the size must explain */
#define SCHED_FIT_PCT 0.90                 /* residual quantile added to a request's own estimate */

struct sched_fit {
	double w, sx, sy, sxx, sxy, syy;  /* weighted sums of 1, x, y, x^2, xy, y^2 */
	double a, b;                      /* y = a + b x */
	double r2;                        /* share of var(y) the line explains */
	double q;                         /* residual quantile (SCHED_FIT_PCT), us */
	double step;                      /* its adaptation step, us */
	bool usable;
};

static inline void sched_fit_init(struct sched_fit *f)
{
	*f = (struct sched_fit){ 0 };
}

/* Adds one sample: service time y_us of a request of size x (> 0). */
static inline void sched_fit_add(struct sched_fit *f, uint32_t x_size, uint32_t y_us)
{
	const double k = SCHED_FIT_KEEP;
	double x = (double)x_size, y = (double)y_us;
	if (f->usable) { /* residual quantile against the line before this sample */
		double r = y - (f->a + f->b * x);
		f->q += r > f->q ? f->step * SCHED_FIT_PCT : -f->step * (1.0 - SCHED_FIT_PCT);
	}
	f->w = k * f->w + 1.0;
	f->sx = k * f->sx + x;
	f->sy = k * f->sy + y;
	f->sxx = k * f->sxx + x * x;
	f->sxy = k * f->sxy + x * y;
	f->syy = k * f->syy + y * y;
	double mx = f->sx / f->w, my = f->sy / f->w;
	double vx = f->sxx / f->w - mx * mx;
	double vy = f->syy / f->w - my * my;
	double cxy = f->sxy / f->w - mx * my;
	/* Relative floors: sums of large numbers leave rounding noise in the variances. */
	if (f->w < SCHED_FIT_MIN_WEIGHT || vx <= 1e-9 * (mx * mx + 1.0) || vy <= 1e-9 * (my * my + 1.0)) {
		f->usable = false;
		f->r2 = 0;
		return;
	}
	f->b = cxy / vx;
	f->a = my - f->b * mx;
	f->r2 = cxy * cxy / (vx * vy);
	bool was = f->usable;
	f->usable = f->r2 >= SCHED_FIT_MIN_R2;
	/* The quantile tracker moves by a sixteenth of the residual spread. */
	double rv = vy * (1.0 - f->r2);
	double sd = rv > 0 ? __builtin_sqrt(rv) : 0;
	f->step = sd / 16.0 + 1.0;
	if (f->usable && !was)
		f->q = 1.28 * sd; /* a normal residual's 90th percentile, as the start */
}

static inline bool sched_fit_usable(const struct sched_fit *f) { return f->usable; }

static inline uint32_t sched_fit_clamp(double v)
{
	return v < 1.0 ? 1u : v > 4.0e9 ? 4000000000u : (uint32_t)v;
}

/* Mean service time (us) of a request of size x on the line (usable fit). */
static inline uint32_t sched_fit_mean_us(const struct sched_fit *f, uint32_t x)
{
	return sched_fit_clamp(f->a + f->b * (double)x);
}

/* A request's own estimate (us): the line plus the residual quantile. */
static inline uint32_t sched_fit_upper_us(const struct sched_fit *f, uint32_t x)
{
	double q = f->q > 0 ? f->q : 0;
	return sched_fit_clamp(f->a + f->b * (double)x + q);
}

#endif
