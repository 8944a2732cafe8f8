/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cache over scratch files: random reads and writes through the device,
 * checked against a model of its bytes while promotions and demotions
 * churn (smq, a hot set smaller than the cache and cold blocks around it);
 * dirty blocks of writeback mode survive a reopen; the cleaner policy
 * writes every dirty block back so that the origin file alone holds every
 * byte; writethrough keeps the origin whole at every moment; passthrough
 * invalidates; cache_check (thin-provisioning-tools) is clean on every
 * metadata udm writes, formats 1 and 2; bad tables are refused naming the
 * problem, with the metadata untouched.
 */
#include <stdbool.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "targets-test.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define BLOCK 64u                 /* sectors: 32 KiB cache blocks */
#define CACHE_SIZE (2 * MiB)      /* 64 cache blocks */
#define ORIGIN_SIZE (8 * MiB)     /* 256 origin blocks */

static const char *meta, *cdev, *origin;
static unsigned char *model;
static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static bool have(const char *tool)
{
  return tool_on_path(tool);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int r = run_vsh(fmt, ap);
  va_end(ap);
  return r;
}

static void table_for(char *t, size_t n, const char *features, const char *policy)
{
  snprintf(t, n, "0 %u cache %s %s %s %u %s %s", ORIGIN_SIZE / 512, meta, cdev, origin, BLOCK,
           features, policy);
}

struct st {
  unsigned long long used, total;
  unsigned cused, ctotal, rh, rm, wh, wm, dem, pro, dirty;
};

static bool stat_of(struct udm_device *d, struct st *s)
{
  char *t = status_of(d);
  bool ok = t && sscanf(t, "%*u %*u cache 8 %llu/%llu %*u %u/%u %u %u %u %u %u %u %u",
                        &s->used, &s->total, &s->cused, &s->ctotal, &s->rh, &s->rm, &s->wh,
                        &s->wm, &s->dem, &s->pro, &s->dirty) == 11;
  if (!ok)
    fprintf(stderr, "status: %s\n", t ? t : "(none)");
  free(t);
  return ok;
}

/* Random I/O: 80% on a hot set of 40 blocks, the rest anywhere; reads checked. */
static unsigned churn(struct udm_device *d, unsigned ops, unsigned write_pct)
{
  static unsigned char buf[64 * KiB];
  unsigned bad = 0;
  for (unsigned i = 0; i < ops; i++) {
    uint64_t block = next_rand() % 100 < 80 ? 8 + next_rand() % 40 : next_rand() % 256;
    uint64_t off = block * BLOCK * 512 + (next_rand() % 8) * 4 * KiB;
    size_t len = (1 + next_rand() % 12) * 4 * KiB;
    if (off + len > ORIGIN_SIZE)
      len = ORIGIN_SIZE - off;
    if (next_rand() % 100 < write_pct) {
      for (size_t j = 0; j < len; j++)
        buf[j] = (unsigned char)next_rand();
      if (wr(d, buf, len, off, 0) != 0)
        bad++;
      memcpy(model + off, buf, len);
    } else if (rd(d, buf, len, off) != 0 || memcmp(buf, model + off, len) != 0) {
      if (bad++ < 3)
        fprintf(stderr, "read of %zu at %llu differs from what was written\n", len,
                (unsigned long long)off);
    }
    if (i % 500 == 499)
      CHECK(udm_device_flush(d) == 0);
  }
  return bad;
}

/* Stop new moves (migration_threshold 0) and let those under way finish. */
static void quiesce(struct udm_device *d)
{
  CHECK_REPLY(d, "migration_threshold 0", "");
  struct timespec pause = {0, 300 * 1000 * 1000};
  nanosleep(&pause, NULL);
}

static unsigned verify_all(struct udm_device *d)
{
  unsigned char *b = malloc(ORIGIN_SIZE);
  unsigned bad = rd(d, b, ORIGIN_SIZE, 0) != 0 || memcmp(b, model, ORIGIN_SIZE) != 0;
  free(b);
  return bad;
}

static bool origin_matches_model(void)
{
  unsigned char *b = file_bytes(origin, 0, ORIGIN_SIZE);
  bool ok = memcmp(b, model, ORIGIN_SIZE) == 0;
  free(b);
  return ok;
}

static void check_metadata(const char *what)
{
  if (!have("cache_check")) {
    printf("cache_check not installed: %s not checked by it\n", what);
    return;
  }
  int r = sh("cache_check -q %s", meta);
  CHECK(r == 0);
  if (r)
    sh("cache_check %s >&2", meta);
}

static void fresh(unsigned seed)
{
  meta = backing("meta.img", 0, 0);
  CHECK(truncate(meta, 8 * MiB) == 0);
  cdev = backing("cache.img", CACHE_SIZE, 9);
  origin = backing("origin.img", ORIGIN_SIZE, seed);
  free(model);
  model = malloc(ORIGIN_SIZE);
  fill_pattern(model, ORIGIN_SIZE, seed, 0);
}

