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
    },
    {
      "target_name": "remapfs_engine",
      "sources": ["native/engine/napi.c", "native/engine/fs.c", "native/engine/io.c", "native/engine/routes.c", "native/engine/pin.c", "native/engine/ring.c", "native/engine/fring.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "<!@(pkg-config --cflags fuse3)"],
      "cflags_c": ["-std=c11"],
      "libraries": ["<!@(pkg-config --libs fuse3)", "-luring", "-lpthread"]
    }
  ]
}
