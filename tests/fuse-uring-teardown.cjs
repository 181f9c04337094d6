// Jest globalTeardown: puts back the fuse.enable_uring that fuse-uring-setup.cjs found.
'use strict';
const fs = require('fs');

module.exports = async () => {
  const old = process.env.REMAPFS_TEST_ENABLE_URING_WAS;
  if (old !== undefined) fs.writeFileSync('/sys/module/fuse/parameters/enable_uring', old);
};