static void writeback_smq_churn_reopen_and_clean(unsigned version)
{
  fresh(3);
  char t[1024];
  table_for(t, sizeof t, version == 2 ? "2 metadata2 writeback" : "1 writeback", "smq 0");
  struct udm_device *d = make("cache", t);
  char want[1100];
  snprintf(want, sizeof want, "%s\n", t + 0);
  CHECK_TABLE(d, want);
  char *s = status_of(d);
  char expect[300];
  snprintf(expect, sizeof expect, "64 0/64 0 0 0 0 0 0 0 %s 2 migration_threshold 2048 smq 0 rw -",
           version == 2 ? "2 metadata2 writeback" : "1 writeback");
  CHECK(s && strstr(s, expect));
  if (s && !strstr(s, expect))
    fprintf(stderr, "status '%s' lacks '%s'\n", s, expect);
  free(s);
  check_round_trip(d);

  CHECK(churn(d, 4000, 40) == 0);
  /* Let the background moves finish what they started, then check. */
  struct timespec pause = {0, 200 * 1000 * 1000};
  nanosleep(&pause, NULL);
  CHECK(churn(d, 2000, 40) == 0);
  quiesce(d);
  CHECK(verify_all(d) == 0);
  struct st a;
  CHECK(stat_of(d, &a));
  printf("after churn: %u/%u cached, read hits %u misses %u, write hits %u misses %u, "
         "demotions %u, promotions %u, dirty %u\n", a.cused, a.ctotal, a.rh, a.rm, a.wh, a.wm,
         a.dem, a.pro, a.dirty);
  CHECK(a.pro > 0 && a.rh > 0 && a.wh > 0 && a.dirty > 0 && a.cused > 0);
  CHECK(a.dem > 0);
  checked("cache (format %u): %u random reads and writes read back what was written while "
          "%u promotions and %u demotions ran", version, 6000, a.pro, a.dem);
  test_drop(d);
  check_metadata("writeback metadata");
  /* cache_dump 0.9 prints dirty from the mapping flags only (format 1). */
  if (have("cache_dump") && version == 1) {
    char out[400];
    snprintf(out, sizeof out, "%s/dump.xml", scratch);
    CHECK(sh("cache_dump %s > %s", meta, out) == 0);
    CHECK(sh("test $(grep -c 'dirty=\"true\"' %s) = %u", out, a.dirty) == 0);
    CHECK(sh("test $(grep -c '<mapping ' %s) = %u", out, a.cused) == 0);
    checked("cache (format 1): cache_dump lists the %u mappings and %u dirty blocks",
            a.cused, a.dirty);
    /* cache_restore of that dump: udm opens it with the same blocks and bytes. */
    char restored[400];
    snprintf(restored, sizeof restored, "%s/restored.img", scratch);
    CHECK(sh("truncate -s 8M %s && cache_restore -i %s -o %s", restored, out, restored) == 0);
    CHECK(sh("cache_check -q %s", restored) == 0);
    char rt[1024];
    /* No moves: the original metadata still names these cache blocks. */
    snprintf(rt, sizeof rt, "0 %u cache %s %s %s %u 1 writeback smq 2 migration_threshold 0",
             ORIGIN_SIZE / 512,
             restored, cdev, origin, BLOCK);
    struct udm_device *rd_dev = make("restored", rt);
    struct st rs;
    CHECK(stat_of(rd_dev, &rs));
    CHECK(rs.cused == a.cused && rs.dirty >= a.dirty);
    CHECK(verify_all(rd_dev) == 0);
    test_drop(rd_dev);
    CHECK(sh("cache_check -q %s", restored) == 0);
    checked("cache: metadata cache_restore wrote from udm's dump opens in udm (%u cached, "
            "%u dirty) with every byte", rs.cused, rs.dirty);
  }

  /* Reopen without moves: the same blocks cached and dirty, the same bytes,
   * the dirty ones on the cache device only. */
  char nomoves[1024];
  table_for(nomoves, sizeof nomoves, version == 2 ? "2 metadata2 writeback" : "1 writeback",
            "smq 2 migration_threshold 0");
  d = make("cache", nomoves);
  struct st b;
  CHECK(stat_of(d, &b));
  CHECK(b.cused == a.cused && b.dirty == a.dirty && b.rh >= a.rh && b.wm == a.wm);
  CHECK(verify_all(d) == 0);
  CHECK(!origin_matches_model()); /* the dirty blocks are on the cache device only */
  checked("cache (format %u): dirty blocks survive a reopen (%u cached, %u dirty)", version,
          b.cused, b.dirty);
  test_drop(d);

  /* The cleaner writes every dirty block back. */
  table_for(t, sizeof t, version == 2 ? "2 metadata2 writeback" : "1 writeback", "cleaner 0");
  d = make("cache", t);
  for (int i = 0; i < 200; i++) {
    CHECK(stat_of(d, &b));
    if (b.dirty == 0)
      break;
    nanosleep(&pause, NULL);
  }
  CHECK(b.dirty == 0);
  CHECK(verify_all(d) == 0);
  test_drop(d);
  CHECK(origin_matches_model());
  check_metadata("cleaned metadata");
  checked("cache (format %u): the cleaner policy empties the dirty blocks; the origin alone "
          "holds every byte", version);
}

