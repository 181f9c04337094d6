// Tests are compiled by tsc into dist/ first (npm test does both).
module.exports = {
  testMatch: ['<rootDir>/dist/tests/**/*.test.js'],
  testEnvironment: 'node',
  maxWorkers: 2,
  testTimeout: 120000,
  verbose: true,
};
