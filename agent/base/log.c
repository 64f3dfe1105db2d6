/* agent/base/log.c - leveled, rate-limited logging. */
#include "agent/base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "hal/clock.h"

static enum log_level g_level = (enum log_level)CONFIG_LOG_LEVEL_DEFAULT;
static bool g_syslog;
static bool g_journal;
static uint64_t g_suppressed_total;

static const char *const level_names[] = { "err", "wrn", "inf", "dbg" };

void log_set_level(enum log_level lvl)
{
	if (lvl > LOG_LEVEL_DBG)
		lvl = LOG_LEVEL_DBG;
	g_level = lvl;
}

enum log_level log_get_level(void) { return g_level; }

const char *log_level_name(enum log_level lvl)
{
	return lvl <= LOG_LEVEL_DBG ? level_names[lvl] : "?";
}

int log_level_parse(const char *s)
{
	static const struct { const char *name; enum log_level lvl; } names[] = {
		{ "err", LOG_LEVEL_ERR }, { "error", LOG_LEVEL_ERR },
		{ "wrn", LOG_LEVEL_WRN }, { "warn", LOG_LEVEL_WRN }, { "warning", LOG_LEVEL_WRN },
		{ "inf", LOG_LEVEL_INF }, { "info", LOG_LEVEL_INF },
		{ "dbg", LOG_LEVEL_DBG }, { "debug", LOG_LEVEL_DBG },
	};
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return (int)names[i].lvl;
	return -EINVAL;
}

void log_set_syslog(const char *ident)
{
	if (!IS_ENABLED(CONFIG_LOG_SYSLOG))
		return;
	if (g_syslog)
		closelog();
	g_syslog = ident != NULL;
	if (g_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_journal(bool on) { g_journal = on; }

uint64_t log_suppressed_total(void) { return g_suppressed_total; }

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

/* The closing quote of a value that starts at p: the first '"' followed by the end or by
 * " key="; failing that the last '"', failing that the end of the string. */
static const char *quoted_end(const char *p)
{
	const char *end = NULL;
	for (const char *q = p; *q; q++) {
		if (*q != '"')
			continue;
		if (q[1] == '\0')
			return q;
		if (q[1] == ' ') {
			const char *k = q + 2;
			while (is_key_char(*k))
				k++;
			if (k > q + 2 && *k == '=')
				return q;
		}
		end = q;
	}
	return end ? end : p + strlen(p);
}

/* Copies in to out (len bytes), escaping the inside of every quoted value. */
static void escape_values(const char *in, char *out, size_t len)
{
	size_t o = 0;
	const char *p = in;
	while (*p && o + 1 < len) {
		if (p[0] != '=' || p[1] != '"') {
			out[o++] = *p++;
			continue;
		}
		const char *end = quoted_end(p + 2);
		out[o++] = *p++;
		if (o + 1 < len)
			out[o++] = *p++;
		for (; p < end && o + 3 < len; p++) {
			char c = *p;
			if (c == '"' || c == '\\') {
				out[o++] = '\\';
				out[o++] = c;
			} else if (c == '\n' || c == '\t') {
				out[o++] = '\\';
				out[o++] = c == '\n' ? 'n' : 't';
			} else {
				out[o++] = (unsigned char)c < 0x20 ? ' ' : c;
			}
		}
		if (*p == '"' && o + 1 < len)
			out[o++] = *p++;
		else if (p < end)
			break;
		else if (o + 1 < len)
			out[o++] = '"';
	}
	out[o] = '\0';
}

void log_write(struct log_site *site, enum log_level lvl, const char *tag, const char *fmt, ...)
{
	uint64_t now = hal_clock_now_us();
	uint32_t suppressed = 0;

	if (site) {
		if (now - site->window_start_us >= 1000000u || site->window_start_us == 0) {
			site->window_start_us = now ? now : 1;
			site->in_window = 0;
		}
		if (++site->in_window > (uint32_t)CONFIG_LOG_RATE_PER_S) {
			site->suppressed++;
			g_suppressed_total++;
			return;
		}
		suppressed = site->suppressed;
		site->suppressed = 0;
	}

	char raw[1024], msg[1280];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape_values(raw, msg, sizeof(msg));

	static const char *const prefix[] = { "<3>", "<4>", "<6>", "<7>" };
	const char *pre = g_journal && lvl <= LOG_LEVEL_DBG ? prefix[lvl] : "";
	if (suppressed)
		fprintf(stderr, "%s%s %s: %s suppressed=%u\n", pre, log_level_name(lvl), tag, msg, suppressed);
	else
		fprintf(stderr, "%s%s %s: %s\n", pre, log_level_name(lvl), tag, msg);
	if (g_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		syslog(prio[lvl], "%s: %s", tag, msg);
	}
}
