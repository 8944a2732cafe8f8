/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared declarations of the udm command-line tool. */
#ifndef UDM_CLI_H
#define UDM_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "protocol.h"

/* udm has no kernel device numbers; "Major, minor" shows this fixed major. */
#define UDM_CLI_MAJOR 253
/* What dmsetup shows for a device-mapper device's default read-ahead. */
#define UDM_CLI_READ_AHEAD 256

/* Exit statuses. */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

struct cli {
  char dir[4096]; /* the runtime directory */
  int fd;         /* connection to udmd, -1 before cli_connect */
};

/* ---- parsed command line of one verb ---- */
#define CLI_MAX_OPTS 24
struct cli_opt {
  const char *name; /* long name, without "--" */
  char letter;      /* short form, or 0 */
  bool has_arg;
};
struct cli_args {
  const struct cli_opt *opts;
  bool set[CLI_MAX_OPTS];
  const char *val[CLI_MAX_OPTS];
  int npos;
  char **pos;
  bool selected; /* pos[0] is the device -u or -j/-m selected (malloc'd) */
};
bool cli_opt_set(const struct cli_args *a, const char *name);
const char *cli_opt_val(const struct cli_args *a, const char *name);

/* ---- client.c: talking to udmd ---- */
/* Resolve the runtime directory into c->dir; prints the error. */
int cli_runtime_dir(struct cli *c);
/* Connect (starting udmd when nobody answers) and say hello; prints errors. */
int cli_connect(struct cli *c);
void cli_disconnect(struct cli *c);
/*
 * Send req and read the answer into resp (which must be empty).  On a
 * failure answer, prints "udm: MESSAGE" and returns -1 (resp keeps it).
 */
int cli_call(struct cli *c, const struct udm_msg *req, struct udm_msg *resp);
/* Path of the udmd to start: next to udm, in the build tree, or in bindir. */
int cli_find_udmd(char *buf, size_t size);
int cli_find_program(const char *prog, const char *env_name, const char *build_dir,
                     char *buf, size_t size);
/* Connect to DIR/control.sock; returns an fd or -errno. */
int cli_connect_socket(const char *dir);
/* Say hello on fd; prints errors. */
int cli_hello(int fd);

/* ---- report.c: dmsetup's column reports (info -c, splitname) ---- */
#define REPORT_MAX_COLS 64
struct report_field {
  const char *id;          /* -o name */
  const char *heading;
  int width;               /* the least width of the column */
  bool number;             /* right-aligned, sorted as a number */
  const char *unsupported; /* why udm has no such field, or NULL */
};
struct report {
  const struct report_field *fields; /* ends with a NULL id */
  unsigned cols[REPORT_MAX_COLS], ncols;
  unsigned sort[REPORT_MAX_COLS], nsort;
  bool descending[REPORT_MAX_COLS];
  bool headings, aligned, json;
  const char *separator;
  char ***rows; /* each: a malloc'd value (never NULL) per field of fields */
  size_t nrows, cap;
};
/*
 * Columns from -o/--options (defaults when absent or '+...'), --sort,
 * --noheadings, --separator and --json of a; prints errors (what: the verb).
 */
int report_init(struct report *r, const struct report_field *fields, const char *defaults,
                const struct cli_args *a, const char *what);
/* Add a row (the report takes values and its strings). */
int report_add(struct report *r, char **values);
void report_print(struct report *r);
void report_free(struct report *r);

/* ---- json.c ---- */
void json_str(FILE *f, const char *s);

