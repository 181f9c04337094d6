/*
 * The fast path of pair files (engine threads) and the upcall rendezvous.
 *
 * Fast path per request: announce in the thread's epoch slot (routes.c), check
 * the pair is not removed, read the routes, split into runs, preadv/pwritev
 * them, clear the slot. Anything that needs a decision (a SLOW block,
 * writesSlow for a write or fallocate, an unaligned O_DIRECT request, a failed
 * device call) clears the slot FIRST and then hands the whole request to JS,
 * so a thread never waits for JS while announced.
 *
 * Upcalls: the request lives on the engine thread's stack; it is listed under
 * g_lock with a numeric handle and posted to JS (napi.c) by handle, never by
 * pointer. The thread waits on its condvar until JS (complete(), or unmount
 * with -EIO) answers. Only the JS thread answers posted upcalls; a post that
 * fails is answered by the posting thread. g_lock guards the list, every
 * upcall's answer fields and each engine's `closing`.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct upcall *g_list;
static uint32_t g_next_handle = 1;

struct worker *worker_get(struct engine *e) { return worker_setup(e, true); }

struct worker *worker_setup(struct engine *e, bool with_buf) {
  struct worker *w = pthread_getspecific(e->worker_key);
  if (w) return w;
  int s = rt_slot_claim(&e->ep);
  if (s < 0) return NULL;
  w = &e->workers[s];
  if ((with_buf && !w->buf) || !w->runs) {
    void *buf = NULL;
    if (with_buf && !w->buf && posix_memalign(&buf, 4096, ENG_BUF_BYTES) != 0) buf = NULL;
    struct rt_run *runs = w->runs ? w->runs : malloc(sizeof(struct rt_run) * ENG_MAX_RUNS);
    if ((with_buf && !w->buf && !buf) || !runs) {
      free(buf);
      if (runs != w->runs) free(runs);
      rt_slot_release(&e->ep, s);
      return NULL;
    }
    if (buf) w->buf = buf;
    w->runs = runs;
  }
  w->e = e;
  w->slot = s;
  if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0) {
    atomic_fetch_add(&e->flusher_set, 1);
  } else {
    atomic_store(&e->flusher_errno, errno);
    atomic_fetch_add(&e->flusher_failed, 1);
  }
  pthread_setspecific(e->worker_key, w);
  return w;
}

/* ---- upcalls ---- */

void upcall_lock(void) { pthread_mutex_lock(&g_lock); }
void upcall_unlock(void) { pthread_mutex_unlock(&g_lock); }

struct upcall *upcall_find(uint32_t handle) {
  for (struct upcall *u = g_list; u; u = u->next)
    if (u->handle == handle) return u;
  return NULL;
}

static void unlist(struct upcall *u) {
  for (struct upcall **pp = &g_list; *pp; pp = &(*pp)->next) {
    if (*pp == u) {
      *pp = u->next;
      return;
    }
  }
}

void upcall_answer(struct upcall *u, int64_t result) {
  if (u->done) return;
  u->done = true;
  u->result = result;
  unlist(u);
  pthread_cond_signal(&u->cond);
}

void upcall_close(struct engine *e, void (*each)(struct upcall *u)) {
  pthread_mutex_lock(&g_lock);
  e->closing = true;
  struct upcall *u = g_list;
  while (u) {
    struct upcall *next = u->next;
    if (u->engine == e) {
      if (each) each(u);
      upcall_answer(u, -EIO);
    }
    u = next;
  }
  pthread_mutex_unlock(&g_lock);
}

int64_t upcall_run(struct engine *e, struct upcall *u) {
  u->engine = e;
  u->done = false;
  u->result = -EIO;
  pthread_cond_init(&u->cond, NULL);
  pthread_mutex_lock(&g_lock);
  if (e->closing || !e->post) {
    pthread_mutex_unlock(&g_lock);
    pthread_cond_destroy(&u->cond);
    return -EIO;
  }
  u->handle = g_next_handle++;
  if (g_next_handle == 0) g_next_handle = 1;
  u->next = g_list;
  g_list = u;
  if (e->post(e, u) != 0) upcall_answer(u, -EIO);
  while (!u->done) pthread_cond_wait(&u->cond, &g_lock);
  pthread_mutex_unlock(&g_lock);
  pthread_cond_destroy(&u->cond);
  return u->result;
}

