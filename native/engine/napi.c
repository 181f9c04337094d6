/*
 * N-API glue of the native engine (remapfs_engine.node): argument checks,
 * value conversion, and the upcall transport (a threadsafe function created
 * at mount and released at unmount). Every function here runs on the JS main
 * thread; lib/native/engine.ts documents the API. An upcall is posted by its
 * numeric handle; the request object's `buf` is an external Buffer over
 * engine memory, detached when the upcall is answered.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "engine.h"

#define ENGINE_VERSION "1"

#define TRY(env, call)                                                         \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      bool pending_ = false;                                                   \
      napi_is_exception_pending((env), &pending_);                             \
      if (!pending_) napi_throw_error((env), NULL, "remapfs_engine: " #call);  \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

struct holder {
  struct engine *e;
  napi_ref upcall_fn;
  napi_threadsafe_function tsfn;
  napi_env env;
  bool hook;
};

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

static bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *out, napi_valuetype want) {
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, out) != napi_ok) return false;
  if (napi_typeof(env, *out, &t) != napi_ok) return false;
  return t == want;
}

/* An integer in [lo, hi] (JS number); false after throwing. */
static bool int_value(napi_env env, napi_value v, const char *what, double lo, double hi, double *out) {
  napi_valuetype t;
  double d;
  char msg[160];
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
      d != floor(d) || d < lo || d > hi) {
    snprintf(msg, sizeof msg, "remapfs_engine: %s must be an integer in [%.0f, %.0f]", what, lo, hi);
    napi_throw_range_error(env, NULL, msg);
    return false;
  }
  *out = d;
  return true;
}

static bool int_prop(napi_env env, napi_value obj, const char *name, double lo, double hi, double *out) {
  napi_value v;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return false;
  return int_value(env, v, name, lo, hi, out);
}

static bool bool_prop(napi_env env, napi_value obj, const char *name, bool *out, bool dflt) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_undefined) {
    *out = dflt;
    return true;
  }
  if (t != napi_boolean) {
    char msg[128];
    snprintf(msg, sizeof msg, "remapfs_engine: %s must be a boolean", name);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  return napi_get_value_bool(env, v, out) == napi_ok;
}

/* A malloc'd copy of a JS string; NULL after throwing. */
static char *string_value(napi_env env, napi_value v, const char *what) {
  size_t len;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string || napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    char msg[128];
    snprintf(msg, sizeof msg, "remapfs_engine: %s must be a string", what);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, NULL, "remapfs_engine: out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static struct holder *holder_arg(napi_env env, napi_value v) {
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok ||
      !data || !((struct holder *)data)->e) {
    napi_throw_type_error(env, NULL, "remapfs_engine: the first argument must be an engine from create()");
    return NULL;
  }
  return data;
}

enum which_pairs { SERVED, SERVED_OR_GONE, GONE };

/* A pair by id among the served ones, the removed ones not yet forgotten, or both; throws when there is none. */
static struct pair *pair_lookup(napi_env env, struct engine *e, napi_value v, enum which_pairs which) {
  double id;
  if (!int_value(env, v, "id", 0, 9007199254740991.0, &id)) return NULL;
  struct pair *p = which == GONE ? NULL : engine_find_pair(e, (uint64_t)id);
  if (!p && which != SERVED) p = engine_find_gone(e, (uint64_t)id);
  if (!p) {
    char msg[96];
    snprintf(msg, sizeof msg, "remapfs_engine: no %spair with id %.0f", which == GONE ? "removed " : "", id);
    napi_throw_error(env, NULL, msg);
  }
  return p;
}

/* ---- upcall transport ---- */

static napi_env g_close_env;

static void drop_buffer(napi_env env, struct upcall *u) {
  if (!u->buf_ref) return;
  napi_value ab;
  if (napi_get_reference_value(env, (napi_ref)u->buf_ref, &ab) == napi_ok && ab) napi_detach_arraybuffer(env, ab);
  napi_delete_reference(env, (napi_ref)u->buf_ref);
  u->buf_ref = NULL;
}