static void writethrough_and_passthrough(void)
{
  fresh(5);
  char t[1024];
  table_for(t, sizeof t, "1 writethrough", "smq 2 migration_threshold 4096");
  struct udm_device *d = make("cache", t);
  CHECK(churn(d, 3000, 30) == 0);
  quiesce(d);
  CHECK_REPLY(d, "migration_threshold 4096", "");
  struct st a;
  CHECK(stat_of(d, &a));
  CHECK(a.dirty == 0 && a.pro > 0);
  CHECK(origin_matches_model());
  char *s = status_of(d);
  CHECK(s && strstr(s, " 1 writethrough 2 migration_threshold 4096 smq 0 rw -"));
  free(s);
  CHECK_REPLY(d, "migration_threshold 1024", "");
  s = status_of(d);
  CHECK(s && strstr(s, "migration_threshold 1024 "));
  free(s);
  CHECK_MESSAGE_FAILS(d, "migration_threshold lots", "invalid migration_threshold 'lots'");
  CHECK_MESSAGE_FAILS(d, "sequential_threshold 4", "unknown config key 'sequential_threshold'");
  CHECK_MESSAGE_FAILS(d, "frobnicate", "unsupported message 'frobnicate'");
  char *r = NULL;
  CHECK(udm_device_message(d, 0, "invalidate_cblocks 0-4", &r) < 0);
  CHECK_CONTAINS(udm_errmsg(), "passthrough mode");
  free(r);
  quiesce(d); /* threshold 4096 again above: moves may have run since */
  CHECK(stat_of(d, &a));
  test_drop(d);
  check_metadata("writethrough metadata");
  checked("cache writethrough: the origin holds every write at once (%u promotions, 0 dirty); "
          "migration_threshold by table and message", a.pro);

  /* Passthrough over the same metadata: reads from the origin, write hits invalidate. */
  table_for(t, sizeof t, "1 passthrough", "smq 0");
  d = make("cache", t);
  struct st b;
  CHECK(stat_of(d, &b));
  CHECK(b.cused == a.cused);
  CHECK(churn(d, 1000, 50) == 0);
  CHECK(verify_all(d) == 0);
  struct st c;
  CHECK(stat_of(d, &c));
  CHECK(c.cused < b.cused && c.pro == b.pro);
  CHECK_REPLY(d, "invalidate_cblocks 0-64", "");
  CHECK(stat_of(d, &c));
  CHECK(c.cused == 0);
  CHECK_MESSAGE_FAILS(d, "invalidate_cblocks 5-3", "Invalid cblock range '5-3'");
  CHECK_MESSAGE_FAILS(d, "invalidate_cblocks 65", "Invalid cblock range '65'");
  CHECK(origin_matches_model());
  test_drop(d);
  check_metadata("passthrough metadata");
  checked("cache passthrough: write hits invalidate (%u -> %u cached), invalidate_cblocks "
          "empties the cache, the origin is whole", b.cused, c.cused);
}

static void bad_tables_are_refused(void)
{
  fresh(7);
  char t[1024];
#define BAD(features, policy, frag)                                            \
  do {                                                                         \
    table_for(t, sizeof t, features, policy);                                  \
    CHECK_BAD_TABLE(t, frag);                                                  \
  } while (0)
  BAD("1 frob", "smq 0", "Unrecognised cache feature requested: 'frob'");
  BAD("2 writeback writethrough", "smq 0", "Duplicate cache io_mode features requested");
  BAD("4 writeback metadata2 a b", "smq 0", "Invalid number of cache feature arguments");
  BAD("1 writeback", "mq 0", "unknown policy 'mq'");
  BAD("1 writeback", "smq 1 migration_threshold", "Odd number of policy arguments");
  BAD("1 writeback", "smq 2 migration_threshold x", "invalid migration_threshold 'x'");
  BAD("1 writeback", "smq 2 random_threshold 4", "unknown config key 'random_threshold'");
  BAD("1 writeback", "smq 0 extra", "Too many arguments");
  snprintf(t, sizeof t, "0 %u cache %s %s %s 100 0 smq 0", ORIGIN_SIZE / 512, meta, cdev, origin);
  CHECK_BAD_TABLE(t, "Invalid data block size '100'");
  snprintf(t, sizeof t, "0 %u cache %s %s %s 64 0 smq 0", ORIGIN_SIZE / 512 + 64, meta, cdev,
           origin);
  CHECK_BAD_TABLE(t, "Device size larger than cached device");
  snprintf(t, sizeof t, "0 %u cache %s %s %s 64", ORIGIN_SIZE / 512, meta, cdev, origin);
  CHECK_BAD_TABLE(t, "Insufficient args");
  unsigned char *m = file_bytes(meta, 0, 4096);
  bool zero = true;
  for (int i = 0; i < 4096; i++)
    zero = zero && m[i] == 0;
  free(m);
  CHECK(zero);
  checked("cache: bad tables refused naming the problem; the metadata untouched");
}

