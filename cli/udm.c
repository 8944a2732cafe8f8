/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm: the command-line tool of udm, with dmsetup's verbs.  It talks to
 * udmd over the control socket and starts udmd when nobody answers.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/*
 * Device selection as dmsetup: a NAME, or (for one device) -u UUID or
 * -j MAJOR -m MINOR.  Verbs that take it list these three.
 */
#define SELECT_OPTS {"uuid", 'u', true}, {"major", 'j', true}, {"minor", 'm', true}
static const struct cli_opt opts_create[] = {{"table", 0, true},
                                             {"readonly", 'r', false},
                                             {"uuid", 'u', true},
                                             {"notable", 'n', false},
                                             {"attach", 'a', false},
                                             {"image", 'i', true},
                                             {"concise", 0, false},
                                             {NULL, 0, false}};
static const struct cli_opt opts_remove[] = {{"force", 'f', false}, SELECT_OPTS,
                                             {NULL, 0, false}};
static const struct cli_opt opts_force[] = {{"force", 'f', false}, {NULL, 0, false}};
static const struct cli_opt opts_load[] = {{"table", 0, true}, SELECT_OPTS, {NULL, 0, false}};
/*
 * dmsetup's --noflush and --nolockfs are accepted and change nothing: held
 * requests (multipath's queue_if_no_path) stay held through every suspend.
 */
static const struct cli_opt opts_suspend[] = {
    {"noflush", 0, false}, {"nolockfs", 0, false}, SELECT_OPTS, {NULL, 0, false}};
static const struct cli_opt opts_wipe[] = {{"force", 'f', false}, {"noflush", 0, false},
                                           {"nolockfs", 0, false}, SELECT_OPTS,
                                           {NULL, 0, false}};
static const struct cli_opt opts_table[] = {{"showkeys", 0, false},
                                            {"inactive", 0, false},
                                            {"json", 0, false},
                                            {"target", 0, true},
                                            {"concise", 0, false},
                                            SELECT_OPTS,
                                            {NULL, 0, false}};
static const struct cli_opt opts_status[] = {{"inactive", 0, false}, {"json", 0, false},
                                             {"target", 0, true},    {"noflush", 0, false},
                                             SELECT_OPTS,            {NULL, 0, false}};
static const struct cli_opt opts_info[] = {{"json", 0, false},
                                           {"columns", 'c', false},
                                           {"options", 'o', true},
                                           {"sort", 'O', true},
                                           {"noheadings", 0, false},
                                           {"separator", 0, true},
                                           SELECT_OPTS,
                                           {NULL, 0, false}};
static const struct cli_opt opts_ls[] = {{"json", 0, false}, {"tree", 0, false},
                                         {"options", 'o', true}, {"target", 0, true},
                                         {NULL, 0, false}};
static const struct cli_opt opts_deps[] = {{"json", 0, false}, {"options", 'o', true},
                                           {"inactive", 0, false}, SELECT_OPTS,
                                           {NULL, 0, false}};
static const struct cli_opt opts_wait[] = {{"noflush", 0, false}, {"progress", 0, false}, SELECT_OPTS,
                                           {NULL, 0, false}};
static const struct cli_opt opts_rename[] = {{"setuuid", 0, false}, SELECT_OPTS,
                                             {NULL, 0, false}};
static const struct cli_opt opts_select[] = {SELECT_OPTS, {NULL, 0, false}};
static const struct cli_opt opts_splitname[] = {{"columns", 'c', false},
                                                {"options", 'o', true},
                                                {"sort", 'O', true},
                                                {"noheadings", 0, false},
                                                {"separator", 0, true},
                                                {"json", 0, false},
                                                {NULL, 0, false}};