static void drop_on_close(struct upcall *u) { drop_buffer(g_close_env, u); }

static int post(struct engine *e, struct upcall *u) {
  struct holder *h = e->tsfn;
  if (!h || !h->tsfn) return -1;
  return napi_call_threadsafe_function(h->tsfn, (void *)(uintptr_t)u->handle, napi_tsfn_nonblocking) == napi_ok ? 0 : -1;
}

static const char *OP_NAMES[] = {"read", "write", "fsync", "fallocate", "getattr", "readdir", "open", "release", "truncate"};

static void set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}

static void set_str(napi_env env, napi_value obj, const char *name, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, name, v);
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  if (!env) return; /* torn down: unmount answers what is outstanding */
  uint32_t handle = (uint32_t)(uintptr_t)data;
  upcall_lock();
  struct upcall *u = upcall_find(handle);
  if (u && u->pair && atomic_load(&u->pair->removed)) {
    upcall_answer(u, -EIO);
    u = NULL;
  }
  upcall_unlock();
  if (!u) return;
  /* Only this thread answers a posted upcall, so u stays valid until we do. */
  napi_value obj, buf;
  napi_create_object(env, &obj);
  set_num(env, obj, "handle", handle);
  set_str(env, obj, "op", OP_NAMES[u->op]);
  if (u->control) {
    set_str(env, obj, "path", u->path ? u->path : "");
    set_num(env, obj, "fh", (double)u->fh);
  } else {
    set_num(env, obj, "pairId", (double)u->pair_id);
    set_str(env, obj, "why", u->why ? u->why : "slow");
    set_num(env, obj, "mode", u->mode);
  }
  set_num(env, obj, "offset", (double)u->offset);
  set_num(env, obj, "length", (double)u->length);
  if (u->buf && u->length > 0 && napi_create_external_buffer(env, u->length, u->buf, NULL, NULL, &buf) == napi_ok) {
    napi_value ab;
    napi_ref ref;
    if (napi_get_typedarray_info(env, buf, NULL, NULL, NULL, &ab, NULL) == napi_ok &&
        napi_create_reference(env, ab, 1, &ref) == napi_ok)
      u->buf_ref = ref;
    napi_set_named_property(env, obj, "buf", buf);
  }
  napi_value recv = undefined(env), ignored;
  if (napi_call_function(env, recv, js_cb, 1, &obj, &ignored) != napi_ok) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    upcall_lock();
    if (upcall_find(handle) == u) {
      drop_buffer(env, u);
      upcall_answer(u, -EIO);
    }
    upcall_unlock();
  }
}

static napi_value complete(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  TRY(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return fail(env, "remapfs_engine: complete(handle, result, value?)");
  double handle, result;
  if (!int_value(env, argv[0], "handle", 1, 4294967295.0, &handle)) return NULL;
  if (!int_value(env, argv[1], "result", -4095, 9007199254740991.0, &result)) return NULL;
  upcall_lock();
  struct upcall *u = upcall_find((uint32_t)handle);
  int op = u ? (int)u->op : -1;
  bool control = u ? u->control : false;
  upcall_unlock();
  napi_value out;
  if (!u) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  uint32_t mode = 0;
  uint64_t size = 0;
  char **names = NULL;
  size_t count = 0;
  if (control && result >= 0 && op == UP_GETATTR) {
    napi_value m, s;
    double dm, ds;
    if (argc < 3 || !get_prop(env, argv[2], "mode", &m, napi_number) || !get_prop(env, argv[2], "size", &s, napi_number) ||
        napi_get_value_double(env, m, &dm) != napi_ok || napi_get_value_double(env, s, &ds) != napi_ok || ds < 0) {
      result = -EIO;
    } else {
      mode = (uint32_t)dm;
      size = (uint64_t)ds;
    }
  } else if (control && result >= 0 && op == UP_READDIR) {
    bool is_array = false;
    uint32_t len = 0;
    if (argc < 3 || napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
        napi_get_array_length(env, argv[2], &len) != napi_ok) {
      result = -EIO;
    } else {
      names = calloc(len ? len : 1, sizeof *names);
      for (uint32_t i = 0; names && i < len; i++) {
        napi_value item;
        napi_valuetype t;
        size_t n;
        if (napi_get_element(env, argv[2], i, &item) != napi_ok || napi_typeof(env, item, &t) != napi_ok || t != napi_string) continue;
        napi_get_value_string_utf8(env, item, NULL, 0, &n);
        char *s = malloc(n + 1);
        if (!s) continue;
        napi_get_value_string_utf8(env, item, s, n + 1, &n);
        names[count++] = s;
      }
    }
  }
  napi_value exc;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) napi_get_and_clear_last_exception(env, &exc);
  upcall_lock();
  u = upcall_find((uint32_t)handle);
  if (u) {
    u->attr_mode = mode;
    u->attr_size = size;
    u->names = names;
    u->name_count = count;
    drop_buffer(env, u);
    upcall_answer(u, (int64_t)result);
  }
  upcall_unlock();
  if (!u) {
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
  }
  napi_get_boolean(env, u != NULL, &out);
  return out;
}

