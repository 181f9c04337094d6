/*
 * Route table and fence protocol of the native engine.
 *
 * Roles: JavaScript (one thread) is the only writer of every route table;
 * engine threads (libfuse workers) only read. Readers take no lock.
 *
 * Layout: per pair, an open-addressing hash table (linear probing, power of two
 * capacity, key = main block + 1, 0 = empty slot) of the blocks whose route is
 * not MAIN: a spare block (>= 0) or SLOW. A block without an entry is MAIN, so
 * memory follows the number of remaps, not the size of the disk. A table is
 * narrow while every key and route fits in 32 bits: one 64-bit word per slot,
 * key << 32 | (route + 3), read and written whole (8 bytes a slot: a million
 * remaps in 2^21 slots take 16 MB). The first key or route that does not fit
 * rebuilds it wide, two words per slot (key, route), like a growth below; a
 * narrow table answers MAIN for a key it cannot hold. Per engine, a
 * global epoch and one slot per engine thread (own cache line): 0 when the
 * thread is idle, else the epoch it read when it started its request.
 *
 * Reader (fast path), per request:
 *   e = load(epoch, acquire); store(slot, e); FENCE(seq_cst);
 *   t = load(table, acquire); read routes (narrow: load(word, acquire); wide:
 *   load(key, acquire) then load(route)); any SLOW -> store(slot, 0, release),
 *   hand the request to JS; else do the I/O, then store(slot, 0, release).
 * Writer, fence(first, count):
 *   store SLOW for each block; fetch_add(epoch) (seq_cst); FENCE(seq_cst);
 *   for each slot: wait while 0 < load(slot, acquire) < new epoch.
 *
 * Why a racing write is never lost: take a reader R and a fence W. The two
 * seq_cst fences are totally ordered. If W's fence comes first, R's route loads
 * (after R's fence) see SLOW (or a value JS published later), so R goes to JS or
 * uses the route JS decided. If R's fence comes first, W's load of R's slot sees
 * R's announcement (or something later): an epoch older than W's bump makes W
 * wait until R has finished its I/O (the release store of 0 publishes it); an
 * epoch >= W's bump means R read the bump, which W made after its SLOW stores,
 * so R's route loads see SLOW. A later value (0 or a newer epoch) means R's
 * request is done or a newer one started after the bump. So when fence()
 * returns, no request that saw an older route of those blocks is still doing
 * I/O, and JS may copy the block, decide and publish. A thread never waits for
 * JS while its slot is set, so fence() cannot deadlock with an upcall.
 *
 * publish() stores final routes. Going from SLOW to anything needs no wait (a
 * reader seeing the stale SLOW only goes to JS); a change between two non-SLOW
 * routes (never done by the protocol, but guarded) is made via SLOW + wait.
 *
 * Growth and reclamation: an insert that would fill the table past 3/4 builds
 * a new table sized for the live (non-MAIN) entries (MAIN keys are dropped;
 * wide when the old one was or the new entry needs it),
 * copies, and stores the pointer (release). The old table is kept on a retired
 * list; the writer frees it only after an epoch wait, which proves no reader
 * that loaded the old pointer is still inside its request. Values in the old
 * table equal the new one at the swap, and every later change is followed by
 * the fence's epoch wait, so a reader on the old table is covered like any other.
 * `live` (number of non-MAIN entries) is written before the epoch bump, so a
 * reader that sees live == 0 after its fence may skip lookups.
 *
 * Region filter (routes.h): rt_set sets a block's region bit before it stores
 * any route other than MAIN, and bits are never cleared. A reader that finds
 * the bit clear answers MAIN, which is the route it would have read before
 * that store: a block goes from MAIN to anything else only through SLOW and
 * an epoch wait (fence, publish), so the argument above covers it, with the
 * bit standing in for the route (set before the writer's seq_cst fence, read
 * after the reader's).
 */
