/*
 * Tests of the plain C logic (flusher.c, lock.c), built and run under
 * AddressSanitizer and UBSan by scripts/test-native.sh. Exit status 0 only if
 * every check passed. Cross-process cases fork; a child blocked in flock is
 * seen in /proc/locks, and a signal handler reports through a pipe, so
 * nothing here waits on a clock.
 */
#define _GNU_SOURCE
#include "../remapfs_native.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PF_MEMALLOC_NOIO 0x00080000UL
#define PF_LOCAL_THROTTLE 0x00100000UL

static int failures;

#define EXPECT(cond)                                                          \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "test_native.c:%d: FAILED: %s\n", __LINE__, #cond);     \
      failures++;                                                             \
    }                                                                         \
  } while (0)

static char lockPath[] = "/tmp/remapfs-native-test-XXXXXX";

static int open_again(void) {
  int fd = open(lockPath, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    perror("open");
    exit(2);
  }
  return fd;
}

/* Field 9 of /proc/thread-self/stat. */
static unsigned long thread_flags(void) {
  char buf[1024];
  int fd = open("/proc/thread-self/stat", O_RDONLY);
  ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
  if (fd >= 0) close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (p == NULL) return 0;
  /* After ')': field 3 (state) ... field 9 (flags). */
  unsigned long flags = 0;
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1) return 0;
  return flags;
}

static void test_errno_name(void) {
  char buf[16];
  EXPECT(strcmp(remapfs_errno_name(EINVAL, buf, sizeof buf), "EINVAL") == 0);
  EXPECT(strcmp(remapfs_errno_name(EWOULDBLOCK, buf, sizeof buf), "EAGAIN") == 0);
  EXPECT(strcmp(remapfs_errno_name(99999, buf, sizeof buf), "E99999") == 0);
  char tiny[4];
  EXPECT(strcmp(remapfs_errno_name(99999, tiny, sizeof tiny), "E99") == 0); /* truncated, terminated */
}

static void test_flock_one_process(void) {
  int a = open_again(), b = open_again(), err = -1;
  /* Two open file descriptions conflict like two processes. */
  EXPECT(remapfs_flock(a, 1, 0, &err) == REMAPFS_LOCK_TAKEN && err == 0);
  EXPECT(remapfs_flock(b, 1, 0, &err) == REMAPFS_LOCK_BUSY && err == 0);
  EXPECT(remapfs_flock(b, 0, 0, &err) == REMAPFS_LOCK_BUSY);
  EXPECT(remapfs_unlock(a) == 0);
  EXPECT(remapfs_flock(b, 1, 1, &err) == REMAPFS_LOCK_TAKEN);
  EXPECT(remapfs_unlock(b) == 0);
  EXPECT(remapfs_flock(a, 0, 0, &err) == REMAPFS_LOCK_TAKEN);
  EXPECT(remapfs_flock(b, 0, 0, &err) == REMAPFS_LOCK_TAKEN);
  EXPECT(remapfs_unlock(a) == 0 && remapfs_unlock(b) == 0);
  close(a);
  close(b);
  /* A closed fd. */
  EXPECT(remapfs_flock(a, 1, 0, &err) == -1 && err == EBADF);
  EXPECT(remapfs_unlock(a) == EBADF);
}

/* True when pid waits in flock on lockPath's inode ("N: -> FLOCK ... pid maj:min:ino ..."). */
static int blocked_in_flock(pid_t pid, ino_t ino) {
  FILE *f = fopen("/proc/locks", "r");
  if (f == NULL) return 0;
  char line[256];
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    char arrow[4], kind[16];
    long lpid;
    unsigned long lino;
    if (sscanf(line, "%*d: %3s %15s %*s %*s %ld %*x:%*x:%lu", arrow, kind, &lpid, &lino) == 4 &&
        strcmp(arrow, "->") == 0 && strcmp(kind, "FLOCK") == 0 && lpid == (long)pid && lino == (unsigned long)ino)
      found = 1;
  }
  fclose(f);
  return found;
}