/* ---- life cycle ---- */

static void cleanup_hook(void *arg) {
  struct holder *h = arg;
  h->hook = false;
  if (h->e) {
    upcall_close(h->e, NULL);
    engine_unmount(h->e);
  }
}

static void unmount_holder(napi_env env, struct holder *h) {
  g_close_env = env;
  upcall_close(h->e, drop_on_close);
  engine_unmount(h->e);
  if (h->tsfn) {
    napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
    h->tsfn = NULL;
  }
  if (h->hook) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, h);
    h->hook = false;
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  struct holder *h = data;
  if (h->e) {
    unmount_holder(env, h);
    engine_free(h->e);
    h->e = NULL;
  }
  if (h->upcall_fn) napi_delete_reference(env, h->upcall_fn);
  free(h);
}

static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  char buf[96];
  snprintf(buf, sizeof buf, "remapfs-engine %s, libfuse %s", ENGINE_VERSION, fuse_pkgversion());
  napi_value out;
  TRY(env, napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &out));
  return out;
}

/* tmpfs or ramfs: a device call is a copy, and io_uring would hand it to a kernel worker thread. */
static bool memory_backed(int fd) {
  struct statfs sf;
  return fstatfs(fd, &sf) == 0 && (sf.f_type == 0x01021994 /* TMPFS_MAGIC */ || sf.f_type == (long)0x858458f6 /* RAMFS_MAGIC */);
}

