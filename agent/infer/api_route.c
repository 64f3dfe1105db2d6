/* agent/infer/api_route.c - maps a request's method and path to the local API's route (pure: no I/O, no HTTP library). */
#include "agent/infer/api.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static int copy_model(const char *s, size_t n, struct api_route *route)
{
	if (n == 0 || n >= sizeof(route->model) || memchr(s, '/', n))
		return -EINVAL;
	memcpy(route->model, s, n);
	route->model[n] = '\0';
	return 0;
}

int api_route_parse(const char *method, const char *url, struct api_route *route)
{
	memset(route, 0, sizeof(*route));
	if (!method || !url)
		return -ENOENT;
	size_t ulen = strcspn(url, "?#");
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	static const char models[] = "/v2/models/";

#define PATH_IS(p) (ulen == sizeof(p) - 1 && strncmp(url, p, ulen) == 0)
	if (PATH_IS("/v2/health/live"))
		route->kind = API_ROUTE_LIVE;
	else if (PATH_IS("/v2/health/ready"))
		route->kind = API_ROUTE_READY;
	else if (PATH_IS("/metrics"))
		route->kind = API_ROUTE_METRICS;
	else if (PATH_IS("/v1/state"))
		route->kind = API_ROUTE_STATE;
	else if (PATH_IS("/v2") || PATH_IS("/v2/"))
		route->kind = API_ROUTE_SERVER_META;
#undef PATH_IS
	else if (ulen > sizeof(models) - 1 && strncmp(url, models, sizeof(models) - 1) == 0) {
		const char *m = url + sizeof(models) - 1;
		const char *end = url + ulen;
		const char *slash = memchr(m, '/', (size_t)(end - m));
		const char *mend = slash ? slash : end;
		const char *rest = slash ? slash + 1 : end;
		static const char versions[] = "versions/";
		if ((size_t)(end - rest) > sizeof(versions) - 1 && !strncmp(rest, versions, sizeof(versions) - 1)) {
			const char *v = rest + sizeof(versions) - 1;
			const char *vslash = memchr(v, '/', (size_t)(end - v));
			if (vslash == v)
				return -ENOENT;
			rest = vslash ? vslash + 1 : end;
		}
		size_t rlen = (size_t)(end - rest);
		if (rlen == 0)
			route->kind = API_ROUTE_MODEL_META;
		else if (rlen == 5 && strncmp(rest, "infer", 5) == 0)
			route->kind = API_ROUTE_INFER;
		else if (rlen == 5 && strncmp(rest, "ready", 5) == 0)
			route->kind = API_ROUTE_MODEL_READY;
		else
			return -ENOENT;
		if (copy_model(m, (size_t)(mend - m), route) < 0) {
			route->kind = API_ROUTE_NOT_FOUND;
			return -EINVAL;
		}
	} else {
		return -ENOENT;
	}
	if (route->kind == API_ROUTE_INFER ? !post : !get)
		return -EPERM;
	return 0;
}