/*
 * kill -9 in writeback mode: a child writes whole blocks (each write a new
 * pattern seed) and flushes now and then, reporting each acknowledged
 * write and each completed flush.  After the kill, cache_check is clean and
 * every block reads back as its last write before the last completed
 * flush, or as a later acknowledged write.
 */
struct report {
  uint32_t block, seed; /* block UINT32_MAX: a flush completed */
};

static void kill_9_in_writeback(unsigned rounds)
{
  const unsigned nblocks = ORIGIN_SIZE / (BLOCK * 512);
  const size_t bsize = BLOCK * 512;
  unsigned char *buf = malloc(bsize), *want = malloc(bsize);
  unsigned early = 0;
  for (unsigned round = 0; round < rounds; round++) {
    fresh(11);
    char t[1024];
    table_for(t, sizeof t, round % 2 ? "2 metadata2 writeback" : "1 writeback", "smq 0");
    int fds[2];
    CHECK(pipe(fds) == 0);
    uint64_t seed = next_rand();
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      struct udm_ctx *c = udm_ctx_new();
      struct udm_device *d = test_make(c, "cache", t, 0);
      rng = seed | 1;
      for (uint32_t n = 1;; n++) {
        uint32_t b = (uint32_t)(next_rand() % 100 < 80 ? next_rand() % 24 : next_rand() % nblocks);
        fill_pattern(buf, bsize, n, b);
        struct report r = {b, n};
        /* Reported before it is sent: a write under way at the kill may land. */
        if (write(fds[1], &r, sizeof r) != sizeof r)
          _exit(3);
        if (wr(d, buf, bsize, (uint64_t)b * bsize, 0) != 0)
          _exit(4);
        if (n % 16 == 0 && udm_device_flush(d) == 0) {
          r = (struct report){UINT32_MAX, 0};
          if (write(fds[1], &r, sizeof r) != sizeof r)
            _exit(3);
        }
      }
    }
    close(fds[1]);
    struct timespec ts = {0, (long)(100 + next_rand() % 400) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    /* Per block: the seeds it may hold (0: the origin's pattern). */
    enum { MAXC = 64 };
    static uint32_t cand[256][MAXC];
    static unsigned ncand[256], durable[256];
    for (unsigned b = 0; b < nblocks; b++)
      cand[b][0] = 0, ncand[b] = 1, durable[b] = 1;
    struct report r;
    unsigned writes = 0, flushes = 0;
    while (read(fds[0], &r, sizeof r) == sizeof r) {
      if (r.block == UINT32_MAX) {
        flushes++;
        for (unsigned b = 0; b < nblocks; b++) /* only the last durable one stays */
          if (ncand[b] > 1) {
            cand[b][0] = cand[b][ncand[b] - 1];
            ncand[b] = 1;
          }
      } else if (r.block < nblocks && ncand[r.block] < MAXC) {
        cand[r.block][ncand[r.block]++] = r.seed;
        writes++;
      }
    }
    (void)durable;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st));
    unsigned char *sb = file_bytes(meta, 0, 4096);
    bool formatted = false;
    for (int i = 0; i < 4096 && !formatted; i++)
      formatted = sb[i] != 0;
    free(sb);
    if (formatted) /* else killed before the first resume formatted it: udm formats it now */
      check_metadata("metadata after kill -9");
    else
      early++;
    struct udm_device *d = make("cache", t);
    struct st s;
    CHECK(stat_of(d, &s));
    CHECK(s.dirty == s.cused); /* an unclean shutdown: every cached block is dirty */
    unsigned bad = 0;
    for (unsigned b = 0; b < nblocks; b++) {
      CHECK(rd(d, buf, bsize, (uint64_t)b * bsize) == 0);
      bool ok = false;
      for (unsigned i = 0; i < ncand[b] && !ok; i++) {
        if (cand[b][i] == 0)
          fill_pattern(want, bsize, 11, (uint64_t)b * bsize);
        else
          fill_pattern(want, bsize, cand[b][i], b);
        ok = memcmp(buf, want, bsize) == 0;
      }
      if (!ok && bad++ < 3)
        fprintf(stderr, "round %u: block %u holds none of its %u possible writes\n", round, b,
                ncand[b]);
    }
    CHECK(bad == 0);
    test_drop(d);
    check_metadata("metadata reopened after kill -9");
    printf("round %u: %u writes, %u flushes acknowledged; %u blocks cached\n", round, writes,
           flushes, s.cused);
  }
  free(buf);
  free(want);
  checked("cache writeback: %u processes killed (-9) while writing and flushing leave "
          "metadata cache_check passes, and every write acknowledged before a completed "
          "flush reads back (%u killed before the metadata was formatted)", rounds, early);
}

/*
 * A table loaded while the cache is live (its ctr only checks the
 * superblock) takes over at the resume from the state the old table wrote
 * at its suspend: the same blocks, dirty bits and bytes.
 */
