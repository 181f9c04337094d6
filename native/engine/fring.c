/*
 * FUSE over io_uring: the transport of the io_uring workers (ring.c) where the
 * kernel offers it (Linux 6.14+, fuse.enable_uring=Y). libfuse 3.14 does not
 * speak it, so this file does what libfuse 3.18 would: it asks for it in the
 * INIT answer, registers the entries, rebuilds each request for
 * fuse_session_process_buf and puts answers back into their entries.
 *
 * Layout: a worker's entries are one mapping, their 288-byte headers first,
 * then one slot per entry: FRING_HEAD bytes (where a request is rebuilt in
 * front of its payload) and the 1 MiB payload. Entries of queue q belong to
 * worker q % count, FRING_DEPTH per queue on average, all pinned from the
 * start. Each queue starts with FRING_CHUNK of them registered; a queue whose
 * registered entries all hold requests gets FRING_CHUNK more of its worker's,
 * until they are spent. The kernel puts a request on the queue of the CPU
 * that sent it, so the busy queue is the loop workers' CPU's, and it can
 * hold most of them. Entries are never taken back (the protocol cannot).
 * Per-queue counts (q_entries, q_held) are the worker's alone.
 *
 * An entry is in the kernel (its URING_CMD outstanding) or holds a request.
 * While it holds one, `unique` is that request's id: the answer, made on any
 * thread, finds its entry by it, copies the header and any data not already
 * in the payload, sets `unique` to 0 and commits. Only the entry's worker
 * queues its commands; another thread puts the entry on the worker's commit
 * list (done_lock) and writes its eventfd. Protocol state (fring_state,
 * init_unique) is written once by the ring worker that reads INIT and the
 * pool thread that answers it, in that order (release/acquire).
 */
#define _GNU_SOURCE
#include "ring_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static __thread struct fring_ent *t_fring; /* the entry whose request this ring worker is dispatching */

struct fring_ent *fring_dispatching(void) { return t_fring; }

struct io_uring_sqe *fring_prep(struct ring_worker *rw, struct fring_ent *ent, uint32_t cmd_op) {
  struct io_uring_sqe *sqe = ring_sqe(rw);
  memset(sqe, 0, 2 * sizeof *sqe); /* a 128-byte SQE */
  sqe->opcode = IORING_OP_URING_CMD;
  if (rw->fuse_fixed) {
    sqe->fd = 0; /* the session fd, registered: no file lookup per command */
    sqe->flags = IOSQE_FIXED_FILE;
  } else {
    sqe->fd = fuse_session_fd(rw->e->se);
  }
  sqe->cmd_op = cmd_op;
  if (cmd_op == CMD_REGISTER) {
    sqe->addr = (uint64_t)(uintptr_t)ent->iov;
    sqe->len = 2;
  }
  struct fring_cmd cmd = {.qid = ent->qid, .commit_id = cmd_op == CMD_COMMIT_AND_FETCH ? ent->commit_id : 0};
  memcpy(sqe->cmd, &cmd, sizeof cmd);
  sqe->user_data = FRING_TAG | (uint64_t)(ent - rw->fring);
  ent->last_cmd = cmd_op;
  if (cmd_op == CMD_COMMIT_AND_FETCH && ent->held) { /* not again for a retry of the same commit */
    ent->held = false;
    rw->q_held[ent->qid]--;
  }
  return sqe;
}

