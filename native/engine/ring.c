/*
 * io_uring workers: the fast path of pair reads and writes without a thread
 * asleep per request. The blocking pool (pin.c) is the fallback.
 *
 * A ring worker owns one io_uring, RING_CTXS request contexts (each with its
 * own reader slot of the epoch protocol, routes.c) and a pinned arena of
 * RING_ARENA_BYTES in 4 KiB pages for the requests' data, registered with
 * the ring where allowed (fixed buffers: no page pinning per I/O). Its loop:
 *  1. read FUSE requests from the session fd (O_NONBLOCK; only ring workers
 *     read it) until EAGAIN, a full batch, or no free context;
 *  2. a READ or WRITE of a pair file: announce in a context's slot, check and
 *     split exactly as the blocking fast path does (io.c), queue one SQE per
 *     run, or per group of runs that continue each other on one device (a
 *     vectored call from the context's iovecs: rt_chain), and leave the slot
 *     announced. A write's data is copied into the
 *     arena, except a write of LEND_MIN_BYTES or more: requests are read so
 *     that a WRITE's data starts on a page, and that receive buffer is lent
 *     to the write (no copy) while the next request goes into another of the
 *     RECV_BUFS; anything else, and any request that
 *     needs a decision, goes to the pool (handoff_push) and is not waited for;
 *     a pair on tmpfs (a device call is a copy, which io_uring would give to
 *     a kernel worker thread) is copied inline instead;
 *  3. submit, and sleep until a completion or until the session fd is
 *     readable (a one-shot POLL_ADD on it, armed after a read found nothing;
 *     no read is tried again before it fires). The poll is EPOLLEXCLUSIVE, so
 *     a new request wakes one idle worker, not every worker (unmounting wakes
 *     all: the kernel's wake_up_all);
 *  4. when the last run of a request completes: clear its slot, then answer
 *     it; a failed or short run hands the request to the slow path instead
 *     ("io-error", like the blocking path).
 *  5. answers go out as io_uring writes to the session fd (libfuse's writev is
 *     ours: fuse_session_custom_io), so a batch of completions wakes its
 *     waiters in one system call. The reply's header is copied into the
 *     context; its data is the context's arena pages, which stay allocated
 *     until the write completes.
 *
 * Memory limits: device calls carry RWF_NOWAIT, so none is handed to an
 * io_uring kernel worker (whose creation, run on this thread, allocates and
 * can wait in reclaim for writeback that only this thread completes).
 * io_uring's request structs are allocated at start (warm_requests).
 *
 * Would-wait retries: a run that comes back EAGAIN (the kernel could not start
 * it without waiting: ext4 reading an extent block, allocating in a sparse
 * image) parks its request: the context, its data and its announced slot go
 * to a retry thread as they are (the hand-off embedded in the context, so
 * nothing is allocated), which splits again under the same announcement,
 * does the runs with blocking calls, clears the slot and answers, or hands
 * the request to the pool for JS (ring_retry). Retry threads never wait for
 * JS: a fence, on the JS thread, may be waiting for that slot. The retry
 * thread then puts the context on the worker's done list (guarded by
 * done_lock) and writes the worker's eventfd; the worker, woken by a
 * POLL_ADD on it, releases the context. So the ring worker keeps serving
 * while the disk makes one request wait.
 *
 * FUSE over io_uring (fring.c), where the kernel offers it: the ring has
 * 128-byte SQEs, and requests also arrive as completions of the worker's
 * entries (FRING_TAG); they are served like those read from /dev/fuse, in the
 * entry's payload instead of the arena. /dev/fuse is still read (INIT,
 * FORGET, INTERRUPT, requests before the entries are registered), with a
 * smaller arena and fewer receive buffers. A request that arrives as a
 * completion waits on the backlog until reap() has consumed every CQE it
 * saw: serving it may wait for a context or for room in the ring, that is
 * reap again, and a reap inside reap's loop would see the same CQEs twice.
 *
 * One issuer: only the worker submits to its ring and waits on it.
 *
 * Invariants: a ring worker never waits for JS, so a fence waits only for
 * device I/O; a slot is announced only while its request's runs are being
 * queued, are in flight or are redone by a retry thread, and the runs were
 * split under that announcement.
 * Contexts, the arena bitmap and the ring are touched by their worker only,
 * except a parked context, which its retry thread owns until it is on `done`.
 * An entry with a request belongs to whoever serves it until its answer is
 * copied in (unique set to 0); only its worker queues its commands.
 * The hand-off queue is guarded by e->handoff_lock; pool threads pop it.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ring_i.h"

static char *recv_at(const struct ring_worker *rw, int k) { return rw->recv + (size_t)k * RECV_BYTES; }
static size_t arena_bytes(const struct ring_worker *rw) { return (size_t)rw->arena_pages * PAGE_BYTES; }

/* A large write's data is page-aligned in the current receive buffer: lend it to the write (no copy) and read the
 * next request into another; -1 when none is free. */
