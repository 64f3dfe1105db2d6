/* agent/base/log.h - leveled, rate-limited, key=value logging to stderr (journald) and optionally syslog. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERR = 0, LOG_LEVEL_WRN, LOG_LEVEL_INF, LOG_LEVEL_DBG };

/* Per call site state for rate limiting (static, one per LOG_* use). */
struct log_site {
	uint64_t window_start_us;
	uint32_t in_window;
	uint32_t suppressed;
};

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "err|wrn|inf|dbg" (also "error", "warning", "info", "debug").
 * Returns the level or -EINVAL. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level lvl);
/* Also send lines to syslog(3) with ident (NULL to stop). */
void log_set_syslog(const char *ident);
/* Start each stderr line with its sd-daemon priority prefix ("<3>" err, "<4>" wrn,
 * "<6>" inf, "<7>" dbg) so journald files it at that level. berthd turns it on
 * when JOURNAL_STREAM names its stderr. */
void log_set_journal(bool on);
/* Lines suppressed by rate limiting since start. */
uint64_t log_suppressed_total(void);

/* Writes one line: "<lvl> <tag>: <message>". A quoted value (key="...") ends at
 * the last quote before the next " key=" or the end of the message; quotes and
 * backslashes inside it are escaped (\" and \\), newlines and tabs written as \n
 * and \t, so a message with quotes in it stays one parseable value. Lines from one site beyond
 * CONFIG_LOG_RATE_PER_S per second are counted, not written; the next
 * written line says how many were suppressed. */
void log_write(struct log_site *site, enum log_level lvl, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define LOG_AT_(lvl, tag, ...)                                            \
	do {                                                              \
		if ((int)(lvl) <= (int)log_get_level()) {                 \
			static struct log_site site_;                     \
			log_write(&site_, (lvl), (tag), __VA_ARGS__);     \
		}                                                         \
	} while (0)

/* Each module defines LOG_TAG ("sched", "store", ...) before using these. */
#define log_err(...) LOG_AT_(LOG_LEVEL_ERR, LOG_TAG, __VA_ARGS__)
#define log_wrn(...) LOG_AT_(LOG_LEVEL_WRN, LOG_TAG, __VA_ARGS__)
#define log_inf(...) LOG_AT_(LOG_LEVEL_INF, LOG_TAG, __VA_ARGS__)
#define log_dbg(...) LOG_AT_(LOG_LEVEL_DBG, LOG_TAG, __VA_ARGS__)

#endif
