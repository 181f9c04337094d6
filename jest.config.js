// Tests are compiled by tsc into dist/ first (npm test does both).
module.exports = {
  testMatch: ['<rootDir>/dist/tests/**/*.test.js'],
  // Tests that need capabilities this kind of machine does not grant: npm run test:privileged.
  testPathIgnorePatterns: process.env.REMAPFS_PRIVILEGED ? [] : ['/dist/tests/privileged/'],
  testEnvironment: 'node',
  maxWorkers: 2,
  testTimeout: 120000,
  verbose: true,
};
