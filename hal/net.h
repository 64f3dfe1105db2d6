/* hal/net.h - listening sockets for the local API: TCP on an address, or a unix socket with file mode. */
#ifndef BERTH_HAL_NET_H
#define BERTH_HAL_NET_H

#include <stdbool.h>
#include <stdint.h>

/* A listening, non-blocking, close-on-exec stream socket on addr:port
 * (addr a numeric IPv4 or IPv6 address; SO_REUSEADDR set). defer_s > 0: a
 * connection that sends nothing is not handed to accept() for about that
 * long (TCP_DEFER_ACCEPT where the system has it), so connections that only
 * hold a place never queue ahead of those that send a request. Returns the
 * descriptor, -EINVAL when addr is not numeric, or the socket/bind/listen
 * error (-EADDRINUSE, -EACCES, ...). */
int hal_net_listen_tcp(const char *addr, uint16_t port, int backlog, unsigned defer_s)
	__attribute__((warn_unused_result));
/* The same on a unix socket at path, given file mode (e.g. 0660) once
 * bound. A socket file left at path (by a previous run) is replaced; any
 * other file there makes bind fail (-EADDRINUSE). Returns the descriptor,
 * -ENAMETOOLONG, or the socket/bind/listen error. */
int hal_net_listen_unix(const char *path, unsigned mode, int backlog) __attribute__((warn_unused_result));
/* Removes the unix socket file at path if it is a socket (what
 * hal_net_listen_unix made); leaves anything else alone. */
void hal_net_unlink_unix(const char *path);
/* A connected, non-blocking, close-on-exec stream socket: to the unix socket at
 * unix_path when it is non-empty, else to host:port (a name or address, resolved
 * here: this may block on DNS). Waits at most timeout_ms for the connection.
 * Returns the descriptor (close with hal_net_close), -ETIMEDOUT, -EHOSTUNREACH
 * (unresolvable host), or the socket/connect error (-ECONNREFUSED, -EACCES, ...). */
int hal_net_connect(const char *unix_path, const char *host, uint16_t port, unsigned timeout_ms)
	__attribute__((warn_unused_result));
#define HAL_NET_ADDR_MAX 128 /* room for any peer address (a struct sockaddr_storage) */
/* Accepts one connection waiting on listening socket lfd, non-blocking and
 * close-on-exec; the peer's address (a struct sockaddr) into addr
 * (HAL_NET_ADDR_MAX bytes), its length into *addrlen. Returns the descriptor,
 * -EAGAIN when none is waiting, or the accept error (-EMFILE, -ENFILE,
 * -ENOBUFS, -ENOMEM: out of resources; -ECONNABORTED and the like: that one
 * connection failed). */
int hal_net_accept(int lfd, void *addr, unsigned *addrlen) __attribute__((warn_unused_result));
/* True when at least one byte waits to be read on fd; false when nothing has
 * arrived yet or the peer has closed. Never blocks, reads nothing. */
bool hal_net_has_data(int fd);
/* Closes a descriptor from hal_net_listen_*, hal_net_accept or hal_net_connect. Negative fd is ignored. */
void hal_net_close(int fd);
/* Shuts a connected socket down both ways without closing it: its owner (the
 * HTTP server) sees the end of the stream and closes it. Negative fd ignored. */
void hal_net_shutdown(int fd);
/* The address of a peer (a struct sockaddr from the HTTP server) as a 16-byte
 * key: IPv4 in the first 4 bytes, IPv6 in all 16. Returns true for IPv4 and
 * IPv6, false for anything else (a unix socket peer has no address). */
bool hal_net_peer_key(const void *sockaddr, uint8_t key[16]);

#endif
