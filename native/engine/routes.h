/*
 * Route table, epoch/fence protocol and request splitter of the native engine
 * (pure C, no libfuse, no N-API; unit-tested by test/test_routes.c).
 * The design note is in routes.c.
 */
#ifndef REMAPFS_ENGINE_ROUTES_H
#define REMAPFS_ENGINE_ROUTES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ROUTE_MAIN ((int64_t)-1)
#define ROUTE_SLOW ((int64_t)-2)

/* Reader slots: one per blocking engine thread, one per request context of an
 * io_uring worker. 0 = idle, else the epoch it announced. */
#define RT_MAX_SLOTS 256

struct rt_slot {
  _Alignas(64) _Atomic uint64_t active;
  _Atomic int owned; /* claimed by a live thread */
};

struct rt_epoch {
  _Alignas(64) _Atomic uint64_t epoch;
  struct rt_slot slots[RT_MAX_SLOTS];
};

void rt_epoch_init(struct rt_epoch *ep);
/* Reader: announce (store the epoch, full fence). Must precede every route/table read. */
void rt_enter(struct rt_epoch *ep, struct rt_slot *slot);
/* Reader: done with everything it read or did under the announcement. */
void rt_leave(struct rt_slot *slot);
/* Writer: bump the epoch and wait until no slot holds an older announcement. */
void rt_epoch_wait(struct rt_epoch *ep);
/* Claims a free slot; -1 when all are owned. */
int rt_slot_claim(struct rt_epoch *ep);
void rt_slot_release(struct rt_epoch *ep, int index);

/* Open addressing with linear probing; key = block + 1 (0 = empty). Entries are
 * never removed in place: a block going back to MAIN keeps its key with route
 * MAIN until the next rehash drops it. Two layouts (routes.c): narrow, one
 * 64-bit word per slot (key << 32 | route + 3), while every key and route fits
 * in 32 bits; wide, two words per slot (key, route) otherwise. */
#define RT_NARROW_MAX_KEY 0xFFFFFFFFull                  /* largest key (block + 1) of a narrow slot */
#define RT_NARROW_MAX_ROUTE ((int64_t)0xFFFFFFFFll - 3)  /* largest spare block of a narrow slot */

struct rt_table {
  uint64_t mask;
  unsigned shift;
  int narrow;                /* 1: w[i] is slot i; 0: w[2i] is slot i's key, w[2i+1] its route */
  size_t used;               /* keys stored (writer only) */
  struct rt_table *retired;  /* next retired table, waiting for reclamation */
  _Atomic uint64_t w[];
};

/* Region filter: one bit per region of RT_REGION_BLOCKS blocks, regions taken modulo RT_REGION_BITS.
 * A bit is set (never cleared) before any block of its regions gets a route other than MAIN, so a
 * clear bit means MAIN without a table lookup (a million scattered remaps make every lookup a cache
 * miss; the blocks of healthy regions skip it). 128 KiB per pair; aliasing only costs lookups. */
#define RT_REGION_SHIFT 6
#define RT_REGION_BLOCKS (1ull << RT_REGION_SHIFT)
#define RT_REGION_BITS (1ull << 20)

struct rt_map {
  _Atomic(struct rt_table *) table;
  _Atomic size_t live;      /* entries whose route is not MAIN; 0 lets readers skip lookups */
  struct rt_table *retired; /* old tables to free after an epoch wait (writer only) */
  _Atomic uint64_t regions[RT_REGION_BITS / 64];
};

int rt_map_init(struct rt_map *m);
void rt_map_free(struct rt_map *m);
/* Reader (inside rt_enter/rt_leave). */
int64_t rt_lookup(const struct rt_table *t, uint64_t block);
/* Reader: the route of block, the region filter first (m may be NULL: no filter). */
int64_t rt_route(const struct rt_map *m, const struct rt_table *t, uint64_t block);
/* Writer (one thread). Returns the previous route, or -3 when out of memory. */
int64_t rt_set(struct rt_map *m, uint64_t block, int64_t route);
int64_t rt_get(struct rt_map *m, uint64_t block);
/* Writer: frees retired tables; the caller has done rt_epoch_wait since they were retired. */
void rt_reclaim(struct rt_map *m);
/* Writer: tables retired since the last reclaim? */
int rt_has_retired(const struct rt_map *m);

/* A contiguous byte range on one device. */
struct rt_run {
  int spare;        /* 0 = main, 1 = spare */
  uint64_t buf_off; /* offset inside the request buffer */
  uint64_t len;
  uint64_t dev_off; /* byte offset on the device */
};

/* Splits [off, off+len) into runs by the routes of the table (NULL = all MAIN; m's region filter
 * first, m may be NULL), merging like lib/remap/split.ts. Returns the run count, -1 when a block is
 * SLOW, -2 when more than max_runs runs are needed. */
int rt_split(const struct rt_map *m, const struct rt_table *t, size_t live, uint64_t off, uint64_t len, uint64_t block_size,
             struct rt_run *runs, int max_runs);
/* Groups runs that continue each other on one device, so that each group is one vectored call:
 * the spare blocks of scattered remaps are often consecutive, with main runs between them in the
 * buffer. A run joins the last group on its device when it starts where that group ends. Sets
 * head[i] (1: run i starts a group) and next[i] (the run after i in its group, -1 at the end).
 * At most max_vec runs are in groups of two or more (each is one iovec of the caller's).
 * Returns the number of groups; O(n). */
int rt_chain(const struct rt_run *runs, int n, int max_vec, int *next, unsigned char *head);

#endif
