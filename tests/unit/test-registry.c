/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The context's registry: tables of different devices (and the old and new
 * table of one device) share one object by key; it is released once, at the
 * last put; a failed init leaves nothing behind; two contexts never share.
 *
 * The test target "shared KEY [SIZE]" gets object KEY in ctr and puts it in
 * dtr; its status prints the object's identity and reference count as the
 * target sees them, its message "bump" counts in the shared object.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdint.h>

#include <udm/target.h>

#include "internal.h" /* a target outside any table, for the direct calls */
#include "check.h"
#include "testdev.h"

static atomic_int inits, releases, fail_next_init;

struct shared {
  unsigned serial;  /* which init made it */
  unsigned bumps;
  char key[32];
};

struct shared_target {
  struct shared *obj;
};

static int shared_init(void *obj, void *arg)
{
  struct shared *s = obj;
  if (atomic_exchange(&fail_next_init, 0))
    return -EIO;
  CHECK(s->serial == 0 && s->bumps == 0); /* zeroed */
  s->serial = (unsigned)atomic_fetch_add(&inits, 1) + 1;
  snprintf(s->key, sizeof s->key, "%s", (const char *)arg);
  return 0;
}

static void shared_release(void *obj)
{
  struct shared *s = obj;
  CHECK(s->serial != 0);
  atomic_fetch_add(&releases, 1);
}

static void shared_dtr(struct udm_target *ti)
{
  struct shared_target *st = ti->private;
  if (st && st->obj)
    CHECK(udm_target_registry_put(ti, st->obj) == 0);
  free(st);
}

static int shared_ctr(struct udm_target *ti, unsigned argc, char **argv)
{
  if (argc < 1 || argc > 2) {
    udm_target_error(ti, "shared KEY [SIZE]");
    return -EINVAL;
  }
  struct shared_target *st = calloc(1, sizeof *st);
  if (!st)
    return -ENOMEM;
  ti->private = st;
  size_t size = argc == 2 ? (size_t)atoi(argv[1]) : sizeof(struct shared);
  void *obj;
  int r = udm_target_registry_get(ti, argv[0], size, shared_init, shared_release,
                                  argv[0], &obj);
  if (r < 0) {
    udm_target_error(ti, "cannot get shared object %s: %s", argv[0], strerror(-r));
    return r;
  }
  st->obj = obj;
  return 0;
}

static int shared_map(struct udm_target *ti, struct udm_io *io)
{
  (void)ti;
  if (io->buf)
    memset(io->buf, 0, io->nr_sectors * UDM_SECTOR_SIZE);
  return UDM_MAPIO_DONE;
}

static void shared_status(struct udm_target *ti, enum udm_status_type type,
                          unsigned flags, struct udm_buf *out)
{
  (void)flags;
  struct shared_target *st = ti->private;
  if (type == UDM_STATUS_INFO)
    udm_buf_printf(out, "%s serial=%u bumps=%u", st->obj->key, st->obj->serial,
                   st->obj->bumps);
  else
    udm_buf_printf(out, "%s", st->obj->key);
}

static int shared_message(struct udm_target *ti, unsigned argc, char **argv,
                          struct udm_buf *out)
{
  (void)argc;
  (void)argv;
  (void)out;
  struct shared_target *st = ti->private;
  st->obj->bumps++;
  return 0;
}

static const struct udm_target_type shared_type = {
    UDM_TARGET_TYPE_INIT,
    .name = "shared",
    .version = {1, 0, 0},
    .ctr = shared_ctr,
    .dtr = shared_dtr,
    .map = shared_map,
    .status = shared_status,
    .message = shared_message,
};

static struct udm_ctx *new_ctx(void)
{
  struct udm_ctx *ctx = udm_ctx_new();
  if (!ctx || udm_target_register(ctx, &shared_type) < 0) {
    fprintf(stderr, "setup: %s\n", udm_errmsg());
    exit(1);
  }
  return ctx;
}

static char *status_of(struct udm_device *d)
{
  char *s = NULL;
  CHECK(udm_device_status(d, 0, &s) == 0);
  return s;
}

static void bump(struct udm_device *d)
{
  char *reply = NULL;
  CHECK(udm_device_message(d, 0, "bump", &reply) == 0);
  free(reply);
}

static void two_tables_share_one_object_until_the_last_put(void)
{
  struct udm_ctx *ctx = new_ctx();
  atomic_store(&inits, 0);
  atomic_store(&releases, 0);
  struct udm_device *a = test_make(ctx, "a", "0 8 shared pool:x", 0);
  struct udm_device *b = test_make(ctx, "b", "0 8 shared pool:x", 0);
  struct udm_device *c = test_make(ctx, "c", "0 8 shared pool:y", 0);
  CHECK(atomic_load(&inits) == 2); /* x once, y once */
  bump(a);
  bump(b);
  bump(b);
  char *s = status_of(a);
  CHECK_STR(s, "0 8 shared pool:x serial=1 bumps=3\n");
  free(s);
  s = status_of(c);
  CHECK_STR(s, "0 8 shared pool:y serial=2 bumps=0\n");
  free(s);
  /* Reloading a's table: the new table's ctr finds the object, the old dtr puts. */
  CHECK(udm_table_load(a, "0 16 shared pool:x") == 0);
  CHECK(udm_device_resume(a) == 0);
  CHECK(atomic_load(&inits) == 2 && atomic_load(&releases) == 0);
  s = status_of(a);
  CHECK_STR(s, "0 16 shared pool:x serial=1 bumps=3\n");
  free(s);
  /* One user left: still there. */
  test_drop(a);
  CHECK(atomic_load(&releases) == 0);
  s = status_of(b);
  CHECK_STR(s, "0 8 shared pool:x serial=1 bumps=3\n");
  free(s);
  /* The last put releases it; a new user gets a new object. */
  test_drop(b);
  CHECK(atomic_load(&releases) == 1);
  struct udm_device *d = test_make(ctx, "d", "0 8 shared pool:x", 0);
  CHECK(atomic_load(&inits) == 3);
  s = status_of(d);
  CHECK_STR(s, "0 8 shared pool:x serial=3 bumps=0\n");
  free(s);
  test_drop(d);
  test_drop(c);
  CHECK(atomic_load(&releases) == 3);
  udm_ctx_free(ctx);
}

