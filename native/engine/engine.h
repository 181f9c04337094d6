/*
 * Native engine state shared by fs.c (libfuse 3 low-level ops, engine threads)
 * and napi.c (N-API glue, JS main thread). Locks:
 *  - engine.lock guards the pair list and the control path table; never held
 *    during I/O or while waiting for JS. The upcall list, every upcall's
 *    answer and `closing` are guarded by io.c's global upcall lock.
 *  - routes and `removed`/`writes_slow`/`fast_open` are read lock-free under
 *    the epoch protocol (routes.c); only the JS thread writes them.
 *  - per-thread counters are written by their owning thread only (relaxed).
 *  - the hand-off queue (ring.c) is guarded by handoff_lock.
 */
#ifndef REMAPFS_ENGINE_H
#define REMAPFS_ENGINE_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "routes.h"

#define ENG_BUF_BYTES (1u << 20)
#define ENG_MAX_RUNS 4100
#define ENG_MAX_RINGS 3 /* ring workers at most */

enum { C_READ_OPS, C_WRITE_OPS, C_READ_BYTES, C_WRITE_BYTES, C_READ_ERRORS, C_WRITE_ERRORS, C_FLUSHES,
       C_FALLOCATES, C_SLOW_READS, C_SLOW_WRITES, C_FAST_IO_ERRORS, C_WAIT_RETRIES, C_COUNT };

struct counters {
  _Alignas(64) _Atomic uint64_t c[C_COUNT];
};

struct pair {
  uint64_t id;
  char *name;
  uint64_t ino;
  uint64_t size_bytes, block_size, align_bytes;
  int main_fd, spare_fd;
  bool main_blk, spare_blk; /* block devices: BLKZEROOUT instead of fallocate */
  bool mem_backed;          /* a device on tmpfs/ramfs: ring workers copy inline instead of queueing */
  bool direct, read_only;
  _Atomic int removed;
  _Atomic int writes_slow;
  _Atomic int fast_open; /* 0 (as added) until JS has published its routes: every read, write and fallocate goes to JS */
  _Atomic int refs; /* list membership + open handles */
  _Atomic int open_handles;
  _Atomic int64_t inflight, max_inflight;
  struct rt_map routes;
  struct counters per_slot[RT_MAX_SLOTS];
  struct pair *next;
};

enum up_op { UP_READ, UP_WRITE, UP_FSYNC, UP_FALLOCATE, UP_GETATTR, UP_READDIR, UP_OPEN, UP_RELEASE, UP_TRUNCATE };

struct upcall {
  uint32_t handle;
  enum up_op op;
  bool control; /* a .remapfs path request */
  uint64_t pair_id;
  struct pair *pair;
  const char *path;
  uint64_t fh;
  uint64_t offset, length;
  void *buf;
  int mode;
  const char *why;
  /* answer */
  bool done;
  int64_t result;
  uint32_t attr_mode;
  uint64_t attr_size;
  char **names;
  size_t name_count;
  pthread_cond_t cond;
  void *buf_ref; /* napi_ref of the external buffer's ArrayBuffer (napi.c) */
  struct engine *engine;
  struct upcall *next;
};

struct worker {
  struct engine *e;
  int slot;
  void *buf; /* ENG_BUF_BYTES, aligned; NULL for a ring worker */
  struct rt_run *runs;
};

/* A request an io_uring worker passes to the pool (ring.c), because it may wait for JS. */
struct handoff {
  struct handoff *next;
  bool raw;              /* a whole FUSE request, processed by libfuse in the pool */
  bool retry;            /* a ring worker's request whose device call would have waited (ring_retry); embedded in
                            its context, not freed */
  void *ctx;             /* retry: the struct ring_ctx */
  struct fuse_buf fb;    /* raw: a malloc'd copy */
  fuse_req_t req;        /* else: a pair read or write for the slow path */
  struct pair *p;        /* holds a ref */
  bool write;
  uint64_t off, n;
  char *data;            /* write: a malloc'd copy of the data */
  const char *why;
};

