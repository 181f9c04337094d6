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
 *     run, and leave the slot announced. A write's data is copied into the
 *     arena, except a write of LEND_MIN_BYTES or more: requests are read so
 *     that a WRITE's data starts on a page, and that receive buffer is lent
 *     to the write (no copy) while the next request goes into another of the
 *     RECV_BUFS; anything else, and any request that
 *     needs a decision, goes to the pool (handoff_push) and is not waited for;
 *     a pair on tmpfs (a device call is a copy, which io_uring would give to
 *     a kernel worker thread) is copied inline instead;
 *  3. submit, and sleep until a completion or until the session fd is
 *     readable (a one-shot POLL_ADD on it, armed after a read found nothing;
 *     no read is tried again before it fires);
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
 * FUSE over io_uring (Linux 6.14+, where the admin turned fuse.enable_uring
 * on): the ring has 128-byte SQEs and each worker owns FRING_DEPTH entries of
 * each kernel queue q with q % count == index (one queue per possible CPU;
 * fewer per queue past 4 CPUs, FRING_ENTRIES_MAX in all).
 * An entry is a 288-byte header and a 1 MiB payload, pinned like the arena.
 * libfuse 3.14 does not know the protocol, so: the INIT request says whether
 * the kernel offers it (fring_offer), its answer gets FUSE_OVER_IO_URING added
 * (fring_init_reply), and then every worker registers its entries. The kernel
 * completes an entry's URING_CMD when it has put a request there; the request
 * is rebuilt in place as /dev/fuse gives it (header and first argument just
 * before the payload, so a write's data stays where it is) and dispatched as
 * any other. A pair read or write is served in the entry's payload: read into
 * it, written from it. Whoever answers (libfuse through session_writev, on any
 * thread) finds the entry by the request's unique id, copies the header and
 * any data that is not yet there, and the entry goes back with
 * COMMIT_AND_FETCH: queued at once on its own worker, else through the
 * worker's commit list (done_lock) and eventfd. /dev/fuse is still read:
 * INIT, FORGET and INTERRUPT come that way, and everything before the entries
 * are registered, so the arena and receive buffers stay (smaller).
 * A request that arrives while another is being dispatched (a reap waiting for
 * a context or for room in the ring) waits on the backlog: no recursion.
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
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define RING_CTXS 64
#define RING_ENTRIES 256                   /* SQ size; the CQ is twice that */
#define RING_MAX_OPS 256                   /* runs in flight per worker */
#define RING_BATCH 32                      /* requests read before a submit */
#define RING_ARENA_BYTES (8u << 20)
#define PAGE_BYTES 4096u
#define ARENA_PAGES (RING_ARENA_BYTES / PAGE_BYTES)
#define POLL_TAG UINT64_MAX
#define NOP_TAG (UINT64_MAX - 1)
#define EVENT_TAG (UINT64_MAX - 2)
#define WARM_REQUESTS (RING_MAX_OPS + RING_CTXS + 8) /* io_uring's request cache, filled before serving */
#define REPLY_TAG (1ull << 62) /* | context index: the reply of that context was written */
#define HDR_BYTES 128
#define RECV_BUFS 5 /* receive buffers: one is read into, the others may be lent to large writes */
/* Where FUSE over io_uring may serve, /dev/fuse carries little (INIT, FORGET, INTERRUPT, requests before the
 * entries are registered): a smaller arena (still one largest request) and fewer receive buffers. */
#define FRING_ARENA_BYTES (2u << 20)
#define FRING_RECV_BUFS 2
#define RECV_BYTES ((256u << 12) + 2 * PAGE_BYTES)
#define WRITE_HEAD 80 /* fuse_in_header + fuse_write_in: where a WRITE's data starts */
#define LEND_MIN_BYTES (64u << 10)
#define MAX_IOV 4
#define OP_READ 15  /* FUSE_READ in <linux/fuse.h> */
#define OP_WRITE 16 /* FUSE_WRITE */
#define OP_INIT 26  /* FUSE_INIT */
/* FUSE over io_uring (<linux/fuse.h> 7.42; Debian 12's headers predate it) */
#define FRING_TAG (1ull << 61) /* | entry index: that entry's URING_CMD completed */
#define FRING_DEPTH 16         /* entries per kernel queue (one queue per possible CPU) ... */
#define FRING_ENTRIES_MAX 64   /* ... and at most this many in all (64 MiB pinned): fewer per queue on larger machines */
#define FRING_HEAD PAGE_BYTES  /* before each payload: room to rebuild a request as /dev/fuse gives it */
#define FRING_PAYLOAD ENG_BUF_BYTES
#define INIT_EXT (1u << 30)        /* FUSE_INIT_EXT: flags2 is valid */
#define INIT2_OVER_IO_URING (1u << 9) /* FUSE_OVER_IO_URING (1ull << 41), in flags2 */
#define CMD_REGISTER 1
#define CMD_COMMIT_AND_FETCH 2
#define IN_HEADER_BYTES 40
#define OUT_HEADER_BYTES 16

struct in_header { /* struct fuse_in_header, the start of every request */
  uint32_t len, opcode;
  uint64_t unique, nodeid;
};

struct out_header { /* struct fuse_out_header */
  uint32_t len;
  int32_t error;
  uint64_t unique;
};

struct fring_hdr { /* struct fuse_uring_req_header */
  char in_out[128];  /* fuse_in_header in, fuse_out_header out */
  char op_in[128];   /* the request's first argument (fuse_read_in, ...) */
  uint64_t flags, commit_id;
  uint32_t payload_sz, padding;
  uint64_t reserved;
};

struct fring_cmd { /* struct fuse_uring_cmd_req, in the SQE's command area */
  uint64_t flags, commit_id;
  uint16_t qid;
  uint8_t padding[6];
};

/* A FUSE-over-io_uring entry: a header and a payload registered with the kernel, which completes the entry's
 * URING_CMD when it puts a request there; answering (COMMIT_AND_FETCH) hands the entry back. */
struct fring_ent {
  struct ring_worker *rw;
  struct fring_hdr *hdr;
  char *payload; /* FRING_HEAD bytes into its mapping */
  struct iovec iov[2];
  uint16_t qid;
  uint32_t last_cmd;
  uint64_t commit_id;
  _Atomic uint64_t unique;  /* nonzero while its request is served: an answer finds its entry by this */
  struct fring_ent *next;   /* the commit list (done_lock) */
};

struct ring_ctx {
  fuse_req_t req;
  struct pair *p; /* holds a ref while in use */
  int slot;
  bool busy, write, failed;
  bool redo; /* a run came back EAGAIN/EOPNOTSUPP (RWF_NOWAIT): the request is parked (ring_retry) */
  int pending; /* runs in flight */
  bool reply_pending; /* its answer is queued as a write; released when that completes */
  int recv_idx;       /* >= 0: buf is the data of that receive buffer, lent to this write; else arena pages */
  uint32_t page0, pages;
  char *buf;
  uint64_t off, n;
  char hdr[HDR_BYTES]; /* the answer's header (and any small part that is not buf) */
  struct iovec iov[MAX_IOV];
  struct ring_worker *rw;
  struct fring_ent *ent;  /* served from a FUSE-over-io_uring entry: buf is its payload */
  struct handoff ho;      /* while parked: at a retry thread */
  struct ring_ctx *done;  /* the done list (done_lock) */
};

struct ring_worker {
  struct engine *e;
  struct worker *w; /* counters' slot, the split's run table */
  struct io_uring ring;
  bool ring_ready, poll_armed, fixed;
  bool readable; /* the session fd may hold a request: false from an EAGAIN until the armed poll fires */ /* fixed: the arena is registered (no page pinning per I/O) */
  int ops; /* SQEs in flight: runs and answers */
  struct ring_ctx *replying; /* set while finish() answers: libfuse's writev queues the answer */
  int ctx_count, free_ctxs;
  struct ring_ctx ctx[RING_CTXS];
  char *arena;
  uint64_t used[ARENA_PAGES / 64];
  uint32_t arena_pages;  /* the arena's size: ARENA_PAGES, or FRING_ARENA_BYTES where FUSE over io_uring may serve */
  char *recv;            /* recv_bufs receive buffers of RECV_BYTES */
  int recv_bufs;         /* RECV_BUFS, or FRING_RECV_BUFS */
  bool lent[RECV_BUFS];
  int cur;               /* the receive buffer read into next */
  int efd;               /* written by retry threads when they put a parked context on `done` */
  bool efd_armed;
  int parked;            /* contexts at retry threads */
  pthread_mutex_t done_lock;
  struct ring_ctx *done;
  /* FUSE over io_uring: entries of the queues q with q % count == index */
  int index, count;
  bool sqe128;            /* the ring has 128-byte SQEs: FUSE over io_uring may be used */
  bool fring_registered;
  int fring_count;
  struct fring_ent *fring; /* fring_count entries */
  char *fring_mem;         /* their headers, then their payloads */
  size_t fring_bytes;
  struct fring_ent *commits; /* answered on other threads, committed by this worker (done_lock) */
  int dispatching;           /* > 0 while a request is dispatched: a reap then must not dispatch another */
  struct fring_ent *backlog; /* requests that arrived meanwhile, dispatched by the loop (worker only) */
};

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
    struct {
      uint32_t len;
      int32_t error;
      uint64_t unique;
    } out = {sizeof out, -ENOMEM, in->unique};
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

static struct io_uring_sqe *sqe_get(struct ring_worker *rw);

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
  struct io_uring_sqe *sqe = sqe_get(rw);
  io_uring_prep_writev(sqe, fd, c->iov, (unsigned)count, 0);
  sqe->user_data = REPLY_TAG | (uint64_t)(c - rw->ctx);
  c->reply_pending = true;
  rw->ops++;
  return true;
}