static const struct cli_opt opts_json[] = {{"json", 0, false}, {NULL, 0, false}};
static const struct cli_opt opts_none[] = {{NULL, 0, false}};
static const struct cli_opt opts_apply[] = {{"dry-run", 'n', false}, {NULL, 0, false}};
static const struct cli_opt opts_open[] = {{"type", 0, true},
                                           {"key-file", 'd', true},
                                           {"veracrypt-pim", 0, true},
                                           {"hidden", 0, false},
                                           {"tcrypt-system", 0, false},
                                           {"readonly", 'r', false},
                                           {"cipher", 'c', true},
                                           {"key-size", 's', true},
                                           {"hash", 0, true},
                                           {"offset", 'o', true},
                                           {"skip", 'p', true},
                                           {"size", 'b', true},
                                           {NULL, 0, false}};

struct verb {
  const char *name;
  int (*fn)(struct cli *, struct cli_args *);
  const struct cli_opt *opts;
  int min_args, max_args; /* positional, a selected device counting as one; -1: no limit */
  const char *usage;
  const char *help;
};

static const struct verb verbs[] = {
    {"create", verb_create, opts_create, 1, 2,
     "create NAME [--table TABLE | FILE | -i|--image FORMAT:PATH] [-r|--readonly]\n"
     "           [-u|--uuid UUID] [-n|--notable] [-a|--attach]\n"
     "  udm create --concise [NAME,UUID,,FLAGS,TABLE[,TABLE...][;...]]",
     "Create device NAME and make TABLE (from --table, FILE, or standard input) its\n"
     "live table.  With --notable the device is created without a table.  With\n"
     "--attach it is also attached as a kernel block device, whose path is printed\n"
     "(the device is removed again if it cannot be attached).  With --image the\n"
     "table is a linear mapping of the whole image (qcow2:PATH, udmz:PATH, a raw\n"
     "path; see 'udm image formats').  With --concise, creates the devices of a\n"
     "list in dmsetup's concise format (as 'udm table --concise' prints it; from\n"
     "the argument or standard input); the minor field must be empty.\n"
     "Example: udm create data --table '0 2048 linear /srv/disk.img 0'\n"
     "         udm create vm --image qcow2:/srv/vm.qcow2 --readonly --attach\n"
     "         udm create --concise 'a,,,rw,0 8 zero;b,,,ro,0 8 linear udm:a 0'"},
    {"remove", verb_remove, opts_remove, 1, -1, "remove [-f|--force] NAME...",
     "Remove devices.  An open or attached device is refused unless --force, which\n"
     "first detaches it and makes its I/O fail.  A device used by another device's\n"
     "table is never removed.\n"
     "Example: udm remove data"},
    {"remove_all", verb_remove_all, opts_force, 0, 0, "remove_all [-f|--force]",
     "Remove every device that nothing holds open, devices stacked on others first.\n"
     "Each device that stays is named on standard error, with the reason.  With\n"
     "--force, the tables of the devices left are first replaced by error tables\n"
     "and the devices removed forcibly (attached ones are detached), as dmsetup\n"
     "does; 'Unable to remove N device(s).' counts what still stays.\n"
     "Example: udm remove_all --force"},
    {"load", verb_load, opts_load, 1, 2, "load NAME [--table TABLE | FILE]",
     "Load TABLE as the inactive table of NAME; 'udm resume NAME' makes it live.\n"
     "A bad table is refused and the device keeps working.  'reload' is the same.\n"
     "Example: udm load data --table '0 4096 linear /srv/big.img 0' && udm resume data"},
    {"reload", verb_load, opts_load, 1, 2, "reload NAME [--table TABLE | FILE]",
     "Same as load."},
    {"clear", verb_clear, opts_select, 1, -1, "clear NAME...",
     "Drop the inactive table of each device (the live one stays).\n"
     "Example: udm clear data"},
    {"wipe_table", verb_wipe_table, opts_wipe, 1, -1,
     "wipe_table [-f|--force] [--noflush] [--nolockfs] NAME...",
     "Replace the live table of each device by an error table of the same size\n"
     "(load, then resume): every I/O fails from then on.\n"
     "Example: udm wipe_table data"},
    {"rename", verb_rename, opts_rename, 2, 2, "rename NAME NEW_NAME | rename NAME --setuuid UUID",
     "Give device NAME a new name (refused when a device has that name already), or\n"
     "with --setuuid, a uuid (only a device without one).  Tables stacked on the\n"
     "device keep using it and print its new name; its file in RUNTIME/dev/ and,\n"
     "when attached, its link RUNTIME/block/NAME follow, and the block device stays.\n"
     "Example: udm rename data olddata"},
    {"suspend", verb_suspend, opts_suspend, 1, -1, "suspend NAME...",
     "Wait for in-flight I/O on NAME and hold new I/O until resume.\n"
     "Example: udm suspend data"},
    {"resume", verb_resume, opts_suspend, 1, -1, "resume NAME...",
     "Make the inactive table live (if one was loaded) and let held I/O go.\n"
     "Example: udm resume data"},
    {"table", verb_table, opts_table, 0, -1,
     "table [--showkeys] [--inactive] [--target TYPE] [--concise] [--json] [NAME...]",
     "Print the table of each device as dmsetup does (prefixed with 'NAME: ' when\n"
     "listing all devices).  Keys stay hidden without --showkeys.  --target shows\n"
     "only the lines of that target type; --concise prints every device on one\n"
     "line, NAME,UUID,MINOR,rw|ro,TABLE,... separated by ';' (for create --concise).\n"
     "Example: udm table data > data.table"},
    {"status", verb_status, opts_status, 0, -1,
     "status [--inactive] [--target TYPE] [--json] [NAME...]",
     "Print the status line of each target of each device, as dmsetup does.\n"
     "Example: udm status data"},
    {"measure", verb_measure, opts_status, 0, -1,
     "measure [--inactive] [--target TYPE] [--json] [NAME...]",
     "Print each target's IMA measurement text, as 'dmsetup measure' does:\n"
     "target_name=TYPE,target_version=X.Y.Z, then the kernel's key=value pairs\n"
     "ending in ';' (none for targets the kernel does not measure).  Devices are\n"
     "named as in 'udm table' where the kernel prints MAJOR:MINOR; keys never show.\n"
     "Example: udm measure data"},
    {"info", verb_info, opts_info, 0, -1,
     "info [--json] [NAME...]\n"
     "  udm info -c|-C|--columns [-o FIELD,...|+FIELD,...] [-O|--sort [-]FIELD,...]\n"
     "           [--noheadings] [--separator SEP] [--json] [NAME...]",
     "Print dmsetup's information block for each device, or with -c one row per\n"
     "device: the fields of -o (default name,major,minor,attr,open,segments,events,\n"
     "uuid; 'udm help -c' lists them), sorted by --sort.  attr is dmsetup's: (L)ive,\n"
     "(I)nactive, (s)uspended, (r)ead-only or read-(w)rite.\n"
     "Example: udm info -c -o name,attr --noheadings"},
    {"deps", verb_deps, opts_deps, 0, -1,
     "deps [-o devno|devname|blkdevname] [--inactive] [--json] [NAME...]",
     "List the devices each device's table uses: '(253, MINOR)' for udm devices,\n"
     "'(MAJOR, MINOR)' for block devices, the path for files; -o devname gives udm\n"
     "devices' names and block devices' kernel names, -o blkdevname the kernel name\n"
     "of an attached udm device's block device.\n"
     "Example: udm deps -o devname top"},
    {"ls", verb_ls, opts_ls, 0, 0,
     "ls [--target TYPE] [--tree] [-o OPTIONS] [--json]",
     "List devices as 'NAME<TAB>(MAJOR:MINOR)'; udm's major is always 253.\n"
     "--target lists those whose live table uses that target type; --tree draws\n"
     "which device uses which (-o ascii|utf|vt100,compact,inverted,notrunc,\n"
     "blkdevname,nodevice,active,open,rw,uuid as dmsetup); -o devname or blkdevname\n"
     "names the device instead of its number.\n"
     "Example: udm ls --tree"},
    {"message", verb_message, opts_select, 3, -1, "message NAME SECTOR MESSAGE...",
     "Send MESSAGE to the target holding SECTOR of NAME and print its reply.\n"
     "Example: udm message data 0 some-message"},
    {"wait", verb_wait, opts_wait, 1, 2, "wait [--noflush] [--progress] NAME [EVENT_NR]",
     "Sleep until the event number of NAME (see 'udm info') differs from EVENT_NR\n"
     "(default 0), as 'dmsetup wait' does: targets raise events when something\n"
     "needs attention.  Returns at once when it already differs; fails when the\n"
     "device is removed.  Prints nothing.  With --progress, wait instead until the\n"
     "work NAME's status reports as <done>/<total> (a mirror's resync) is complete,\n"
     "drawing a progress bar on stderr.\n"
     "Example: n=$(udm info data | awk '/^Event number/ {print $3}'); udm wait data \"$n\""},
    {"mknodes", verb_mknodes, opts_none, 0, 1, "mknodes [NAME]",
     "Make RUNTIME/block/NAME link to the block device of each attached device,\n"
     "and remove links of devices that are not attached (RUNTIME/dev/NAME, the\n"
     "analogue of /dev/mapper/NAME, always follows the devices by itself).\n"
     "Example: udm mknodes"},
    {"splitname", verb_splitname, opts_splitname, 1, 2,
     "splitname [-o FIELD,...] [--noheadings] [--separator SEP] [--json] NAME [SUBSYSTEM]",
     "Split an LVM device name into VG, LV and layer (SUBSYSTEM defaults to LVM;\n"
     "other subsystems' names are not split), as dmsetup does.\n"
     "Example: udm splitname vg0-lv--data"},
    {"udevcookies", verb_udevcookies, opts_json, 0, 0, "udevcookies [--json]",
     "List udev cookies in use: udm has no udev synchronisation, so none (dmsetup's\n"
     "heading only).  --noudevsync and --verifyudev are accepted by every verb.\n"
     "Example: udm udevcookies"},
    {"targets", verb_targets, opts_json, 0, 0, "targets [--json]",
     "List the target types udmd knows, with their versions.\nExample: udm targets"},
    {"target-version", verb_target_version, opts_json, 1, -1,
     "target-version [--json] TYPE...",
     "Print the version of each target type, as 'targets' does; an unknown type\n"
     "fails.\nExample: udm target-version linear"},
    {"version", verb_version, opts_json, 0, 0, "version [--json]",
     "Print the versions of udm (library) and of the running udmd (driver).\n"
     "Example: udm version"},
    {"apply", verb_apply, opts_apply, 0, 1, "apply [-n|--dry-run] [FILE]",
     "Bring the devices named in FILE (default /etc/udm/udmtab; udmtab(5)) to what\n"
     "it says: create what is missing, reload a device whose table differs, attach\n"
     "what should be attached, leave the rest (and devices it does not name) alone.\n"
     "A second apply changes nothing and says so.  A bad line is refused as\n"
     "FILE:LINE and nothing changes.  --dry-run prints the plan only.\n"
     "Example: udm apply --dry-run /etc/udm/udmtab"},
    {"attach", verb_attach, opts_none, 1, 1, "attach NAME",
     "Attach device NAME as a kernel block device (a loop device over the file\n"
     "RUNTIME/dev/NAME on Linux) and print its path; RUNTIME/block/NAME links to it.\n"
     "Read-only devices give read-only block devices.\n"
     "Example: mkfs.ext4 \"$(udm attach data)\""},
    {"detach", verb_detach, opts_none, 1, 1, "detach NAME",
     "Detach the block device of NAME.  A block device in use (mounted) is not\n"
     "detached: it goes when its last user closes it, and detach fails saying so.\n"
     "When udmd is not running, detaches what a dead daemon left attached to\n"
     "RUNTIME/dev/NAME.\n"
     "Example: umount /mnt && udm detach data"},
    {"uri", verb_uri, opts_none, 1, 1, "uri NAME",
     "Print the NBD URI of device NAME (nbd+unix:///NAME?socket=RUNTIME/nbd.sock).\n"
     "Example: nbdinfo \"$(udm uri data)\""},
    {"open", verb_open, opts_open, 2, 2,
     "open [--type luks|luks1|luks2|tcrypt|veracrypt|plain] [-d|--key-file FILE]\n"
     "           [--veracrypt-pim N] [--hidden] [--tcrypt-system] [-r|--readonly]\n"
     "           [-c CIPHER -s BITS --hash HASH -o OFFSET -p SKIP -b SIZE] SOURCE NAME",
     "Open the encrypted volume SOURCE as device NAME, as 'cryptsetup open' does.\n"
     "The passphrase is read from the terminal without echo, or as one line of\n"
     "standard input.  --key-file is a key file for LUKS and plain (- for standard\n"
     "input) and a TrueCrypt keyfile (or directory of keyfiles) for tcrypt and\n"
     "veracrypt.  A cipher cascade becomes NAME over NAME_1 over NAME_2.\n"
     "Example: udm open --type luks2 /srv/secret.img secret"},
    {"close", verb_close, opts_none, 1, 1, "close NAME",
     "Remove device NAME made by 'udm open' and the lower devices of its cascade.\n"
     "Example: udm close secret"},
};

