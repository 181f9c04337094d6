/*
 * N-API glue for remapfs_native.h: argument checks and value conversion only.
 * Exposes setIoFlusher, getIoFlusher, flock and unlock (lib/native/index.ts
 * documents them). No state, no threads; every call runs on the caller's
 * thread, which matters for the prctl calls (they act on that thread).
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <string.h>

#include "remapfs_native.h"

/* Return NULL from the current function when a N-API call fails; the failing
 * call has left an exception pending or we throw a generic one. */
#define CHECK(env, call)                                                       \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      bool pending_ = false;                                                   \
      napi_is_exception_pending((env), &pending_);                             \
      if (!pending_) napi_throw_error((env), NULL, "remapfs_native: " #call);  \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static napi_value errno_string(napi_env env, int errnum) {
  char buf[16];
  napi_value out;
  CHECK(env, napi_create_string_utf8(env, remapfs_errno_name(errnum, buf, sizeof buf),
                                     NAPI_AUTO_LENGTH, &out));
  return out;
}

/* Throws an Error whose .code is the errno name. */
static napi_value throw_errno(napi_env env, const char *what, int errnum) {
  char buf[16];
  char msg[96];
  const char *name = remapfs_errno_name(errnum, buf, sizeof buf);
  strncpy(msg, what, sizeof msg - 1);
  msg[sizeof msg - 1] = '\0';
  strncat(msg, ": ", sizeof msg - strlen(msg) - 1);
  strncat(msg, name, sizeof msg - strlen(msg) - 1);
  napi_throw_error(env, name, msg);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

/* Reads args[i] as a non-negative int32 file descriptor; -1 after throwing. */
static int fd_arg(napi_env env, napi_value arg) {
  napi_valuetype type;
  int32_t fd;
  if (napi_typeof(env, arg, &type) != napi_ok || type != napi_number ||
      napi_get_value_int32(env, arg, &fd) != napi_ok || fd < 0) {
    throw_type(env, "fd must be a non-negative integer");
    return -1;
  }
  double asDouble;
  if (napi_get_value_double(env, arg, &asDouble) != napi_ok || asDouble != (double)fd) {
    throw_type(env, "fd must be a non-negative integer");
    return -1;
  }
  return fd;
}

static napi_value set_io_flusher(napi_env env, napi_callback_info info) {
  (void)info;
  int err = remapfs_set_io_flusher();
  if (err != 0) return errno_string(env, err);
  napi_value out;
  CHECK(env, napi_create_int32(env, 0, &out));
  return out;
}

static napi_value get_io_flusher(napi_env env, napi_callback_info info) {
  (void)info;
  int state = 0;
  int err = remapfs_get_io_flusher(&state);
  if (err != 0) return errno_string(env, err);
  napi_value out;
  CHECK(env, napi_create_int32(env, state, &out));
  return out;
}

static napi_value do_flock(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc != 3) return throw_type(env, "flock(fd, mode, wait) takes three arguments");
  int fd = fd_arg(env, args[0]);
  if (fd < 0) return NULL;

  char mode[16];
  size_t modeLen = 0;
  if (napi_get_value_string_utf8(env, args[1], mode, sizeof mode, &modeLen) != napi_ok)
    return throw_type(env, "mode must be 'exclusive' or 'shared'");
  int exclusive;
  if (strcmp(mode, "exclusive") == 0) exclusive = 1;
  else if (strcmp(mode, "shared") == 0) exclusive = 0;
  else return throw_type(env, "mode must be 'exclusive' or 'shared'");

  bool wait;
  if (napi_get_value_bool(env, args[2], &wait) != napi_ok)
    return throw_type(env, "wait must be a boolean");

  int err = 0;
  int r = remapfs_flock(fd, exclusive, wait ? 1 : 0, &err);
  if (r < 0) return throw_errno(env, "flock", err);
  napi_value out;
  CHECK(env, napi_get_boolean(env, r == REMAPFS_LOCK_TAKEN, &out));
  return out;
}

static napi_value do_unlock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc != 1) return throw_type(env, "unlock(fd) takes one argument");
  int fd = fd_arg(env, args[0]);
  if (fd < 0) return NULL;
  int err = remapfs_unlock(fd);
  if (err != 0) return throw_errno(env, "flock(LOCK_UN)", err);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setIoFlusher", NULL, set_io_flusher, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getIoFlusher", NULL, get_io_flusher, NULL, NULL, NULL, napi_enumerable, NULL},
      {"flock", NULL, do_flock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unlock", NULL, do_unlock, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
