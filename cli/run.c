/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udm run: captive mode, as nbdkit's --run.  A private udmd in a fresh
 * temporary runtime directory, the devices created (and attached as block
 * devices with --attach NAME), COMMAND run with $uri, $dev and
 * $UDM_RUNTIME_DIR set, then everything torn down: block devices first.
 * The exit status is COMMAND's (128+N when a signal N killed it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "runtime.h"

#define DAEMON_TIMEOUT_MS 10000

struct run_table {
  char *name; /* points into argv, cut at '=' */
  const char *text;
};

static void sleep_ms(long ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Wait for pid up to ms milliseconds; 1 when it has not exited. */
static int wait_bounded(pid_t pid, int *status, long ms)
{
  for (long waited = 0;; waited += 10) {
    pid_t w = waitpid(pid, status, WNOHANG);
    if (w == pid)
      return 0;
    if (w < 0 && errno != EINTR)
      return -1;
    if (waited >= ms)
      return 1;
    sleep_ms(10);
  }
}

static pid_t start_private_daemon(const char *dir)
{
  char udmd[PATH_MAX];
  if (cli_find_udmd(udmd, sizeof udmd) < 0) {
    cli_error("run: cannot find udmd next to udm");
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    cli_error("run: fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
      dup2(null, STDOUT_FILENO);
    }
    setenv("UDM_RUNTIME_DIR", dir, 1);
    execl(udmd, "udmd", "-f", (char *)NULL);
    fprintf(stderr, "udm: run: cannot run %s: %s\n", udmd, strerror(errno));
    _exit(127);
  }
  return pid;
}

/* Connect to the private daemon once it answers; -1 if it died or hung. */
static int connect_private(struct cli *c, pid_t pid)
{
  for (long waited = 0; waited < DAEMON_TIMEOUT_MS; waited += 10) {
    int fd = cli_connect_socket(c->dir);
    if (fd >= 0) {
      if (cli_hello(fd) < 0) {
        close(fd);
        return -1;
      }
      c->fd = fd;
      return 0;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      cli_error("run: the private udmd exited before it was ready");
      return -2; /* reaped */
    }
    sleep_ms(10);
  }
  cli_error("run: the private udmd did not answer within %d seconds",
            DAEMON_TIMEOUT_MS / 1000);
  return -1;
}

static int create_devices(struct cli *c, struct run_table *t, int n, bool readonly)
{
  for (int i = 0; i < n; i++) {
    struct udm_msg req, resp;
    udm_msg_init(&req);
    udm_msg_init(&resp);
    int r = udm_msg_add(&req, "op", "create");
    if (r == 0)
      r = udm_msg_add(&req, "name", t[i].name);
    if (r == 0 && readonly)
      r = udm_msg_add(&req, "readonly", "1");
    if (r == 0)
      r = udm_msg_add(&req, "table", t[i].text);
    if (r < 0)
      cli_error("out of memory");
    else
      r = cli_call(c, &req, &resp);
    udm_msg_free(&req);
    udm_msg_free(&resp);
    if (r < 0)
      return -1;
  }
  return 0;
}

/* Attach each named device; $dev is the first one's block device. */
static int attach_devices(struct cli *c, char **names, int n, int *attached)
{
  for (int i = 0; i < n; i++) {
    char devpath[256];
    if (cli_attach(c, names[i], devpath, sizeof devpath) < 0)
      return -1;
    ++*attached;
    if (i == 0)
      setenv("dev", devpath, 1);
  }
  return 0;
}

/* Detach what was attached, on a new connection (the command has run). */
static int detach_devices(struct cli *c, char **names, int n)
{
  if (n == 0)
    return 0;
  int fd = cli_connect_socket(c->dir);
  if (fd < 0) {
    cli_error("run: cannot reach the private udmd to detach: %s", strerror(-fd));
    return -1;
  }
  if (cli_hello(fd) < 0) {
    close(fd);
    return -1;
  }
  c->fd = fd;
  int r = 0;
  for (int i = n; i-- > 0;)
    if (cli_detach(c, names[i]) < 0)
      r = -1;
  cli_disconnect(c);
  return r;
}

static int run_command(char **cmd)
{
  pid_t pid = fork();
  if (pid < 0) {
    cli_error("run: fork: %s", strerror(errno));
    return EXIT_FAIL;
  }
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    execvp(cmd[0], cmd);
    fprintf(stderr, "udm: run: %s: %s\n", cmd[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  /* Like system(): the terminal's ^C is for COMMAND; we clean up after it. */
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) {
      cli_error("run: waitpid: %s", strerror(errno));
      return EXIT_FAIL;
    }
  if (WIFEXITED(st))
    return WEXITSTATUS(st);
  return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : EXIT_FAIL;
}

static void stop_daemon(pid_t pid)
{
  int st;
  kill(pid, SIGTERM);
  if (wait_bounded(pid, &st, DAEMON_TIMEOUT_MS) == 1) {
    cli_error("run: the private udmd did not stop; killing it");
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
}

/* The daemon removes its sockets; remove what remains and the directory. */
static void remove_runtime_dir(const char *dir)
{
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      struct stat st;
      if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
          lstat(path, &st) < 0)
        continue;
      if (S_ISDIR(st.st_mode))
        rmdir(path);
      else
        unlink(path);
    }
    closedir(d);
  }
  if (rmdir(dir) < 0)
    cli_error("run: cannot remove %s: %s", dir, strerror(errno));
}