#define _GNU_SOURCE
#include "routes.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rt_epoch_init(struct rt_epoch *ep) {
  atomic_init(&ep->epoch, 1);
  for (int i = 0; i < RT_MAX_SLOTS; i++) {
    atomic_init(&ep->slots[i].active, 0);
    atomic_init(&ep->slots[i].owned, 0);
  }
}

void rt_enter(struct rt_epoch *ep, struct rt_slot *slot) {
  uint64_t e = atomic_load_explicit(&ep->epoch, memory_order_acquire);
  atomic_store_explicit(&slot->active, e, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
}

void rt_leave(struct rt_slot *slot) {
  atomic_store_explicit(&slot->active, 0, memory_order_release);
}

void rt_epoch_wait(struct rt_epoch *ep) {
  uint64_t target = atomic_fetch_add_explicit(&ep->epoch, 1, memory_order_seq_cst) + 1;
  atomic_thread_fence(memory_order_seq_cst);
  for (int i = 0; i < RT_MAX_SLOTS; i++) {
    unsigned spins = 0;
    for (;;) {
      uint64_t s = atomic_load_explicit(&ep->slots[i].active, memory_order_acquire);
      if (s == 0 || s >= target) break;
      if (++spins < 64) {
        sched_yield();
      } else {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
      }
    }
  }
}

int rt_slot_claim(struct rt_epoch *ep) {
  for (int i = 0; i < RT_MAX_SLOTS; i++) {
    int expect = 0;
    if (atomic_compare_exchange_strong(&ep->slots[i].owned, &expect, 1)) return i;
  }
  return -1;
}

void rt_slot_release(struct rt_epoch *ep, int index) {
  if (index < 0 || index >= RT_MAX_SLOTS) return;
  atomic_store_explicit(&ep->slots[index].active, 0, memory_order_release);
  atomic_store(&ep->slots[index].owned, 0);
}

static struct rt_table *table_new(unsigned bits, int narrow) {
  size_t cap = (size_t)1 << bits;
  /* calloc: every word 0, so every slot is empty (key 0) in both layouts. */
  struct rt_table *t = calloc(1, sizeof *t + cap * (narrow ? 1 : 2) * sizeof(_Atomic uint64_t));
  if (!t) return NULL;
  t->mask = cap - 1;
  t->shift = 64 - bits;
  t->narrow = narrow;
  t->used = 0;
  t->retired = NULL;
  return t;
}

static inline uint64_t slot_of(const struct rt_table *t, uint64_t key) {
  return (key * 0x9E3779B97F4A7C15ull) >> t->shift;
}

/* Narrow words: key in the high half, route + 3 in the low half (SLOW 1, MAIN 2, spare s at s + 3). */
static inline uint64_t narrow_word(uint64_t key, int64_t route) { return key << 32 | (uint64_t)(route + 3); }
static inline int64_t narrow_route(uint64_t word) { return (int64_t)(word & 0xFFFFFFFFull) - 3; }
static inline int fits_narrow(uint64_t key, int64_t route) {
  return key <= RT_NARROW_MAX_KEY && route >= ROUTE_SLOW && route <= RT_NARROW_MAX_ROUTE;
}

int rt_map_init(struct rt_map *m) {
  struct rt_table *t = table_new(4, 1);
  if (!t) return -1;
  atomic_init(&m->table, t);
  atomic_init(&m->live, 0);
  m->retired = NULL;
  for (size_t i = 0; i < RT_REGION_BITS / 64; i++) atomic_init(&m->regions[i], 0);
  return 0;
}

static inline uint64_t region_of(uint64_t block) { return (block >> RT_REGION_SHIFT) & (RT_REGION_BITS - 1); }

int64_t rt_route(const struct rt_map *m, const struct rt_table *t, uint64_t block) {
  if (m) {
    uint64_t r = region_of(block);
    if (!((atomic_load_explicit(&m->regions[r / 64], memory_order_relaxed) >> (r % 64)) & 1)) return ROUTE_MAIN;
  }
  return rt_lookup(t, block);
}

void rt_reclaim(struct rt_map *m) {
  while (m->retired) {
    struct rt_table *next = m->retired->retired;
    free(m->retired);
    m->retired = next;
  }
}

int rt_has_retired(const struct rt_map *m) { return m->retired != NULL; }

void rt_map_free(struct rt_map *m) {
  rt_reclaim(m);
  free(atomic_load(&m->table));
  atomic_store(&m->table, NULL);
}

int64_t rt_lookup(const struct rt_table *t, uint64_t block) {
  uint64_t key = block + 1;
  uint64_t i = slot_of(t, key);
  if (t->narrow) {
    if (key > RT_NARROW_MAX_KEY) return ROUTE_MAIN; /* a narrow table holds no such key */
    for (;;) {
      uint64_t w = atomic_load_explicit(&t->w[i], memory_order_acquire);
      if (w >> 32 == key) return narrow_route(w);
      if (w == 0) return ROUTE_MAIN;
      i = (i + 1) & t->mask;
    }
  }
  for (;;) {
    uint64_t k = atomic_load_explicit(&t->w[2 * i], memory_order_acquire);
    if (k == key) return (int64_t)atomic_load_explicit(&t->w[2 * i + 1], memory_order_relaxed);
    if (k == 0) return ROUTE_MAIN;
    i = (i + 1) & t->mask;
  }
}

/* Writer: the slot of key, or the empty slot where it would go; *found says which. */
static uint64_t probe(const struct rt_table *t, uint64_t key, int *found) {
  uint64_t i = slot_of(t, key);
  for (;;) {
    uint64_t k = atomic_load_explicit(&t->w[t->narrow ? i : 2 * i], memory_order_relaxed);
    if (t->narrow) k >>= 32;
    if (k == key || k == 0) {
      *found = k == key;
      return i;
    }
    i = (i + 1) & t->mask;
  }
}

/* Writer: the route in slot i (which holds a key). */
static int64_t route_at(const struct rt_table *t, uint64_t i) {
  if (t->narrow) return narrow_route(atomic_load_explicit(&t->w[i], memory_order_relaxed));
  return (int64_t)atomic_load_explicit(&t->w[2 * i + 1], memory_order_relaxed);
}

/* Writer: a new key (route first, then the key with release: a reader that sees the key sees its route). */
static void put_new(struct rt_table *t, uint64_t key, int64_t route) {
  int found;
  uint64_t i = probe(t, key, &found);
  if (t->narrow) {
    atomic_store_explicit(&t->w[i], narrow_word(key, route), memory_order_release);
  } else {
    atomic_store_explicit(&t->w[2 * i + 1], (uint64_t)route, memory_order_relaxed);
    atomic_store_explicit(&t->w[2 * i], key, memory_order_release);
  }
  t->used++;
}

/* Rebuilds the table for `want` non-MAIN entries (wide when `wide` or the old one is); the old one goes to the retired list. */
static int regrow(struct rt_map *m, size_t want, int wide) {
  struct rt_table *old = atomic_load_explicit(&m->table, memory_order_relaxed);
  unsigned bits = 4;
  while (((size_t)1 << bits) < want * 2 + 2) bits++;
  struct rt_table *t = table_new(bits, old->narrow && !wide);
  if (!t) return -1;
  for (size_t i = 0; i <= old->mask; i++) {
    uint64_t k = atomic_load_explicit(&old->w[old->narrow ? i : 2 * i], memory_order_relaxed);
    if (old->narrow) k >>= 32;
    if (k == 0) continue;
    int64_t r = route_at(old, i);
    if (r != ROUTE_MAIN) put_new(t, k, r);
  }
  atomic_store_explicit(&m->table, t, memory_order_release);
  old->retired = m->retired;
  m->retired = old;
  return 0;
}

int64_t rt_get(struct rt_map *m, uint64_t block) {
  return rt_lookup(atomic_load_explicit(&m->table, memory_order_relaxed), block);
}

int64_t rt_set(struct rt_map *m, uint64_t block, int64_t route) {
  uint64_t key = block + 1;
  if (route != ROUTE_MAIN) {
    uint64_t r = region_of(block);
    atomic_fetch_or_explicit(&m->regions[r / 64], 1ull << (r % 64), memory_order_relaxed);
  }
  struct rt_table *t = atomic_load_explicit(&m->table, memory_order_relaxed);
  size_t live = atomic_load_explicit(&m->live, memory_order_relaxed);
  if (t->narrow && !fits_narrow(key, route)) {
    if (route == ROUTE_MAIN) return ROUTE_MAIN; /* key above every narrow key: it has no entry */
    if (regrow(m, live + 1, 1) != 0) return -3;
    t = atomic_load_explicit(&m->table, memory_order_relaxed);
  }
  int found;
  uint64_t i = probe(t, key, &found);
  if (found) {
    int64_t old = route_at(t, i);
    if (old == route) return old;
    if (old == ROUTE_MAIN) live++;
    if (route == ROUTE_MAIN) live--;
    atomic_store_explicit(&m->live, live, memory_order_relaxed);
    if (t->narrow)
      atomic_store_explicit(&t->w[i], narrow_word(key, route), memory_order_relaxed);
    else
      atomic_store_explicit(&t->w[2 * i + 1], (uint64_t)route, memory_order_relaxed);
    return old;
  }
  if (route == ROUTE_MAIN) return ROUTE_MAIN;
  if ((t->used + 1) * 4 > (t->mask + 1) * 3) {
    if (regrow(m, live + 1, 0) != 0) return -3;
    t = atomic_load_explicit(&m->table, memory_order_relaxed);
  }
  atomic_store_explicit(&m->live, live + 1, memory_order_relaxed);
  put_new(t, key, route);
  return ROUTE_MAIN;
}

int rt_split(const struct rt_map *m, const struct rt_table *t, size_t live, uint64_t off, uint64_t len, uint64_t block_size,
             struct rt_run *runs, int max_runs) {
  if (len == 0) return 0;
  if (live == 0 || t == NULL) {
    if (max_runs < 1) return -2;
    runs[0] = (struct rt_run){0, 0, len, off};
    return 1;
  }
  uint64_t end = off + len;
  uint64_t pos = off;
  int n = 0;
  for (uint64_t block = off / block_size; pos < end; block++) {
    uint64_t block_start = block * block_size;
    uint64_t seg_end = block_start + block_size < end ? block_start + block_size : end;
    int64_t route = rt_route(m, t, block);
    if (route == ROUTE_SLOW || route < ROUTE_SLOW) return -1;
    int spare = route >= 0;
    uint64_t dev = spare ? (uint64_t)route * block_size + (pos - block_start) : pos;
    uint64_t seg = seg_end - pos;
    if (n > 0 && runs[n - 1].spare == spare && runs[n - 1].dev_off + runs[n - 1].len == dev) {
      runs[n - 1].len += seg;
    } else {
      if (n >= max_runs) return -2;
      runs[n] = (struct rt_run){spare, pos - off, seg, dev};
      n++;
    }
    pos = seg_end;
  }
  return n;
}

int rt_chain(const struct rt_run *runs, int n, int max_vec, int *next, unsigned char *head) {
  int last_tail[2] = {-1, -1}, size[2] = {0, 0};
  int groups = 0, vec = 0;
  for (int i = 0; i < n; i++) {
    int d = runs[i].spare ? 1 : 0;
    next[i] = -1;
    int t = last_tail[d];
    int cost = size[d] == 1 ? 2 : 1;
    if (t >= 0 && runs[t].dev_off + runs[t].len == runs[i].dev_off && vec + cost <= max_vec) {
      next[t] = i;
      head[i] = 0;
      last_tail[d] = i;
      size[d]++;
      vec += cost;
      continue;
    }
    head[i] = 1;
    groups++;
    last_tail[d] = i;
    size[d] = 1;
  }
  return groups;
}
