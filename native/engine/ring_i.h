/*
 * Private to ring.c (the io_uring workers) and fring.c (FUSE over io_uring, their transport where the kernel offers
 * it): the worker's state, its request contexts and the entries. The design notes are at the top of each file.
 */
#ifndef REMAPFS_RING_I_H
#define REMAPFS_RING_I_H

#include "engine.h"

#include <liburing.h>
#include <sys/uio.h>

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
#define RING_VEC 16 /* iovecs per request for runs grouped into vectored calls (rt_chain) */
#define OP_READ 15  /* FUSE_READ in <linux/fuse.h> */
#define OP_WRITE 16 /* FUSE_WRITE */
#define OP_INIT 26  /* FUSE_INIT */
/* FUSE over io_uring (<linux/fuse.h> 7.42; Debian 12's headers predate it) */
#define FRING_TAG (1ull << 61) /* | entry index: that entry's URING_CMD completed */
#define FRING_DEPTH 16         /* entries per kernel queue (one queue per possible CPU), on average ... */
#define FRING_ENTRIES_MAX 64   /* ... and at most this many in all (64 MiB pinned): fewer per queue on larger machines */
#define FRING_CHUNK 4          /* a queue starts with this many registered, and gets this many more while all hold requests */
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
  bool held; /* holds a request: from its command's completion to the COMMIT_AND_FETCH that answers it */
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
  struct iovec vec[RING_VEC]; /* the runs of its vectored device calls, until they complete */
  struct ring_worker *rw;
  struct fring_ent *ent;  /* served from a FUSE-over-io_uring entry: buf is its payload */
  struct handoff ho;      /* while parked: at a retry thread */
  struct ring_ctx *done;  /* the done list (done_lock) */
};

struct ring_worker {
  struct engine *e;
  struct worker *w; /* counters' slot, the split's run table */
  struct io_uring ring;
  bool ring_ready, poll_armed;
  bool fixed;       /* the arena and receive buffers are registered (no page pinning per I/O) */
  bool fring_fixed; /* so are the entries (fixed buffer 1 + recv_bufs) */
  bool fuse_fixed;  /* the session fd is the ring's fixed file 0 */
  bool readable; /* the session fd may hold a request: false from an EAGAIN until the armed poll fires */
  bool poll_shared; /* the kernel refused EPOLLEXCLUSIVE on the session fd's poll: every worker wakes */
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
  int fring_count;         /* entries in use (registered once INIT allows), a multiple of fring_per_chunk */
  int fring_max;           /* entries it has: FRING_DEPTH per queue on average */
  int fring_per_chunk;     /* FRING_CHUNK, fewer where the queues are many */
  struct fring_ent *fring; /* fring_max entries (the first fring_count in use) */
  char *fring_mem;         /* their headers, then their slots (head and payload) */
  size_t fring_bytes;
  uint8_t q_entries[FRING_ENTRIES_MAX], q_held[FRING_ENTRIES_MAX]; /* per queue id: entries in use, holding */
  struct fring_ent *commits; /* answered on other threads, committed by this worker (done_lock) */
  struct fring_ent *backlog, *backlog_tail; /* entries' requests from reap, in arrival order, served by the loop (worker only) */
};

/* ring.c */
/* A free SQE of the worker's ring (submits what is queued when the SQ is full). */
struct io_uring_sqe *ring_sqe(struct ring_worker *rw);
void *ring_map_huge(size_t bytes);
/* Serves or hands off one request, laid out as /dev/fuse gives it. */
void ring_dispatch(struct ring_worker *rw, struct fuse_buf *fb);

/* fring.c: see its design note */
int fring_alloc(struct ring_worker *rw);
bool fring_kernel_enabled(void);
/* The entry whose request this thread is dispatching, or NULL. */
struct fring_ent *fring_dispatching(void);
/* Queues an entry's command; its SQE, for flags. */
struct io_uring_sqe *fring_prep(struct ring_worker *rw, struct fring_ent *ent, uint32_t cmd_op);
struct fring_ent *fring_find(struct engine *e, uint64_t unique);
ssize_t fring_reply(struct fring_ent *ent, const struct iovec *iov, int count);
ssize_t fring_init_reply(struct engine *e, int fd, const struct iovec *iov, int count);
void fring_offer(struct engine *e, const struct fuse_buf *fb, const struct in_header *in);
void fring_serve(struct ring_worker *rw, struct fring_ent *ent);
void fring_done(struct ring_worker *rw, struct fring_ent *ent, int res);
void fring_register(struct ring_worker *rw);

#endif
