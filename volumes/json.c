/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small strict JSON reader (see json.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH 64

struct parser {
  const char *p, *end, *start;
};

static void skip_ws(struct parser *ps)
{
  while (ps->p < ps->end &&
         (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static int parse_value(struct parser *ps, struct udm_json *v, int depth);

static void put_utf8(char **w, unsigned cp)
{
  char *o = *w;
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xc0 | cp >> 6);
    *o++ = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xe0 | cp >> 12);
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
    *o++ = (char)(0x80 | (cp & 0x3f));
  } else {
    *o++ = (char)(0xf0 | cp >> 18);
    *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
    *o++ = (char)(0x80 | (cp & 0x3f));
  }
  *w = o;
}

static int hex4(const char *s, unsigned *out)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return -EINVAL;
  }
  *out = v;
  return 0;
}

static int parse_string(struct parser *ps, char **out)
{
  if (ps->p >= ps->end || *ps->p != '"')
    return -EINVAL;
  const char *s = ++ps->p;
  size_t n = 0;
  while (s + n < ps->end && s[n] != '"') {
    if (s[n] == '\\')
      n++;
    n++;
  }
  if (s + n >= ps->end)
    return -EINVAL;
  char *buf = malloc(n + 1), *w = buf; /* unescaping never grows the text */
  if (!buf)
    return -ENOMEM;
  while (*ps->p != '"') {
    unsigned char c = (unsigned char)*ps->p++;
    if (c < 0x20)
      goto bad;
    if (c != '\\') {
      *w++ = (char)c;
      continue;
    }
    c = (unsigned char)*ps->p++;
    switch (c) {
    case '"': *w++ = '"'; break;
    case '\\': *w++ = '\\'; break;
    case '/': *w++ = '/'; break;
    case 'b': *w++ = '\b'; break;
    case 'f': *w++ = '\f'; break;
    case 'n': *w++ = '\n'; break;
    case 'r': *w++ = '\r'; break;
    case 't': *w++ = '\t'; break;
    case 'u': {
      unsigned cp, lo;
      if (ps->end - ps->p < 4 || hex4(ps->p, &cp) < 0)
        goto bad;
      ps->p += 4;
      if (cp >= 0xd800 && cp < 0xdc00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
          ps->p[1] == 'u' && hex4(ps->p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      if (cp == 0)
        goto bad; /* embedded NUL */
      put_utf8(&w, cp);
      break;
    }
    default:
      goto bad;
    }
  }
  ps->p++;
  *w = '\0';
  *out = buf;
  return 0;
bad:
  free(buf);
  return -EINVAL;
}

static int add_item(struct udm_json *v, size_t *cap, struct udm_json **item)
{
  if (v->count == *cap) {
    size_t nc = *cap ? *cap * 2 : 4;
    struct udm_json *ni = realloc(v->items, nc * sizeof *ni);
    if (!ni)
      return -ENOMEM;
    v->items = ni;
    *cap = nc;
  }
  *item = &v->items[v->count++];
  memset(*item, 0, sizeof **item);
  return 0;
}

static int parse_container(struct parser *ps, struct udm_json *v, int depth, bool object)
{
  size_t cap = 0;
  char close = object ? '}' : ']';
  v->type = object ? UDM_JSON_OBJECT : UDM_JSON_ARRAY;
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    return 0;
  }
  for (;;) {
    struct udm_json *item;
    char *key = NULL;
    int r;
    skip_ws(ps);
    if (object) {
      if ((r = parse_string(ps, &key)) < 0)
        return r;
      /* one value per name: readers that take the first and the last
       * member of a duplicate would see different metadata */
      for (size_t i = 0; i < v->count; i++)
        if (!strcmp(v->items[i].key, key)) {
          free(key);
          return -EEXIST;
        }
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') {
        free(key);
        return -EINVAL;
      }
      ps->p++;
    }
    if ((r = add_item(v, &cap, &item)) < 0) {
      free(key);
      return r;
    }
    item->key = key;
    if ((r = parse_value(ps, item, depth + 1)) < 0)
      return r;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == close) {
      ps->p++;
      return 0;
    }
    return -EINVAL;
  }
}

