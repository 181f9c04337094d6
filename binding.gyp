{
  "targets": [
    {
      "target_name": "remapfs_native",
      "sources": ["native/addon.c", "native/flusher.c", "native/lock.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"],
      "cflags_c": ["-std=c11"]
    },
    {
      "target_name": "remapfs-io-flusher",
      "type": "executable",
      "sources": ["native/io-flusher-exec.c", "native/flusher.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"],
      "cflags_c": ["-std=c11"]
    }
  ]
}