static int signalPipe[2];
static volatile sig_atomic_t signals;

static void on_usr1(int sig) {
  (void)sig;
  signals++;
  char c = 's';
  if (write(signalPipe[1], &c, 1) != 1) _exit(3);
}

/* Another process: try-lock fails while held; a blocking lock survives a
 * signal (EINTR is retried) and is taken once the holder unlocks. */
static void test_flock_two_processes(void) {
  int held = open_again(), err = -1;
  struct stat st;
  EXPECT(fstat(held, &st) == 0);
  EXPECT(remapfs_flock(held, 1, 0, &err) == REMAPFS_LOCK_TAKEN);

  pid_t probe = fork();
  if (probe == 0) {
    int fd = open_again(), e;
    _exit(remapfs_flock(fd, 0, 0, &e) == REMAPFS_LOCK_BUSY ? 0 : 1);
  }
  int status = 0;
  EXPECT(waitpid(probe, &status, 0) == probe && WIFEXITED(status) && WEXITSTATUS(status) == 0);

  EXPECT(pipe(signalPipe) == 0);
  pid_t waiter = fork();
  if (waiter == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART: flock returns EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    int fd = open_again(), e = -1;
    int r = remapfs_flock(fd, 1, 1, &e);
    _exit(r == REMAPFS_LOCK_TAKEN && signals == 1 ? 0 : 10 + r);
  }
  while (!blocked_in_flock(waiter, st.st_ino)) {
    if (waitpid(waiter, &status, WNOHANG) == waiter) {
      fprintf(stderr, "test_native.c: the waiter exited before blocking\n");
      failures++;
      return;
    }
    usleep(1000);
  }
  EXPECT(kill(waiter, SIGUSR1) == 0);
  char c;
  EXPECT(read(signalPipe[0], &c, 1) == 1); /* the handler ran: flock was interrupted */
  EXPECT(remapfs_unlock(held) == 0);
  EXPECT(waitpid(waiter, &status, 0) == waiter && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(signalPipe[0]);
  close(signalPipe[1]);
  close(held);
}

static void *report_flags(void *arg) {
  *(unsigned long *)arg = thread_flags();
  return NULL;
}

/* Either both prctls work (CAP_SYS_RESOURCE) and the flags show on this
 * thread and on a thread created afterwards, or both fail with EPERM. */
static void test_io_flusher(void) {
  int state = -1;
  int getErr = remapfs_get_io_flusher(&state);
  unsigned long before = thread_flags();
  EXPECT((before & (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE)) == 0);
  int setErr = remapfs_set_io_flusher();
  if (setErr == EPERM) {
    EXPECT(getErr == EPERM);
    EXPECT((thread_flags() & (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE)) == 0);
    printf("test_native: PR_SET_IO_FLUSHER gives EPERM here (no CAP_SYS_RESOURCE)\n");
    return;
  }
  EXPECT(getErr == 0 && state == 0);
  EXPECT(setErr == 0);
  EXPECT(remapfs_get_io_flusher(&state) == 0 && state == 1);
  EXPECT((thread_flags() & (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE)) == (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE));
  pthread_t t;
  unsigned long childFlags = 0;
  EXPECT(pthread_create(&t, NULL, report_flags, &childFlags) == 0 && pthread_join(t, NULL) == 0);
  EXPECT((childFlags & (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE)) == (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE));
}

int main(void) {
  int fd = mkstemp(lockPath);
  if (fd < 0) {
    perror("mkstemp");
    return 2;
  }
  close(fd);
  test_errno_name();
  test_flock_one_process();
  test_flock_two_processes();
  test_io_flusher();
  unlink(lockPath);
  if (failures > 0) {
    fprintf(stderr, "test_native: %d check(s) failed\n", failures);
    return 1;
  }
  printf("test_native: all checks passed\n");
  return 0;
}
