/** Jest setup of the engine-blocking project (jest.config.cjs): the native engine serves with its blocking thread pool, the fallback where io_uring cannot run. */
process.env.REMAPFS_ENGINE_IO = 'blocking';