static int lend_recv(struct ring_worker *rw, const char *data) {
  if (data != recv_at(rw, rw->cur) + PAGE_BYTES) return -1;
  for (int k = 0; k < rw->recv_bufs; k++) {
    if (k == rw->cur || rw->lent[k]) continue;
    int lent = rw->cur;
    rw->lent[lent] = true;
    rw->cur = k;
    return lent;
  }
  return -1;
}

static __thread struct ring_worker *t_ring;

struct ring_worker *ring_self(void) { return t_ring; }

/* ---- the hand-off queue ---- */

void handoff_push(struct engine *e, struct handoff *h) {
  h->next = NULL;
  struct handoff **head = h->retry ? &e->retry_head : &e->handoff_head;
  struct handoff **tail = h->retry ? &e->retry_tail : &e->handoff_tail;
  pthread_mutex_lock(&e->handoff_lock);
  if (*tail) (*tail)->next = h;
  else *head = h;
  *tail = h;
  pthread_cond_signal(h->retry ? &e->retry_cond : &e->handoff_cond);
  pthread_mutex_unlock(&e->handoff_lock);
}

void handoff_run(struct engine *e, bool retries) {
  struct worker *w = worker_setup(e, !retries); /* a retry uses its context's buffer */
  if (w) engine_pin_worker(e, w);
  struct handoff **head = retries ? &e->retry_head : &e->handoff_head;
  struct handoff **tail = retries ? &e->retry_tail : &e->handoff_tail;
  pthread_cond_t *cond = retries ? &e->retry_cond : &e->handoff_cond;
  for (;;) {
    pthread_mutex_lock(&e->handoff_lock);
    while (!*head && !e->handoff_stop) pthread_cond_wait(cond, &e->handoff_lock);
    struct handoff *h = *head;
    if (h) {
      *head = h->next;
      if (!*head) *tail = NULL;
    }
    pthread_mutex_unlock(&e->handoff_lock);
    if (!h) return;
    if (h->retry) {
      ring_retry(e, w, h); /* embedded in its context: not freed */
      continue;
    }
    if (h->raw) {
      fuse_session_process_buf(e->se, &h->fb);
      free(h->fb.mem);
    } else {
      io_inflight_enter(e, h->p);
      if (h->write) io_write_slow(h->req, e, h->p, w, h->data, h->off, h->n, h->why);
      else io_read_slow(h->req, e, h->p, w, NULL, h->off, h->n, h->why);
      io_inflight_leave(e, h->p);
      pair_put(h->p);
      free(h->data);
    }
    free(h);
  }
}