static void reload_takes_over_a_live_cache(void)
{
  fresh(13);
  char t[1024];
  table_for(t, sizeof t, "1 writeback", "smq 0");
  struct udm_device *d = make("cache", t);
  CHECK(churn(d, 2000, 40) == 0);
  quiesce(d);
  struct st a;
  CHECK(stat_of(d, &a));
  table_for(t, sizeof t, "1 writeback", "smq 2 migration_threshold 0");
  CHECK(udm_table_load(d, t) == 0);
  CHECK(churn(d, 500, 0) == 0); /* reads through the old table meanwhile */
  CHECK(udm_device_resume(d) == 0);
  struct st b;
  CHECK(stat_of(d, &b));
  CHECK(b.cused == a.cused && b.dirty == a.dirty && b.rh >= a.rh);
  CHECK(verify_all(d) == 0);
  test_drop(d);
  check_metadata("reloaded metadata");
  checked("cache: a table loaded while the cache is live takes over at the resume "
          "(%u cached, %u dirty, every byte)", b.cused, b.dirty);
}

/*
 * Metadata Linux's dm-cache wrote (tests/targets/data/README.md) opens in
 * udm with the status the kernel printed when it reopened it: the same
 * mappings, dirty count and persisted hit counters; udm's clean shutdown of
 * it stays cache_check clean with the same mappings.
 */
static void metadata_the_kernel_wrote_opens_in_udm(void)
{
  fresh(5);
  char t[1100], want[300];
  if (sh("xz -dc %s/cache-linux-6.12.meta.xz > %s", UDM_TEST_DATA, meta) != 0) {
    fprintf(stderr, "cannot unpack %s/cache-linux-6.12.meta.xz\n", UDM_TEST_DATA);
    check_failures++;
    return;
  }
  FILE *f = fopen(UDM_TEST_DATA "/cache-linux-6.12.status", "r");
  CHECK(f && fgets(want, sizeof want, f));
  if (f)
    fclose(f);
  check_metadata("the kernel's metadata");
  char before[400], after[400];
  snprintf(before, sizeof before, "%s/k-before.xml", scratch);
  snprintf(after, sizeof after, "%s/k-after.xml", scratch);
  bool dump = have("cache_dump");
  if (dump)
    CHECK(sh("cache_dump %s | grep '<mapping ' > %s", meta, before) == 0);
  table_for(t, sizeof t, "1 writeback", "smq 2 migration_threshold 0");
  struct udm_device *d = make("cache", t);
  char *st = status_of(d);
  /* The kernel's line with this table's migration_threshold (0: no moves). */
  char expect[320];
  char *w = strstr(want, "migration_threshold 2048 ");
  CHECK(w != NULL);
  if (w)
    snprintf(expect, sizeof expect, "%.*smigration_threshold 0 %s", (int)(w - want), want,
             w + strlen("migration_threshold 2048 "));
  CHECK_STR(st, w ? expect : want);
  free(st);
  test_drop(d);
  check_metadata("the kernel's metadata after udm's clean shutdown");
  if (dump) {
    CHECK(sh("cache_dump %s | grep '<mapping ' > %s", meta, after) == 0);
    CHECK(sh("cmp -s %s %s", before, after) == 0);
  }
  checked("cache: metadata Linux 6.12's dm-cache wrote opens in udm with the kernel's status "
          "line; udm's clean shutdown keeps its mappings, cache_check clean");
}

/* The cache's metadata device: META behind a stacked udm device whose table a test swaps. */
static struct udm_device *stacked_metadata(char *table, size_t n, const char *policy)
{
  char lin[400];
  snprintf(lin, sizeof lin, "0 %u linear %s 0", 8 * MiB / 512, meta);
  struct udm_device *m = make("cmeta", lin);
  snprintf(table, n, "0 %u cache udm:cmeta %s %s %u 1 writeback %s", ORIGIN_SIZE / 512, cdev,
           origin, BLOCK, policy);
  return m;
}

static void swap_table(struct udm_device *d, const char *t)
{
  CHECK(udm_table_load(d, t) == 0);
  CHECK(udm_device_resume(d) == 0);
}

static bool status_ends_with(struct udm_device *d, const char *tail)
{
  char *s = status_of(d);
  size_t n = s ? strlen(s) : 0, m = strlen(tail);
  while (n && s[n - 1] == '\n')
    s[--n] = '\0';
  bool ok = s && n >= m && !strcmp(s + n - m, tail);
  if (!ok)
    fprintf(stderr, "status '%s' does not end with '%s'\n", s ? s : "(none)", tail);
  free(s);
  return ok;
}

/*
 * A metadata write that fails (the metadata device turns into flakey with
 * error_writes) turns the cache read-only as the kernel's does: the commit
 * (here a flush's) fails, the transaction is rolled back, needs_check is
 * set, status says "ro needs_check" and an event is raised; reads and
 * writes go on, flushes pass again, messages are refused (moves were
 * stopped first, so that the flush's commit is the one that fails); the teardown writes nothing but the needs_check flag, and a
 * new table on that metadata is refused until it is repaired.
 */