static const struct verb run_verb = {
    "run", NULL, opts_none, 0, -1,
    "run --table NAME=TABLE [--table NAME=TABLE...] [-r|--readonly] [-a|--attach NAME...]\n"
    "           -- COMMAND [ARG...]",
    "Start a private udmd in a new temporary runtime directory, create the devices,\n"
    "run COMMAND with $uri (NBD URI of the first device) and $UDM_RUNTIME_DIR set,\n"
    "then tear everything down.  Exits with COMMAND's status.  --attach NAME (may be\n"
    "repeated) attaches device NAME as a block device; $dev is the first one's path.\n"
    "Block devices are detached after COMMAND, before the devices are removed.\n"
    "Example: udm run --table d='0 2048 zero' -- sh -c 'nbdinfo \"$uri\"'\n"
    "         udm run --table d='0 262144 linear /srv/disk.img 0' --attach d -- \\\n"
    "             sh -c 'mkfs.ext4 -q \"$dev\"'"};

static void usage(FILE *f)
{
  fprintf(f, "Usage: udm VERB [OPTIONS] [ARGS]\n       udm --help | --version\n\nVerbs:\n");
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    fprintf(f, "  udm %s\n", verbs[i].usage);
  fprintf(f, "  udm %s\n", run_verb.usage);
  fprintf(f, "  udm image formats|info|verify|table|convert ...  (disk images: udm-image --help)\n");
  fprintf(f, "\n'udm VERB --help' explains a verb; see also udm(8).\n");
}