/* Hands a pair read or write to the slow path; data: the bytes of a write (copied). */
static void handoff_io(struct engine *e, fuse_req_t req, struct pair *p, bool write, const char *data, uint64_t off,
                       uint64_t n, const char *why) {
  struct handoff *h = calloc(1, sizeof *h);
  char *copy = write ? malloc(n ? n : 1) : NULL;
  if (!h || (write && !copy)) {
    free(h);
    free(copy);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  if (copy) memcpy(copy, data, n);
  atomic_fetch_add(&p->refs, 1);
  *h = (struct handoff){.req = req, .p = p, .write = write, .off = off, .n = n, .data = copy, .why = why};
  handoff_push(e, h);
}

static void handoff_raw(struct engine *e, const struct fuse_buf *fb, const struct in_header *in) {
  struct handoff *h = calloc(1, sizeof *h);
  void *copy = malloc(fb->size);
  if (!h || !copy) { /* answered here, as libfuse would answer ENOMEM (a FORGET's answer is ignored) */
    free(h);
    free(copy);
    struct out_header out = {sizeof out, -ENOMEM, in->unique};
    struct fring_ent *ent = fring_dispatching();
    if (ent) { /* it came in an entry: the kernel takes its answer only there */
      struct iovec iov = {&out, sizeof out};
      fring_reply(ent, &iov, 1);
      return;
    }
    ssize_t ignored = write(fuse_session_fd(e->se), &out, sizeof out);
    (void)ignored;
    return;
  }
  memcpy(copy, fb->mem, fb->size);
  h->raw = true;
  h->fb = (struct fuse_buf){.size = fb->size, .mem = copy};
  handoff_push(e, h);
}

/* ---- the arena: first fit over 4 KiB pages ---- */

static bool page_used(const struct ring_worker *rw, uint32_t i) { return (rw->used[i / 64] >> (i % 64)) & 1u; }

static void mark(struct ring_worker *rw, uint32_t first, uint32_t pages, bool used) {
  for (uint32_t i = first; i < first + pages; i++) {
    if (used) rw->used[i / 64] |= 1ull << (i % 64);
    else rw->used[i / 64] &= ~(1ull << (i % 64));
  }
}

static int64_t arena_alloc(struct ring_worker *rw, uint32_t pages) {
  uint32_t run = 0;
  for (uint32_t i = 0; i < rw->arena_pages; i++) {
    if (i % 64 == 0 && rw->used[i / 64] == UINT64_MAX) {
      run = 0;
      i += 63;
      continue;
    }
    if (page_used(rw, i)) {
      run = 0;
    } else if (++run == pages) {
      mark(rw, i + 1 - pages, pages, true);
      return (int64_t)(i + 1 - pages);
    }
  }
  return -1;
}

/* ---- completions ---- */

static void ctx_release(struct ring_worker *rw, struct ring_ctx *c) {
  if (c->recv_idx >= 0) rw->lent[c->recv_idx] = false;
  else mark(rw, c->page0, c->pages, false);
  pair_put(c->p);
  c->p = NULL;
  c->busy = false;
  rw->free_ctxs++;
}


static void finish(struct ring_worker *rw, struct ring_ctx *c) {
  struct engine *e = rw->e;
  rt_leave(&e->ep.slots[c->slot]);
  rw->replying = c;
  if (c->failed) {
    bump(c->p, rw->w, C_FAST_IO_ERRORS, 1);
    handoff_io(e, c->req, c->p, c->write, c->buf, c->off, c->n, "io-error");
  } else if (c->write) {
    io_end_write(c->req, c->p, rw->w, (int64_t)c->n);
  } else {
    io_end_read(c->req, c->p, rw->w, (int64_t)c->n, c->buf);
  }
  rw->replying = NULL;
  io_inflight_leave(e, c->p);
  if (!c->reply_pending) ctx_release(rw, c);
}

/* Queues the answer of rw->replying as an io_uring write; false when it must be written now instead. */
static bool queue_reply(struct ring_worker *rw, int fd, const struct iovec *iov, int count) {
  struct ring_ctx *c = rw->replying;
  if (!c || c->ent || c->reply_pending || count > MAX_IOV) return false;
  size_t used = 0;
  for (int i = 0; i < count; i++) {
    const char *base = iov[i].iov_base;
    if (base >= c->buf && base + iov[i].iov_len <= c->buf + c->n) {
      c->iov[i] = iov[i]; /* the read's data, in this context's arena pages */
      continue;
    }
    if (used + iov[i].iov_len > HDR_BYTES) return false;
    memcpy(c->hdr + used, base, iov[i].iov_len);
    c->iov[i] = (struct iovec){c->hdr + used, iov[i].iov_len};
    used += iov[i].iov_len;
  }
  struct io_uring_sqe *sqe = ring_sqe(rw);
  io_uring_prep_writev(sqe, fd, c->iov, (unsigned)count, 0);
  sqe->user_data = REPLY_TAG | (uint64_t)(c - rw->ctx);
  c->reply_pending = true;
  rw->ops++;
  return true;
}


static ssize_t session_writev(int fd, struct iovec *iov, int count, void *userdata) {
  struct engine *e = userdata;
  if (count >= 1 && iov[0].iov_len >= sizeof(struct out_header)) {
    struct out_header out;
    memcpy(&out, iov[0].iov_base, sizeof out);
    struct fring_ent *ent = fring_find(e, out.unique);
    if (ent) return fring_reply(ent, iov, count);
    if (out.unique != 0 && out.error == 0 &&
        atomic_load_explicit(&e->fring_state, memory_order_acquire) == 1 && out.unique == e->init_unique)
      return fring_init_reply(e, fd, iov, count);
  }
  struct ring_worker *rw = t_ring;
  if (rw && queue_reply(rw, fd, iov, count)) {
    size_t total = 0;
    for (int i = 0; i < count; i++) total += iov[i].iov_len;
    return (ssize_t)total;
  }
  return writev(fd, iov, count);
}

static ssize_t session_read(int fd, void *buf, size_t len, void *userdata) {
  (void)userdata;
  return read(fd, buf, len);
}

int ring_install_io(struct engine *e) {
  static const struct fuse_custom_io io = {.writev = session_writev, .read = session_read};
  return fuse_session_custom_io(e->se, &io, fuse_session_fd(e->se));
}

/* Does the first `runs` of the worker's run table with blocking calls (the slot is still announced). */
static void run_inline(struct ring_worker *rw, struct ring_ctx *c, int runs) {
  for (int i = 0; i < runs && !c->failed; i++) {
    const struct rt_run *r = &rw->w->runs[i];
    if (io_full(r->spare ? c->p->spare_fd : c->p->main_fd, c->write, c->buf + r->buf_off, r->len, r->dev_off) != 0)
      c->failed = true;
  }
}

/* Has the next write to the eventfd wake this worker (a retry thread gave a context back). */
static void arm_event(struct ring_worker *rw) {
  if (rw->efd_armed) return;
  struct io_uring_sqe *sqe = ring_sqe(rw);
  io_uring_prep_poll_add(sqe, rw->efd, POLLIN);
  sqe->user_data = EVENT_TAG;
  rw->efd_armed = true;
}

/* A request with a run that would have waited: to a retry thread, context, data and announced slot as they are. */
static void park(struct ring_worker *rw, struct ring_ctx *c) {
  bump(c->p, rw->w, C_WAIT_RETRIES, 1);
  arm_event(rw);
  rw->parked++;
  c->ho = (struct handoff){.retry = true, .ctx = c};
  handoff_push(rw->e, &c->ho);
}

/* Retry thread: never waits for JS (a fence may be waiting for this slot), so JS work goes to the pool. */
void ring_retry(struct engine *e, struct worker *w, struct handoff *h) {
  struct ring_ctx *c = h->ctx;
  struct ring_worker *rw = c->rw;
  struct pair *p = c->p;
  /* Still announced: split again (a route may have moved while the runs were queued; none can move now). */
  int runs = w ? io_split(p, w, c->off, c->n) : -1;
  const char *why = "slow";
  for (int i = 0; i < runs; i++) {
    const struct rt_run *r = &w->runs[i];
    if (io_full(r->spare ? p->spare_fd : p->main_fd, c->write, c->buf + r->buf_off, r->len, r->dev_off) != 0) {
      bump(p, w, C_FAST_IO_ERRORS, 1);
      why = "io-error";
      runs = 0;
    }
  }
  rt_leave(&e->ep.slots[c->slot]);
  if (runs > 0 && c->write) io_end_write(c->req, p, w, (int64_t)c->n);
  else if (runs > 0) io_end_read(c->req, p, w, (int64_t)c->n, c->buf);
  else handoff_io(e, c->req, p, c->write, c->buf, c->off, c->n, why); /* JS is waited for in the pool, not here */
  io_inflight_leave(e, p);
  pthread_mutex_lock(&rw->done_lock);
  c->done = rw->done;
  rw->done = c;
  pthread_mutex_unlock(&rw->done_lock);
  uint64_t one = 1;
  ssize_t ignored = write(rw->efd, &one, sizeof one); /* cannot fail short of 2^64 - 1 pending */
  (void)ignored;
}

/* Releases the contexts that retry threads gave back, and commits the entries other threads answered (EVENT_TAG). */
static void take_done(struct ring_worker *rw) {
  uint64_t count;
  ssize_t ignored = read(rw->efd, &count, sizeof count); /* EFD_NONBLOCK: resets it */
  (void)ignored;
  pthread_mutex_lock(&rw->done_lock);
  struct ring_ctx *c = rw->done;
  struct fring_ent *ent = rw->commits;
  rw->done = NULL;
  rw->commits = NULL;
  pthread_mutex_unlock(&rw->done_lock);
  while (c) {
    struct ring_ctx *next = c->done;
    rw->parked--;
    ctx_release(rw, c);
    c = next;
  }
  while (ent) {
    struct fring_ent *next = ent->next;
    fring_prep(rw, ent, CMD_COMMIT_AND_FETCH);
    ent = next;
  }
  if (rw->parked > 0 || rw->fring_count > 0) arm_event(rw);
}

/* Submits what is queued, waits for at least `wait` completions, and handles every completion there is. */
static void reap(struct ring_worker *rw, unsigned wait) {
  int r;
  do r = io_uring_submit_and_wait(&rw->ring, wait);
  while (r == -EINTR);
  struct io_uring_cqe *cqe;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&rw->ring, head, cqe) {
    seen++;
    if (cqe->user_data == POLL_TAG) {
      rw->poll_armed = false;
      rw->readable = true;
      if (cqe->res == -EINVAL) rw->poll_shared = true;
      continue;
    }
    if (cqe->user_data == EVENT_TAG) {
      rw->efd_armed = false;
      take_done(rw);
      continue;
    }
    if (cqe->user_data & REPLY_TAG) { /* an answer was written (its errors are libfuse's to ignore: ENOENT) */
      struct ring_ctx *c = &rw->ctx[cqe->user_data & 0xffffffffu];
      rw->ops--;
      c->reply_pending = false;
      ctx_release(rw, c);
      continue;
    }
    if (cqe->user_data & FRING_TAG) {
      fring_done(rw, &rw->fring[cqe->user_data & 0xffffffffu], cqe->res);
      continue;
    }
    if (cqe->user_data == NOP_TAG) continue;
    struct ring_ctx *c = &rw->ctx[cqe->user_data >> 32];
    uint32_t want = (uint32_t)cqe->user_data;
    rw->ops--;
    if (cqe->res == -EAGAIN || cqe->res == -EOPNOTSUPP) c->redo = true; /* would have needed a kernel worker */
    else if (cqe->res < 0 || (uint32_t)cqe->res != want) c->failed = true;
    if (--c->pending > 0) continue;
    if (c->redo && !c->failed) park(rw, c);
    else finish(rw, c);
  }
  io_uring_cq_advance(&rw->ring, seen);
}