/* ---- FUSE over io_uring ---- */

static __thread struct fring_ent *t_fring; /* the entry whose request this ring worker is dispatching */

static void fring_prep(struct ring_worker *rw, struct fring_ent *ent, uint32_t cmd_op) {
  struct io_uring_sqe *sqe = sqe_get(rw);
  memset(sqe, 0, 2 * sizeof *sqe); /* a 128-byte SQE */
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fuse_session_fd(rw->e->se);
  sqe->cmd_op = cmd_op;
  if (cmd_op == CMD_REGISTER) {
    sqe->addr = (uint64_t)(uintptr_t)ent->iov;
    sqe->len = 2;
  }
  struct fring_cmd cmd = {.qid = ent->qid, .commit_id = cmd_op == CMD_COMMIT_AND_FETCH ? ent->commit_id : 0};
  memcpy(sqe->cmd, &cmd, sizeof cmd);
  sqe->user_data = FRING_TAG | (uint64_t)(ent - rw->fring);
  ent->last_cmd = cmd_op;
}

/* Hands an answered entry back to the kernel: queued now on its own worker, else through its commit list. */
static void fring_commit(struct fring_ent *ent) {
  struct ring_worker *rw = ent->rw;
  if (t_ring == rw) {
    fring_prep(rw, ent, CMD_COMMIT_AND_FETCH);
    return;
  }
  pthread_mutex_lock(&rw->done_lock);
  ent->next = rw->commits;
  rw->commits = ent;
  pthread_mutex_unlock(&rw->done_lock);
  uint64_t one = 1;
  ssize_t ignored = write(rw->efd, &one, sizeof one);
  (void)ignored;
}