static void verb_help(const struct verb *v)
{
  printf("Usage: udm %s\n\n%s\n", v->usage, v->help);
}

bool cli_opt_set(const struct cli_args *a, const char *name)
{
  for (int i = 0; a->opts[i].name; i++)
    if (strcmp(a->opts[i].name, name) == 0)
      return a->set[i];
  return false;
}

const char *cli_opt_val(const struct cli_args *a, const char *name)
{
  for (int i = 0; a->opts[i].name; i++)
    if (strcmp(a->opts[i].name, name) == 0)
      return a->val[i];
  return NULL;
}

/*
 * Options may come before or after the positional arguments, as dmsetup
 * allows; "--" ends them.  Returns 0, PARSE_HELP, EXIT_USAGE or EXIT_FAIL.
 */
#define PARSE_HELP (-1)
static int parse_args(const struct verb *v, int argc, char **argv, struct cli_args *a)
{
  memset(a, 0, sizeof *a);
  a->opts = v->opts;
  a->pos = calloc((size_t)argc + 2, sizeof *a->pos); /* room for a selected device */
  if (!a->pos) {
    cli_error("out of memory");
    return EXIT_FAIL;
  }
  bool only_pos = false;
  for (int i = 0; i < argc; i++) {
    char *w = argv[i];
    if (only_pos || w[0] != '-' || strcmp(w, "-") == 0) {
      a->pos[a->npos++] = w;
      continue;
    }
    if (strcmp(w, "--") == 0) {
      only_pos = true;
      continue;
    }
    if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0)
      return PARSE_HELP;
    /* dmsetup's udev options: udm has no udev to synchronise with. */
    if (strcmp(w, "--noudevsync") == 0 || strcmp(w, "--verifyudev") == 0 ||
        strcmp(w, "--noudevrules") == 0)
      continue;
    /* dmsetup spells --columns -c or -C. */
    if (strcmp(w, "-C") == 0)
      w = (char *)"-c";
    int k = -1;
    const char *inline_val = NULL;
    for (int j = 0; v->opts[j].name; j++) {
      size_t n = strlen(v->opts[j].name);
      if (w[1] == '-' && strncmp(w + 2, v->opts[j].name, n) == 0 &&
          (w[2 + n] == '\0' || (w[2 + n] == '=' && v->opts[j].has_arg))) {
        k = j;
        inline_val = w[2 + n] == '=' ? w + 3 + n : NULL;
        break;
      }
      if (w[1] != '-' && v->opts[j].letter && w[1] == v->opts[j].letter && w[2] == '\0') {
        k = j;
        break;
      }
    }
    if (k < 0) {
      cli_error("%s: unknown option '%s' (see udm %s --help)", v->name, w, v->name);
      return EXIT_USAGE;
    }
    a->set[k] = true;
    if (v->opts[k].has_arg) {
      if (!inline_val && i + 1 == argc) {
        cli_error("%s: option '%s' needs a value", v->name, w);
        return EXIT_USAGE;
      }
      a->val[k] = inline_val ? inline_val : argv[++i];
    }
  }
  return 0;
}

