# SPDX-License-Identifier: LGPL-2.1-or-later
"""The udm command line against a private udmd, for the tests that drive
`udm open`: a scratch folder holding the runtime directory, checks that
count failures, and the daemon's teardown."""
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

UDM, UDMD = os.environ["UDM"], os.environ["UDMD"]


class Harness:
    def __init__(self, prefix, timeout):
        self.failed = 0
        self.timeout = timeout
        self.work = tempfile.mkdtemp(prefix=prefix)
        os.environ["UDM_RUNTIME_DIR"] = os.path.join(self.work, "rt")
        os.environ["UDMD"] = UDMD

    def check(self, name, cond, detail=""):
        print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)))
        self.failed += 0 if cond else 1

    def udm(self, *args, stdin=b""):
        """(status, stdout, stderr); a run past the timeout is status 124."""
        try:
            r = subprocess.run([UDM, *args], input=stdin, capture_output=True,
                               timeout=self.timeout)
        except subprocess.TimeoutExpired:  # an unbounded KDF: a failure, not a hang
            return 124, "", "timed out after %d s" % self.timeout
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def devices(self):
        return self.udm("ls")[1].strip()

    def finish(self):
        """Stop the daemon, remove the scratch folder; the exit status."""
        lock = os.path.join(self.work, "rt", "udmd.lock")
        try:
            os.kill(int(open(lock).read().strip()), signal.SIGTERM)
            time.sleep(0.3)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.work, ignore_errors=True)
        print("%d failed" % self.failed)
        return 1 if self.failed else 0


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()