static int parse_value(struct parser *ps, struct udm_json *v, int depth)
{
  if (depth > MAX_DEPTH)
    return -EINVAL;
  skip_ws(ps);
  if (ps->p >= ps->end)
    return -EINVAL;
  char c = *ps->p;
  if (c == '{' || c == '[')
    return parse_container(ps, v, depth, c == '{');
  if (c == '"') {
    v->type = UDM_JSON_STRING;
    return parse_string(ps, &v->text);
  }
  static const struct {
    const char *word;
    enum udm_json_type type;
  } words[] = {{"true", UDM_JSON_BOOL}, {"false", UDM_JSON_BOOL}, {"null", UDM_JSON_NULL}};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strlen(words[i].word);
    if ((size_t)(ps->end - ps->p) >= n && !memcmp(ps->p, words[i].word, n)) {
      ps->p += n;
      v->type = words[i].type;
      v->text = strdup(words[i].word);
      return v->text ? 0 : -ENOMEM;
    }
  }
  /* number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
  const char *s = ps->p;
  if (ps->p < ps->end && *ps->p == '-')
    ps->p++;
  const char *digits = ps->p;
  while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
    ps->p++;
  if (ps->p == digits || (*digits == '0' && ps->p - digits > 1))
    return -EINVAL;
  if (ps->p < ps->end && *ps->p == '.') {
    const char *f = ++ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
      ps->p++;
    if (ps->p == f)
      return -EINVAL;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
      ps->p++;
    const char *e = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
      ps->p++;
    if (ps->p == e)
      return -EINVAL;
  }
  v->type = UDM_JSON_NUMBER;
  v->text = strndup(s, (size_t)(ps->p - s));
  return v->text ? 0 : -ENOMEM;
}

static void free_children(struct udm_json *j)
{
  for (size_t i = 0; i < j->count; i++)
    free_children(&j->items[i]);
  free(j->items);
  free(j->text);
  free(j->key);
}

void udm_json_free(struct udm_json *j)
{
  if (!j)
    return;
  free_children(j);
  free(j);
}

int udm_json_parse(const char *buf, size_t len, struct udm_json **out, size_t *where)
{
  struct parser ps = {buf, buf + len, buf};
  struct udm_json *root = calloc(1, sizeof *root);
  if (!root)
    return -ENOMEM;
  int r = parse_value(&ps, root, 0);
  if (r == 0) {
    skip_ws(&ps);
    while (ps.p < ps.end && *ps.p == '\0')
      ps.p++;
    if (ps.p != ps.end)
      r = -EINVAL;
  }
  if (r < 0) {
    if (where)
      *where = (size_t)(ps.p - ps.start);
    udm_json_free(root);
    return r;
  }
  *out = root;
  return 0;
}

const struct udm_json *udm_json_get(const struct udm_json *j, const char *key)
{
  if (!j || j->type != UDM_JSON_OBJECT)
    return NULL;
  for (size_t i = 0; i < j->count; i++)
    if (!strcmp(j->items[i].key, key))
      return &j->items[i];
  return NULL;
}

const char *udm_json_str(const struct udm_json *j, const char *key)
{
  const struct udm_json *v = udm_json_get(j, key);
  return v && v->type == UDM_JSON_STRING ? v->text : NULL;
}

int udm_json_u64(const struct udm_json *j, const char *key, uint64_t *out)
{
  const struct udm_json *v = udm_json_get(j, key);
  if (!v || (v->type != UDM_JSON_STRING && v->type != UDM_JSON_NUMBER))
    return -EINVAL;
  const char *s = v->text;
  if (*s < '0' || *s > '9')
    return -EINVAL;
  uint64_t n = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return -EINVAL;
    unsigned d = (unsigned)(*s - '0');
    if (n > (UINT64_MAX - d) / 10)
      return -EINVAL;
    n = n * 10 + d;
  }
  *out = n;
  return 0;
}