int verb_run(int argc, char **argv)
{
  struct run_table *tables = calloc((size_t)argc + 1, sizeof *tables);
  char **attach = calloc((size_t)argc + 1, sizeof *attach);
  int ntables = 0, nattach = 0, attached = 0, i;
  bool readonly = false;
  if (!tables || !attach) {
    cli_error("out of memory");
    free(tables);
    free(attach);
    return EXIT_FAIL;
  }
  for (i = 0; i < argc; i++) {
    const char *w = argv[i];
    const char *spec = NULL;
    if (strcmp(w, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(w, "--table") == 0 || strcmp(w, "-t") == 0) {
      if (i + 1 == argc) {
        cli_error("run: --table needs NAME=TABLE");
        goto usage;
      }
      spec = argv[++i];
    } else if (strncmp(w, "--table=", 8) == 0) {
      spec = w + 8;
    } else if (strcmp(w, "--readonly") == 0 || strcmp(w, "-r") == 0) {
      readonly = true;
      continue;
    } else if (strcmp(w, "--attach") == 0 || strcmp(w, "-a") == 0) {
      if (i + 1 == argc) {
        cli_error("run: --attach needs the NAME of a device");
        goto usage;
      }
      attach[nattach++] = argv[++i];
      continue;
    } else if (strncmp(w, "--attach=", 9) == 0) {
      attach[nattach++] = (char *)w + 9;
      continue;
    } else if (w[0] == '-') {
      cli_error("run: unknown option '%s' (see udm run --help)", w);
      goto usage;
    } else {
      break; /* the command starts here */
    }
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec) {
      cli_error("run: --table '%s': expected NAME=TABLE", spec);
      goto usage;
    }
    tables[ntables].name = strndup(spec, (size_t)(eq - spec));
    tables[ntables].text = eq + 1;
    ntables++;
  }
  char **cmd = argv + i;
  if (i >= argc) {
    cli_error("run: no command given; usage: udm run --table NAME=TABLE... -- COMMAND");
    goto usage;
  }

  struct cli c = {.fd = -1};
  const char *tmp = getenv("TMPDIR");
  snprintf(c.dir, sizeof c.dir, "%s/udm-run.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int status = EXIT_FAIL;
  if (!mkdtemp(c.dir)) {
    cli_error("run: cannot create a runtime directory in %s: %s", tmp ? tmp : "/tmp",
              strerror(errno));
    goto out;
  }
  pid_t daemon = start_private_daemon(c.dir);
  if (daemon > 0) {
    int r = connect_private(&c, daemon);
    if (r == 0 && create_devices(&c, tables, ntables, readonly) == 0 &&
        attach_devices(&c, attach, nattach, &attached) == 0) {
      cli_disconnect(&c);
      setenv("UDM_RUNTIME_DIR", c.dir, 1);
      if (ntables > 0) {
        char *uri = cli_uri(c.dir, tables[0].name);
        if (uri)
          setenv("uri", uri, 1);
        free(uri);
      }
      fflush(NULL);
      status = run_command(cmd);
    }
    cli_disconnect(&c);
    /* Before the daemon stops: a block device in use would be left to autoclear. */
    if (r == 0 && detach_devices(&c, attach, attached) < 0 && status == 0)
      status = EXIT_FAIL;
    if (r != -2)
      stop_daemon(daemon);
  }
  remove_runtime_dir(c.dir);
out:
  for (int k = 0; k < ntables; k++)
    free(tables[k].name);
  free(tables);
  free(attach);
  return status;
usage:
  for (int k = 0; k < ntables; k++)
    free(tables[k].name);
  free(tables);
  free(attach);
  return EXIT_USAGE;
}
