/*
 * Unit tests of native/engine/routes.c: the route table (insert, update,
 * growth, MAIN entries dropped on rehash, narrow and wide layouts), the splitter (same merging as
 * lib/remap/split.ts) and the epoch/fence protocol under threads: readers
 * announce, look routes up and record what they saw while a writer fences and
 * publishes; no reader may still be using a route older than a completed fence.
 * Run by scripts/test-native.sh under ASan+UBSan (and optionally TSan).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../routes.h"

static int failures;
#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
      failures++;                                                                \
    }                                                                            \
  } while (0)

static void test_table(void) {
  struct rt_map m;
  CHECK(rt_map_init(&m) == 0);
  CHECK(rt_get(&m, 0) == ROUTE_MAIN);
  CHECK(rt_set(&m, 7, 3) == ROUTE_MAIN);
  CHECK(rt_get(&m, 7) == 3);
  CHECK(rt_set(&m, 7, ROUTE_SLOW) == 3);
  CHECK(rt_get(&m, 7) == ROUTE_SLOW);
  CHECK(atomic_load(&m.live) == 1);
  CHECK(rt_set(&m, 7, ROUTE_MAIN) == ROUTE_SLOW);
  CHECK(atomic_load(&m.live) == 0);
  CHECK(rt_set(&m, 8, ROUTE_MAIN) == ROUTE_MAIN); /* no entry for MAIN */
  /* Growth: 100k entries, every one readable, old tables retired. */
  for (uint64_t b = 0; b < 100000; b++) CHECK(rt_set(&m, b * 3, (int64_t)b) != -3);
  CHECK(rt_has_retired(&m));
  rt_reclaim(&m);
  CHECK(!rt_has_retired(&m));
  int bad = 0;
  for (uint64_t b = 0; b < 100000; b++) bad += rt_get(&m, b * 3) != (int64_t)b;
  for (uint64_t b = 0; b < 1000; b++) bad += rt_get(&m, b * 3 + 1) != ROUTE_MAIN;
  CHECK(bad == 0);
  CHECK(atomic_load(&m.live) == 100000);
  /* Churn like a scan: fence (SLOW) then publish MAIN; the table must not grow without bound. */
  for (uint64_t b = 0; b < 100000; b++) rt_set(&m, b * 3, ROUTE_MAIN);
  for (uint64_t round = 0; round < 200; round++) {
    for (uint64_t b = 0; b < 256; b++) rt_set(&m, 1000000 + round * 256 + b, ROUTE_SLOW);
    for (uint64_t b = 0; b < 256; b++) rt_set(&m, 1000000 + round * 256 + b, ROUTE_MAIN);
    rt_reclaim(&m);
  }
  CHECK(atomic_load(&m.live) == 0);
  CHECK(atomic_load(&m.table)->mask + 1 <= 512 * 1024);
  rt_map_free(&m);
}

