/*
 * remapfs-io-flusher COMMAND [ARG...]: sets PR_SET_IO_FLUSHER on itself and
 * executes COMMAND in its place (same pid). The flag survives execve and is
 * inherited by every thread the new program starts, including the ones Node
 * starts before any JavaScript runs, which a prctl from the daemon itself
 * cannot reach. When the prctl fails, it says so on stderr and runs COMMAND
 * anyway (the daemon reports the state too). No state, no threads.
 */
#define _GNU_SOURCE
#include "remapfs_native.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: remapfs-io-flusher COMMAND [ARG...]\n");
    return 2;
  }
  int err = remapfs_set_io_flusher();
  if (err != 0) {
    char buf[16];
    fprintf(stderr, "remapfs-io-flusher: PR_SET_IO_FLUSHER: %s; running %s without it\n",
            remapfs_errno_name(err, buf, sizeof buf), argv[1]);
  }
  execvp(argv[1], argv + 1);
  fprintf(stderr, "remapfs-io-flusher: %s: %s\n", argv[1], strerror(errno));
  return 127;
}