static int check_count(const struct verb *v, const struct cli_args *a)
{
  if (a->npos < v->min_args || (v->max_args >= 0 && a->npos > v->max_args)) {
    cli_error("%s: wrong number of arguments; usage: udm %s", v->name, v->usage);
    return EXIT_USAGE;
  }
  return 0;
}

/* Verbs that take -u UUID / -j MAJOR -m MINOR in place of the device name. */
static bool selects(const struct verb *v)
{
  for (int j = 0; v->opts[j].name; j++)
    if (strcmp(v->opts[j].name, "major") == 0)
      return true;
  return false;
}

/* The verb's function, or another for an option that changes what it does. */
static int dispatch(const struct verb *v, struct cli *c, struct cli_args *a)
{
  if (selects(v)) {
    char name[256];
    bool selected;
    if (cli_select_device(c, a, name, sizeof name, &selected) < 0)
      return EXIT_FAIL;
    if (selected) {
      memmove(a->pos + 1, a->pos, (size_t)a->npos * sizeof *a->pos);
      a->pos[0] = strdup(name);
      a->npos++;
      if (!a->pos[0]) {
        cli_error("out of memory");
        return EXIT_FAIL;
      }
      a->selected = true;
    }
  }
  /* create --concise takes its list as the argument or on standard input. */
  if (!strcmp(v->name, "create") && cli_opt_set(a, "concise"))
    return verb_create_concise(c, a);
  int r = check_count(v, a);
  if (r)
    return r;
  if (!strcmp(v->name, "info") && cli_opt_set(a, "columns"))
    return verb_info_columns(c, a);
  if (!strcmp(v->name, "info") && (cli_opt_set(a, "options") || cli_opt_set(a, "sort") ||
                                   cli_opt_set(a, "noheadings") ||
                                   cli_opt_set(a, "separator"))) {
    cli_error("info: -o, --sort, --noheadings and --separator go with -c (columns)");
    return EXIT_USAGE;
  }
  if (!strcmp(v->name, "ls") && cli_opt_set(a, "tree")) {
    if (cli_opt_set(a, "target")) {
      cli_error("ls: --tree and --target exclude each other");
      return EXIT_USAGE;
    }
    return verb_ls_tree(c, a);
  }
  if (!strcmp(v->name, "table") && cli_opt_set(a, "concise")) {
    if (cli_opt_set(a, "json")) {
      cli_error("table: --concise and --json exclude each other");
      return EXIT_USAGE;
    }
    return verb_table_concise(c, a);
  }
  return v->fn(c, a);
}