/* Narrow slots (one word) while keys and routes fit in 32 bits; the first that does not makes the table wide. */
static void test_layouts(void) {
  struct rt_map m;
  CHECK(rt_map_init(&m) == 0);
  CHECK(atomic_load(&m.table)->narrow);
  uint64_t last_narrow_block = RT_NARROW_MAX_KEY - 1;
  CHECK(rt_set(&m, last_narrow_block, RT_NARROW_MAX_ROUTE) == ROUTE_MAIN);
  CHECK(rt_set(&m, 0, 0) == ROUTE_MAIN);
  CHECK(rt_set(&m, 5, ROUTE_SLOW) == ROUTE_MAIN);
  CHECK(atomic_load(&m.table)->narrow);
  CHECK(rt_get(&m, last_narrow_block) == RT_NARROW_MAX_ROUTE);
  CHECK(rt_get(&m, 0) == 0 && rt_get(&m, 5) == ROUTE_SLOW);
  CHECK(rt_get(&m, last_narrow_block + 1) == ROUTE_MAIN); /* a key a narrow table cannot hold */
  CHECK(rt_get(&m, 1ull << 40) == ROUTE_MAIN);
  CHECK(rt_set(&m, last_narrow_block + 1, ROUTE_MAIN) == ROUTE_MAIN); /* no entry, and no rebuild */
  CHECK(atomic_load(&m.table)->narrow && !rt_has_retired(&m));
  /* A block beyond 2^32 - 2: rebuilt wide, every entry kept. */
  CHECK(rt_set(&m, last_narrow_block + 1, 7) == ROUTE_MAIN);
  CHECK(!atomic_load(&m.table)->narrow && rt_has_retired(&m));
  rt_reclaim(&m);
  CHECK(rt_get(&m, last_narrow_block + 1) == 7 && rt_get(&m, last_narrow_block) == RT_NARROW_MAX_ROUTE);
  CHECK(rt_get(&m, 0) == 0 && rt_get(&m, 5) == ROUTE_SLOW && atomic_load(&m.live) == 4);
  CHECK(rt_set(&m, (1ull << 50) + 3, (int64_t)1 << 45) == ROUTE_MAIN);
  CHECK(rt_get(&m, (1ull << 50) + 3) == (int64_t)1 << 45);
  CHECK(rt_set(&m, (1ull << 50) + 3, ROUTE_MAIN) == (int64_t)1 << 45);
  CHECK(atomic_load(&m.live) == 4);
  rt_map_free(&m);
  /* A spare block beyond the narrow routes: wide too, for an existing key as well. */
  CHECK(rt_map_init(&m) == 0);
  CHECK(rt_set(&m, 9, ROUTE_SLOW) == ROUTE_MAIN);
  CHECK(rt_set(&m, 9, RT_NARROW_MAX_ROUTE + 1) == ROUTE_SLOW);
  CHECK(!atomic_load(&m.table)->narrow);
  CHECK(rt_get(&m, 9) == RT_NARROW_MAX_ROUTE + 1 && atomic_load(&m.live) == 1);
  rt_reclaim(&m);
  rt_map_free(&m);
  /* Memory: a million remaps fit 2^21 narrow slots of 8 bytes. */
  CHECK(rt_map_init(&m) == 0);
  for (uint64_t b = 0; b < 1000000; b++) CHECK(rt_set(&m, 262144 + 2 * b, (int64_t)b) != -3);
  rt_reclaim(&m);
  struct rt_table *t = atomic_load(&m.table);
  CHECK(t->narrow && t->mask + 1 == (1u << 21));
  int bad = 0;
  for (uint64_t b = 0; b < 1000000; b++) bad += rt_get(&m, 262144 + 2 * b) != (int64_t)b || rt_get(&m, 262145 + 2 * b) != ROUTE_MAIN;
  CHECK(bad == 0);
  rt_map_free(&m);
}

/* The splitter on a wide table: byte offsets of blocks and spare blocks beyond 2^32. */
static void test_split_wide(void) {
  struct rt_map m;
  struct rt_run runs[4];
  CHECK(rt_map_init(&m) == 0);
  uint64_t block = (1ull << 32) + 5, spare = (1ull << 33) + 1;
  CHECK(rt_set(&m, block, (int64_t)spare) == ROUTE_MAIN);
  struct rt_table *t = atomic_load(&m.table);
  CHECK(!t->narrow);
  int n = rt_split(&m, t, atomic_load(&m.live), (block - 1) * 512, 3 * 512, 512, runs, 4);
  CHECK(n == 3);
  CHECK(runs[0].spare == 0 && runs[0].dev_off == (block - 1) * 512 && runs[0].len == 512);
  CHECK(runs[1].spare == 1 && runs[1].dev_off == spare * 512 && runs[1].buf_off == 512 && runs[1].len == 512);
  CHECK(runs[2].spare == 0 && runs[2].dev_off == (block + 1) * 512 && runs[2].buf_off == 1024);
  rt_reclaim(&m);
  rt_map_free(&m);
}

