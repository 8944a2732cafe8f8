/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * era's metadata survives crashes: the last committed transaction stays
 * whole, era_check (thin-provisioning-tools) passes, udm opens it again,
 * and every write that was acknowledged is recorded.
 *   - kill -9: a child process writes and checkpoints through era until
 *     the parent kills it at a random moment; it reports each write's
 *     block once the write is acknowledged;
 *   - lost and torn metadata writes: the metadata device is a test target
 *     ("cutoff") that passes a random number of writes, writes only the
 *     first sectors of the next one (a torn block), then drops every write
 *     while reporting success; the superblock is never torn (its 4 KiB
 *     write is taken as atomic, as the kernel takes it).
 * Skipped (77) when era_check is not installed.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>

#include <udm/target.h>

#include "targets-test.h"

#define MiB (1024 * 1024)
#define BLOCK_SECTORS 8u /* 4 KiB era blocks */
#define ORIGIN_BLOCKS 512u

static uint64_t rng;
static unsigned early_crashes; /* before the first commit or the first resume */
static uint64_t rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* ---- the cutoff target ---- */

struct cutoff {
  struct udm_dev *dev;
  pthread_mutex_t lock;
  long budget;          /* writes still passed; then one torn, then none */
  unsigned tear;        /* sectors of the torn write that reach the disk */
};

/* cutoff <dev> <writes passed> <sectors of the torn write> */
static int cutoff_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  struct cutoff *c = calloc(1, sizeof *c);
  ti->private = c;
  if (!c || argc != 3)
    return -EINVAL;
  pthread_mutex_init(&c->lock, NULL);
  c->budget = atol(argv[1]);
  c->tear = (unsigned)atoi(argv[2]);
  return udm_get_device(ti, argv[0], UDM_DEV_READ | UDM_DEV_WRITE, &c->dev);
}

static void cutoff_dtr(struct udm_target *ti)
{
  struct cutoff *c = ti->private;
  if (c && c->dev)
    udm_put_device(ti, c->dev);
  free(c);
}

static int cutoff_map(struct udm_target *ti, struct udm_io *io)
{
  struct cutoff *c = ti->private;
  if (io->op != UDM_OP_WRITE)
    return udm_remap(ti, io, c->dev, 0);
  pthread_mutex_lock(&c->lock);
  long b = c->budget;
  if (b >= 0)
    c->budget--;
  pthread_mutex_unlock(&c->lock);
  if (b > 0)
    return udm_remap(ti, io, c->dev, 0);
  if (b == 0 && io->sector != 0 && c->tear && c->tear < io->nr_sectors) {
    struct udm_io part = {.op = UDM_OP_WRITE, .sector = udm_target_offset(ti, io->sector),
                          .nr_sectors = c->tear, .buf = io->buf};
    if (udm_dev_submit(c->dev, &part) < 0)
      return -EIO;
  }
  return UDM_MAPIO_DONE; /* lost, but reported written */
}

static const struct udm_target_type cutoff_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "cutoff",
    .ctr = cutoff_ctr,
    .dtr = cutoff_dtr,
    .map = cutoff_map,
};

/* ---- checks ---- */

/* era_check passes, udm opens the metadata, and BLOCKS (acknowledged) are recorded. */
static void check_metadata(const char *meta, const char *origin, const bool *acked,
                           const char *what)
{
  /*
   * A crash before the first commit leaves block 0 all zeros (udm formats
   * it at the next open); one between the format (in ctr) and the first
   * resume leaves nr_blocks 0, which era_check 0.9 calls "missing eras"
   * for the kernel's metadata as well (tests/kernel/scenarios/era.scn).
   */
  unsigned char *sb = file_bytes(meta, 0, 4096);
  bool zero = true;
  for (int i = 0; i < 4096 && zero; i++)
    zero = sb[i] == 0;
  uint32_t nr_blocks = (uint32_t)sb[180] | (uint32_t)sb[181] << 8 | (uint32_t)sb[182] << 16 |
                       (uint32_t)sb[183] << 24;
  free(sb);
  if (!zero && nr_blocks != 0 && run_sh("era_check %s", meta) != 0) {
    fprintf(stderr, "%s: era_check fails on the metadata as the crash left it\n", what);
    check_failures++;
  }
  if (zero || nr_blocks == 0)
    early_crashes++;
  char table[1024];
  snprintf(table, sizeof table, "0 %u era %s %s %u", ORIGIN_BLOCKS * BLOCK_SECTORS, meta,
           origin, BLOCK_SECTORS);
  struct udm_device *d = udm_device_create(ctx, "again", NULL, 0);
  if (!d || udm_table_load(d, table) < 0 || udm_device_resume(d) < 0) {
    fprintf(stderr, "%s: the metadata does not open: %s\n", what, udm_errmsg());
    check_failures++;
    if (d)
      test_drop(d);
    return;
  }
  test_drop(d); /* archives the writeset the crash left current */
  CHECK(run_sh("era_check -q %s", meta) == 0);
  char out[400];
  snprintf(out, sizeof out, "%s/dump.xml", scratch);
  CHECK(run_sh("era_dump --logical %s > %s", meta, out) == 0);
  FILE *f = fopen(out, "r");
  char line[512];
  unsigned missing = 0, listed = 0;
  bool seen[ORIGIN_BLOCKS] = {false};
  while (f && fgets(line, sizeof line, f)) {
    unsigned b, e;
    const char *p = strstr(line, "<era block=");
    if (p && sscanf(p, "<era block=\"%u\" era=\"%u\"", &b, &e) == 2 && b < ORIGIN_BLOCKS) {
      listed++;
      seen[b] = e > 0;
    }
  }
  if (f)
    fclose(f);
  for (unsigned b = 0; acked && b < ORIGIN_BLOCKS; b++)
    missing += acked[b] && !seen[b];
  CHECK(listed == ORIGIN_BLOCKS);
  if (missing)
    fprintf(stderr, "%s: %u acknowledged writes are not recorded\n", what, missing);
  CHECK(missing == 0);
}