static void bad_gets_leave_nothing_behind(void)
{
  struct udm_ctx *ctx = new_ctx();
  atomic_store(&inits, 0);
  atomic_store(&releases, 0);
  struct udm_device *a = test_make(ctx, "a", "0 8 shared k", 0);
  /* The same key with another size: two kinds of object under one key. */
  struct udm_device *b = udm_device_create(ctx, "b", NULL, 0);
  CHECK(udm_table_load(b, "0 8 shared k 8") == -1 && udm_errno() == EINVAL);
  CHECK_CONTAINS(udm_errmsg(), "cannot get shared object k");
  /* A failed init: the error comes back, and the next get runs init again. */
  atomic_store(&fail_next_init, 1);
  CHECK(udm_table_load(b, "0 8 shared other") == -1 && udm_errno() == EIO);
  CHECK(atomic_load(&inits) == 1 && atomic_load(&releases) == 0);
  CHECK(udm_table_load(b, "0 8 shared other") == 0 && udm_device_resume(b) == 0);
  CHECK(atomic_load(&inits) == 2);
  /* A put of something the registry does not hold is refused. */
  struct udm_table_ctx fake_table = {.ctx = ctx};
  struct udm_target fake = {.table = &fake_table};
  int local;
  CHECK(udm_target_registry_put(&fake, &local) == -EINVAL);
  CHECK(udm_target_registry_put(&fake, NULL) == -EINVAL);
  void *obj;
  CHECK(udm_target_registry_get(&fake, "", 8, NULL, NULL, NULL, &obj) == -EINVAL);
  /* Without init the object is zeroed and ready; the second get shares it. */
  void *obj2;
  CHECK(udm_target_registry_get(&fake, "plain", 24, NULL, NULL, NULL, &obj) == 1);
  CHECK(udm_target_registry_get(&fake, "plain", 24, NULL, NULL, NULL, &obj2) == 0);
  CHECK(obj == obj2 && ((uintptr_t)obj % _Alignof(max_align_t)) == 0);
  CHECK(udm_target_registry_put(&fake, obj) == 0);
  CHECK(udm_target_registry_put(&fake, obj2) == 0);
  CHECK(udm_target_registry_put(&fake, obj) == -EINVAL); /* gone */
  test_drop(b);
  /* A device left for udm_ctx_free: its table is destroyed, the object released. */
  udm_device_unref(a);
  udm_ctx_free(ctx);
  CHECK(atomic_load(&releases) == 2);
}

/* An init that takes its time, so that a second get arrives meanwhile. */
static int slow_init(void *obj, void *arg)
{
  (void)arg;
  struct timespec ts = {0, 200 * 1000000L};
  nanosleep(&ts, NULL);
  *(unsigned *)obj = 42;
  atomic_fetch_add(&inits, 1);
  return 0;
}

struct getter {
  struct udm_target *ti;
  void *obj;
  int r;
};

static void *get_thread(void *arg)
{
  struct getter *g = arg;
  g->r = udm_target_registry_get(g->ti, "slow", sizeof(unsigned), slow_init, NULL, NULL,
                                 &g->obj);
  return NULL;
}

static void a_get_waits_for_the_init_of_another(void)
{
  struct udm_ctx *ctx = new_ctx();
  atomic_store(&inits, 0);
  struct udm_table_ctx table = {.ctx = ctx};
  struct udm_target ti = {.table = &table};
  struct getter g[2] = {{.ti = &ti}, {.ti = &ti}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, get_thread, &g[i]);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  CHECK(atomic_load(&inits) == 1);
  CHECK((g[0].r == 1 && g[1].r == 0) || (g[0].r == 0 && g[1].r == 1));
  CHECK(g[0].obj == g[1].obj && g[0].obj && *(unsigned *)g[0].obj == 42);
  CHECK(udm_target_registry_put(&ti, g[0].obj) == 0);
  CHECK(udm_target_registry_put(&ti, g[1].obj) == 0);
  udm_ctx_free(ctx);
}

static void contexts_do_not_share(void)
{
  struct udm_ctx *one = new_ctx(), *two = new_ctx();
  atomic_store(&inits, 0);
  struct udm_device *a = test_make(one, "a", "0 8 shared k", 0);
  struct udm_device *b = test_make(two, "a", "0 8 shared k", 0);
  CHECK(atomic_load(&inits) == 2);
  bump(a);
  char *s = status_of(b);
  CHECK_STR(s, "0 8 shared k serial=2 bumps=0\n");
  free(s);
  test_drop(a);
  test_drop(b);
  udm_ctx_free(one);
  udm_ctx_free(two);
}

int main(void)
{
  two_tables_share_one_object_until_the_last_put();
  bad_gets_leave_nothing_behind();
  a_get_waits_for_the_init_of_another();
  contexts_do_not_share();
  return check_summary("test-registry");
}