/* The entry serving the request `unique`, or NULL (a request read from /dev/fuse, or a notification). */
static struct fring_ent *fring_find(struct engine *e, uint64_t unique) {
  if (unique == 0 || atomic_load_explicit(&e->fring_state, memory_order_acquire) != 2) return NULL;
  struct ring_worker *self = t_ring;
  if (self && self->replying && self->replying->ent &&
      atomic_load_explicit(&self->replying->ent->unique, memory_order_relaxed) == unique)
    return self->replying->ent;
  for (int i = 0; i < e->ring_count; i++) {
    struct ring_worker *rw = e->rings[i];
    for (int k = 0; k < rw->fring_count; k++)
      if (atomic_load_explicit(&rw->fring[k].unique, memory_order_acquire) == unique) return &rw->fring[k];
  }
  return NULL;
}

/* libfuse's answer to an entry's request: the header and data into the entry, then commit. */
static ssize_t fring_reply(struct fring_ent *ent, const struct iovec *iov, int count) {
  struct out_header out;
  size_t total = 0;
  for (int i = 0; i < count; i++) total += iov[i].iov_len;
  memcpy(&out, iov[0].iov_base, sizeof out);
  size_t n = 0;
  if (total - sizeof out > FRING_PAYLOAD) {
    out.error = -EIO;
  } else {
    for (int i = 0; i < count; i++) {
      const char *base = iov[i].iov_base;
      size_t len = iov[i].iov_len;
      if (i == 0) {
        base += sizeof out;
        len -= sizeof out;
      }
      if (len && base != ent->payload + n) memmove(ent->payload + n, base, len);
      n += len;
    }
  }
  out.len = (uint32_t)(sizeof out + n);
  memcpy(ent->hdr->in_out, &out, sizeof out);
  ent->hdr->payload_sz = (uint32_t)n;
  atomic_store_explicit(&ent->unique, 0, memory_order_relaxed);
  fring_commit(ent);
  return (ssize_t)total;
}