struct io_uring_sqe *ring_sqe(struct ring_worker *rw) {
  struct io_uring_sqe *sqe;
  while (!(sqe = io_uring_get_sqe(&rw->ring))) { /* the SQ is full: hand it to the kernel (EBUSY/EAGAIN: retry) */
    int r = io_uring_submit(&rw->ring);
    if (r < 0 && r != -EINTR) sched_yield();
  }
  return sqe;
}

/*
 * The fast path of one request, like fast_path() in io.c (the same io_plan) but asynchronous:
 * 1 = its runs are queued (the slot stays announced until finish()), 0 = it
 * must go to JS (`why`), -EIO = the pair was removed. The slot is clear
 * unless 1 is returned.
 */
static int start(struct ring_worker *rw, struct ring_ctx *c, const char **why) {
  struct engine *e = rw->e;
  struct pair *p = c->p;
  struct rt_slot *slot = &e->ep.slots[c->slot];
  rt_enter(&e->ep, slot);
  int runs = io_plan(p, rw->w, c->write, c->off, c->n, why);
  if (runs <= 0) {
    rt_leave(slot);
    return runs;
  }
  if (runs > RING_MAX_OPS || p->mem_backed) { /* a pathological split, or memory: done here, still announced */
    run_inline(rw, c, runs);
    finish(rw, c);
    return 1;
  }
  int next[RING_MAX_OPS];
  unsigned char head[RING_MAX_OPS];
  int calls = rt_chain(rw->w->runs, runs, RING_VEC, next, head);
  while (rw->ops + calls > RING_MAX_OPS) reap(rw, 1); /* only device I/O is waited for */
  c->pending = calls;
  /* registered: the arena, the receive buffers, then the entries */
  int fixed = c->ent ? 1 + rw->recv_bufs : c->recv_idx >= 0 ? 1 + c->recv_idx : 0;
  bool use_fixed = c->ent ? rw->fring_fixed : rw->fixed;
  int vec = 0;
  for (int i = 0; i < runs; i++) {
    if (!head[i]) continue;
    const struct rt_run *r = &rw->w->runs[i];
    struct io_uring_sqe *sqe = ring_sqe(rw);
    int fd = r->spare ? p->spare_fd : p->main_fd;
    char *at = c->buf + r->buf_off;
    uint64_t bytes = r->len;
    if (next[i] >= 0) { /* a group: one vectored call, from the context's iovecs */
      struct iovec *v = &c->vec[vec];
      int count = 0;
      bytes = 0;
      for (int j = i; j >= 0; j = next[j]) {
        const struct rt_run *m = &rw->w->runs[j];
        c->vec[vec++] = (struct iovec){c->buf + m->buf_off, m->len};
        bytes += m->len;
        count++;
      }
      if (c->write) io_uring_prep_writev(sqe, fd, v, (unsigned)count, r->dev_off);
      else io_uring_prep_readv(sqe, fd, v, (unsigned)count, r->dev_off);
    } else if (use_fixed && c->write) io_uring_prep_write_fixed(sqe, fd, at, (unsigned)bytes, r->dev_off, fixed);
    else if (use_fixed) io_uring_prep_read_fixed(sqe, fd, at, (unsigned)bytes, r->dev_off, fixed);
    else if (c->write) io_uring_prep_write(sqe, fd, at, (unsigned)bytes, r->dev_off);
    else io_uring_prep_read(sqe, fd, at, (unsigned)bytes, r->dev_off);
    sqe->rw_flags = RWF_NOWAIT; /* never a kernel worker thread: EAGAIN comes back instead (redo_inline) */
    sqe->user_data = ((uint64_t)(c - rw->ctx) << 32) | (uint32_t)bytes;
  }
  rw->ops += calls;
  return 1;
}

