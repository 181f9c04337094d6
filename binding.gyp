{
  "targets": [
    {
      "target_name": "remapfs_native",
      "sources": ["native/addon.c", "native/flusher.c", "native/lock.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"],
      "cflags_c": ["-std=c11"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
