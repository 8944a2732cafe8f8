/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The little JSON udm writes: strings need escaping, the rest is printf. */
#include "cli.h"

void json_str(FILE *f, const char *s)
{
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    default:
      if (*p < 0x20 || *p == 0x7f)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f); /* UTF-8 passes through; other bytes too (paths are bytes) */
    }
  }
  fputc('"', f);
}