/* The region filter: set before any non-MAIN route, never cleared, consulted by rt_route and rt_split. */
static void test_regions(void) {
  struct rt_map m;
  struct rt_run runs[8];
  CHECK(rt_map_init(&m) == 0);
  uint64_t block = 5 * RT_REGION_BLOCKS + 3;
  CHECK(rt_set(&m, block, 77) == ROUTE_MAIN);
  struct rt_table *t = atomic_load(&m.table);
  uint64_t r = block >> RT_REGION_SHIFT;
  CHECK((atomic_load(&m.regions[r / 64]) >> (r % 64)) & 1);
  CHECK(rt_route(&m, t, block) == 77 && rt_route(&m, t, block + 1) == ROUTE_MAIN);
  /* Only its own region: the neighbours' bits stay clear. */
  CHECK(!((atomic_load(&m.regions[(r + 1) / 64]) >> ((r + 1) % 64)) & 1));
  /* A block of an aliased region (modulo RT_REGION_BITS) passes the filter and is looked up: MAIN. */
  CHECK(rt_route(&m, t, block + RT_REGION_BITS * RT_REGION_BLOCKS) == ROUTE_MAIN);
  /* Back to MAIN: the bit stays (a lookup more, never a wrong answer). */
  CHECK(rt_set(&m, block, ROUTE_MAIN) == 77);
  CHECK((atomic_load(&m.regions[r / 64]) >> (r % 64)) & 1);
  CHECK(rt_route(&m, t, block) == ROUTE_MAIN);
  CHECK(rt_set(&m, block, 78) == ROUTE_MAIN);
  /* The splitter consults the filter: with the bit cleared by hand, the entry is not seen. */
  int n = rt_split(&m, t, atomic_load(&m.live), block * 4096, 4096, 4096, runs, 8);
  CHECK(n == 1 && runs[0].spare == 1 && runs[0].dev_off == 78 * 4096);
  atomic_store(&m.regions[r / 64], 0);
  n = rt_split(&m, t, atomic_load(&m.live), block * 4096, 4096, 4096, runs, 8);
  CHECK(n == 1 && runs[0].spare == 0 && runs[0].dev_off == block * 4096);
  /* Without a map there is no filter. */
  n = rt_split(NULL, t, atomic_load(&m.live), block * 4096, 4096, 4096, runs, 8);
  CHECK(n == 1 && runs[0].spare == 1);
  rt_reclaim(&m);
  rt_map_free(&m);
}

