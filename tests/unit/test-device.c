/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Device lifecycle: suspend holds I/O until resume, tables swap safely under
 * concurrent I/O, stacking works without cycles, and removal refuses what
 * dmsetup refuses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <udm/udm.h>

#include "check.h"
#include "util.h"

static struct udm_ctx *ctx;
static const char *disk;

static void nap_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static struct udm_device *make(const char *name, const char *table)
{
  struct udm_device *d = udm_device_create(ctx, name, NULL, 0);
  if (!d || udm_table_load(d, table) < 0 || udm_device_resume(d) < 0) {
    fprintf(stderr, "make %s: %s\n", name, udm_errmsg());
    exit(1);
  }
  return d;
}

struct reader {
  struct udm_device *d;
  atomic_int done;
  int result;
};

static void *read_one(void *arg)
{
  struct reader *r = arg;
  unsigned char b[512];
  r->result = udm_device_pread(r->d, b, sizeof b, 0);
  atomic_store(&r->done, 1);
  return NULL;
}

static void suspend_holds_io_until_resume(void)
{
  char t[512];
  snprintf(t, sizeof t, "0 128 linear %s 0", disk);
  struct udm_device *d = make("held", t);
  CHECK(udm_device_suspend(d, 0) == 0);
  CHECK(udm_device_suspend(d, 0) == 0); /* idempotent */
  struct udm_info info;
  udm_device_info(d, &info);
  CHECK(info.suspended);
  struct reader r = {.d = d};
  pthread_t th;
  pthread_create(&th, NULL, read_one, &r);
  nap_ms(200);
  CHECK(atomic_load(&r.done) == 0); /* still held */
  /* A table loaded meanwhile is swapped in by resume, and the held read uses it. */
  char t2[512];
  snprintf(t2, sizeof t2, "0 64 zero");
  CHECK(udm_table_load(d, t2) == 0);
  CHECK(udm_device_resume(d) == 0);
  pthread_join(th, NULL);
  CHECK(r.done == 1 && r.result == 0);
  udm_device_info(d, &info);
  CHECK(!info.suspended && info.size == 64 * 512);
  CHECK(udm_device_remove(d, 0) == 0);
  udm_device_unref(d);
}

struct hammer {
  struct udm_device *d;
  atomic_int stop;
  atomic_long ios, bad;
};

static void *hammer_io(void *arg)
{
  struct hammer *h = arg;
  unsigned char b[4096], w[4096];
  unsigned i = 0;
  while (!atomic_load(&h->stop)) {
    uint64_t off = (uint64_t)(i++ % 64) * 4096;
    fill_pattern(w, sizeof w, 1, off);
    if (udm_device_pread(h->d, b, sizeof b, off) < 0 || memcmp(b, w, sizeof b) != 0)
      atomic_fetch_add(&h->bad, 1);
    atomic_fetch_add(&h->ios, 1);
  }
  return NULL;
}

static void tables_swap_safely_under_concurrent_io(void)
{
  /* Two tables that present the same bytes through different layouts. */
  char one[512], two[512];
  snprintf(one, sizeof one, "0 512 linear %s 0", disk);
  snprintf(two, sizeof two, "0 256 linear %s 0\n256 256 linear %s 256", disk, disk);
  struct udm_device *d = make("swapper", one);
  struct hammer h = {.d = d};
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, hammer_io, &h);
  /* Swap at least 200 times, and until the readers have really overlapped. */
  while (atomic_load(&h.ios) < 100)
    nap_ms(1);
  long start = atomic_load(&h.ios);
  int i;
  for (i = 0; i < 200 || (atomic_load(&h.ios) - start < 2000 && i < 200000); i++) {
    CHECK(udm_table_load(d, i % 2 ? one : two) == 0);
    CHECK(udm_device_resume(d) == 0);
    if (i % 50 == 0) {
      CHECK(udm_device_suspend(d, 0) == 0);
      CHECK(udm_device_resume(d) == 0);
    }
  }
  atomic_store(&h.stop, 1);
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  CHECK(atomic_load(&h.bad) == 0);
  CHECK(atomic_load(&h.ios) - start >= 2000);
  printf("  %ld reads during %d table swaps, %ld wrong\n", (long)(h.ios - start), i,
         (long)h.bad);
  CHECK(udm_device_remove(d, 0) == 0);
  udm_device_unref(d);
}

