/*
 * The engine's threads, built so that serving a request on the fast path
 * never faults a page in (docs/architecture.md, "Memory limits").
 *
 * Two models. io_uring (the default where io_uring_setup works): one ring
 * worker per CPU the daemon may run on (at most MAX_RINGS, or as many as
 * create() asked) reads every FUSE request and serves pair reads and writes
 * asynchronously (ring.c), POOL_THREADS blocking threads take what the
 * ring workers hand off (everything that may wait for JS), and RETRY_THREADS
 * redo requests whose device call would have waited (never waiting for JS,
 * since their requests' slots are still announced). Blocking (the
 * fallback, or ringWorkers 0 at create()): max_threads workers each read a
 * request and serve it to the end. Either way every thread runs on a pinned
 * stack, as below.
 *
 * Why: under a memory limit, a page fault or allocation of a thread reclaims
 * first, and cgroup v1 reclaim waits for pages under writeback. A loop device
 * over a pair file makes that writeback depend on the engine threads, so a
 * thread that faults while the cgroup is full can wait for itself. Observed
 * with libfuse's own loop: every worker stuck in fuse_dev_read → GUP →
 * do_anonymous_page → try_charge_memcg → folio_wait_writeback, on the pages of
 * its 1 MiB receive buffer (malloc'd, touched only as requests fill it).
 * PR_SET_IO_FLUSHER avoids the wait, but needs CAP_SYS_RESOURCE.
 *
 * So engine_serve() replaces fuse_session_loop_mt with a fixed pool started at
 * mount. Each worker, before it reads its first request:
 *  - runs on a stack mapped with MAP_POPULATE and mlock()ed (guard page below);
 *  - registers (worker_get: slot, buffers, PR_SET_IO_FLUSHER when allowed) and
 *    touches and mlock()s its request buffer and run table;
 *  - reads requests into its own receive buffer, populated and mlock()ed;
 *  - touches and mlock()s a first stretch of its malloc arena, where libfuse's
 *    per-request struct is carved (then reused from the thread's cache).
 * Receive buffers are MADV_DONTFORK, so a fork of the daemon does not make
 * them copy-on-write. Stacks and malloc'd memory cannot be: the child's fork
 * handler writes each thread's struct at the top of its stack, and a heap page
 * may hold chunks the child needs. mlock failing (no CAP_IPC_LOCK, RLIMIT_MEMLOCK) is
 * counted, not fatal: the pages are touched anyway, and without swap they stay.
 *
 * The receive buffer is RECV_BYTES (libfuse 3.14's own size: 256 pages + one
 * header page). libfuse passes its se->bufsize to read(); the kernel writes one
 * request, at most a header plus max_write, which op_init caps at
 * ENG_BUF_BYTES, so nothing past RECV_BYTES is written even if a libfuse
 * version passes a larger size.
 *
 * Signals are blocked in the workers, as libfuse's loop does: Node handles them
 * on its own thread. Counters (e->pin_*) are written by the workers (atomics).
 */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define STACK_BYTES (512u << 10)
#define ARENA_WARM_BYTES (64u << 10)
#define RECV_BYTES ((256u << 12) + 4096u)
#define MAX_RINGS ENG_MAX_RINGS
#define POOL_THREADS 4
#define RETRY_THREADS 4 /* ring workers' requests whose device call would have waited (ring.c) */

enum role { ROLE_BLOCKING, ROLE_RING, ROLE_POOL, ROLE_RETRY };

struct pool_worker {
  struct engine *e;
  enum role role;
  struct ring_worker *rw; /* ROLE_RING */
  pthread_t thread;
  void *stack; /* mapping incl. the guard page */
  size_t stack_map_bytes;
  bool started;
};

static void note_lock(struct engine *e, int rc) {
  if (rc == 0) return;
  atomic_store(&e->pin_errno, errno);
  atomic_fetch_add(&e->pin_failed, 1);
}

