/*
 * libfuse 3 low-level operations and the engine's life cycle.
 *
 * Inodes: 1 = root (pair files + the control directory), 2 = the control
 * directory, PAIR_INO_BASE + n = the n-th pair added, PATH_INO_BASE + i = the
 * i-th control path seen (e->paths; never reused, the tree is small). The
 * engine answers the root, pair files and statfs itself; every other request
 * about the control tree is an upcall with its path.
 *
 * Open replies for pair files are built by hand (fuse_reply_iov) because this
 * libfuse (3.14) has no fuse_file_info bit for FOPEN_PARALLEL_DIRECT_WRITES
 * (protocol 7.38); they carry FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES.
 *
 * Threads: mount() starts one session thread running engine_serve (pin.c:
 * io_uring workers plus a small blocking pool, or a blocking pool alone; all
 * with pinned memory: the engine threads). unmount() sets closing (no new
 * upcalls; outstanding ones get -EIO), unmounts (aborting the connection when
 * busy), which ends every worker's read, and joins the session thread.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FOPEN_DIRECT_IO_FLAG (1u << 0)
#define FOPEN_PARALLEL_DIRECT_WRITES_FLAG (1u << 6)
#define PAIR_TIMEOUT 1.0

static struct timespec g_mounted_at;

/* ---- lookups (under e->lock) ---- */

