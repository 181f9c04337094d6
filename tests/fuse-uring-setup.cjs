// Jest globalSetup (jest.config.cjs). FUSE over io_uring is an opt-in of the
// kernel (fuse.enable_uring, Linux 6.14+). The run turns it on, as
// docs/architecture.md tells users to, so that the native engine's default
// transport is the one tested (the engine-dev project covers /dev/fuse);
// fuse-uring-teardown.cjs puts the old value back. A kernel without the
// parameter is left alone, and the engine test then fails under CI=true.
'use strict';
const fs = require('fs');

module.exports = async () => {
  const param = '/sys/module/fuse/parameters/enable_uring';
  let old;
  try {
    old = fs.readFileSync(param, 'utf8').trim();
  } catch {
    return;
  }
  if (old === 'Y') return;
  fs.writeFileSync(param, 'Y');
  process.env.REMAPFS_TEST_ENABLE_URING_WAS = old;
};