static void metadata_write_error_turns_read_only(void)
{
  fresh(21);
  char t[1024], fl[400], lin[400];
  struct udm_device *m = stacked_metadata(t, sizeof t, "smq 0");
  struct udm_device *d = make("cache", t);
  CHECK(churn(d, 1500, 40) == 0);
  quiesce(d); /* no move's commit may fail before the flush's does */
  CHECK(udm_device_flush(d) == 0);
  struct st a, b;
  CHECK(stat_of(d, &a));
  CHECK(a.pro > 0);
  struct udm_info info;
  CHECK(udm_device_info(d, &info) == 0);
  snprintf(fl, sizeof fl, "0 %u flakey %s 0 0 1 1 error_writes", 8 * MiB / 512, meta);
  swap_table(m, fl);
  static unsigned char buf[64 * KiB];
  memset(buf, 0x5a, sizeof buf);
  CHECK(wr(d, buf, sizeof buf, 0, 0) == 0);
  memcpy(model, buf, sizeof buf);
  CHECK(udm_device_flush(d) < 0 && errno == EIO); /* the commit it needs fails */
  CHECK(status_ends_with(d, " ro needs_check"));
  CHECK(udm_device_wait_event(d, info.event_nr, 0) == 0); /* the mode switch's event */
  CHECK(stat_of(d, &a));
  CHECK(churn(d, 1500, 30) == 0);
  CHECK(udm_device_flush(d) == 0); /* nothing to commit after the rollback */
  CHECK(verify_all(d) == 0);
  CHECK(stat_of(d, &b));
  CHECK(b.pro == a.pro && b.dem == a.dem && b.wh > a.wh);
  char *reply = NULL;
  CHECK(udm_device_message(d, 0, "migration_threshold 0", &reply) < 0 && errno == EOPNOTSUPP);
  CHECK_CONTAINS(udm_errmsg(), "READ_ONLY");
  free(reply);
  checked("cache: a failed metadata write fails its flush and turns the cache read-only "
          "(status ro needs_check, an event): I/O goes on with every byte, later flushes pass, "
          "messages refused");
  snprintf(lin, sizeof lin, "0 %u linear %s 0", 8 * MiB / 512, meta);
  swap_table(m, lin);
  test_drop(d);
  if (have("cache_dump"))
    CHECK(sh("cache_dump %s >/dev/null 2>&1", meta) == 0); /* the last commit is whole */
  CHECK_BAD_TABLE(t, "needs_check");
  test_drop(m);
  checked("cache: after a metadata failure the superblock keeps needs_check, and a new table "
          "on it is refused until repaired");
}

/*
 * When even the rollback cannot read the metadata (its device now fails
 * every request), the cache fails: status "Fail", flushes fail, reads
 * still come back right.
 */
static void metadata_device_gone_fails_the_cache(void)
{
  fresh(23);
  char t[1024], err[100];
  struct udm_device *m = stacked_metadata(t, sizeof t, "smq 0");
  struct udm_device *d = make("cache", t);
  CHECK(churn(d, 800, 40) == 0);
  snprintf(err, sizeof err, "0 %u error", 8 * MiB / 512);
  swap_table(m, err);
  CHECK(churn(d, 200, 40) == 0);
  CHECK(udm_device_flush(d) < 0 && errno == EIO);
  CHECK(status_ends_with(d, " cache Fail"));
  CHECK(udm_device_flush(d) < 0 && errno == EIO);
  CHECK(verify_all(d) == 0);
  test_drop(d);
  test_drop(m);
  checked("cache: metadata that cannot even be read back fails the cache (status Fail, "
          "flushes fail, reads right)");
}