struct pair *engine_find_pair(struct engine *e, uint64_t id) {
  for (struct pair *p = e->pairs; p; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

static struct pair *pair_by_ino(struct engine *e, uint64_t ino) {
  pthread_mutex_lock(&e->lock);
  struct pair *p = e->pairs;
  while (p && p->ino != ino) p = p->next;
  if (p) atomic_fetch_add(&p->refs, 1);
  pthread_mutex_unlock(&e->lock);
  return p;
}

static struct pair *pair_by_name(struct engine *e, const char *name) {
  pthread_mutex_lock(&e->lock);
  struct pair *p = e->pairs;
  while (p && strcmp(p->name, name) != 0) p = p->next;
  if (p) atomic_fetch_add(&p->refs, 1);
  pthread_mutex_unlock(&e->lock);
  return p;
}

void pair_put(struct pair *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  rt_map_free(&p->routes);
  free(p->name);
  free(p);
}

/* The path of a control inode (a copy), or NULL. */
static char *path_of(struct engine *e, uint64_t ino) {
  char *out = NULL;
  pthread_mutex_lock(&e->lock);
  if (ino == CONTROL_INO && e->control_dir) {
    size_t n = strlen(e->control_dir) + 2;
    out = malloc(n);
    if (out) snprintf(out, n, "/%s", e->control_dir);
  } else if (ino >= PATH_INO_BASE && ino - PATH_INO_BASE < e->path_count) {
    out = strdup(e->paths[ino - PATH_INO_BASE]);
  }
  pthread_mutex_unlock(&e->lock);
  return out;
}

static uint64_t ino_of_path(struct engine *e, const char *path) {
  uint64_t ino = 0;
  pthread_mutex_lock(&e->lock);
  for (size_t i = 0; i < e->path_count; i++)
    if (strcmp(e->paths[i], path) == 0) ino = PATH_INO_BASE + i;
  if (!ino) {
    if (e->path_count == e->path_cap) {
      size_t cap = e->path_cap ? e->path_cap * 2 : 64;
      char **grown = realloc(e->paths, cap * sizeof *grown);
      if (grown) {
        e->paths = grown;
        e->path_cap = cap;
      }
    }
    char *copy = e->path_count < e->path_cap ? strdup(path) : NULL;
    if (copy) {
      e->paths[e->path_count] = copy;
      ino = PATH_INO_BASE + e->path_count++;
    }
  }
  pthread_mutex_unlock(&e->lock);
  return ino;
}

static bool is_control(uint64_t ino) { return ino == CONTROL_INO || ino >= PATH_INO_BASE; }

/* ---- attributes ---- */

static void fill_stat(struct stat *st, uint64_t ino, mode_t mode, uint64_t size) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_mode = mode;
  st->st_nlink = S_ISDIR(mode) ? 2 : 1;
  st->st_size = (off_t)size;
  st->st_uid = getuid();
  st->st_gid = getgid();
  st->st_blksize = 4096;
  st->st_blocks = (blkcnt_t)((size + 511) / 512);
  st->st_atim = st->st_mtim = st->st_ctim = g_mounted_at;
}

static void pair_stat(struct pair *p, struct stat *st) {
  fill_stat(st, p->ino, S_IFREG | (p->read_only ? 0400 : 0600), p->size_bytes);
}

static int64_t control_getattr(struct engine *e, const char *path, struct stat *st, uint64_t ino) {
  struct upcall u;
  memset(&u, 0, sizeof u);
  u.op = UP_GETATTR;
  u.control = true;
  u.path = path;
  int64_t r = upcall_run(e, &u);
  if (r >= 0) fill_stat(st, ino, (mode_t)u.attr_mode, u.attr_size);
  return r;
}

static int64_t control_call(struct engine *e, enum up_op op, const char *path, uint64_t fh, uint64_t off,
                            uint64_t len, void *buf) {
  struct upcall u;
  memset(&u, 0, sizeof u);
  u.op = op;
  u.control = true;
  u.path = path;
  u.fh = fh;
  u.offset = off;
  u.length = len;
  u.buf = buf;
  return upcall_run(e, &u);
}

/* ---- operations ---- */

static struct engine *eng(fuse_req_t req) { return fuse_req_userdata(req); }

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  struct engine *e = userdata;
  worker_get(e);
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  if (conn->max_write > ENG_BUF_BYTES) conn->max_write = ENG_BUF_BYTES;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  e->proto_major = conn->proto_major;
  e->proto_minor = conn->proto_minor;
  e->max_write = conn->max_write;
  e->max_readahead = conn->max_readahead;
  e->max_background = conn->max_background;
  e->congestion = conn->congestion_threshold;
  e->capable = conn->capable;
  e->want = conn->want;
  atomic_store(&e->got_init, 1);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  struct engine *e = eng(req);
  worker_get(e); /* every engine thread registers (slot, PR_SET_IO_FLUSHER) on its first request */
  struct fuse_entry_param ep;
  memset(&ep, 0, sizeof ep);
  if (parent == ROOT_INO) {
    if (e->control_dir && strcmp(name, e->control_dir) == 0) {
      ep.ino = CONTROL_INO;
      fill_stat(&ep.attr, CONTROL_INO, S_IFDIR | 0755, 4096);
      fuse_reply_entry(req, &ep);
      return;
    }
    struct pair *p = pair_by_name(e, name);
    if (!p) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    ep.ino = p->ino;
    ep.attr_timeout = ep.entry_timeout = PAIR_TIMEOUT;
    pair_stat(p, &ep.attr);
    pair_put(p);
    fuse_reply_entry(req, &ep);
    return;
  }
  char *dir = is_control(parent) ? path_of(e, parent) : NULL;
  if (!dir) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  size_t n = strlen(dir) + strlen(name) + 2;
  char *path = malloc(n);
  if (!path) {
    free(dir);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  snprintf(path, n, "%s/%s", dir, name);
  free(dir);
  uint64_t ino = ino_of_path(e, path);
  int64_t r = ino ? control_getattr(e, path, &ep.attr, ino) : -ENOMEM;
  free(path);
  if (r < 0) {
    fuse_reply_err(req, (int)-r);
    return;
  }
  ep.ino = ino;
  fuse_reply_entry(req, &ep);
}

static void reply_attr_of(fuse_req_t req, struct engine *e, fuse_ino_t ino) {
  struct stat st;
  if (ino == ROOT_INO) {
    fill_stat(&st, ROOT_INO, S_IFDIR | 0755, 4096);
    fuse_reply_attr(req, &st, 0);
    return;
  }
  if (ino == CONTROL_INO) {
    fill_stat(&st, CONTROL_INO, S_IFDIR | 0755, 4096);
    fuse_reply_attr(req, &st, 0);
    return;
  }
  if (ino >= PAIR_INO_BASE && ino < PATH_INO_BASE) {
    struct pair *p = pair_by_ino(e, ino);
    if (!p) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    pair_stat(p, &st);
    pair_put(p);
    fuse_reply_attr(req, &st, PAIR_TIMEOUT);
    return;
  }
  char *path = path_of(e, ino);
  int64_t r = path ? control_getattr(e, path, &st, ino) : -ENOENT;
  free(path);
  if (r < 0) fuse_reply_err(req, (int)-r);
  else fuse_reply_attr(req, &st, 0);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  worker_get(eng(req));
  reply_attr_of(req, eng(req), ino);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  (void)fi;
  struct engine *e = eng(req);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (ino >= PAIR_INO_BASE && ino < PATH_INO_BASE) {
      struct pair *p = pair_by_ino(e, ino);
      int err = !p ? ENOENT : (uint64_t)attr->st_size == p->size_bytes ? 0 : EPERM;
      if (p) pair_put(p);
      if (err) {
        fuse_reply_err(req, err);
        return;
      }
    } else if (is_control(ino) && ino != CONTROL_INO) {
      char *path = path_of(e, ino);
      int64_t r = path ? control_call(e, UP_TRUNCATE, path, 0, (uint64_t)attr->st_size, 0, NULL) : -ENOENT;
      free(path);
      if (r < 0) {
        fuse_reply_err(req, (int)-r);
        return;
      }
    } else {
      fuse_reply_err(req, EISDIR);
      return;
    }
  }
  reply_attr_of(req, e, ino);
}

