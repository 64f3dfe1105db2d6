/* hal/watchdog.h - hardware watchdog and the service manager's liveness protocol. */
#ifndef BERTH_HAL_WATCHDOG_H
#define BERTH_HAL_WATCHDOG_H

/* Opens the hardware watchdog device (e.g. /dev/watchdog) and sets its
 * timeout. Returns 0, -ENOENT when the device does not exist (not an error
 * for the caller to die on), or another -errno. */
int hal_watchdog_open(const char *path, unsigned timeout_s) __attribute__((warn_unused_result));

/* Keeps the hardware watchdog from firing. No-op when not open. */
void hal_watchdog_kick(void);

/* Disarms (magic close) and closes the hardware watchdog. Safe when not open. */
void hal_watchdog_close(void);

/* Sends a state string ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=...")
 * to the service manager over $NOTIFY_SOCKET (sd_notify protocol). Returns 1
 * when sent, 0 when NOTIFY_SOCKET is not set, or -errno. Never blocks. */
int hal_notify(const char *state);

/* Watchdog interval the service manager asked for ($WATCHDOG_USEC, honouring
 * $WATCHDOG_PID), in microseconds; 0 when none. */
unsigned long long hal_notify_watchdog_usec(void);

#endif
