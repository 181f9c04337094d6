/**
 * npm run bench: fio (libaio, direct=1) through a loop device (--direct-io=on --sector-size 4096) on 1 GiB
 * images, for each cell and each stack, median of BENCH_RUNS runs, with ratios measured in the same run:
 *
 *   a   the kernel loop device on the raw image (the limit: what a user has without remapfs)
 *   b   a minimal fuse-native passthrough (scripts/passthrough.ts), opened the way remapfs opens the image
 *   b0  the same passthrough with plain buffered writes (no per-write error report)
 *   per engine (native: `remapfs mount --engine native`; fuse-native, the control):
 *   c   remapfs, no remaps;  d  1% of blocks remapped, scattered;  e  1% remapped while a scan runs
 *
 * The images go to a disk directory (/var/tmp) by default, and the page cache is dropped before every run, so
 * reads come from the disk for every stack alike; the report says how much of each read the disk served.
 * `--tmpfs` (or BENCH_DIR=tmpfs) puts them on a private tmpfs instead. Then scale: a pair with 1,000,000
 * remap entries. scripts/bench/config.ts lists every option; docs/performance.md says why the bench pins
 * fio and the daemons to their own CPUs.
 */
import { main } from './bench/main.js';

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
