// Tests are compiled by tsc into dist/ first (npm test does both).
// Four projects: every test on the default engine (native, io_uring workers,
// FUSE over io_uring: the run sets fuse.enable_uring=Y and puts it back after,
// tests/fuse-uring-global.cjs); a subset of the end-to-end tests again on
// fuse-native (REMAPFS_ENGINE=fuse-native) to prove the fallback mounts,
// serves, remaps under I/O, unmounts and cleans up; the engine's own tests
// again on its blocking thread pool (REMAPFS_ENGINE_IO=blocking), its fallback
// where io_uring cannot run; and again with requests read from /dev/fuse
// (REMAPFS_ENGINE_TRANSPORT=dev), as on a kernel without FUSE over io_uring.
// Pick one with --selectProjects native|fuse-native|engine-blocking|engine-dev.
// Tests that need capabilities this kind of machine does not grant: npm run test:privileged.
const ignored = process.env.REMAPFS_PRIVILEGED ? [] : ['/dist/tests/privileged/'];
const FALLBACK_SUBSET = ['core', 'concurrency', 'own-scope'];
const BLOCKING_SUBSET = ['engine', 'engine-stress', 'crash'];

module.exports = {
  globalSetup: '<rootDir>/tests/fuse-uring-setup.cjs',
  globalTeardown: '<rootDir>/tests/fuse-uring-teardown.cjs',
  maxWorkers: 2,
  testTimeout: 120000,
  verbose: true,
  projects: [
    {
      displayName: 'native',
      testMatch: ['<rootDir>/dist/tests/**/*.test.js'],
      testPathIgnorePatterns: ignored,
      testEnvironment: 'node',
    },
    {
      displayName: 'fuse-native',
      testMatch: FALLBACK_SUBSET.map((name) => `<rootDir>/dist/tests/e2e/${name}.test.js`),
      setupFiles: ['<rootDir>/dist/tests/helpers/engine-fuse-native.js'],
      testEnvironment: 'node',
    },
    {
      displayName: 'engine-blocking',
      testMatch: BLOCKING_SUBSET.map((name) => `<rootDir>/dist/tests/e2e/${name}.test.js`),
      setupFiles: ['<rootDir>/dist/tests/helpers/engine-blocking.js'],
      testEnvironment: 'node',
    },
    {
      displayName: 'engine-dev',
      testMatch: BLOCKING_SUBSET.map((name) => `<rootDir>/dist/tests/e2e/${name}.test.js`),
      setupFiles: ['<rootDir>/dist/tests/helpers/engine-dev.js'],
      testEnvironment: 'node',
    },
  ],
};