/* The INIT answer asks for FUSE over io_uring (libfuse 3.14 does not know the flag); then the workers register. */
static ssize_t fring_init_reply(struct engine *e, int fd, const struct iovec *iov, int count) {
  char buf[OUT_HEADER_BYTES + 128];
  size_t total = 0;
  for (int i = 0; i < count; i++) {
    if (total + iov[i].iov_len > sizeof buf) return writev(fd, iov, count);
    memcpy(buf + total, iov[i].iov_base, iov[i].iov_len);
    total += iov[i].iov_len;
  }
  char *init_out = buf + OUT_HEADER_BYTES; /* struct fuse_init_out */
  uint32_t flags, flags2, max_write;
  uint16_t max_pages;
  if (total < OUT_HEADER_BYTES + 36) {
    atomic_store(&e->fring_errno, EPROTO);
    atomic_store(&e->fring_state, -1);
    return writev(fd, iov, count);
  }
  memcpy(&flags, init_out + 12, 4);
  memcpy(&max_write, init_out + 20, 4);
  memcpy(&max_pages, init_out + 28, 2);
  memcpy(&flags2, init_out + 32, 4);
  if (max_write > FRING_PAYLOAD || (size_t)max_pages * PAGE_BYTES > FRING_PAYLOAD) {
    atomic_store(&e->fring_errno, EMSGSIZE);
    atomic_store(&e->fring_state, -1);
    return writev(fd, iov, count);
  }
  flags |= INIT_EXT;
  flags2 |= INIT2_OVER_IO_URING;
  memcpy(init_out + 12, &flags, 4);
  memcpy(init_out + 32, &flags2, 4);
  ssize_t r = write(fd, buf, total);
  if (r != (ssize_t)total) {
    atomic_store(&e->fring_errno, r < 0 ? errno : EIO);
    atomic_store(&e->fring_state, -1);
    return r;
  }
  atomic_store(&e->fring_state, 2);
  for (int i = 0; i < e->ring_count; i++) { /* wake each worker to register its entries */
    uint64_t one = 1;
    ssize_t ignored = write(e->rings[i]->efd, &one, sizeof one);
    (void)ignored;
  }
  return r;
}

/* INIT, read from /dev/fuse: does the kernel offer FUSE over io_uring? */
static void fring_offer(struct engine *e, const struct fuse_buf *fb, const struct in_header *in) {
  if (e->fring_request == 0 || e->ring_count == 0 || e->rings[0]->fring_count == 0) return; /* worker 0 has queue 0 */
  uint32_t flags = 0, flags2 = 0;
  if (fb->size >= IN_HEADER_BYTES + 20) {
    memcpy(&flags, (char *)fb->mem + IN_HEADER_BYTES + 12, 4);
    memcpy(&flags2, (char *)fb->mem + IN_HEADER_BYTES + 16, 4);
  }
  if (!(flags & INIT_EXT) || !(flags2 & INIT2_OVER_IO_URING)) {
    atomic_store(&e->fring_errno, EOPNOTSUPP);
    return;
  }
  e->init_unique = in->unique;
  atomic_store_explicit(&e->fring_state, 1, memory_order_release);
}

static void dispatch(struct ring_worker *rw, struct fuse_buf *fb);

/* A request arrived in an entry: rebuilt as /dev/fuse would give it (header, first argument, then the payload
 * where it is, so a write's data is not copied) and dispatched like one read from /dev/fuse. */