static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts, v;
  TRY(env, napi_get_cb_info(env, info, &argc, &opts, NULL, NULL));
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, opts, &t) != napi_ok || t != napi_object)
    return fail(env, "remapfs_engine: create() needs an options object");
  napi_value fn;
  if (!get_prop(env, opts, "upcall", &fn, napi_function)) return fail(env, "remapfs_engine: upcall must be a function");
  double max_threads = 16;
  TRY(env, napi_get_named_property(env, opts, "maxThreads", &v));
  TRY(env, napi_typeof(env, v, &t));
  if (t != napi_undefined && !int_value(env, v, "maxThreads", 1, 64, &max_threads)) return NULL;
  bool count_inflight;
  if (!bool_prop(env, opts, "countInFlight", &count_inflight, false)) return NULL;
  double rings = -1; /* one per CPU */
  TRY(env, napi_get_named_property(env, opts, "ringWorkers", &v));
  TRY(env, napi_typeof(env, v, &t));
  if (t != napi_undefined && !int_value(env, v, "ringWorkers", 0, 3, &rings)) return NULL;
  double fuse_uring = 1; /* FUSE over io_uring: 1 where the kernel offers it, 0 never */
  TRY(env, napi_get_named_property(env, opts, "fuseUring", &v));
  TRY(env, napi_typeof(env, v, &t));
  if (t != napi_undefined && !int_value(env, v, "fuseUring", 0, 1, &fuse_uring)) return NULL;
  TRY(env, napi_get_named_property(env, opts, "mountpoint", &v));
  char *mountpoint = string_value(env, v, "mountpoint");
  if (!mountpoint) return NULL;
  char *control = NULL;
  TRY(env, napi_get_named_property(env, opts, "controlDir", &v));
  TRY(env, napi_typeof(env, v, &t));
  if (t != napi_null && t != napi_undefined) {
    control = string_value(env, v, "controlDir");
    if (!control) {
      free(mountpoint);
      return NULL;
    }
    if (!*control || strchr(control, '/')) {
      free(mountpoint);
      free(control);
      return fail(env, "remapfs_engine: controlDir must be a plain name");
    }
  }
  struct engine *e = engine_new();
  struct holder *h = calloc(1, sizeof *h);
  if (!e || !h) {
    free(mountpoint);
    free(control);
    free(h);
    if (e) engine_free(e);
    return fail(env, "remapfs_engine: out of memory");
  }
  e->mountpoint = mountpoint;
  e->control_dir = control;
  e->max_threads = (int)max_threads;
  e->count_inflight = count_inflight;
  e->ring_request = (int)rings;
  e->fring_request = (int)fuse_uring;
  h->e = e;
  h->env = env;
  e->tsfn = h;
  e->post = post;
  napi_value arr;
  bool is_array = false;
  uint32_t n = 0;
  TRY(env, napi_get_named_property(env, opts, "fsOptions", &arr));
  if (napi_is_array(env, arr, &is_array) == napi_ok && is_array) napi_get_array_length(env, arr, &n);
  e->fs_options = calloc(n ? n : 1, sizeof(char *));
  napi_value out;
  if (napi_create_external(env, h, finalize, NULL, &out) != napi_ok) {
    engine_free(e);
    free(h);
    return fail(env, "remapfs_engine: cannot wrap the engine");
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    TRY(env, napi_get_element(env, arr, i, &item));
    char *s = string_value(env, item, "fsOptions[i]");
    if (!s) return NULL;
    e->fs_options[e->fs_option_count++] = s;
  }
  TRY(env, napi_create_reference(env, fn, 1, &h->upcall_fn));
  return out;
}

static napi_value add_pair(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], v;
  TRY(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct holder *h = argc == 2 ? holder_arg(env, argv[0]) : NULL;
  if (!h) return argc == 2 ? NULL : fail(env, "remapfs_engine: addPair(engine, pair)");
  struct engine *e = h->e;
  double id, size, bs, mfd, sfd, align;
  bool direct, ro;
  if (!int_prop(env, argv[1], "id", 0, 9007199254740991.0, &id) ||
      !int_prop(env, argv[1], "sizeBytes", 1, 9007199254740991.0, &size) ||
      !int_prop(env, argv[1], "blockSize", 512, 1 << 24, &bs) || !int_prop(env, argv[1], "mainFd", 0, 1 << 30, &mfd) ||
      !int_prop(env, argv[1], "spareFd", -1, 1 << 30, &sfd) ||
      !int_prop(env, argv[1], "alignBytes", 1, 1 << 20, &align) || !bool_prop(env, argv[1], "direct", &direct, false) ||
      !bool_prop(env, argv[1], "readOnly", &ro, false))
    return NULL;
  if (((uint64_t)bs & ((uint64_t)bs - 1)) != 0 || ((uint64_t)align & ((uint64_t)align - 1)) != 0)
    return fail(env, "remapfs_engine: blockSize and alignBytes must be powers of two");
  TRY(env, napi_get_named_property(env, argv[1], "name", &v));
  char *name = string_value(env, v, "name");
  if (!name) return NULL;
  if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
      (e->control_dir && strcmp(name, e->control_dir) == 0)) {
    free(name);
    return fail(env, "remapfs_engine: a pair name must be a plain file name other than the control directory");
  }
  for (struct pair *q = e->pairs; q; q = q->next) {
    if (q->id == (uint64_t)id || strcmp(q->name, name) == 0) {
      free(name);
      return fail(env, "remapfs_engine: a pair with this id or name is already served");
    }
  }
  struct stat st;
  if (fstat((int)mfd, &st) != 0) {
    free(name);
    return fail(env, "remapfs_engine: mainFd is not an open file descriptor");
  }
  bool main_blk = S_ISBLK(st.st_mode), spare_blk = false;
  if (sfd >= 0) {
    if (fstat((int)sfd, &st) != 0) {
      free(name);
      return fail(env, "remapfs_engine: spareFd is not an open file descriptor");
    }
    spare_blk = S_ISBLK(st.st_mode);
  }
  struct pair *p = calloc(1, sizeof *p);
  if (!p || rt_map_init(&p->routes) != 0) {
    free(p);
    free(name);
    return fail(env, "remapfs_engine: out of memory");
  }
  p->id = (uint64_t)id;
  p->name = name;
  p->size_bytes = (uint64_t)size;
  p->block_size = (uint64_t)bs;
  p->align_bytes = (uint64_t)align;
  p->main_fd = (int)mfd;
  p->spare_fd = (int)sfd;
  p->main_blk = main_blk;
  p->spare_blk = spare_blk;
  p->mem_backed = memory_backed((int)mfd) || (sfd >= 0 && memory_backed((int)sfd));
  p->direct = direct;
  p->read_only = ro;
  atomic_init(&p->refs, 1);
  pthread_mutex_lock(&e->lock);
  p->ino = e->next_ino++;
  p->next = e->pairs;
  e->pairs = p;
  pthread_mutex_unlock(&e->lock);
  return undefined(env);
}