/* Hands an answered entry back to the kernel: queued now on its own worker, else through its commit list. */
static void fring_commit(struct fring_ent *ent) {
  struct ring_worker *rw = ent->rw;
  if (ring_self() == rw) {
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
struct fring_ent *fring_find(struct engine *e, uint64_t unique) {
  if (unique == 0 || atomic_load_explicit(&e->fring_state, memory_order_acquire) != 2) return NULL;
  struct ring_worker *self = ring_self();
  if (self && self->replying && self->replying->ent &&
      atomic_load_explicit(&self->replying->ent->unique, memory_order_relaxed) == unique)
    return self->replying->ent;
  for (int i = 0; i < e->ring_count; i++) {
    struct ring_worker *rw = e->rings[i];
    for (int k = 0; k < rw->fring_max; k++) /* not fring_count, which its worker changes; unused ones hold 0 */
      if (atomic_load_explicit(&rw->fring[k].unique, memory_order_acquire) == unique) return &rw->fring[k];
  }
  return NULL;
}

/* libfuse's answer to an entry's request: the header and data into the entry, then commit. */
ssize_t fring_reply(struct fring_ent *ent, const struct iovec *iov, int count) {
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
ssize_t fring_init_reply(struct engine *e, int fd, const struct iovec *iov, int count) {
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
void fring_offer(struct engine *e, const struct fuse_buf *fb, const struct in_header *in) {
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

/* A request arrived in an entry: rebuilt as /dev/fuse would give it (header, first argument, then the payload
 * where it is, so a write's data is not copied) and dispatched like one read from /dev/fuse. */
void fring_serve(struct ring_worker *rw, struct fring_ent *ent) {
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
  ring_dispatch(rw, &fb);
  t_fring = NULL;
}

bool fring_kernel_enabled(void) {
  int fd = open("/sys/module/fuse/parameters/enable_uring", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char c = 0;
  bool on = read(fd, &c, 1) == 1 && c == 'Y';
  close(fd);
  return on;
}

/* FUSE over io_uring: this worker's entries (queues q with q % count == index), their headers and payloads: on
 * average FRING_DEPTH per queue, of which each queue starts with one chunk (fring_count); fring_add_chunk hands
 * out the rest. All are mapped, touched and pinned at start (ring_run), whatever the kernel uses. */
int fring_alloc(struct ring_worker *rw) {
  long queues = sysconf(_SC_NPROCESSORS_CONF); /* the kernel has one queue per possible CPU */
  if (queues < 1 || queues > FRING_ENTRIES_MAX) return 0;
  int depth = FRING_ENTRIES_MAX / (int)queues < FRING_DEPTH ? FRING_ENTRIES_MAX / (int)queues : FRING_DEPTH;
  int per = depth < FRING_CHUNK ? depth : FRING_CHUNK;
  int mine = 0;
  for (long q = 0; q < queues; q++) mine += q % rw->count == rw->index;
  if (mine == 0) return 0;
  int n = mine * depth;
  size_t hdr_bytes = ((size_t)n * sizeof(struct fring_hdr) + PAGE_BYTES - 1) / PAGE_BYTES * PAGE_BYTES;
  size_t slot = FRING_HEAD + FRING_PAYLOAD;
  size_t bytes = hdr_bytes + (size_t)n * slot;
  void *mem = ring_map_huge(bytes);
  if (!mem) return -1;
  rw->fring = calloc((size_t)n, sizeof *rw->fring);
  if (!rw->fring) {
    munmap(mem, bytes);
    return -1;
  }
  rw->fring_mem = mem;
  rw->fring_bytes = bytes;
  rw->fring_per_chunk = per;
  rw->fring_max = n;
  for (int k = 0; k < n; k++) {
    struct fring_ent *ent = &rw->fring[k];
    ent->rw = rw;
    ent->hdr = (struct fring_hdr *)(void *)(rw->fring_mem + (size_t)k * sizeof(struct fring_hdr));
    ent->payload = rw->fring_mem + hdr_bytes + (size_t)k * slot + FRING_HEAD;
    ent->iov[0] = (struct iovec){ent->hdr, sizeof *ent->hdr};
    ent->iov[1] = (struct iovec){ent->payload, FRING_PAYLOAD};
  }
  int k = 0;
  for (long q = 0; q < queues; q++)
    for (int d = 0; q % rw->count == rw->index && d < per; d++) rw->fring[k++].qid = (uint16_t)q;
  rw->fring_count = k;
  return 0;
}

/* Every entry of queue q holds a request: one more chunk of this worker's entries for q, while they last. The
 * kernel allocates for each registration; IOSQE_ASYNC has its io-wq thread do that, so if reclaim makes it wait
 * (docs/architecture.md, "Memory limits"), this thread still serves, and the writeback it may wait for ends. */
static void fring_add_chunk(struct ring_worker *rw, uint16_t q) {
  int per = rw->fring_per_chunk;
  if (rw->fring_count + per > rw->fring_max) return;
  for (int i = 0; i < per; i++) {
    struct fring_ent *ent = &rw->fring[rw->fring_count + i];
    ent->qid = q;
    fring_prep(rw, ent, CMD_REGISTER)->flags |= IOSQE_ASYNC;
  }
  rw->fring_count += per;
  rw->q_entries[q] = (uint8_t)(rw->q_entries[q] + per);
  atomic_fetch_add(&rw->e->fring_entries, per);
}

/* An entry's command completed: a request (0), a retry, or the end of the entry (teardown, refusal). */
void fring_done(struct ring_worker *rw, struct fring_ent *ent, int res) {
  if (res == 0) {
    ent->held = true;
    if (++rw->q_held[ent->qid] == rw->q_entries[ent->qid]) fring_add_chunk(rw, ent->qid);
  }
  if (res == 0) { /* served by the loop after the reap: serving may reap, and a reap inside a reap sees the same CQEs */
    ent->next = NULL;
    if (rw->backlog_tail) rw->backlog_tail->next = ent;
    else rw->backlog = ent;
    rw->backlog_tail = ent;
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

/* After INIT asked for it: hands every entry in use to the kernel. */
void fring_register(struct ring_worker *rw) {
  rw->fring_registered = true;
  for (int k = 0; k < rw->fring_count; k++) {
    fring_prep(rw, &rw->fring[k], CMD_REGISTER);
    rw->q_entries[rw->fring[k].qid]++;
  }
  atomic_fetch_add(&rw->e->fring_entries, rw->fring_count);
  atomic_fetch_add(&rw->e->fring_entries_max, rw->fring_max);
}