/* Touches and locks [p, p+len); keeps it out of forks only when it is our own mapping (`own`). */
void engine_pin_range(struct engine *e, void *p, size_t len, bool own) {
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
  uintptr_t end = ((uintptr_t)p + len + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
  for (volatile char *c = (volatile char *)p; c < (volatile char *)p + len; c += page) *c = *c;
  note_lock(e, mlock((void *)start, end - start));
  if (own) madvise((void *)start, end - start, MADV_DONTFORK);
}

void engine_pin_worker(struct engine *e, struct worker *w) {
  /* malloc'd (io.c): their pages may be shared with other heap chunks, so no MADV_DONTFORK. */
  if (w->buf) engine_pin_range(e, w->buf, ENG_BUF_BYTES, false);
  engine_pin_range(e, w->runs, sizeof(struct rt_run) * ENG_MAX_RUNS, false);
}

static void *map_pinned(struct engine *e, size_t len, bool dontfork) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) return NULL;
  engine_pin_range(e, p, len, dontfork);
  return p;
}

/* The malloc arena: touched and locked while this thread is its only user; freed back to its top. */
static void warm_arena(struct engine *e) {
  void *warm = malloc(ARENA_WARM_BYTES);
  if (warm) {
    memset(warm, 0, ARENA_WARM_BYTES);
    note_lock(e, mlock((void *)((uintptr_t)warm & ~(uintptr_t)4095), ARENA_WARM_BYTES));
    free(warm);
  }
}

static void *worker_main(void *arg) {
  struct pool_worker *pw = arg;
  struct engine *e = pw->e;
  if (pw->role != ROLE_BLOCKING) {
    warm_arena(e);
    if (pw->role == ROLE_RING) ring_run(pw->rw);
    else handoff_run(e, pw->role == ROLE_RETRY);
    return NULL;
  }
  struct worker *w = worker_get(e);
  if (w) engine_pin_worker(e, w);
  warm_arena(e);
  struct fuse_buf fbuf;
  memset(&fbuf, 0, sizeof fbuf);
  void *recv = map_pinned(e, RECV_BYTES, true);
  if (!recv) note_lock(e, -1);
  fbuf.mem = recv; /* NULL: libfuse mallocs one (not pinned) */
  if (w && recv) atomic_fetch_add(&e->pin_threads, 1);
  while (!fuse_session_exited(e->se)) {
    int r = fuse_session_receive_buf(e->se, &fbuf);
    if (r == -EINTR) continue;
    if (r <= 0) {
      if (r < 0) fuse_session_exit(e->se);
      break;
    }
    fuse_session_process_buf(e->se, &fbuf);
  }
  if (recv) munmap(recv, RECV_BYTES);
  else free(fbuf.mem);
  return NULL;
}

/* Maps a stack with a guard page below; NULL on failure. */
static void *map_stack(struct engine *e, struct pool_worker *pw) {
  long page = sysconf(_SC_PAGESIZE);
  pw->stack_map_bytes = STACK_BYTES + (size_t)page;
  void *p = map_pinned(e, pw->stack_map_bytes, false); /* glibc's fork handler writes the thread struct at its top */
  if (!p) return NULL;
  munlock(p, (size_t)page);
  mprotect(p, (size_t)page, PROT_NONE);
  pw->stack = p;
  return (char *)p + page;
}

static bool start_thread(struct engine *e, struct pool_worker *pw) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  void *stack = map_stack(e, pw);
  if (stack) pthread_attr_setstack(&attr, stack, STACK_BYTES);
  else note_lock(e, -1);
  pw->started = pthread_create(&pw->thread, &attr, worker_main, pw) == 0;
  pthread_attr_destroy(&attr);
  return pw->started;
}

static void join_thread(struct pool_worker *pw) {
  if (pw->started) pthread_join(pw->thread, NULL);
  if (pw->stack) munmap(pw->stack, pw->stack_map_bytes);
  pw->started = false;
  pw->stack = NULL;
}