static uint64_t le64_at(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/*
 * The discard bitset on META as ranges "b-e b-e ..." (end excluded).
 * cache_dump 0.9 does not print discards ("FIXME: walk discards"), so this
 * reads them itself: the superblock's discard root (byte 208), its block
 * size and count (216, 224); the root is a btree leaf (small bitsets) whose
 * first value is the array block holding the bitset's 64-bit words.
 */
static void dumped_discards(char *out, size_t n)
{
  out[0] = '\0';
  unsigned char *sb = file_bytes(meta, 0, 4096);
  uint64_t root = le64_at(sb + 208), nr = le64_at(sb + 224);
  free(sb);
  unsigned char *node = file_bytes(meta, root * 4096, 4096);
  uint32_t max_entries = node[20] | node[21] << 8 | (uint32_t)node[22] << 16;
  bool leaf = node[4] & 2;
  uint64_t ablock = le64_at(node + 32 + 8 * max_entries);
  free(node);
  if (!leaf || nr > 64 * 500) {
    snprintf(out, n, "(bitset not in one array block)");
    return;
  }
  unsigned char *arr = file_bytes(meta, ablock * 4096, 4096);
  size_t used = 0;
  for (uint64_t b = 0; b < nr;) {
    if (!(le64_at(arr + 24 + 8 * (b / 64)) >> (b % 64) & 1)) {
      b++;
      continue;
    }
    uint64_t e = b;
    while (e < nr && (le64_at(arr + 24 + 8 * (e / 64)) >> (e % 64) & 1))
      e++;
    used += (size_t)snprintf(out + used, n - used, "%llu-%llu ", (unsigned long long)b,
                             (unsigned long long)e);
    b = e;
  }
  free(arr);
}

/* Read BLOCK twice (a promotion candidate), then wait for PRO promotions. */
static bool promote(struct udm_device *d, uint64_t block, unsigned pro)
{
  static unsigned char buf[BLOCK * 512];
  struct st s = {0};
  for (int i = 0; i < 2; i++)
    CHECK(rd(d, buf, sizeof buf, block * BLOCK * 512) == 0);
  for (int i = 0; i < 100 && stat_of(d, &s) && s.pro < pro; i++) {
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return s.pro >= pro;
}

/* The block's bytes through D equal one of the cache device's blocks, not the origin's. */
static bool served_uncopied(struct udm_device *d, uint64_t block)
{
  static unsigned char buf[BLOCK * 512];
  CHECK(rd(d, buf, sizeof buf, block * BLOCK * 512) == 0);
  unsigned char *o = file_bytes(origin, block * BLOCK * 512, sizeof buf);
  unsigned char *cache = file_bytes(cdev, 0, CACHE_SIZE);
  bool found = false;
  for (size_t b = 0; b < CACHE_SIZE / sizeof buf && !found; b++)
    found = !memcmp(cache + b * sizeof buf, buf, sizeof buf);
  bool ok = found && memcmp(o, buf, sizeof buf) != 0;
  free(o);
  free(cache);
  return ok;
}

/*
 * The discard bitset, as the kernel's: a discard marks the discard blocks
 * (here one cache block each) it covers whole and no other; a write or a
 * promotion clears a block's bit; promoting a discarded block copies
 * nothing (the cache block keeps what the cache device held); the bits are
 * written at the clean suspend (read back from the metadata) and loaded at
 * the next resume, where they again spare the copy.
 */
static void discard_bitset_marks_whole_blocks(void)
{
  fresh(25);
  char t[1024], got[400];
  table_for(t, sizeof t, "2 writeback no_discard_passdown", "smq 0");
  struct udm_device *d = make("cache", t);
  uint64_t bs = BLOCK * 512;
  CHECK(udm_device_discard(d, 100 * KiB, bs + 4 * KiB, 0) == 0);  /* blocks 2 and 3 whole */
  CHECK(udm_device_discard(d, 8 * KiB, 10 * bs + 4 * KiB, 0) == 0); /* no block whole */
  CHECK(udm_device_discard(d, 2 * bs, 20 * bs, 0) == 0);             /* blocks 20 and 21 */
  CHECK(udm_device_discard(d, bs - 512, 30 * bs, 0) == 0);           /* one sector short */
  CHECK(promote(d, 2, 1));
  CHECK(served_uncopied(d, 2)); /* promoted without a copy */
  static unsigned char buf[4 * KiB];
  memset(buf, 7, sizeof buf);
  CHECK(wr(d, buf, sizeof buf, 21 * bs, 0) == 0);
  test_drop(d);
  dumped_discards(got, sizeof got);
  CHECK_STR(got, "3-4 20-21 ");
  check_metadata("metadata with discards");
  d = make("cache", t);
  CHECK(promote(d, 3, 1));
  CHECK(served_uncopied(d, 3)); /* the bit came back from the metadata */
  CHECK(promote(d, 4, 2));
  CHECK(!served_uncopied(d, 4)); /* a block never discarded is copied */
  test_drop(d);
  dumped_discards(got, sizeof got);
  CHECK_STR(got, "20-21 ");
  /* An origin of 32768 cache blocks has discard blocks of two cache blocks
   * (at most 16384 of them): only those a discard covers whole are marked. */
  const char *big = backing("big-origin.img", 0, 0);
  CHECK(truncate(big, 1024ull * MiB) == 0);
  CHECK(truncate(meta, 0) == 0 && truncate(meta, 8 * MiB) == 0);
  snprintf(t, sizeof t, "0 %u cache %s %s %s %u 2 writeback no_discard_passdown smq 0",
           1024 * MiB / 512, meta, cdev, big, BLOCK);
  d = make("cache", t);
  CHECK(udm_device_discard(d, 4 * bs, 2 * bs, 0) == 0);   /* discard blocks 1 and 2 */
  CHECK(udm_device_discard(d, 11 * bs, 11 * bs, 0) == 0); /* 6..10 whole, 5 not */
  CHECK(udm_device_discard(d, bs, 40 * bs, 0) == 0);      /* one cache block: none */
  test_drop(d);
  dumped_discards(got, sizeof got);
  CHECK_STR(got, "1-3 6-11 ");
  checked("cache: discards mark the discard blocks they cover whole; writes and promotions "
          "clear them; a discarded block is promoted without a copy; the bits survive a "
          "reopen (read back from the metadata)");
}

/*
 * The cache device grown under a live cache: a reloaded table (as the
 * kernel asks: a resume alone does not extend) takes the new size, keeps
 * every mapping, dirty bit and byte, and promotes into the new blocks; the
 * device shrunk again below a dirty block is refused at the resume, naming
 * the block, as the kernel's can_resize.
 */
static void cache_device_grown_by_reload(void)
{
  fresh(27);
  char t[1024], lin[400];
  snprintf(lin, sizeof lin, "0 %u linear %s 0", CACHE_SIZE / 512, cdev);
  struct udm_device *cd = make("cdev", lin);
  snprintf(t, sizeof t, "0 %u cache %s udm:cdev %s %u 1 writeback smq 0", ORIGIN_SIZE / 512, meta,
           origin, BLOCK);
  struct udm_device *d = make("cache", t);
  CHECK(churn(d, 1500, 40) == 0);
  quiesce(d);
  struct st a, b;
  CHECK(stat_of(d, &a));
  CHECK(truncate(cdev, 2 * CACHE_SIZE) == 0);
  snprintf(lin, sizeof lin, "0 %u linear %s 0", 2 * CACHE_SIZE / 512, cdev);
  swap_table(cd, lin);
  CHECK(udm_table_load(d, t) == 0);
  CHECK(udm_device_resume(d) == 0);
  CHECK(stat_of(d, &b));
  CHECK(b.ctotal == 2 * a.ctotal && b.cused == a.cused && b.dirty == a.dirty);
  CHECK(verify_all(d) == 0);
  CHECK(churn(d, 3000, 40) == 0); /* room for more: promotions go past the old end */
  quiesce(d);
  CHECK(stat_of(d, &b));
  CHECK(b.cused > a.cused && b.dirty > 0);
  CHECK(verify_all(d) == 0);
  test_drop(d);
  check_metadata("metadata of a grown cache");
  checked("cache: a cache device grown under a live cache is taken by a reloaded table "
          "(%u -> %u blocks, %u -> %u cached, every byte)", a.ctotal, b.ctotal, a.cused, b.cused);
  /* The cache device shrunk back below blocks in use, some of them dirty
   * (the cache fills from block 0 up): refused at the resume, and the
   * cache opens whole once the device has its size again. */
  snprintf(lin, sizeof lin, "0 %u linear %s 0", CACHE_SIZE / 512, cdev);
  swap_table(cd, lin);
  struct udm_device *e = udm_device_create(ctx, "shrunk", NULL, 0);
  CHECK(e != NULL);
  int r = e ? udm_table_load(e, t) : -1;
  if (r == 0)
    r = udm_device_resume(e);
  CHECK(r < 0);
  CHECK_CONTAINS(udm_errmsg(), "is dirty");
  if (e)
    test_drop(e);
  snprintf(lin, sizeof lin, "0 %u linear %s 0", 2 * CACHE_SIZE / 512, cdev);
  swap_table(cd, lin);
  d = make("cache", t);
  CHECK(d && verify_all(d) == 0);
  test_drop(d);
  test_drop(cd);
  checked("cache: shrinking the cache device below a dirty block is refused, the cache intact");
}

/*
 * The origin grown: a reloaded, longer table keeps every mapping, dirty bit
 * and byte, reads the new part from the origin, and its metadata (a larger
 * discard bitset) stays cache_check clean.
 */
static void origin_grown_by_reload(void)
{
  fresh(29);
  char t[1024];
  table_for(t, sizeof t, "1 writeback", "smq 0");
  struct udm_device *d = make("cache", t);
  CHECK(churn(d, 1500, 40) == 0);
  quiesce(d);
  struct st a, b;
  CHECK(stat_of(d, &a));
  CHECK(truncate(origin, 2 * ORIGIN_SIZE) == 0);
  snprintf(t, sizeof t, "0 %u cache %s %s %s %u 1 writeback smq 0", 2 * ORIGIN_SIZE / 512, meta,
           cdev, origin, BLOCK);
  CHECK(udm_table_load(d, t) == 0);
  CHECK(udm_device_resume(d) == 0);
  CHECK(udm_device_size(d) == 2ull * ORIGIN_SIZE);
  CHECK(stat_of(d, &b));
  CHECK(b.cused == a.cused && b.dirty == a.dirty);
  CHECK(verify_all(d) == 0);
  static unsigned char buf[64 * KiB], zero[64 * KiB];
  for (int i = 0; i < 3; i++) /* the new part: zeros, read again and again */
    for (uint64_t off = ORIGIN_SIZE; off < ORIGIN_SIZE + 8 * (uint64_t)BLOCK * 512; off += sizeof buf)
      CHECK(rd(d, buf, sizeof buf, off) == 0 && !memcmp(buf, zero, sizeof buf));
  test_drop(d);
  check_metadata("metadata of a cache whose origin grew");
  checked("cache: an origin grown under a live cache is taken by a longer reloaded table "
          "(%u cached, %u dirty kept, every byte, the new part readable)", b.cused, b.dirty);
}

int main(void)
{
  setup();
  bad_tables_are_refused();
  metadata_the_kernel_wrote_opens_in_udm();
  writeback_smq_churn_reopen_and_clean(1);
  writeback_smq_churn_reopen_and_clean(2);
  writethrough_and_passthrough();
  reload_takes_over_a_live_cache();
  kill_9_in_writeback(4);
  metadata_write_error_turns_read_only();
  metadata_device_gone_fails_the_cache();
  discard_bitset_marks_whole_blocks();
  cache_device_grown_by_reload();
  origin_grown_by_reload();
  free(model);
  return finish("test-cache");
}