void ring_io(struct ring_worker *rw, fuse_req_t req, struct pair *p, bool write, const char *data, size_t size,
             off_t off) {
  struct engine *e = rw->e;
  uint64_t n = io_admit(req, p, write, size, off);
  if (n == 0) return;
  if (n > ENG_BUF_BYTES) { /* larger than the kernel sends (max_pages): the blocking path copes */
    handoff_io(e, req, p, write, data, (uint64_t)off, n, write && p->direct ? "align" : "slow");
    return;
  }
  struct fring_ent *ent = fring_dispatching(); /* its payload holds a write's data and takes a read's */
  uint32_t pages = ent ? 0 : (uint32_t)((n + PAGE_BYTES - 1) / PAGE_BYTES);
  while (rw->free_ctxs == 0) reap(rw, 1);
  int lent = !ent && write && n >= LEND_MIN_BYTES ? lend_recv(rw, data) : -1;
  int64_t page0 = 0;
  while (!ent && lent < 0 && (page0 = arena_alloc(rw, pages)) < 0) reap(rw, 1); /* n fits the arena */
  struct ring_ctx *c = rw->ctx;
  while (c->busy) c++;
  rw->free_ctxs--;
  atomic_fetch_add(&p->refs, 1);
  c->busy = true;
  c->req = req;
  c->p = p;
  c->write = write;
  c->failed = false;
  c->redo = false;
  c->reply_pending = false;
  c->pending = 0;
  c->recv_idx = lent;
  c->ent = ent;
  c->page0 = (uint32_t)page0;
  c->pages = lent >= 0 ? 0 : pages;
  c->buf = ent ? ent->payload : lent >= 0 ? (char *)data : rw->arena + (size_t)page0 * PAGE_BYTES;
  c->off = (uint64_t)off;
  c->n = n;
  if (write && lent < 0 && c->buf != data) memcpy(c->buf, data, n); /* libfuse reuses its receive buffer */
  io_inflight_enter(e, p);
  const char *why = "slow";
  int rc = start(rw, c, &why);
  if (rc == 1) return;
  io_inflight_leave(e, p);
  if (rc < 0) fuse_reply_err(req, -rc);
  else handoff_io(e, req, p, write, c->buf, c->off, n, why);
  ctx_release(rw, c);
}

