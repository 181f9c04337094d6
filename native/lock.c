/*
 * flock(2) wrappers. A lock belongs to the open file description, so two
 * opens of one file in one process conflict like two processes do. EINTR
 * (a signal while waiting) is retried; every other error is returned.
 */
#define _GNU_SOURCE
#include "remapfs_native.h"

#include <errno.h>
#include <sys/file.h>

int remapfs_flock(int fd, int exclusive, int wait, int *err) {
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
  for (;;) {
    if (flock(fd, op) == 0) {
      *err = 0;
      return REMAPFS_LOCK_TAKEN;
    }
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK && !wait) {
      *err = 0;
      return REMAPFS_LOCK_BUSY;
    }
    *err = errno;
    return -1;
  }
}

int remapfs_unlock(int fd) {
  for (;;) {
    if (flock(fd, LOCK_UN) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}