static void fring_serve(struct ring_worker *rw, struct fring_ent *ent) {
  struct fring_hdr *h = ent->hdr;
  struct in_header in;
  memcpy(&in, h->in_out, sizeof in);
  uint32_t payload = h->payload_sz;
  ent->commit_id = h->commit_id;
  atomic_fetch_add_explicit(&rw->e->fring_requests, 1, memory_order_relaxed);
  atomic_store_explicit(&ent->unique, in.unique, memory_order_release);
  if (payload > FRING_PAYLOAD || in.len < IN_HEADER_BYTES + payload ||
      in.len - IN_HEADER_BYTES - payload > sizeof h->op_in) {
    struct out_header out = {sizeof out, -EIO, in.unique};
    struct iovec iov = {&out, sizeof out};
    fring_reply(ent, &iov, 1);
    return;
  }
  uint32_t op_bytes = in.len - IN_HEADER_BYTES - payload;
  char *start = ent->payload - IN_HEADER_BYTES - op_bytes;
  memcpy(start, h->in_out, IN_HEADER_BYTES);
  memcpy(start + IN_HEADER_BYTES, h->op_in, op_bytes);
  struct fuse_buf fb = {.size = in.len, .mem = start};
  t_fring = ent;
  dispatch(rw, &fb);
  t_fring = NULL;
}

/* An entry's command completed: a request (0), a retry, or the end of the entry (teardown, refusal). */
static void fring_done(struct ring_worker *rw, struct fring_ent *ent, int res) {
  if (res == 0 && rw->dispatching > 0) { /* a reap while a request waits for a context or room: no recursion */
    ent->next = rw->backlog;
    rw->backlog = ent;
  } else if (res == 0) {
    fring_serve(rw, ent);
  } else if (res == -EAGAIN || res == -EINTR) {
    fring_prep(rw, ent, ent->last_cmd);
  } else {
    atomic_fetch_sub(&rw->e->fring_entries, 1); /* the kernel no longer uses it (teardown, refusal) */
    if (res != -ENOTCONN && res != -ECANCELED) {
      int none = 0;
      atomic_compare_exchange_strong(&rw->e->fring_errno, &none, -res);
    }
  }
}

/* After INIT asked for it: hands every entry to the kernel. */
static void fring_register(struct ring_worker *rw) {
  rw->fring_registered = true;
  for (int k = 0; k < rw->fring_count; k++) fring_prep(rw, &rw->fring[k], CMD_REGISTER);
  atomic_fetch_add(&rw->e->fring_entries, rw->fring_count);
}