/* How many ring workers: as create() asked, else one per CPU this process may run on; 0 = the blocking model. */
static int ring_count(const struct engine *e) {
  if (e->ring_request >= 0) return e->ring_request > MAX_RINGS ? MAX_RINGS : e->ring_request;
  cpu_set_t set;
  int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  return n < 1 ? 1 : n > MAX_RINGS ? MAX_RINGS : n;
}

/* The io_uring model; -1 (nothing started, e->ring_errno set) when it cannot run. */
static int serve_ring(struct engine *e, int rings) {
  struct pool_worker pool[MAX_RINGS + POOL_THREADS + RETRY_THREADS];
  memset(pool, 0, sizeof pool);
  for (int i = 0; i < rings; i++) {
    pool[i].rw = ring_new(e, i, rings);
    e->rings[i] = pool[i].rw;
    if (!pool[i].rw) {
      e->ring_errno = errno ? errno : EIO;
      for (int j = 0; j < i; j++) ring_free(pool[j].rw);
      memset(e->rings, 0, sizeof e->rings);
      return -1;
    }
  }
  int fd = fuse_session_fd(e->se);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    e->ring_errno = errno;
    for (int i = 0; i < rings; i++) ring_free(pool[i].rw);
    memset(e->rings, 0, sizeof e->rings);
    return -1;
  }
  e->ring_count = rings;
  int pools = e->max_threads < POOL_THREADS ? e->max_threads : POOL_THREADS;
  if (pools < 1) pools = 1;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int pool_started = 0, ring_started = 0;
  e->ring_workers = rings; /* as planned, so that status right after mount shows the model; corrected below */
  e->pool_threads = pools;
  for (int i = 0; i < pools; i++) {
    pool[rings + i] = (struct pool_worker){.e = e, .role = ROLE_POOL};
    pool_started += start_thread(e, &pool[rings + i]);
  }
  int retry_started = 0;
  for (int i = 0; i < RETRY_THREADS; i++) {
    pool[rings + pools + i] = (struct pool_worker){.e = e, .role = ROLE_RETRY};
    retry_started += start_thread(e, &pool[rings + pools + i]);
  }
  for (int i = 0; i < rings && pool_started > 0 && retry_started > 0; i++) {
    pool[i].e = e;
    pool[i].role = ROLE_RING;
    ring_started += start_thread(e, &pool[i]);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  e->ring_workers = ring_started;
  e->pool_threads = pool_started;
  for (int i = 0; i < rings; i++) join_thread(&pool[i]);
  pthread_mutex_lock(&e->handoff_lock);
  e->handoff_stop = true;
  pthread_cond_broadcast(&e->handoff_cond);
  pthread_cond_broadcast(&e->retry_cond);
  pthread_mutex_unlock(&e->handoff_lock);
  for (int i = 0; i < pools + RETRY_THREADS; i++) join_thread(&pool[rings + i]);
  e->ring_count = 0;
  for (int i = 0; i < rings; i++) ring_free(pool[i].rw);
  memset(e->rings, 0, sizeof e->rings);
  if (ring_started > 0) return 0;
  /* Nothing read the session: back to the blocking model (restores blocking reads). */
  e->ring_errno = EAGAIN;
  e->ring_workers = 0;
  e->pool_threads = 0;
  e->handoff_stop = false;
  fcntl(fd, F_SETFL, flags);
  return -1;
}

static int serve_blocking(struct engine *e) {
  int n = e->max_threads < 1 ? 1 : e->max_threads > RT_MAX_SLOTS ? RT_MAX_SLOTS : e->max_threads;
  struct pool_worker *pool = calloc((size_t)n, sizeof *pool);
  if (!pool) return -1;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int started = 0;
  for (int i = 0; i < n; i++) {
    pool[i].e = e;
    pool[i].role = ROLE_BLOCKING;
    started += start_thread(e, &pool[i]);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  for (int i = 0; i < n; i++) join_thread(&pool[i]);
  free(pool);
  return started > 0 ? 0 : -1;
}

int engine_serve(struct engine *e) {
  int rings = ring_count(e);
  if (rings > 0 && serve_ring(e, rings) == 0) return 0;
  return serve_blocking(e);
}
