/** Jest setup of the fuse-native project (jest.config.js): every remapfs server the tests start uses the fallback engine. */
process.env.REMAPFS_ENGINE = 'fuse-native';