static void random_io(struct udm_device *d, unsigned ops, bool *acked, int report_fd)
{
  unsigned char buf[4096];
  for (unsigned i = 0; i < ops; i++) {
    unsigned dice = (unsigned)(rnd() % 100);
    if (dice < 3) {
      char *r = NULL;
      udm_device_message(d, 0, "checkpoint", &r);
      free(r);
      continue;
    }
    if (dice < 5) {
      char *r = NULL;
      udm_device_message(d, 0, rnd() & 1 ? "take_metadata_snap" : "drop_metadata_snap", &r);
      free(r);
      continue;
    }
    unsigned b = (unsigned)(rnd() % ORIGIN_BLOCKS);
    fill_pattern(buf, sizeof buf, (unsigned)i + 1, b);
    if (wr(d, buf, sizeof buf, (uint64_t)b * BLOCK_SECTORS * 512, 0) == 0) {
      if (acked)
        acked[b] = true;
      if (report_fd >= 0) {
        uint32_t v = b;
        if (write(report_fd, &v, sizeof v) != sizeof v)
          _exit(3);
      }
    }
  }
}

static void kill_9_at_random_points(unsigned rounds)
{
  for (unsigned round = 0; round < rounds; round++) {
    const char *meta = backing("k-meta.img", 4 * MiB, 0);
    CHECK(truncate(meta, 0) == 0 && truncate(meta, 4 * MiB) == 0);
    const char *origin = backing("k-origin.img", (size_t)ORIGIN_BLOCKS * BLOCK_SECTORS * 512, 9);
    int fds[2];
    CHECK(pipe(fds) == 0);
    uint64_t seed = rnd();
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      struct udm_ctx *c = udm_ctx_new();
      char table[1024];
      snprintf(table, sizeof table, "0 %u era %s %s %u", ORIGIN_BLOCKS * BLOCK_SECTORS, meta,
               origin, BLOCK_SECTORS);
      struct udm_device *d = test_make(c, "era", table, 0);
      rng = seed | 1;
      for (;;)
        random_io(d, 1000, NULL, fds[1]);
    }
    close(fds[1]);
    struct timespec ts = {0, (long)(20 + rnd() % 300) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    bool acked[ORIGIN_BLOCKS] = {false};
    uint32_t v;
    unsigned n = 0;
    while (read(fds[0], &v, sizeof v) == sizeof v)
      if (v < ORIGIN_BLOCKS)
        acked[v] = true, n++;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st));
    char what[64];
    snprintf(what, sizeof what, "kill -9 round %u (%u writes acknowledged)", round, n);
    check_metadata(meta, origin, acked, what);
  }
  checked("era: %u processes killed (-9) at random moments of writes, checkpoints and "
          "metadata snapshots (%u before the first resume) leave metadata era_check passes, "
          "udm reopens, and that records every acknowledged write", rounds, early_crashes);
}

static void lost_and_torn_metadata_writes(unsigned rounds)
{
  CHECK(udm_target_register(ctx, &cutoff_type) == 0);
  for (unsigned round = 0; round < rounds; round++) {
    const char *meta = backing("c-meta.img", 4 * MiB, 0);
    CHECK(truncate(meta, 0) == 0 && truncate(meta, 4 * MiB) == 0);
    const char *origin = backing("c-origin.img", (size_t)ORIGIN_BLOCKS * BLOCK_SECTORS * 512, 9);
    char table[1024];
    long budget = 10 + (long)(rnd() % 400);
    unsigned tear = (unsigned)(rnd() % 8);
    snprintf(table, sizeof table, "0 %u cutoff %s %ld %u", 4 * MiB / 512, meta, budget, tear);
    struct udm_device *cut = make("cut", table);
    snprintf(table, sizeof table, "0 %u era udm:cut %s %u", ORIGIN_BLOCKS * BLOCK_SECTORS,
             origin, BLOCK_SECTORS);
    struct udm_device *d = udm_device_create(ctx, "era", NULL, 0);
    if (d && udm_table_load(d, table) == 0 && udm_device_resume(d) == 0)
      random_io(d, 200, NULL, -1);
    if (d)
      udm_device_remove(d, 0), udm_device_unref(d);
    test_drop(cut);
    char what[64];
    snprintf(what, sizeof what, "cutoff round %u (%ld writes, %u sectors torn)", round,
             budget, tear);
    check_metadata(meta, origin, NULL, what);
  }
  checked("era: metadata writes cut off after a random count (the next one torn, the rest "
          "lost while reported written) in %u rounds leave metadata era_check passes and "
          "udm reopens", rounds);
}

int main(void)
{
  struct stat st;
  if (!getenv("TMPDIR") && stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
    setenv("TMPDIR", "/dev/shm", 1); /* commits flush: memory keeps the rounds quick */
  setup();
  rng = (uint64_t)time(NULL) * 2654435761u | 1;
  const char *s = getenv("UDM_TEST_SEED");
  if (s)
    rng = strtoull(s, NULL, 0) | 1;
  printf("seed %llu (UDM_TEST_SEED)\n", (unsigned long long)rng);
  if (system("command -v era_check >/dev/null 2>&1") != 0) {
    printf("era_check not installed: skipped\n");
    finish("test-era-crash");
    return 77;
  }
  kill_9_at_random_points(10);
  lost_and_torn_metadata_writes(16);
  return finish("test-era-crash");
}