/* ---- verbs.c, run.c ---- */
int verb_create(struct cli *c, struct cli_args *a);
int verb_remove(struct cli *c, struct cli_args *a);
int verb_load(struct cli *c, struct cli_args *a);
int verb_suspend(struct cli *c, struct cli_args *a);
int verb_resume(struct cli *c, struct cli_args *a);
int verb_table(struct cli *c, struct cli_args *a);
int verb_status(struct cli *c, struct cli_args *a);
int verb_measure(struct cli *c, struct cli_args *a);
int verb_info(struct cli *c, struct cli_args *a);
int verb_ls(struct cli *c, struct cli_args *a);
int verb_message(struct cli *c, struct cli_args *a);
int verb_wait(struct cli *c, struct cli_args *a);
int verb_targets(struct cli *c, struct cli_args *a);
/* dmverbs.c: the rest of dmsetup's verbs */
int verb_rename(struct cli *c, struct cli_args *a);
int verb_deps(struct cli *c, struct cli_args *a);
int verb_remove_all(struct cli *c, struct cli_args *a);
int verb_clear(struct cli *c, struct cli_args *a);
int verb_wipe_table(struct cli *c, struct cli_args *a);
int verb_mknodes(struct cli *c, struct cli_args *a);
int verb_splitname(struct cli *c, struct cli_args *a);
int verb_udevcookies(struct cli *c, struct cli_args *a);
int verb_target_version(struct cli *c, struct cli_args *a);
int verb_info_columns(struct cli *c, struct cli_args *a);
int verb_ls_tree(struct cli *c, struct cli_args *a);
int verb_create_concise(struct cli *c, struct cli_args *a);
int verb_table_concise(struct cli *c, struct cli_args *a);
/* Help for -c: the fields of info -c. */
void cli_print_fields(void);
/*
 * -u UUID or -j MAJOR -m MINOR: the name of the device they select, into
 * name (NULL when a names none).  Prints errors; -1 on failure.
 */
int cli_select_device(struct cli *c, struct cli_args *a, char *name, size_t n,
                      bool *selected);

/* verbs.c helpers shared with dmverbs.c */
int cli_request(struct cli *c, struct udm_msg *req, struct udm_msg *resp);
int cli_new_req(struct udm_msg *req, const char *op, const char *name);
/* Field key of the record [first, end) of m, or "" */
const char *cli_field(const struct udm_msg *m, unsigned first, unsigned end, const char *key);
/* udmd's target types and versions into resp; -1 (printed, resp freed) on failure. */
int cli_targets(struct cli *c, struct udm_msg *resp);
/* One target type of `targets`/`target-version`: a line, or a JSON object after "[". */
void cli_print_target(const char *name, const char *version, bool json, bool first);
/* Whether dmsetup would end this table line with a blank (no parameters). */
bool cli_line_needs_blank(const char *line, size_t len);
/* Call fn for each record (starting at name=) of an answer. */
void cli_records(const struct udm_msg *m,
                 void (*fn)(void *opaque, const struct udm_msg *m, unsigned first, unsigned end),
                 void *opaque);
int verb_version(struct cli *c, struct cli_args *a);
int verb_uri(struct cli *c, struct cli_args *a);
int verb_attach(struct cli *c, struct cli_args *a);
int verb_detach(struct cli *c, struct cli_args *a);
/* Ask udmd to attach NAME; its block device path into devpath.  Prints errors. */
int cli_attach(struct cli *c, const char *name, char *devpath, size_t n);
/* Ask udmd to detach NAME.  Prints errors. */
int cli_detach(struct cli *c, const char *name);
/* All of F (a table, a udmtab), NUL-terminated; WHAT names it in errors (printed). */
char *cli_read_text(FILE *f, const char *what);
/* "0 N linear SPEC 0" over the whole image (create --image, apply); prints errors. */
char *cli_image_table(const char *spec);
/* apply.c: udm apply [--dry-run] [FILE] (udmtab(5)) */
int verb_apply(struct cli *c, struct cli_args *a);
/* open.c: encrypted volumes */
int verb_open(struct cli *c, struct cli_args *a);
int verb_close(struct cli *c, struct cli_args *a);
/* progress.c: udm wait --progress NAME (until its status's done/total is complete) */
int cli_wait_progress(struct cli *c, const char *name);
/* udm run parses its own arguments (everything after "--" is the command). */
int verb_run(int argc, char **argv);

/* Print "udm: " and the message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the NBD URI of device name on dir's nbd.sock. */
void cli_print_uri(FILE *f, const char *dir, const char *name);
/* The URI as a malloc'd string. */
char *cli_uri(const char *dir, const char *name);

#endif