static bool fring_kernel_enabled(void) {
  int fd = open("/sys/module/fuse/parameters/enable_uring", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char c = 0;
  bool on = read(fd, &c, 1) == 1 && c == 'Y';
  close(fd);
  return on;
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
  struct io_uring_sqe *sqe = sqe_get(rw);
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

static struct io_uring_sqe *sqe_get(struct ring_worker *rw) {
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
  while (rw->ops + runs > RING_MAX_OPS) reap(rw, 1); /* only device I/O is waited for */
  c->pending = runs;
  for (int i = 0; i < runs; i++) {
    const struct rt_run *r = &rw->w->runs[i];
    struct io_uring_sqe *sqe = sqe_get(rw);
    int fd = r->spare ? p->spare_fd : p->main_fd;
    char *at = c->buf + r->buf_off;
    int fixed = c->recv_idx >= 0 ? 1 + c->recv_idx : 0; /* registered: the arena, then the receive buffers */
    bool use_fixed = rw->fixed && !c->ent;               /* an entry's payload is not registered */
    if (use_fixed && c->write) io_uring_prep_write_fixed(sqe, fd, at, (unsigned)r->len, r->dev_off, fixed);
    else if (use_fixed) io_uring_prep_read_fixed(sqe, fd, at, (unsigned)r->len, r->dev_off, fixed);
    else if (c->write) io_uring_prep_write(sqe, fd, at, (unsigned)r->len, r->dev_off);
    else io_uring_prep_read(sqe, fd, at, (unsigned)r->len, r->dev_off);
    sqe->rw_flags = RWF_NOWAIT; /* never a kernel worker thread: EAGAIN comes back instead (redo_inline) */
    sqe->user_data = ((uint64_t)(c - rw->ctx) << 32) | (uint32_t)r->len;
  }
  rw->ops += runs;
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
  struct fring_ent *ent = t_fring; /* its payload holds a write's data and takes a read's */
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

/* FUSE over io_uring: this worker's entries (queues q with q % count == index), their headers and payloads. */
static int fring_alloc(struct ring_worker *rw) {
  long queues = sysconf(_SC_NPROCESSORS_CONF); /* the kernel has one queue per possible CPU */
  if (queues < 1 || queues > FRING_ENTRIES_MAX) return 0;
  int depth = FRING_ENTRIES_MAX / (int)queues < FRING_DEPTH ? FRING_ENTRIES_MAX / (int)queues : FRING_DEPTH;
  int mine = 0;
  for (long q = 0; q < queues; q++) mine += q % rw->count == rw->index;
  if (mine == 0) return 0;
  int n = mine * depth;
  size_t hdr_bytes = ((size_t)n * sizeof(struct fring_hdr) + PAGE_BYTES - 1) / PAGE_BYTES * PAGE_BYTES;
  size_t slot = FRING_HEAD + FRING_PAYLOAD;
  size_t bytes = hdr_bytes + (size_t)n * slot;
  void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return -1;
  rw->fring = calloc((size_t)n, sizeof *rw->fring);
  if (!rw->fring) {
    munmap(mem, bytes);
    return -1;
  }
  rw->fring_mem = mem;
  rw->fring_bytes = bytes;
  int k = 0;
  for (long q = 0; q < queues; q++) {
    if (q % rw->count != rw->index) continue;
    for (int d = 0; d < depth; d++, k++) {
      struct fring_ent *ent = &rw->fring[k];
      ent->rw = rw;
      ent->qid = (uint16_t)q;
      ent->hdr = (struct fring_hdr *)(void *)(rw->fring_mem + (size_t)k * sizeof(struct fring_hdr));
      ent->payload = rw->fring_mem + hdr_bytes + (size_t)k * slot + FRING_HEAD;
      ent->iov[0] = (struct iovec){ent->hdr, sizeof *ent->hdr};
      ent->iov[1] = (struct iovec){ent->payload, FRING_PAYLOAD};
    }
  }
  rw->fring_count = n;
  return 0;
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
  void *arena = mmap(NULL, arena_bytes(rw), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  void *recv = mmap(NULL, (size_t)rw->recv_bufs * RECV_BYTES, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  rw->arena = arena == MAP_FAILED ? NULL : arena;
  rw->recv = recv == MAP_FAILED ? NULL : recv;
  if (!rw->arena || !rw->recv) {
    int err = errno;
    ring_free(rw);
    errno = err;
    return NULL;
  }
  struct iovec bufs[1 + RECV_BUFS];
  bufs[0] = (struct iovec){arena, arena_bytes(rw)};
  for (int k = 0; k < rw->recv_bufs; k++) bufs[1 + k] = (struct iovec){recv_at(rw, k), RECV_BYTES};
  rw->fixed = io_uring_register_buffers(&rw->ring, bufs, 1 + (unsigned)rw->recv_bufs) == 0; /* refused: plain I/O */
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

static void dispatch(struct ring_worker *rw, struct fuse_buf *fb) {
  struct in_header in;
  if (fb->size < sizeof in) return;
  memcpy(&in, fb->mem, sizeof in);
  if (in.opcode == OP_INIT) fring_offer(rw->e, fb, &in);
  bool pair_io = (in.opcode == OP_READ || in.opcode == OP_WRITE) && in.nodeid >= PAIR_INO_BASE &&
                 in.nodeid < PATH_INO_BASE;
  rw->dispatching++;
  if (pair_io && rw->w) fuse_session_process_buf(rw->e->se, fb); /* -> io_read/io_write -> ring_io */
  else handoff_raw(rw->e, fb, &in);
  rw->dispatching--;
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
      dispatch(rw, &fb);
      got++;
    }
    if (fuse_session_exited(e->se)) break;
    if (!rw->readable && !rw->poll_armed) {
      struct io_uring_sqe *sqe = sqe_get(rw);
      io_uring_prep_poll_add(sqe, fd, POLLIN);
      sqe->user_data = POLL_TAG;
      rw->poll_armed = true;
    }
    /* Sleep only when there is nothing to read now (or no context to read into). */
    reap(rw, drained || rw->free_ctxs == 0 ? 1 : 0);
    while (rw->backlog) {
      struct fring_ent *ent = rw->backlog;
      rw->backlog = ent->next;
      fring_serve(rw, ent);
    }
  }
  while (rw->ops > 0 || rw->parked > 0) reap(rw, 1); /* parked: the eventfd's poll is armed */
  for (int i = 1; i < rw->ctx_count; i++) rt_slot_release(&e->ep, rw->ctx[i].slot); /* ctx[0]'s is the worker's */
  t_ring = NULL;
}
