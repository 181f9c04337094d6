/** Jest setup of the engine-dev project (jest.config.cjs): the native engine's ring workers take every request from /dev/fuse, as where the kernel does not offer FUSE over io_uring. */
process.env.REMAPFS_ENGINE_TRANSPORT = 'dev';