static void test_split(void) {
  struct rt_map m;
  struct rt_run runs[16];
  CHECK(rt_map_init(&m) == 0);
  struct rt_table *t = atomic_load(&m.table);
  /* All MAIN: one run, even unaligned. */
  CHECK(rt_split(&m, t, 0, 100, 10000, 4096, runs, 16) == 1);
  CHECK(runs[0].spare == 0 && runs[0].buf_off == 0 && runs[0].len == 10000 && runs[0].dev_off == 100);
  CHECK(rt_split(&m, t, 0, 0, 0, 4096, runs, 16) == 0);
  /* Blocks 1 and 2 on spare 10 and 11 (consecutive: one run), block 4 on spare 3. */
  rt_set(&m, 1, 10);
  rt_set(&m, 2, 11);
  rt_set(&m, 4, 3);
  t = atomic_load(&m.table);
  size_t live = atomic_load(&m.live);
  int n = rt_split(&m, t, live, 2048, 4096 * 5, 4096, runs, 16); /* bytes 2048 .. 22528: blocks 0..5 */
  CHECK(n == 5);
  CHECK(runs[0].spare == 0 && runs[0].buf_off == 0 && runs[0].len == 2048 && runs[0].dev_off == 2048);
  CHECK(runs[1].spare == 1 && runs[1].buf_off == 2048 && runs[1].len == 8192 && runs[1].dev_off == 40960);
  CHECK(runs[2].spare == 0 && runs[2].buf_off == 10240 && runs[2].len == 4096 && runs[2].dev_off == 12288);
  CHECK(runs[3].spare == 1 && runs[3].buf_off == 14336 && runs[3].len == 4096 && runs[3].dev_off == 12288);
  CHECK(runs[4].spare == 0 && runs[4].buf_off == 18432 && runs[4].len == 2048 && runs[4].dev_off == 20480);
  /* Groups for vectored calls: with block 4 on spare 3, no run continues another on its device; moved to
   * spare 12, right after blocks 1-2 on spare 10-11, runs 1 and 3 form one group. */
  {
    int next[16];
    unsigned char head[16];
    CHECK(rt_chain(runs, n, 16, next, head) == 5);
    rt_set(&m, 4, 12);
    t = atomic_load(&m.table);
    n = rt_split(&m, t, atomic_load(&m.live), 2048, 4096 * 5, 4096, runs, 16);
    CHECK(n == 5 && runs[3].spare == 1 && runs[3].dev_off == 49152);
    CHECK(rt_chain(runs, n, 16, next, head) == 4);
    CHECK(head[0] && head[1] && head[2] && !head[3] && head[4]);
    CHECK(next[1] == 3 && next[3] == -1 && next[0] == -1 && next[2] == -1 && next[4] == -1);
    CHECK(rt_chain(runs, n, 1, next, head) == 5); /* no room for a group of two */
    /* Main runs around a remapped block never continue each other on main (the block between is skipped). */
    struct rt_run mains[3] = {{0, 0, 4096, 0}, {1, 4096, 4096, 4096 * 9}, {0, 8192, 4096, 8192}};
    CHECK(rt_chain(mains, 3, 16, next, head) == 3);
    /* Three consecutive spare blocks between main runs: one group of three, budget counted per iovec. */
    struct rt_run many[5] = {{1, 0, 4096, 0}, {0, 4096, 4096, 4096}, {1, 8192, 4096, 4096}, {0, 12288, 4096, 12288}, {1, 16384, 4096, 8192}};
    CHECK(rt_chain(many, 5, 3, next, head) == 3 && next[0] == 2 && next[2] == 4);
    CHECK(rt_chain(many, 5, 2, next, head) == 4 && next[0] == 2 && next[2] == -1 && head[4]);
  }
  /* Spare blocks not consecutive: separate runs. */
  rt_set(&m, 2, 20);
  t = atomic_load(&m.table);
  CHECK(rt_split(&m, t, atomic_load(&m.live), 4096, 8192, 4096, runs, 16) == 2);
  /* SLOW anywhere: -1; too many runs: -2. */
  rt_set(&m, 3, ROUTE_SLOW);
  t = atomic_load(&m.table);
  CHECK(rt_split(&m, t, atomic_load(&m.live), 0, 4096 * 8, 4096, runs, 16) == -1);
  CHECK(rt_split(&m, t, atomic_load(&m.live), 0, 4096 * 3, 4096, runs, 2) == -2);
  rt_reclaim(&m);
  rt_map_free(&m);
}

/* ---- epoch/fence stress ---- */

#define BLOCKS 64
#define READERS 4
static struct rt_epoch g_ep;
static struct rt_map g_map;
/* The writer's notion of truth: version[b] bumps at every fence of b; readers
 * record the version they saw with a non-SLOW route and check after their
 * "I/O" (still announced) that no fence of b completed meanwhile. */
static _Atomic uint64_t g_fenced_version[BLOCKS];
static _Atomic int g_stop;
static _Atomic long g_violations, g_fast, g_slow;

/* The stressed blocks lie in distinct filter regions, so a region's first bit is set under the readers. */
static uint64_t block_at(uint64_t b) { return b * RT_REGION_BLOCKS + b % 7; }