/*
 * dmsetup takes its options before the verb too (dmsetup --noudevsync
 * remove NAME): move the first word that names a verb to the front, the
 * options before it going after it, where each verb parses them.
 */
static void verb_first(int argc, char **argv)
{
  if (argc < 3 || argv[1][0] != '-' || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
    return;
  for (int k = 2; k < argc; k++) {
    if (!strcmp(argv[k], "--"))
      return;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
      if (!strcmp(verbs[i].name, argv[k])) {
        char *verb = argv[k];
        memmove(argv + 2, argv + 1, (size_t)(k - 1) * sizeof *argv);
        argv[1] = verb;
        return;
      }
  }
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  verb_first(argc, argv);
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
    if (argc > 2 && (!strcmp(argv[2], "-c") || !strcmp(argv[2], "-C") ||
                     !strcmp(argv[2], "--columns"))) {
      cli_print_fields();
      return EXIT_OK;
    }
    if (argc > 2 && strcmp(name, "help") == 0) {
      for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(verbs[i].name, argv[2]) == 0) {
          verb_help(&verbs[i]);
          return EXIT_OK;
        }
      if (strcmp(argv[2], "run") == 0) {
        verb_help(&run_verb);
        return EXIT_OK;
      }
    }
    usage(stdout);
    return EXIT_OK;
  }
  if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
    printf("udm %s\n", UDM_VERSION_STRING);
    return EXIT_OK;
  }
  if (strcmp(name, "image") == 0) {
    /* Image tools live in their own program: udm image ARGS = udm-image ARGS. */
    char prog[PATH_MAX];
    if (cli_find_program("udm-image", "UDM_IMAGE", "tools/udm-image", prog,
                         sizeof prog) < 0) {
      cli_error("image: cannot find the udm-image program (set $UDM_IMAGE)");
      return EXIT_FAIL;
    }
    argv[1] = prog;
    execv(prog, argv + 1);
    cli_error("image: cannot run %s: %s", prog, strerror(errno));
    return EXIT_FAIL;
  }
  if (strcmp(name, "run") == 0) {
    if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
      verb_help(&run_verb);
      return EXIT_OK;
    }
    return verb_run(argc - 2, argv + 2);
  }
  const struct verb *v = NULL;
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    if (strcmp(verbs[i].name, name) == 0)
      v = &verbs[i];
  /* dmsetup verbs udm does not offer, and why (docs/cli.md). */
  static const struct {
    const char *verb, *why;
  } absent[] = {
      {"stats", "udm keeps no I/O statistics"},
      {"mangle", "udm device names need no mangling: they are not /dev nodes"},
      {"setgeometry", "udm devices have no disk geometry"},
      {"udevcreatecookie", "udm has no udev"},
      {"udevreleasecookie", "udm has no udev"},
      {"udevflags", "udm has no udev"},
      {"udevcomplete", "udm has no udev"},
      {"udevcomplete_all", "udm has no udev"},
  };
  for (size_t i = 0; !v && i < sizeof absent / sizeof absent[0]; i++)
    if (strcmp(absent[i].verb, name) == 0) {
      cli_error("%s: not offered: %s", name, absent[i].why);
      return EXIT_USAGE;
    }
  if (!v) {
    cli_error("unknown verb '%s' (see udm --help)", name);
    return EXIT_USAGE;
  }
  struct cli_args a;
  int r = parse_args(v, argc - 2, argv + 2, &a);
  if (r == PARSE_HELP) {
    verb_help(v);
    r = EXIT_OK;
  } else if (r == 0) {
    struct cli c = {.fd = -1};
    r = dispatch(v, &c, &a);
    cli_disconnect(&c);
  }
  if (a.selected)
    free(a.pos[0]);
  free(a.pos);
  return r;
}