/* ---- the worker ---- */

/*
 * Maps `bytes` on a 2 MiB boundary and asks for huge pages (the arena, the
 * receive buffers, the entries): the kernel pins these pages again for every
 * FUSE copy in and out of them, one page at a time, and a huge page makes
 * each of those walks short. Without THP it is a plain mapping. The pages are
 * touched later (registration, engine_pin_range). NULL on failure (errno set).
 */
void *ring_map_huge(size_t bytes) {
  const size_t huge = (size_t)2 << 20;
  size_t span = bytes + huge;
  char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  char *mem = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
  if (mem > raw) munmap(raw, (size_t)(mem - raw));
  size_t tail = (size_t)(raw + span - (mem + bytes)) & ~(size_t)(PAGE_BYTES - 1);
  if (tail > 0) munmap(raw + span - tail, tail);
  (void)madvise(mem, bytes, MADV_HUGEPAGE); /* advice only: refused, the pages are small */
  return mem;
}

struct ring_worker *ring_new(struct engine *e, int index, int count) {
  struct ring_worker *rw = calloc(1, sizeof *rw);
  if (!rw) return NULL;
  rw->e = e;
  rw->index = index;
  rw->count = count;
  rw->efd = -1;
  rw->sqe128 = e->fring_request != 0 && fring_kernel_enabled();
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  unsigned sqe128 = rw->sqe128 ? IORING_SETUP_SQE128 : 0;
  /* not SINGLE_ISSUER | DEFER_TASKRUN: measured slower at QD32 (performance.md) */
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | sqe128;
  params.cq_entries = RING_ENTRIES * 2;
  int r = io_uring_queue_init_params(RING_ENTRIES, &rw->ring, &params);
  if (r == -EINVAL) { /* before Linux 5.19: no COOP_TASKRUN (nor FUSE over io_uring) */
    memset(&params, 0, sizeof params);
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = RING_ENTRIES * 2;
    rw->sqe128 = false;
    r = io_uring_queue_init_params(RING_ENTRIES, &rw->ring, &params);
  }
  if (r < 0) {
    free(rw);
    errno = -r;
    return NULL;
  }
  rw->ring_ready = true;
  pthread_mutex_init(&rw->done_lock, NULL);
  rw->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (rw->efd < 0) {
    int err = errno;
    ring_free(rw);
    errno = err;
    return NULL;
  }
  if (rw->sqe128 && fring_alloc(rw) != 0) {
    int err = errno;
    ring_free(rw);
    errno = err;
    return NULL;
  }
  rw->arena_pages = rw->fring_count > 0 ? FRING_ARENA_BYTES / PAGE_BYTES : ARENA_PAGES;
  rw->recv_bufs = rw->fring_count > 0 ? FRING_RECV_BUFS : RECV_BUFS;
  void *arena = ring_map_huge(arena_bytes(rw));
  void *recv = ring_map_huge((size_t)rw->recv_bufs * RECV_BYTES);
  rw->arena = arena;
  rw->recv = recv;
  if (!rw->arena || !rw->recv) {
    int err = errno;
    ring_free(rw);
    errno = err;
    return NULL;
  }
  struct iovec bufs[2 + RECV_BUFS];
  unsigned nbufs = 1 + (unsigned)rw->recv_bufs;
  bufs[0] = (struct iovec){arena, arena_bytes(rw)};
  for (int k = 0; k < rw->recv_bufs; k++) bufs[1 + k] = (struct iovec){recv_at(rw, k), RECV_BYTES};
  if (rw->fring_count > 0) bufs[nbufs] = (struct iovec){rw->fring_mem, rw->fring_bytes}; /* index nbufs */
  /* refused (a memlock limit): without the entries, then plain I/O */
  rw->fring_fixed = rw->fring_count > 0 && io_uring_register_buffers(&rw->ring, bufs, nbufs + 1) == 0;
  rw->fixed = rw->fring_fixed || io_uring_register_buffers(&rw->ring, bufs, nbufs) == 0;
  if (rw->fring_count > 0) {
    int fd = fuse_session_fd(e->se);
    rw->fuse_fixed = io_uring_register_files(&rw->ring, &fd, 1) == 0; /* fixed file 0 (refused: the plain fd) */
  }
  return rw;
}

