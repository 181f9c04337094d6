/*
 * remapfs native helpers: the plain C logic, with no N-API, so that a C test
 * program can run it under sanitizers (scripts/test-native.sh) and the N-API
 * glue (addon.c) stays a thin translation layer.
 *
 * Every function acts on the calling thread or on one fd and keeps no state,
 * so there is nothing to lock. Errors are returned as positive errno values,
 * never through the global errno.
 */
#ifndef REMAPFS_NATIVE_H
#define REMAPFS_NATIVE_H

/* prctl(PR_SET_IO_FLUSHER, 1) on the calling thread: 0 or an errno value. */
int remapfs_set_io_flusher(void);

/* prctl(PR_GET_IO_FLUSHER) on the calling thread: stores 0 or 1 in *state and
 * returns 0, or returns an errno value. */
int remapfs_get_io_flusher(int *state);

/* What remapfs_flock found. */
enum remapfs_lock_result {
  REMAPFS_LOCK_TAKEN = 0,
  REMAPFS_LOCK_BUSY = 1 /* EWOULDBLOCK with wait == 0 */
};

/* flock(fd, LOCK_EX or LOCK_SH, plus LOCK_NB unless wait), retrying EINTR.
 * Returns REMAPFS_LOCK_TAKEN or REMAPFS_LOCK_BUSY and sets *err to 0, or
 * returns -1 and sets *err to the errno value. */
int remapfs_flock(int fd, int exclusive, int wait, int *err);

/* flock(fd, LOCK_UN), retrying EINTR: 0 or an errno value. */
int remapfs_unlock(int fd);

/* The symbolic name of an errno value ("EINVAL"), or "E<number>" for one this
 * C library does not name. The result is static or lives in buf (size >= 16). */
const char *remapfs_errno_name(int errnum, char *buf, unsigned long bufSize);

#endif