#define ENGINE_AND_PAIR_OF(N, WHICH)                                           \
  size_t argc = N;                                                             \
  napi_value argv[N];                                                          \
  TRY(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));              \
  if (argc < N) return fail(env, "remapfs_engine: missing arguments");         \
  struct holder *h = holder_arg(env, argv[0]);                                 \
  if (!h) return NULL;                                                         \
  struct pair *p = pair_lookup(env, h->e, argv[1], WHICH);                     \
  if (!p) return NULL;
#define ENGINE_AND_PAIR(N) ENGINE_AND_PAIR_OF(N, SERVED)

static napi_value remove_pair(napi_env env, napi_callback_info info) {
  ENGINE_AND_PAIR(2)
  engine_remove_pair(h->e, p);
  return undefined(env);
}

/* Drops a removed pair for good (its stats go); a served or unknown id is refused. */
static napi_value forget_pair(napi_env env, napi_callback_info info) {
  ENGINE_AND_PAIR_OF(2, GONE)
  engine_forget_pair(h->e, p);
  return undefined(env);
}

static napi_value mount(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, fn, name;
  TRY(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct holder *h = argc == 1 ? holder_arg(env, arg) : NULL;
  if (!h) return argc == 1 ? NULL : fail(env, "remapfs_engine: mount(engine)");
  if (h->e->state != 0) return fail(env, "remapfs_engine: this engine was already mounted");
  TRY(env, napi_get_reference_value(env, h->upcall_fn, &fn));
  TRY(env, napi_create_string_utf8(env, "remapfs-engine-upcall", NAPI_AUTO_LENGTH, &name));
  TRY(env, napi_create_threadsafe_function(env, fn, NULL, name, 0, 1, NULL, NULL, h, call_js, &h->tsfn));
  char err[256];
  if (engine_mount(h->e, err, sizeof err) != 0) {
    napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
    h->tsfn = NULL;
    char msg[320];
    snprintf(msg, sizeof msg, "remapfs_engine: %s", err);
    return fail(env, msg);
  }
  if (napi_add_env_cleanup_hook(env, cleanup_hook, h) == napi_ok) h->hook = true;
  return undefined(env);
}

static napi_value unmount(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  TRY(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct holder *h = argc == 1 ? holder_arg(env, arg) : NULL;
  if (!h) return argc == 1 ? NULL : fail(env, "remapfs_engine: unmount(engine)");
  unmount_holder(env, h);
  return undefined(env);
}

static bool block_range(napi_env env, struct pair *p, double first, double count) {
  uint64_t blocks = (p->size_bytes + p->block_size - 1) / p->block_size;
  if (first + count > (double)blocks) {
    napi_throw_range_error(env, NULL, "remapfs_engine: blocks past the end of the pair");
    return false;
  }
  return true;
}

static napi_value fence(napi_env env, napi_callback_info info) {
  ENGINE_AND_PAIR(4)
  double first, count;
  if (!int_value(env, argv[2], "firstBlock", 0, 9007199254740991.0, &first) ||
      !int_value(env, argv[3], "blockCount", 0, 9007199254740991.0, &count) || !block_range(env, p, first, count))
    return NULL;
  if (engine_fence(h->e, p, (uint64_t)first, (uint64_t)count) != 0) return fail(env, "remapfs_engine: out of memory in fence");
  return undefined(env);
}

static napi_value publish(napi_env env, napi_callback_info info) {
  ENGINE_AND_PAIR(5)
  double count;
  napi_typedarray_type tb, tr;
  size_t nb, nr;
  void *db, *dr;
  if (napi_get_typedarray_info(env, argv[2], &tb, &nb, &db, NULL, NULL) != napi_ok || tb != napi_float64_array ||
      napi_get_typedarray_info(env, argv[3], &tr, &nr, &dr, NULL, NULL) != napi_ok || tr != napi_float64_array)
    return fail(env, "remapfs_engine: publish needs two Float64Arrays");
  if (!int_value(env, argv[4], "count", 0, (double)(nb < nr ? nb : nr), &count)) return NULL;
  const double *blocks = db, *routes = dr;
  uint64_t nblocks = (p->size_bytes + p->block_size - 1) / p->block_size;
  for (size_t i = 0; i < (size_t)count; i++) {
    if (blocks[i] != floor(blocks[i]) || blocks[i] < 0 || blocks[i] >= (double)nblocks || routes[i] != floor(routes[i]) ||
        routes[i] < -2 || routes[i] > 9007199254740991.0) {
      char msg[160];
      snprintf(msg, sizeof msg, "remapfs_engine: publish entry %zu (block %g, route %g) is invalid", i, blocks[i], routes[i]);
      napi_throw_range_error(env, NULL, msg);
      return NULL;
    }
  }
  if (engine_publish(h->e, p, blocks, routes, (size_t)count) != 0) return fail(env, "remapfs_engine: out of memory in publish");
  return undefined(env);
}

static napi_value set_writes_slow(napi_env env, napi_callback_info info) {
  ENGINE_AND_PAIR(3)
  bool on;
  if (napi_get_value_bool(env, argv[2], &on) != napi_ok) {
    napi_throw_type_error(env, NULL, "remapfs_engine: on must be a boolean");
    return NULL;
  }
  engine_set_writes_slow(h->e, p, on);
  return undefined(env);
}

static napi_value open_fast_path(napi_env env, napi_callback_info info) {
  ENGINE_AND_PAIR(2)
  (void)h;
  engine_open_fast_path(p);
  return undefined(env);
}

/* Stats of a served pair, or of a removed one not yet forgotten (its handles may still be open). */
static napi_value stats(napi_env env, napi_callback_info info) {
  ENGINE_AND_PAIR_OF(2, SERVED_OR_GONE)
  (void)h;
  static const char *names[C_COUNT] = {"readOps", "writeOps", "readBytes", "writeBytes", "readErrors", "writeErrors",
                                       "flushes", "fallocates", "slowReads", "slowWrites", "fastIoErrors", "waitRetries"};
  uint64_t sum[C_COUNT];
  engine_sum(p, sum);
  napi_value out;
  TRY(env, napi_create_object(env, &out));
  for (int i = 0; i < C_COUNT; i++) set_num(env, out, names[i], (double)sum[i]);
  set_num(env, out, "openHandles", atomic_load(&p->open_handles));
  set_num(env, out, "inFlight", (double)atomic_load(&p->inflight));
  set_num(env, out, "maxInFlight", (double)atomic_load(&p->max_inflight));
  set_num(env, out, "routeEntries", (double)atomic_load(&p->routes.live));
  return out;
}

static napi_value io_flusher(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, out;
  TRY(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct holder *h = argc == 1 ? holder_arg(env, arg) : NULL;
  if (!h) return argc == 1 ? NULL : fail(env, "remapfs_engine: ioFlusher(engine)");
  TRY(env, napi_create_object(env, &out));
  set_num(env, out, "set", atomic_load(&h->e->flusher_set));
  set_num(env, out, "failed", atomic_load(&h->e->flusher_failed));
  set_num(env, out, "errno", atomic_load(&h->e->flusher_errno));
  set_num(env, out, "pinned", atomic_load(&h->e->pin_threads));
  set_num(env, out, "pinFailed", atomic_load(&h->e->pin_failed));
  set_num(env, out, "pinErrno", atomic_load(&h->e->pin_errno));
  return out;
}

static napi_value negotiated(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, out, b;
  TRY(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct holder *h = argc == 1 ? holder_arg(env, arg) : NULL;
  if (!h) return argc == 1 ? NULL : fail(env, "remapfs_engine: negotiated(engine)");
  struct engine *e = h->e;
  TRY(env, napi_create_object(env, &out));
  bool init = atomic_load(&e->got_init);
  napi_get_boolean(env, init, &b);
  napi_set_named_property(env, out, "init", b);
  set_num(env, out, "protoMajor", e->proto_major);
  set_num(env, out, "protoMinor", e->proto_minor);
  set_num(env, out, "maxWrite", e->max_write);
  /* libfuse replies max_pages = ceil(max_write / page) when the kernel offers FUSE_MAX_PAGES (7.28+). */
  set_num(env, out, "maxPages", init ? (e->proto_minor >= 28 ? (e->max_write + 4095) / 4096 : 32) : 0);
  set_num(env, out, "maxReadahead", e->max_readahead);
  set_num(env, out, "maxBackground", e->max_background);
  set_num(env, out, "congestionThreshold", e->congestion);
  set_num(env, out, "maxThreads", e->max_threads);
  set_num(env, out, "ringWorkers", atomic_load(&e->ring_workers));
  set_num(env, out, "poolThreads", atomic_load(&e->pool_threads));
  set_num(env, out, "ringErrno", atomic_load(&e->ring_errno));
  set_num(env, out, "fuseUringEntries", atomic_load(&e->fring_entries));
  set_num(env, out, "fuseUringEntriesMax", atomic_load(&e->fring_entries_max));
  set_num(env, out, "fuseUringErrno", atomic_load(&e->fring_errno));
  set_num(env, out, "fuseUringRequests", (double)atomic_load(&e->fring_requests));
  napi_get_boolean(env, (e->want & FUSE_CAP_ASYNC_DIO) != 0, &b);
  napi_set_named_property(env, out, "asyncDio", b);
  napi_get_boolean(env, init && e->proto_minor >= 38, &b);
  napi_set_named_property(env, out, "parallelDirectWrites", b);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"version", NULL, version, NULL, NULL, NULL, napi_enumerable, NULL},
      {"create", NULL, create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addPair", NULL, add_pair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removePair", NULL, remove_pair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"forgetPair", NULL, forget_pair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mount", NULL, mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmount", NULL, unmount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fence", NULL, fence, NULL, NULL, NULL, napi_enumerable, NULL},
      {"publish", NULL, publish, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setWritesSlow", NULL, set_writes_slow, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openFastPath", NULL, open_fast_path, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioFlusher", NULL, io_flusher, NULL, NULL, NULL, napi_enumerable, NULL},
      {"negotiated", NULL, negotiated, NULL, NULL, NULL, napi_enumerable, NULL},
      {"complete", NULL, complete, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
