// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Table text through the table parser, the target registry and every
 * built-in target's ctr (and dtr, on the way out).  The input is the table;
 * @A, @B and @C stand for three scratch backing files (1 MiB each), and
 * key references find 16-, 32- and 64-byte keys named k16, k32, k64 in
 * the context's keys-dir.  Inputs naming any other path (a '/') or a network
 * backing (nbd:, rbd:) are skipped, so the fuzzer never opens the
 * machine's own files and never connects anywhere.
 *
 * What must hold: a table that loads prints (with keys) a table that loads
 * again and prints the same; the loaded table resumes, reports status in
 * both forms, answers a message, and the device goes away cleanly.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>

#include <udm/udm.h>

#include "fuzz.h"

#define BACKING_BYTES (1u << 20)
#define TEXT_MAX 65536

static struct udm_ctx *ctx;
static char path_a[300], path_b[300], path_c[300];

static void setup(void)
{
  char keys[300], key[320];
  fuzz_file(fuzz_path("a", path_a, sizeof path_a), NULL, 0, BACKING_BYTES);
  fuzz_file(fuzz_path("b", path_b, sizeof path_b), NULL, 0, BACKING_BYTES);
  fuzz_file(fuzz_path("c", path_c, sizeof path_c), NULL, 0, BACKING_BYTES);
  fuzz_path("keys", keys, sizeof keys);
  if (mkdir(keys, 0700) < 0)
    fuzz_die(keys);
  static const uint8_t bytes[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  for (unsigned n = 16; n <= 64; n *= 2) {
    snprintf(key, sizeof key, "%s/k%u", keys, n);
    fuzz_file(key, bytes, n, 0);
  }
  ctx = udm_ctx_new();
  if (!ctx || udm_ctx_set_option(ctx, "keys-dir", keys) < 0)
    fuzz_die("udm_ctx_new");
}

/* The input with @A/@B/@C replaced; NULL (skip) for other paths or NULs. */
static char *expand(const uint8_t *data, size_t size)
{
  if (size > TEXT_MAX || memchr(data, '\0', size) || memchr(data, '/', size))
    return NULL;
  /* Network backings (nbd:URI, rbd:POOL...) would reach out of the machine. */
  for (size_t i = 0; i + 4 <= size; i++)
    if ((data[i] == 'n' || data[i] == 'r') && !memcmp(data + i + 1, "bd:", 3))
      return NULL;
  size_t cap = size * (strlen(path_a) + 1) + 1, n = 0;
  char *text = malloc(cap);
  if (!text)
    fuzz_die("malloc");
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '@' && i + 1 < size && data[i + 1] >= 'A' && data[i + 1] <= 'C') {
      const char *p = data[i + 1] == 'A' ? path_a : data[i + 1] == 'B' ? path_b : path_c;
      memcpy(text + n, p, strlen(p));
      n += strlen(p);
      i++;
    } else {
      text[n++] = (char)data[i];
    }
  }
  text[n] = '\0';
  return text;
}

static struct udm_device *device(const char *name)
{
  struct udm_device *dev = udm_device_create(ctx, name, NULL, 0);
  if (!dev)
    fuzz_die(udm_errmsg());
  return dev;
}

static void drop(struct udm_device *dev)
{
  if (udm_device_remove(dev, UDM_REMOVE_FORCE) < 0)
    abort(); /* nothing holds it: removal must work */
  udm_device_unref(dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!ctx)
    setup();
  char *text = expand(data, size);
  if (!text)
    return 0;
  struct udm_device *dev = device("fuzz");
  if (udm_table_load(dev, text) < 0) {
    const char *why = udm_errmsg();
    if (!why || !*why)
      abort(); /* a refusal must say why */
  } else {
    char *shown = NULL, *again = NULL, *status = NULL, *reply = NULL;
    if (udm_device_table(dev, UDM_TABLE_INACTIVE | UDM_TABLE_SHOWKEYS, &shown) < 0)
      abort();
    struct udm_device *dev2 = device("fuzz2");
    /* The printed table is a table: it loads and prints the same again. */
    if (udm_table_load(dev2, shown) < 0 ||
        udm_device_table(dev2, UDM_TABLE_INACTIVE | UDM_TABLE_SHOWKEYS, &again) < 0 ||
        strcmp(shown, again)) {
      fprintf(stderr, "table does not reload the same:\n%s\n---\n%s\n---\n%s\n", text,
              shown, again ? again : udm_errmsg());
      abort();
    }
    drop(dev2);
    if (udm_device_resume(dev) == 0) {
      if (udm_device_status(dev, 0, &status) < 0)
        abort();
      free(status);
      status = NULL;
      if (udm_device_table(dev, 0, &status) < 0)
        abort();
      udm_device_message(dev, 0, "fuzz 1", &reply);
      free(reply);
    }
    free(status);
    free(again);
    free(shown);
  }
  drop(dev);
  free(text);
  return 0;
}
