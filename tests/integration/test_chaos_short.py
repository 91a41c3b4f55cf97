"""The chaos test, short version (tests/chaos/chaos.py --short): 300
messages while workers and the supervisor are killed, the configuration
is reloaded and the home's filesystem (a tmpfs) fills up and empties
twice; every message must end in exactly one outcome (SPEC §5), no agent
may run again after it succeeded (unless a kill came in between), with no
temporary file, env-file or stray process left. Mounting the tmpfs needs
root: run as another user, it goes without the full disk (--disk-full 0). chaos.py does the
checking and prints one line per check; here only its exit status counts,
and its output is shown when it fails. CHAOS_SEED repeats a run (the seed
is in the output); CHAOS_ARGS adds options."""
import os
import subprocess
import sys
from pathlib import Path

from conftest import BIN

CHAOS = Path(__file__).resolve().parent.parent / "chaos" / "chaos.py"


def test_chaos_short():
    env = dict(os.environ)
    env["CLAWVISOR_BIN"] = BIN
    cmd = [sys.executable, str(CHAOS), "--short"]
    if os.geteuid() != 0:
        cmd += ["--disk-full", "0"]
    if os.environ.get("CHAOS_SEED"):
        cmd += ["--seed", os.environ["CHAOS_SEED"]]
    # E.g. CHAOS_ARGS="--duration-bound 300" for a slow (sanitizer) build.
    cmd += os.environ.get("CHAOS_ARGS", "").split()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env,
                           timeout=300)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(
            e.stdout, bytes) else (e.stdout or "")
        raise AssertionError(f"chaos.py --short ran over 300 s:\n{out}")
    assert r.returncode == 0, f"chaos.py --short failed:\n{r.stdout}"