static int64_t pair_upcall(struct engine *e, struct pair *p, enum up_op op, uint64_t off, uint64_t len,
                           void *buf, int mode, const char *why) {
  struct upcall u;
  memset(&u, 0, sizeof u);
  u.op = op;
  u.pair_id = p->id;
  u.pair = p;
  u.offset = off;
  u.length = len;
  u.buf = buf;
  u.mode = mode;
  u.why = why;
  return upcall_run(e, &u);
}

/* ---- device calls ---- */

int io_full(int fd, bool write, char *buf, uint64_t len, uint64_t off) {
  while (len > 0) {
    struct iovec iov = {buf, len};
    ssize_t r = write ? pwritev(fd, &iov, 1, (off_t)off) : preadv(fd, &iov, 1, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno ? errno : EIO;
    }
    if (r == 0) return write ? ENOSPC : EIO; /* the device ended early */
    buf += r;
    len -= (uint64_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

static int run_fd(struct pair *p, const struct rt_run *r) { return r->spare ? p->spare_fd : p->main_fd; }

void io_inflight_enter(struct engine *e, struct pair *p) {
  if (!e->count_inflight) return;
  int64_t now = atomic_fetch_add(&p->inflight, 1) + 1;
  int64_t max = atomic_load(&p->max_inflight);
  while (now > max && !atomic_compare_exchange_weak(&p->max_inflight, &max, now)) {
  }
}

void io_inflight_leave(struct engine *e, struct pair *p) {
  if (e->count_inflight) atomic_fetch_sub(&p->inflight, 1);
}

/* Splits under the announcement; -1 SLOW (a fast path not open yet, or a spare route without a spare), -2 too many runs. */
int io_split(struct pair *p, struct worker *w, uint64_t off, uint64_t len) {
  if (!atomic_load_explicit(&p->fast_open, memory_order_acquire)) return -1;
  struct rt_table *t = atomic_load_explicit(&p->routes.table, memory_order_acquire);
  size_t live = atomic_load_explicit(&p->routes.live, memory_order_relaxed);
  int n = rt_split(&p->routes, t, live, off, len, p->block_size, w->runs, ENG_MAX_RUNS);
  if (n > 0 && p->spare_fd < 0)
    for (int i = 0; i < n; i++)
      if (w->runs[i].spare) return -1;
  return n;
}

bool io_misaligned(struct pair *p, uint64_t off, uint64_t len) {
  return p->direct && ((off % p->align_bytes) != 0 || (len % p->align_bytes) != 0);
}

uint64_t io_admit(fuse_req_t req, struct pair *p, bool write, size_t size, off_t off) {
  if (atomic_load(&p->removed)) {
    fuse_reply_err(req, EIO);
    return 0;
  }
  if (write && p->read_only) {
    fuse_reply_err(req, EROFS);
    return 0;
  }
  if (size == 0 || (uint64_t)off >= p->size_bytes) {
    if (!write) fuse_reply_buf(req, NULL, 0);
    else if (size == 0) fuse_reply_write(req, 0);
    else fuse_reply_err(req, ENOSPC);
    return 0;
  }
  return p->size_bytes - (uint64_t)off < size ? p->size_bytes - (uint64_t)off : size;
}

int io_plan(struct pair *p, struct worker *w, bool write, uint64_t off, uint64_t n, const char **why) {
  if (atomic_load_explicit(&p->removed, memory_order_relaxed)) return -EIO;
  if (write && atomic_load_explicit(&p->writes_slow, memory_order_relaxed)) {
    *why = "tracked";
    return 0;
  }
  if (io_misaligned(p, off, n) || (write && p->direct && n > ENG_BUF_BYTES)) {
    *why = "align";
    return 0;
  }
  int runs = io_split(p, w, off, n);
  return runs < 0 ? 0 : runs;
}

/*
 * The fast path of one read or write, inside the epoch protocol (routes.c):
 * announce, check and split (io_plan), do the runs, clear the slot.
 * Returns 1 when the request is done, 0 when it must go to JS (`why` says
 * why), -EIO when the pair was removed. The slot is clear on every return, so
 * the caller may then wait for JS.
 */
static int fast_path(struct engine *e, struct pair *p, struct worker *w, bool write, char *buf, uint64_t off,
                     uint64_t n, const char **why) {
  struct rt_slot *slot = &e->ep.slots[w->slot];
  rt_enter(&e->ep, slot);
  int runs = io_plan(p, w, write, off, n, why);
  int rc = runs > 0 ? 1 : runs;
  for (int i = 0; i < runs && rc == 1; i++) {
    const struct rt_run *r = &w->runs[i];
    if (io_full(run_fd(p, r), write, buf + r->buf_off, r->len, r->dev_off) != 0) {
      bump(p, w, C_FAST_IO_ERRORS, 1);
      *why = "io-error";
      rc = 0;
    }
  }
  rt_leave(slot);
  return rc;
}

void io_end_read(fuse_req_t req, struct pair *p, struct worker *w, int64_t result, const char *buf) {
  if (w) {
    bump(p, w, C_READ_OPS, 1);
    if (result >= 0) bump(p, w, C_READ_BYTES, (uint64_t)result);
    else bump(p, w, C_READ_ERRORS, 1);
  }
  if (result >= 0) fuse_reply_buf(req, buf, (size_t)result);
  else fuse_reply_err(req, (int)-result);
}

void io_end_write(fuse_req_t req, struct pair *p, struct worker *w, int64_t result) {
  if (w) {
    bump(p, w, C_WRITE_OPS, 1);
    if (result >= 0) bump(p, w, C_WRITE_BYTES, (uint64_t)result);
    else bump(p, w, C_WRITE_ERRORS, 1);
  }
  if (result >= 0) fuse_reply_write(req, (size_t)result);
  else fuse_reply_err(req, (int)-result);
}

void io_read_slow(fuse_req_t req, struct engine *e, struct pair *p, struct worker *w, char *buf, uint64_t off,
                  uint64_t n, const char *why) {
  void *big = NULL;
  if (!buf && w && w->buf && n <= ENG_BUF_BYTES) buf = w->buf;
  if (!buf && posix_memalign(&big, 4096, n) == 0) buf = big;
  if (!buf) {
    io_end_read(req, p, w, -ENOMEM, NULL);
    return;
  }
  if (w) bump(p, w, C_SLOW_READS, 1);
  int64_t result = pair_upcall(e, p, UP_READ, off, n, buf, 0, why);
  if (result > (int64_t)n) result = (int64_t)n;
  io_end_read(req, p, w, result, buf);
  free(big);
}

void io_write_slow(fuse_req_t req, struct engine *e, struct pair *p, struct worker *w, const char *data,
                   uint64_t off, uint64_t n, const char *why) {
  if (w) bump(p, w, C_SLOW_WRITES, 1);
  int64_t result = pair_upcall(e, p, UP_WRITE, off, n, (void *)data, 0, why);
  if (result > (int64_t)n) result = (int64_t)n;
  io_end_write(req, p, w, result);
}

void io_read(fuse_req_t req, struct engine *e, struct pair *p, size_t size, off_t off) {
  struct ring_worker *rw = ring_self();
  if (rw) {
    ring_io(rw, req, p, false, NULL, size, off);
    return;
  }
  struct worker *w = worker_get(e);
  uint64_t n = io_admit(req, p, false, size, off);
  if (n == 0) return;
  void *big = NULL;
  char *buf;
  if (w && n <= ENG_BUF_BYTES) {
    buf = w->buf;
  } else if (posix_memalign(&big, 4096, n) == 0) {
    buf = big;
  } else {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  io_inflight_enter(e, p);
  const char *why = "slow";
  int64_t result = w ? fast_path(e, p, w, false, buf, (uint64_t)off, n, &why) : 0;
  if (result == 0) io_read_slow(req, e, p, w, buf, (uint64_t)off, n, why);
  else io_end_read(req, p, w, result > 0 ? (int64_t)n : result, buf);
  io_inflight_leave(e, p);
  free(big);
}

void io_write(fuse_req_t req, struct engine *e, struct pair *p, const char *data, size_t size, off_t off) {
  struct ring_worker *rw = ring_self();
  if (rw) {
    ring_io(rw, req, p, true, data, size, off);
    return;
  }
  struct worker *w = worker_get(e);
  uint64_t n = io_admit(req, p, true, size, off);
  if (n == 0) return;
  io_inflight_enter(e, p);
  const char *why = "slow";
  int64_t result = 0;
  if (w) {
    /* O_DIRECT needs an aligned source: libfuse's buffer is not (a larger request goes to JS, 'align'). */
    char *src = (char *)data;
    if (p->direct && n <= ENG_BUF_BYTES) src = memcpy(w->buf, data, n);
    result = fast_path(e, p, w, true, src, (uint64_t)off, n, &why);
  }
  if (result == 0) io_write_slow(req, e, p, w, data, (uint64_t)off, n, why);
  else io_end_write(req, p, w, result > 0 ? (int64_t)n : result);
  io_inflight_leave(e, p);
}

void io_fsync(fuse_req_t req, struct engine *e, struct pair *p) {
  struct worker *w = worker_get(e);
  int64_t result = 0;
  if (!w) {
    result = pair_upcall(e, p, UP_FSYNC, 0, 0, NULL, 0, "slow");
  } else {
    rt_enter(&e->ep, &e->ep.slots[w->slot]);
    if (atomic_load_explicit(&p->removed, memory_order_relaxed)) {
      rt_leave(&e->ep.slots[w->slot]);
      result = -EIO;
    } else {
      int bad = fdatasync(p->main_fd) != 0 || (p->spare_fd >= 0 && fdatasync(p->spare_fd) != 0);
      rt_leave(&e->ep.slots[w->slot]);
      if (bad) {
        bump(p, w, C_FAST_IO_ERRORS, 1);
        result = pair_upcall(e, p, UP_FSYNC, 0, 0, NULL, 0, "io-error");
      }
    }
    bump(p, w, C_FLUSHES, 1);
  }
  fuse_reply_err(req, result < 0 ? (int)-result : 0);
}

/* Zeroes (or punches) one run: fallocate on files, BLKZEROOUT on block devices. */
static int zero_run(int fd, bool blk, int mode, uint64_t off, uint64_t len) {
  if (blk) {
    uint64_t range[2] = {off, len};
    return ioctl(fd, BLKZEROOUT, range) == 0 ? 0 : errno;
  }
  int r;
  do r = fallocate(fd, mode, (off_t)off, (off_t)len);
  while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : errno;
}

void io_fallocate(fuse_req_t req, struct engine *e, struct pair *p, int mode, off_t off, off_t len) {
  struct worker *w = worker_get(e);
  int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  if (mode != punch && mode != FALLOC_FL_ZERO_RANGE && mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  if (atomic_load(&p->removed)) {
    fuse_reply_err(req, EIO);
    return;
  }
  if (p->read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (off < 0 || len <= 0 || (uint64_t)off >= p->size_bytes || (uint64_t)len > p->size_bytes - (uint64_t)off) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  const char *why = "slow";
  int64_t result = 0;
  if (!w) goto slow;
  rt_enter(&e->ep, &e->ep.slots[w->slot]);
  if (atomic_load_explicit(&p->removed, memory_order_relaxed)) {
    rt_leave(&e->ep.slots[w->slot]);
    result = -EIO;
    goto done;
  }
  if (atomic_load_explicit(&p->writes_slow, memory_order_relaxed)) {
    why = "tracked";
    rt_leave(&e->ep.slots[w->slot]);
    goto slow;
  }
  if ((p->main_blk || p->spare_blk) && ((off | len) & 511) != 0) {
    why = "align";
    rt_leave(&e->ep.slots[w->slot]);
    goto slow;
  }
  int runs = io_split(p, w, (uint64_t)off, (uint64_t)len);
  if (runs < 0) {
    rt_leave(&e->ep.slots[w->slot]);
    goto slow;
  }
  for (int i = 0; i < runs; i++) {
    const struct rt_run *r = &w->runs[i];
    bool blk = r->spare ? p->spare_blk : p->main_blk;
    if (zero_run(run_fd(p, r), blk, mode, r->dev_off, r->len) != 0) {
      rt_leave(&e->ep.slots[w->slot]);
      bump(p, w, C_FAST_IO_ERRORS, 1);
      why = "io-error";
      goto slow;
    }
  }
  rt_leave(&e->ep.slots[w->slot]);
  goto done;
slow:
  if (w) bump(p, w, C_SLOW_WRITES, 1);
  result = pair_upcall(e, p, UP_FALLOCATE, (uint64_t)off, (uint64_t)len, NULL, mode, why);
done:
  if (w) bump(p, w, C_FALLOCATES, 1);
  fuse_reply_err(req, result < 0 ? (int)-result : 0);
}
