/* agent/cmd/ctl_check.h - `berthctl check` (the gateway diagnosed where it runs) and the local API client of `state --local`. */
#ifndef BERTH_CTL_CHECK_H
#define BERTH_CTL_CHECK_H

#include <stddef.h>
#include <stdio.h>

struct berth_config;
struct ctl_args;

enum ctl_check_result { CTL_CHECK_OK = 0, CTL_CHECK_WARN = 1, CTL_CHECK_FAIL = 2 };

/* Runs every check of the gateway described by the config at config_path (read
 * as berthd reads it): config valid and its secrets private, data dir and its
 * modes, engine reachable and its version, broker reachable (TCP; with TLS the
 * CA and client certificates' expiry), wall clock sane, disk room for the
 * telemetry budget, free memory. Prints one line per check to out: "ok",
 * "warn" or "fail", what was found and, when not ok, the fix. Each network
 * check waits at most timeout_ms. Returns the worst result. */
enum ctl_check_result ctl_check_run(FILE *out, const char *config_path, unsigned timeout_ms);

/* GET path from berthd's local API as cfg configures it (api.unix_socket when
 * set, else api.listen:api.port), HTTP/1.0, within timeout_ms. On success
 * returns the HTTP status and a malloc'd, NUL-terminated body in *body (the
 * caller frees it); -errno when the API cannot be reached (msg says where). */
int ctl_local_get(const struct berth_config *cfg, const char *path, unsigned timeout_ms, char **body, char *msg,
		  size_t msglen);

/* berthctl state --local: GET /v1/state from the local API of the berthd whose config is
 * a->config_file (default /etc/berth/config.json), printed as `berthctl state` prints the
 * reported state (--json: the document). Returns a berthctl exit code (CTL_EXIT_*). */
int ctl_local_state(const struct ctl_args *a);

/* Days until the first certificate of the PEM file expires (negative: expired).
 * Returns 0 and *days, -ENOENT/-EACCES when unreadable, -EINVAL when no
 * certificate could be decoded. */
int ctl_cert_days_left(const char *pem_path, long long now_s, long long *days);

#endif