void ring_free(struct ring_worker *rw) {
  if (!rw) return;
  if (rw->ring_ready) {
    io_uring_queue_exit(&rw->ring);
    pthread_mutex_destroy(&rw->done_lock);
    if (rw->efd >= 0) close(rw->efd);
  }
  if (rw->arena) munmap(rw->arena, arena_bytes(rw));
  if (rw->fring_mem) munmap(rw->fring_mem, rw->fring_bytes);
  free(rw->fring);
  if (rw->recv) munmap(rw->recv, (size_t)rw->recv_bufs * RECV_BYTES);
  free(rw);
}

/* Claims the worker's slots: ctx[0] shares the counters' slot, the others are claimed here. */
static void claim(struct ring_worker *rw) {
  rw->ctx_count = 0;
  if (!rw->w) return;
  rw->ctx[rw->ctx_count++].slot = rw->w->slot;
  while (rw->ctx_count < RING_CTXS) {
    int s = rt_slot_claim(&rw->e->ep);
    if (s < 0) break;
    rw->ctx[rw->ctx_count++].slot = s;
  }
  for (int i = 0; i < rw->ctx_count; i++) rw->ctx[i].rw = rw;
  rw->free_ctxs = rw->ctx_count;
}

/* Has io_uring allocate its request structs now, before any memory limit is near: they are charged to the memory
 * cgroup, and completed ones are kept for reuse. */
static void warm_requests(struct ring_worker *rw) {
  for (int done = 0; done < WARM_REQUESTS;) {
    int batch = 0;
    struct io_uring_sqe *sqe;
    while (done + batch < WARM_REQUESTS && batch < RING_ENTRIES && (sqe = io_uring_get_sqe(&rw->ring))) {
      io_uring_prep_nop(sqe);
      sqe->user_data = NOP_TAG;
      batch++;
    }
    if (batch == 0 || io_uring_submit_and_wait(&rw->ring, (unsigned)batch) < 0) return;
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&rw->ring, head, cqe) seen++;
    io_uring_cq_advance(&rw->ring, seen);
    done += batch;
  }
}