static void *reader(void *arg) {
  (void)arg;
  int slot = rt_slot_claim(&g_ep);
  unsigned seed = (unsigned)slot * 7919u + 1;
  while (!atomic_load(&g_stop)) {
    uint64_t b = rand_r(&seed) % BLOCKS;
    rt_enter(&g_ep, &g_ep.slots[slot]);
    /* version completed fences before we looked */
    struct rt_table *t = atomic_load_explicit(&g_map.table, memory_order_acquire);
    int64_t r = rt_route(&g_map, t, block_at(b));
    uint64_t before = atomic_load(&g_fenced_version[b]);
    if (r == ROUTE_SLOW) {
      rt_leave(&g_ep.slots[slot]);
      atomic_fetch_add(&g_slow, 1);
      continue;
    }
    /* "I/O" with route r: spin a little, then check that no fence of b has completed. */
    for (volatile int i = 0; i < 50; i++) {
    }
    if (atomic_load(&g_fenced_version[b]) != before) atomic_fetch_add(&g_violations, 1);
    rt_leave(&g_ep.slots[slot]);
    atomic_fetch_add(&g_fast, 1);
  }
  rt_slot_release(&g_ep, slot);
  return NULL;
}

/* wide: the table is made wide first (an entry beyond 2^32), so both layouts are stressed. */
static void test_stress(int wide) {
  rt_epoch_init(&g_ep);
  CHECK(rt_map_init(&g_map) == 0);
  atomic_store(&g_stop, 0);
  atomic_store(&g_fast, 0);
  atomic_store(&g_slow, 0);
  if (wide) CHECK(rt_set(&g_map, 1ull << 40, 1) == ROUTE_MAIN);
  rt_reclaim(&g_map);
  CHECK(atomic_load(&g_map.table)->narrow == !wide);
  pthread_t th[READERS];
  for (int i = 0; i < READERS; i++) pthread_create(&th[i], NULL, reader, NULL);
  unsigned seed = 42;
  /* 20000 fences, or as many as 10 s allow: a reader preempted while announced holds a fence up for a time
   * slice, and with more threads than CPUs that can stretch the run to minutes. */
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int round = 0;
  for (; round < 20000; round++) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (round >= 1000 && now.tv_sec - t0.tv_sec >= 10) break;
    uint64_t first = rand_r(&seed) % BLOCKS;
    uint64_t count = 1 + rand_r(&seed) % 4;
    if (first + count > BLOCKS) count = BLOCKS - first;
    for (uint64_t b = first; b < first + count; b++) rt_set(&g_map, block_at(b), ROUTE_SLOW);
    rt_epoch_wait(&g_ep);
    rt_reclaim(&g_map);
    /* fence complete: a reader that saw an older route and is still inside would be a violation */
    for (uint64_t b = first; b < first + count; b++) atomic_fetch_add(&g_fenced_version[b], 1);
    /* publish: some blocks to a spare, some back to MAIN, plus unrelated entries to force growth */
    for (uint64_t b = first; b < first + count; b++) rt_set(&g_map, block_at(b), (rand_r(&seed) & 1) ? (int64_t)(b + 1000) : ROUTE_MAIN);
    if (round % 100 == 0) {
      for (uint64_t k = 0; k < 64; k++) rt_set(&g_map, 100000 + (uint64_t)round * 64 + k, ROUTE_SLOW);
      for (uint64_t k = 0; k < 64; k++) rt_set(&g_map, 100000 + (uint64_t)round * 64 + k, ROUTE_MAIN);
      if (rt_has_retired(&g_map)) {
        rt_epoch_wait(&g_ep);
        rt_reclaim(&g_map);
      }
    }
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < READERS; i++) pthread_join(th[i], NULL);
  CHECK(atomic_load(&g_map.table)->narrow == !wide);
  printf("test_routes: stress (%s): %d fences, %ld fast lookups, %ld slow, %ld violations\n", wide ? "wide" : "narrow", round, atomic_load(&g_fast),
         atomic_load(&g_slow), atomic_load(&g_violations));
  CHECK(atomic_load(&g_violations) == 0);
  CHECK(atomic_load(&g_fast) > 0);
  rt_map_free(&g_map);
}

int main(void) {
  test_table();
  test_layouts();
  test_split();
  test_split_wide();
  test_regions();
  test_stress(0);
  test_stress(1);
  if (failures) {
    fprintf(stderr, "test_routes: %d check(s) failed\n", failures);
    return 1;
  }
  printf("test_routes: passed\n");
  return 0;
}
