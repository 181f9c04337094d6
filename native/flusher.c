/*
 * PR_SET_IO_FLUSHER (Linux >= 5.6) marks a thread as one that writeback
 * depends on: its allocations get PF_MEMALLOC_NOIO and PF_LOCAL_THROTTLE, so
 * reclaim never makes it wait for I/O that it must complete itself. Threads
 * created afterwards inherit the flags. Setting it needs CAP_SYS_RESOURCE.
 */
#define _GNU_SOURCE
#include "remapfs_native.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif
#ifndef PR_GET_IO_FLUSHER
#define PR_GET_IO_FLUSHER 58
#endif

int remapfs_set_io_flusher(void) {
  if (prctl(PR_SET_IO_FLUSHER, 1UL, 0UL, 0UL, 0UL) == 0) return 0;
  return errno;
}

int remapfs_get_io_flusher(int *state) {
  int r = prctl(PR_GET_IO_FLUSHER, 0UL, 0UL, 0UL, 0UL);
  if (r < 0) return errno;
  *state = r;
  return 0;
}

const char *remapfs_errno_name(int errnum, char *buf, unsigned long bufSize) {
  const char *name = strerrorname_np(errnum);
  if (name != NULL) return name;
  snprintf(buf, bufSize, "E%d", errnum);
  return buf;
}