struct engine {
  struct rt_epoch ep;
  pthread_mutex_t lock;
  char *mountpoint;
  char **fs_options;
  int fs_option_count;
  int max_threads;
  char *control_dir;
  bool count_inflight;
  struct pair *pairs;
  /* Removed pairs, each with the engine's reference, until forgetPair: their handles still open count for stats.
   * Only the JS thread reads or writes this list (remove, stats, forget) and engine_free. */
  struct pair *gone;
  uint64_t next_ino;
  char **paths; /* control path table: ino = PATH_INO_BASE + index */
  size_t path_count, path_cap;
  bool closing; /* guarded by the upcall lock */
  int state; /* 0 created, 1 mounted, 2 unmounted */
  struct fuse_session *se;
  pthread_t session_thread;
  bool thread_started;
  pthread_key_t worker_key;
  struct worker workers[RT_MAX_SLOTS];
  _Atomic int flusher_set, flusher_failed, flusher_errno;
  _Atomic int pin_threads, pin_failed, pin_errno; /* pin.c: workers fully pinned; failed mlock/mmap calls */
  /* io model (pin.c/ring.c): ring_workers > 0 when io_uring workers serve; ring_errno why not */
  int ring_request; /* create(): -1 one ring worker per CPU, 0 the blocking model, else that many */
  _Atomic int ring_workers, pool_threads, ring_errno; /* written by the session thread as it starts */
  pthread_mutex_t handoff_lock;
  pthread_cond_t handoff_cond;
  struct handoff *handoff_head, *handoff_tail;
  /* would-wait retries (ring_retry), served by their own threads, which never wait for JS */
  struct handoff *retry_head, *retry_tail;
  pthread_cond_t retry_cond; /* with handoff_lock */
  bool handoff_stop;
  /* FUSE over io_uring (ring.c): fring_request from create() (0 never, 1 where the kernel offers it);
   * fring_state: 0 not offered, 1 offered at INIT, 2 the INIT answer asked for it (ring workers register),
   * -1 refused (fring_errno says why); fring_entries: registered and not ended; fring_entries_max: the workers'
   * entries, registered or not (all pinned), once they register. rings[]: the ring workers, set before they start. */
  int fring_request;
  _Atomic int fring_state, fring_errno, fring_entries, fring_entries_max;
  _Atomic uint64_t fring_requests; /* requests that came through an entry */
  uint64_t init_unique;
  struct ring_worker *rings[ENG_MAX_RINGS];
  int ring_count;
  /* negotiated at INIT */
  _Atomic int got_init;
  unsigned proto_major, proto_minor, max_write, max_readahead, max_background, congestion, capable, want;
  /* upcall transport (napi.c) */
  void *tsfn;
  int (*post)(struct engine *e, struct upcall *u); /* 0 when queued */
};

#define ROOT_INO 1
#define CONTROL_INO 2
#define PATH_INO_BASE (1ull << 40)
#define PAIR_INO_BASE (1ull << 32)

enum { H_PAIR, H_CONTROL };
struct handle {
  int kind;
  struct pair *pair; /* H_PAIR, holds a ref */
  uint64_t jsfh;     /* H_CONTROL: fh from JS */
  uint64_t ino;      /* H_CONTROL: path ino */
};

static inline void bump(struct pair *p, struct worker *w, int which, uint64_t by) {
  _Atomic uint64_t *c = &p->per_slot[w->slot].c[which];
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by, memory_order_relaxed);
}

/* io.c: the fast path of pair files, and upcalls */
struct worker *worker_get(struct engine *e);
/* Registers the calling thread (slot, PR_SET_IO_FLUSHER); with_buf: also its 1 MiB buffer. */
struct worker *worker_setup(struct engine *e, bool with_buf);
/* Blocking pieces shared with ring.c. */
int io_full(int fd, bool write, char *buf, uint64_t len, uint64_t off);
int io_split(struct pair *p, struct worker *w, uint64_t off, uint64_t len);
/* Before a pair read or write: answers it and returns 0 when nothing is left to do (removed, read-only, past the
 * end, empty), else the bytes to serve, clipped to the pair. */
uint64_t io_admit(fuse_req_t req, struct pair *p, bool write, size_t size, off_t off);
/* Under the announcement: the fast path's checks and the split into w->runs. The run count (> 0), 0 when the
 * request must go to JS (`why`), -EIO when the pair was removed. */
int io_plan(struct pair *p, struct worker *w, bool write, uint64_t off, uint64_t n, const char **why);
bool io_misaligned(struct pair *p, uint64_t off, uint64_t len);
void io_inflight_enter(struct engine *e, struct pair *p);
void io_inflight_leave(struct engine *e, struct pair *p);
/* Counts a finished read or write of n requested bytes and replies (result: bytes or -errno). */
void io_end_read(fuse_req_t req, struct pair *p, struct worker *w, int64_t result, const char *buf);
void io_end_write(fuse_req_t req, struct pair *p, struct worker *w, int64_t result);
/* The slow path of a read or write: an upcall, then io_end_*. buf NULL: a buffer of its own. */
void io_read_slow(fuse_req_t req, struct engine *e, struct pair *p, struct worker *w, char *buf, uint64_t off,
                  uint64_t n, const char *why);
