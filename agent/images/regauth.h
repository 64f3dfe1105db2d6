/* agent/images/regauth.h - registry credentials: the X-Registry-Auth header and the root-only credentials file (pure parsing). */
#ifndef BERTH_IMAGES_REGAUTH_H
#define BERTH_IMAGES_REGAUTH_H

#include <stddef.h>

struct images_registry;

/* base64url of {"username":..,"password":..,"serveraddress":..}, the Docker
 * Engine API's X-Registry-Auth value. Returns 0, -EINVAL (a field holds a
 * control character or a quote/backslash that would need escaping... they are
 * escaped), or -ENOSPC when buf is too small. buf holds a secret: wipe it. */
int regauth_header(const char *username, const char *password, const char *server, char *buf, size_t len)
	__attribute__((warn_unused_result));

/* Parses a credentials document {"registries":{"HOST":{"username":"..","password":".."},...}}
 * into regs (up to cap; *n set). Every HOST must also be in the config's
 * images.registries list (the caller checks). Returns 0, or -EINVAL with err
 * naming the offending field (never a value). */
int regauth_parse(const char *text, size_t len, struct images_registry *regs, unsigned cap, unsigned *n, char *err,
		  size_t err_len) __attribute__((warn_unused_result));

/* The registries of the config ("host[:port],...") with their credentials
 * from path ("" none): the file must be private to its owner (mode & 077 == 0)
 * and every host in it must be in the list. Returns 0 and *n, or -EINVAL /
 * -EPERM / -errno with err naming the file and the key (never a secret). */
int regauth_load(const char *hosts, const char *path, struct images_registry *regs, unsigned cap, unsigned *n,
		 char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