static void reply_open_flags(fuse_req_t req, uint64_t fh, uint32_t flags) {
  struct {
    uint64_t fh;
    uint32_t open_flags;
    uint32_t padding;
  } out = {fh, flags, 0};
  struct iovec iov = {&out, sizeof out};
  fuse_reply_iov(req, &iov, 1);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct engine *e = eng(req);
  struct handle *h = calloc(1, sizeof *h);
  if (!h) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  if (ino >= PAIR_INO_BASE && ino < PATH_INO_BASE) {
    struct pair *p = pair_by_ino(e, ino);
    if (!p || atomic_load(&p->removed)) {
      if (p) pair_put(p);
      free(h);
      fuse_reply_err(req, ENOENT);
      return;
    }
    if (p->read_only && (fi->flags & O_ACCMODE) != O_RDONLY) {
      pair_put(p);
      free(h);
      fuse_reply_err(req, EROFS);
      return;
    }
    h->kind = H_PAIR;
    h->pair = p;
    atomic_fetch_add(&p->open_handles, 1);
    reply_open_flags(req, (uint64_t)(uintptr_t)h, FOPEN_DIRECT_IO_FLAG | FOPEN_PARALLEL_DIRECT_WRITES_FLAG);
    return;
  }
  char *path = is_control(ino) && ino != CONTROL_INO ? path_of(e, ino) : NULL;
  if (!path) {
    free(h);
    fuse_reply_err(req, ino == CONTROL_INO || ino == ROOT_INO ? EISDIR : ENOENT);
    return;
  }
  int64_t r = control_call(e, UP_OPEN, path, 0, 0, 0, NULL);
  free(path);
  if (r <= 0) {
    free(h);
    fuse_reply_err(req, r < 0 ? (int)-r : EIO);
    return;
  }
  h->kind = H_CONTROL;
  h->jsfh = (uint64_t)r;
  h->ino = ino;
  reply_open_flags(req, (uint64_t)(uintptr_t)h, FOPEN_DIRECT_IO_FLAG);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  struct engine *e = eng(req);
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  if (h->kind == H_PAIR) {
    atomic_fetch_sub(&h->pair->open_handles, 1);
    pair_put(h->pair);
  } else {
    char *path = path_of(e, h->ino);
    if (path) control_call(e, UP_RELEASE, path, h->jsfh, 0, 0, NULL);
    free(path);
  }
  free(h);
  fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino;
  struct engine *e = eng(req);
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  if (h->kind == H_PAIR) {
    io_read(req, e, h->pair, size, off);
    return;
  }
  struct worker *w = worker_get(e);
  char *path = path_of(e, h->ino);
  if (!w || !path || size > ENG_BUF_BYTES) {
    free(path);
    fuse_reply_err(req, EIO);
    return;
  }
  int64_t r = control_call(e, UP_READ, path, h->jsfh, (uint64_t)off, size, w->buf);
  free(path);
  if (r < 0) fuse_reply_err(req, (int)-r);
  else fuse_reply_buf(req, w->buf, (size_t)r > size ? size : (size_t)r);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
  (void)ino;
  struct engine *e = eng(req);
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  if (h->kind == H_PAIR) {
    io_write(req, e, h->pair, buf, size, off);
    return;
  }
  char *path = path_of(e, h->ino);
  int64_t r = path ? control_call(e, UP_WRITE, path, h->jsfh, (uint64_t)off, size, (void *)buf) : -EIO;
  free(path);
  if (r < 0) fuse_reply_err(req, (int)-r);
  else fuse_reply_write(req, (size_t)r > size ? size : (size_t)r);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  (void)ino;
  (void)datasync;
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  if (h->kind == H_PAIR) io_fsync(req, eng(req), h->pair);
  else fuse_reply_err(req, 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi) {
  (void)ino;
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  if (h->kind == H_PAIR) io_fallocate(req, eng(req), h->pair, mode, off, len);
  else fuse_reply_err(req, EOPNOTSUPP);
}

/* Directory handles: the whole listing, built at opendir. `lock` is held
 * while a READDIR answer that points into p is written: the kernel can hand
 * the RELEASEDIR to another thread before that writev has returned. */
struct dirbuf {
  pthread_mutex_t lock;
  char *p;
  size_t size;
};

/* Waits for an answer still being written from the listing, then frees it. */
static void dirbuf_free(struct dirbuf *b) {
  pthread_mutex_lock(&b->lock);
  pthread_mutex_unlock(&b->lock);
  pthread_mutex_destroy(&b->lock);
  free(b->p);
  free(b);
}

static void dir_add(fuse_req_t req, struct dirbuf *b, const char *name, uint64_t ino, mode_t mode) {
  struct stat st;
  memset(&st, 0, sizeof st);
  st.st_ino = ino;
  st.st_mode = mode;
  size_t old = b->size;
  size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
  char *grown = realloc(b->p, old + need);
  if (!grown) return;
  b->p = grown;
  b->size = old + need;
  fuse_add_direntry(req, b->p + old, need, name, &st, (off_t)b->size);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct engine *e = eng(req);
  struct dirbuf *b = calloc(1, sizeof *b);
  if (!b) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  pthread_mutex_init(&b->lock, NULL);
  dir_add(req, b, ".", ino, S_IFDIR);
  dir_add(req, b, "..", ROOT_INO, S_IFDIR);
  if (ino == ROOT_INO) {
    pthread_mutex_lock(&e->lock);
    for (struct pair *p = e->pairs; p; p = p->next) dir_add(req, b, p->name, p->ino, S_IFREG);
    pthread_mutex_unlock(&e->lock);
    if (e->control_dir) dir_add(req, b, e->control_dir, CONTROL_INO, S_IFDIR);
  } else {
    char *path = is_control(ino) ? path_of(e, ino) : NULL;
    struct upcall u;
    memset(&u, 0, sizeof u);
    u.op = UP_READDIR;
    u.control = true;
    u.path = path;
    int64_t r = path ? upcall_run(e, &u) : -ENOTDIR;
    for (size_t i = 0; i < u.name_count; i++) {
      if (r >= 0) {
        size_t n = strlen(path) + strlen(u.names[i]) + 2;
        char *child = malloc(n);
        if (child) {
          snprintf(child, n, "%s/%s", path, u.names[i]);
          dir_add(req, b, u.names[i], ino_of_path(e, child), 0);
          free(child);
        }
      }
      free(u.names[i]);
    }
    free(u.names);
    free(path);
    if (r < 0) {
      dirbuf_free(b);
      fuse_reply_err(req, (int)-r);
      return;
    }
  }
  fi->fh = (uint64_t)(uintptr_t)b;
  fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino;
  struct dirbuf *b = (struct dirbuf *)(uintptr_t)fi->fh;
  pthread_mutex_lock(&b->lock);
  if (off >= 0 && (size_t)off < b->size) {
    size_t n = b->size - (size_t)off < size ? b->size - (size_t)off : size;
    fuse_reply_buf(req, b->p + off, n);
  } else {
    fuse_reply_buf(req, NULL, 0);
  }
  pthread_mutex_unlock(&b->lock);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  dirbuf_free((struct dirbuf *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  struct engine *e = eng(req);
  struct statvfs sv;
  memset(&sv, 0, sizeof sv);
  uint64_t bytes = 0, files = 0;
  pthread_mutex_lock(&e->lock);
  for (struct pair *p = e->pairs; p; p = p->next) {
    bytes += p->size_bytes;
    files++;
  }
  pthread_mutex_unlock(&e->lock);
  sv.f_bsize = sv.f_frsize = 4096;
  sv.f_blocks = (bytes + 4095) / 4096;
  sv.f_files = files;
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops OPS = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .open = op_open,
    .release = op_release,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
};

/* ---- life cycle ---- */

static void worker_gone(void *value) {
  struct worker *w = value;
  if (w && w->e) rt_slot_release(&w->e->ep, w->slot);
}

struct engine *engine_new(void) {
  struct engine *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  rt_epoch_init(&e->ep);
  pthread_mutex_init(&e->lock, NULL);
  pthread_mutex_init(&e->handoff_lock, NULL);
  pthread_cond_init(&e->handoff_cond, NULL);
  pthread_cond_init(&e->retry_cond, NULL);
  if (pthread_key_create(&e->worker_key, worker_gone) != 0) {
    pthread_mutex_destroy(&e->lock);
    free(e);
    return NULL;
  }
  e->next_ino = PAIR_INO_BASE;
  e->max_threads = 16;
  e->ring_request = -1;
  e->fring_request = 1;
  return e;
}

static void *session_main(void *arg) {
  struct engine *e = arg;
  if (engine_serve(e) == 0) return NULL; /* pin.c; libfuse's own loop only when no worker could start */
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  if (cfg) {
    fuse_loop_cfg_set_max_threads(cfg, (unsigned)e->max_threads);
    fuse_loop_cfg_set_idle_threads(cfg, (unsigned)e->max_threads);
  }
  fuse_session_loop_mt(e->se, cfg);
  if (cfg) fuse_loop_cfg_destroy(cfg);
  return NULL;
}

int engine_mount(struct engine *e, char *err, size_t errlen) {
  if (e->state != 0) {
    snprintf(err, errlen, "the engine was already %s", e->state == 1 ? "mounted" : "unmounted");
    return -1;
  }
  int argc = 1 + 2 * e->fs_option_count;
  char **argv = calloc((size_t)argc + 1, sizeof *argv);
  if (!argv) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  argv[0] = "remapfs-engine";
  for (int i = 0; i < e->fs_option_count; i++) {
    argv[1 + 2 * i] = "-o";
    argv[2 + 2 * i] = e->fs_options[i];
  }
  struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
  clock_gettime(CLOCK_REALTIME, &g_mounted_at);
  e->se = fuse_session_new(&args, &OPS, sizeof OPS, e);
  fuse_opt_free_args(&args);
  free(argv);
  if (!e->se) {
    snprintf(err, errlen, "fuse_session_new failed (bad fsOptions?)");
    return -1;
  }
  if (fuse_session_mount(e->se, e->mountpoint) != 0) {
    fuse_session_destroy(e->se);
    e->se = NULL;
    snprintf(err, errlen, "cannot mount on %s", e->mountpoint);
    return -1;
  }
  if (ring_install_io(e) != 0) {
    fuse_session_unmount(e->se);
    fuse_session_destroy(e->se);
    e->se = NULL;
    snprintf(err, errlen, "cannot install the engine's session io");
    return -1;
  }
  if (pthread_create(&e->session_thread, NULL, session_main, e) != 0) {
    fuse_session_unmount(e->se);
    fuse_session_destroy(e->se);
    e->se = NULL;
    snprintf(err, errlen, "cannot start the session thread");
    return -1;
  }
  e->thread_started = true;
  e->state = 1;
  return 0;
}

void engine_unmount(struct engine *e) {
  if (e->state != 1) {
    e->state = 2;
    return;
  }
  e->state = 2;
  fuse_session_exit(e->se);
  if (umount2(e->mountpoint, 0) != 0 && errno == EBUSY) {
    umount2(e->mountpoint, MNT_FORCE); /* aborts the connection */
    umount2(e->mountpoint, MNT_DETACH);
  }
  pthread_join(e->session_thread, NULL);
  e->thread_started = false;
  fuse_session_unmount(e->se);
  fuse_session_destroy(e->se);
  e->se = NULL;
}

void engine_free(struct engine *e) {
  engine_unmount(e);
  while (e->pairs) {
    struct pair *p = e->pairs;
    e->pairs = p->next;
    pair_put(p);
  }
  while (e->gone) {
    struct pair *p = e->gone;
    e->gone = p->next;
    pair_put(p);
  }
  for (size_t i = 0; i < e->path_count; i++) free(e->paths[i]);
  free(e->paths);
  for (int i = 0; i < e->fs_option_count; i++) free(e->fs_options[i]);
  free(e->fs_options);
  for (int i = 0; i < RT_MAX_SLOTS; i++) {
    free(e->workers[i].buf);
    free(e->workers[i].runs);
  }
  free(e->mountpoint);
  free(e->control_dir);
  pthread_key_delete(e->worker_key);
  pthread_mutex_destroy(&e->lock);
  pthread_mutex_destroy(&e->handoff_lock);
  pthread_cond_destroy(&e->handoff_cond);
  pthread_cond_destroy(&e->retry_cond);
  free(e);
}

/* ---- control plane (JS thread) ---- */

int engine_fence(struct engine *e, struct pair *p, uint64_t first, uint64_t count) {
  int rc = 0;
  for (uint64_t b = first; b < first + count; b++)
    if (rt_set(&p->routes, b, ROUTE_SLOW) == -3) rc = -1; /* out of memory: the wait still runs */
  rt_epoch_wait(&e->ep);
  rt_reclaim(&p->routes);
  return rc;
}

int engine_publish(struct engine *e, struct pair *p, const double *blocks, const double *routes, size_t count) {
  bool wait = false;
  for (size_t i = 0; i < count; i++) {
    int64_t old = rt_get(&p->routes, (uint64_t)blocks[i]);
    if (old != ROUTE_SLOW && old != (int64_t)routes[i]) {
      if (rt_set(&p->routes, (uint64_t)blocks[i], ROUTE_SLOW) == -3) return -1;
      wait = true;
    }
  }
  if (wait) rt_epoch_wait(&e->ep);
  for (size_t i = 0; i < count; i++)
    if (rt_set(&p->routes, (uint64_t)blocks[i], (int64_t)routes[i]) == -3) return -1;
  if (rt_has_retired(&p->routes)) {
    rt_epoch_wait(&e->ep);
    rt_reclaim(&p->routes);
  } else if (wait) {
    rt_reclaim(&p->routes);
  }
  return 0;
}

void engine_set_writes_slow(struct engine *e, struct pair *p, bool on) {
  atomic_store(&p->writes_slow, on ? 1 : 0);
  if (on) rt_epoch_wait(&e->ep);
}

void engine_open_fast_path(struct pair *p) { atomic_store_explicit(&p->fast_open, 1, memory_order_release); }

void engine_remove_pair(struct engine *e, struct pair *p) {
  pthread_mutex_lock(&e->lock);
  for (struct pair **pp = &e->pairs; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  pthread_mutex_unlock(&e->lock);
  atomic_store(&p->removed, 1);
  rt_epoch_wait(&e->ep); /* no fast request still uses the fds after this */
  if (e->se && e->state == 1 && atomic_load(&e->got_init))
    fuse_lowlevel_notify_inval_entry(e->se, ROOT_INO, p->name, strlen(p->name));
  p->next = e->gone; /* unlinked under e->lock above: no reader reaches p through e->pairs any more */
  e->gone = p;
}

struct pair *engine_find_gone(struct engine *e, uint64_t id) {
  for (struct pair *p = e->gone; p; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

void engine_forget_pair(struct engine *e, struct pair *p) {
  for (struct pair **pp = &e->gone; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      pair_put(p);
      return;
    }
  }
}

void engine_sum(struct pair *p, uint64_t out[C_COUNT]) {
  memset(out, 0, sizeof(uint64_t) * C_COUNT);
  for (int s = 0; s < RT_MAX_SLOTS; s++)
    for (int c = 0; c < C_COUNT; c++) out[c] += atomic_load_explicit(&p->per_slot[s].c[c], memory_order_relaxed);
}