void io_write_slow(fuse_req_t req, struct engine *e, struct pair *p, struct worker *w, const char *data,
                   uint64_t off, uint64_t n, const char *why);
void io_read(fuse_req_t req, struct engine *e, struct pair *p, size_t size, off_t off);
void io_write(fuse_req_t req, struct engine *e, struct pair *p, const char *data, size_t size, off_t off);
void io_fsync(fuse_req_t req, struct engine *e, struct pair *p);
void io_fallocate(fuse_req_t req, struct engine *e, struct pair *p, int mode, off_t off, off_t len);
/* Blocks until JS answers (or the engine closes: -EIO). Never called with a slot set. */
int64_t upcall_run(struct engine *e, struct upcall *u);
/* JS thread: the outstanding upcall with this handle (under upcall_lock), or NULL. */
void upcall_lock(void);
void upcall_unlock(void);
struct upcall *upcall_find(uint32_t handle);
/* JS thread, under upcall_lock: answers u, waking its engine thread. */
void upcall_answer(struct upcall *u, int64_t result);
/* JS thread: answers every outstanding upcall of e with -EIO via `each` (under upcall_lock) and sets closing. */
void upcall_close(struct engine *e, void (*each)(struct upcall *u));

/* pin.c: the worker pool (fault-free steady state); runs until the session ends, -1 when no worker started. */
int engine_serve(struct engine *e);
void engine_pin_worker(struct engine *e, struct worker *w);
/* Touches and mlocks [p, p+len) (counted in pin_*); own: also MADV_DONTFORK. */
void engine_pin_range(struct engine *e, void *p, size_t len, bool own);

/* ring.c: io_uring workers (see its design note). */
struct ring_worker;
/* The calling thread's ring worker, or NULL (a blocking thread). */
struct ring_worker *ring_self(void);
/* Creates ring worker `index` of `count` (its io_uring, contexts and arena); NULL with errno. Called before its
 * thread starts. */
struct ring_worker *ring_new(struct engine *e, int index, int count);
void ring_free(struct ring_worker *rw);
/* Thread body of a ring worker; returns when the session ends, with nothing in flight. */
void ring_run(struct ring_worker *rw);
/* A pair read or write on a ring worker: answered now, handed off, or completed later. */
void ring_io(struct ring_worker *rw, fuse_req_t req, struct pair *p, bool write, const char *data, size_t size,
             off_t off);
/* Makes libfuse write answers through ring.c (queued on a ring worker's ring while it answers); 0 on success. */
int ring_install_io(struct engine *e);
/* Pool thread body: runs hand-offs (retries: the retry queue) until handoff_stop and its queue is empty. */
void handoff_run(struct engine *e, bool retries);
void handoff_push(struct engine *e, struct handoff *h);
/* Pool thread: redoes a ring worker's request with blocking calls (the request's slot is still announced). */
void ring_retry(struct engine *e, struct worker *w, struct handoff *h);

/* fs.c */
struct engine *engine_new(void);
int engine_mount(struct engine *e, char *err, size_t errlen);
void engine_unmount(struct engine *e);
void engine_free(struct engine *e);
struct pair *engine_find_pair(struct engine *e, uint64_t id); /* under e->lock */
void pair_put(struct pair *p);
/* Answers an upcall (any thread; takes e->lock). */
/* JS thread: fence/publish/writes-slow/remove (routes.c protocol). */
int engine_fence(struct engine *e, struct pair *p, uint64_t first, uint64_t count);
int engine_publish(struct engine *e, struct pair *p, const double *blocks, const double *routes, size_t count);
void engine_set_writes_slow(struct engine *e, struct pair *p, bool on);
/* Opens the pair's fast path (once, after its routes are published); release, paired with io_split's acquire. */
void engine_open_fast_path(struct pair *p);
void engine_remove_pair(struct engine *e, struct pair *p);
/* JS thread: a removed pair by id (for stats), or NULL; and dropping it for good. */
struct pair *engine_find_gone(struct engine *e, uint64_t id);
void engine_forget_pair(struct engine *e, struct pair *p);
void engine_sum(struct pair *p, uint64_t out[C_COUNT]);

#endif
