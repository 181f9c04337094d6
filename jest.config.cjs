// Tests are compiled by tsc into dist/ first (npm test does both).
// Two projects: every test on the default engine (native), and a subset of the
// end-to-end tests again on fuse-native (REMAPFS_ENGINE=fuse-native) to prove
// the fallback mounts, serves, remaps under I/O, unmounts and cleans up.
// Pick one with --selectProjects native|fuse-native.
// Tests that need capabilities this kind of machine does not grant: npm run test:privileged.
const ignored = process.env.REMAPFS_PRIVILEGED ? [] : ['/dist/tests/privileged/'];
const FALLBACK_SUBSET = ['core', 'concurrency', 'own-scope'];

module.exports = {
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
  ],
};