static int list_name(void *opaque, const char *name)
{
  char *acc = opaque;
  strcat(acc, name);
  strcat(acc, ",");
  return 0;
}

static void stacking_cycles_and_removal(void)
{
  char t[512];
  snprintf(t, sizeof t, "0 256 linear %s 0", disk);
  struct udm_device *low = make("low", t);
  struct udm_device *mid = make("mid", "0 128 linear udm:low 64");
  struct udm_device *top = make("top", "0 64 linear /dev/mapper/mid 32");
  unsigned char b[512], w[512];
  fill_pattern(w, 512, 1, (64 + 32) * 512);
  CHECK(udm_device_pread(top, b, 512, 0) == 0 && memcmp(b, w, 512) == 0);

  char names[256] = "";
  udm_ctx_foreach_device(ctx, list_name, names);
  CHECK_STR(names, "low,mid,top,");
  names[0] = '\0';
  udm_device_foreach_dep(top, list_name, names);
  CHECK_STR(names, "/dev/mapper/mid,");

  /* Cycles: a device over itself, and low over top (top -> mid -> low). */
  CHECK(udm_table_load(low, "0 64 linear udm:low 0") == -1 && errno == ELOOP);
  CHECK_CONTAINS(udm_errmsg(), "would make a cycle");
  CHECK(udm_table_load(low, "0 64 linear udm:top 0") == -1 && errno == ELOOP);
  CHECK(udm_device_pread(low, b, 512, 0) == 0); /* still serves */

  /* A device used by another table cannot be removed, even forced. */
  CHECK(udm_device_remove(low, 0) == -1 && errno == EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "remove low: the device is used by the table of another device");
  CHECK(udm_device_remove(mid, UDM_REMOVE_FORCE) == -1 && errno == EBUSY);

  /* An open device needs force; afterwards its users get EIO. */
  udm_device_open(top);
  CHECK(udm_device_remove(top, 0) == -1 && errno == EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "remove top: the device is open (open count 1)");
  CHECK(udm_device_remove(top, UDM_REMOVE_FORCE) == 0);
  CHECK(udm_device_pread(top, b, 512, 0) == -1 && errno == EIO);
  CHECK(udm_device_remove(top, 0) == -1 && errno == ENXIO);
  CHECK(udm_table_load(top, "0 8 zero") == -1 && errno == ENXIO);
  udm_device_close(top);
  udm_device_unref(top);
  CHECK(udm_device_lookup(ctx, "top") == NULL);

  /* With top gone, mid can go, then low. */
  struct udm_info info;
  udm_device_info(low, &info);
  CHECK(info.holders == 1);
  CHECK(udm_device_remove(mid, 0) == 0);
  udm_device_info(low, &info);
  CHECK(info.holders == 0);
  CHECK(udm_device_remove(low, 0) == 0);
  udm_device_unref(mid);
  udm_device_unref(low);
}

struct used_list {
  char text[256];
};

static int list_used(void *opaque, const struct udm_dep *dep)
{
  struct used_list *l = opaque;
  size_t n = strlen(l->text);
  snprintf(l->text + n, sizeof l->text - n, "%s=%s/%u,", dep->path,
           dep->device ? dep->device : "-", dep->minor);
  return 0;
}