void ring_dispatch(struct ring_worker *rw, struct fuse_buf *fb) {
  struct in_header in;
  if (fb->size < sizeof in) return;
  memcpy(&in, fb->mem, sizeof in);
  if (in.opcode == OP_INIT) fring_offer(rw->e, fb, &in);
  bool pair_io = (in.opcode == OP_READ || in.opcode == OP_WRITE) && in.nodeid >= PAIR_INO_BASE &&
                 in.nodeid < PATH_INO_BASE;
  if (pair_io && rw->w) fuse_session_process_buf(rw->e->se, fb); /* -> io_read/io_write -> ring_io */
  else handoff_raw(rw->e, fb, &in);
}

/* Serves the entries' requests that reap() put on the backlog, in arrival order (serving may reap and add more). */
static void serve_backlog(struct ring_worker *rw) {
  while (rw->backlog) {
    struct fring_ent *ent = rw->backlog;
    rw->backlog = ent->next;
    if (!rw->backlog) rw->backlog_tail = NULL;
    fring_serve(rw, ent);
  }
}

void ring_run(struct ring_worker *rw) {
  struct engine *e = rw->e;
  rw->w = worker_setup(e, false);
  if (rw->w) engine_pin_worker(e, rw->w);
  claim(rw);
  warm_requests(rw);
  engine_pin_range(e, rw->arena, arena_bytes(rw), true);
  engine_pin_range(e, rw, sizeof *rw, false);
  t_ring = rw;
  (void)io_uring_register_ring_fd(&rw->ring); /* this thread's enters skip the ring's file lookup (Linux 5.18+) */
  struct fuse_buf fb;
  memset(&fb, 0, sizeof fb);
  engine_pin_range(e, rw->recv, (size_t)rw->recv_bufs * RECV_BYTES, true);
  if (rw->w) atomic_fetch_add(&e->pin_threads, 1);
  int fd = fuse_session_fd(e->se);
  rw->readable = true;
  if (rw->fring_count > 0) {
    engine_pin_range(e, rw->fring_mem, rw->fring_bytes, true); /* the kernel copies into them on this thread */
    arm_event(rw); /* the INIT answer wakes it to register */
  }
  while (!fuse_session_exited(e->se)) {
    if (rw->fring_count > 0 && !rw->fring_registered &&
        atomic_load_explicit(&e->fring_state, memory_order_acquire) == 2)
      fring_register(rw);
    int got = 0;
    bool drained = !rw->readable; /* no read is tried while the armed poll has not fired */
    while (rw->readable && got < RING_BATCH && rw->free_ctxs > 0) {
      /* libfuse reads at most 1 MiB + 4 KiB; a WRITE's data then starts on a page (lend_recv) */
      fb.mem = recv_at(rw, rw->cur) + PAGE_BYTES - WRITE_HEAD;
      fb.size = 0;
      int r = fuse_session_receive_buf(e->se, &fb);
      if (r == -EINTR) continue;
      if (r == -EAGAIN) {
        rw->readable = false;
        drained = true;
        break;
      }
      if (r <= 0) {
        if (r < 0) fuse_session_exit(e->se);
        drained = true;
        break;
      }
      ring_dispatch(rw, &fb);
      got++;
    }
    if (fuse_session_exited(e->se)) break;
    if (!rw->readable && !rw->poll_armed) {
      struct io_uring_sqe *sqe = ring_sqe(rw);
      /* Exclusive: a request wakes one idle worker, not all of them (each would read, and all but one find nothing). */
      io_uring_prep_poll_add(sqe, fd, rw->poll_shared ? POLLIN : POLLIN | EPOLLEXCLUSIVE);
      sqe->user_data = POLL_TAG;
      rw->poll_armed = true;
    }
    /* Sleep only when there is nothing to read now (or no context to read into), and no request waits on the
     * backlog: its answer may be what everything else waits for. */
    reap(rw, !rw->backlog && (drained || rw->free_ctxs == 0) ? 1 : 0);
    serve_backlog(rw);
  }
  while (rw->ops > 0 || rw->parked > 0) { /* parked: the eventfd's poll is armed */
    reap(rw, 1);
    serve_backlog(rw);
  }
  for (int i = 1; i < rw->ctx_count; i++) rt_slot_release(&e->ep, rw->ctx[i].slot); /* ctx[0]'s is the worker's */
  t_ring = NULL;
}