static void rename_keeps_stacked_tables_and_sets_uuid_once(void)
{
  char t[512];
  snprintf(t, sizeof t, "0 256 linear %s 0", disk);
  struct udm_device *low = make("rlow", t);
  struct udm_device *top = make("rtop", "0 64 linear udm:rlow 32\n64 8 linear /dev/mapper/rlow 0");
  unsigned char before[512], after[512];
  CHECK(udm_device_pread(top, before, 512, 0) == 0);

  /* One device named twice is one dependency, as the kernel lists them. */
  struct udm_info li;
  udm_device_info(low, &li);
  char want[128];
  struct used_list used = {""};
  CHECK(udm_device_foreach_used(top, 0, list_used, &used) == 0);
  snprintf(want, sizeof want, "/dev/mapper/rlow=rlow/%u,", li.minor);
  CHECK_STR(used.text, want);

  CHECK(udm_device_rename(low, "rbottom") == 0);
  CHECK_STR(udm_device_name(low), "rbottom");
  CHECK(udm_device_lookup(ctx, "rlow") == NULL);
  char *text = NULL;
  CHECK(udm_device_table(top, 0, &text) == 0);
  CHECK_STR(text, "0 64 linear udm:rbottom 32\n64 8 linear /dev/mapper/rbottom 0\n");
  free(text);
  CHECK(udm_device_pread(top, after, 512, 0) == 0 && memcmp(before, after, 512) == 0);
  used.text[0] = '\0';
  CHECK(udm_device_foreach_used(top, 0, list_used, &used) == 0);
  snprintf(want, sizeof want, "/dev/mapper/rlow=rbottom/%u,", li.minor);
  CHECK_STR(used.text, want);
  /* Renamed twice: the text follows again. */
  CHECK(udm_device_rename(low, "rlow2") == 0);
  CHECK(udm_device_table(top, 0, &text) == 0);
  CHECK_STR(text, "0 64 linear udm:rlow2 32\n64 8 linear /dev/mapper/rlow2 0\n");
  free(text);

  CHECK(udm_device_rename(low, "rtop") == -1 && errno == EBUSY);
  CHECK_CONTAINS(udm_errmsg(), "rename rlow2: a device named 'rtop' already exists");
  CHECK(udm_device_rename(low, "a/b") == -1 && errno == EINVAL);
  CHECK(udm_device_rename(low, "rlow2") == 0);

  CHECK(udm_device_set_uuid(low, "U-1") == 0);
  CHECK(udm_device_set_uuid(low, "U-1") == 0);
  CHECK(udm_device_set_uuid(low, "U-2") == -1 && errno == EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "already has uuid 'U-1'");
  CHECK(udm_device_set_uuid(top, "U-1") == -1 && errno == EBUSY);

  CHECK(udm_device_remove(top, 0) == 0);
  CHECK(udm_device_remove(low, 0) == 0);
  CHECK(udm_device_rename(low, "gone") == -1 && errno == ENXIO);
  udm_device_unref(top);
  udm_device_unref(low);
}

static void messages_to_targets_without_a_handler_fail_clearly(void)
{
  struct udm_device *d = make("msg", "0 8 zero");
  char *reply = NULL;
  CHECK(udm_device_message(d, 0, "hello", &reply) == -1 && errno == EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "message msg: target 'zero' does not take messages");
  CHECK(udm_device_message(d, 8, "hello", &reply) == -1 && errno == EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "sector 8 is beyond the device");
  CHECK(udm_device_message(d, 0, "  ", &reply) == -1);
  CHECK(udm_device_remove(d, 0) == 0);
  udm_device_unref(d);
}

struct target_list {
  char names[4096]; /* "a,b,c": registration order, '-' spelt '_' as in C */
  bool bad_version;
};

static int list_target(void *opaque, const char *name, const unsigned v[3])
{
  struct target_list *l = opaque;
  size_t n = strlen(l->names);
  snprintf(l->names + n, sizeof l->names - n, "%s%s", n ? "," : "", name);
  for (char *p = l->names + n; *p; p++)
    if (*p == '-')
      *p = '_';
  if (v[0] == 0 && v[1] == 0 && v[2] == 0)
    l->bad_version = true;
  return 0;
}

/* Every target folder built in (targets/meson.build) is registered, once, in order. */
static void builtin_targets_are_registered(void)
{
  struct target_list l = {{0}, false};
  CHECK(udm_ctx_foreach_target(ctx, list_target, &l) == 0);
  CHECK_STR(l.names, UDM_BUILTIN_TARGETS);
  CHECK(!l.bad_version);
}

int main(void)
{
  scratch_init();
  disk = scratch_file("disk.img", 1 << 20, 1);
  ctx = udm_ctx_new();
  suspend_holds_io_until_resume();
  tables_swap_safely_under_concurrent_io();
  stacking_cycles_and_removal();
  rename_keeps_stacked_tables_and_sets_uuid_once();
  messages_to_targets_without_a_handler_fail_clearly();
  builtin_targets_are_registered();
  /* ctx_free removes what is left, users before the devices they use. */
  struct udm_device *a = make("left-a", "0 8 zero");
  struct udm_device *b = make("left-b", "0 8 linear udm:left-a 0");
  udm_device_unref(a);
  udm_device_unref(b);
  udm_ctx_free(ctx);
  scratch_cleanup();
  return check_summary("test-device");
}
