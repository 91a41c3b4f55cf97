"""
`clawvisor exec` runs an invocation "exactly as it runs a queued one"
(SPEC §10): the worker relays the child's pipes to the caller's stdout and
stderr (worker/relay.c), so sandbox.max_output_bytes bounds each stream
(the rest drained and dropped, the run marked truncated, the caller told
once on stderr, the child's status kept), the result is classified as a
queued run's (ok / transient / terminal in the event and the counters)
while exec's status stays the child's, and a timeout or a cancel ends the
run while the worker waits on a caller that does not read. Host and bwrap
modes, and the cap in docker mode on podman; docs/EXEC.md "Output caps"
and "Classification".
"""
import fcntl
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, TIME_SCALE, wait_for
from containers import engine  # noqa: F401 (fixture)
from test_exec import ex, exec_log, no_pid  # noqa: F401 (fixture)
from test_metrics import parse, val

CAP = 100000
MODES = ["host", "bwrap"]


def pattern(n, k):
    """As the fake's (exec/fake_cli.py)."""
    return bytes((i * k + i // 256) % 256 for i in range(n))


def metrics(h):
    r = subprocess.run([BIN, "--home", str(h.path), "metrics"],
                       capture_output=True, text=True,
                       timeout=30 * TIME_SCALE)
    assert r.returncode == 0, r.stderr
    return parse(r.stdout)[0]


def ends(h, n):
    wait_for(lambda: len(h.events("sandbox_invocation_end")) >= n,
             10 * TIME_SCALE, what=f"{n} sandbox_invocation_end event(s)")
    return h.events("sandbox_invocation_end")


def body(ev):
    return ev.get("data", ev) if isinstance(ev, dict) else ev


def notice(stream):
    return (f"clawvisor exec: {stream} truncated: the output past {CAP} "
            f"bytes was dropped (sandbox.max_output_bytes)\n").encode()


@pytest.mark.parametrize("mode", MODES)
def test_output_capped_per_stream(ex, mode):  # noqa: F811
    h = ex(mode, override={"sandbox": {"max_output_bytes": CAP}})
    # Over the cap on both streams: exactly CAP bytes of each through, in
    # order, then one line each on stderr; the run completes, status 0.
    r = h.run("claude", "spew", "300000", "250000")
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout == pattern(CAP, 7)
    assert r.stderr == pattern(CAP, 11) + notice("stdout") + \
        notice("stderr")
    ev = body(ends(h, 1)[-1])
    assert ev["exec"] is True and ev["outcome"] == "ok", ev
    assert ev["truncated"] is True
    assert ev["truncatedStreams"] == ["stdout", "stderr"]
    # Over on stdout only, stderr exactly at the cap: not cut, no word.
    r = h.run("claude", "spew", str(CAP + 1), str(CAP))
    assert r.returncode == 0
    assert r.stdout == pattern(CAP, 7)
    assert r.stderr == pattern(CAP, 11) + notice("stdout")
    ev = body(ends(h, 2)[-1])
    assert ev["truncatedStreams"] == ["stdout"]
    # Under the cap: nothing said, nothing marked.
    r = h.run("claude", "spew", "5000", "7")
    assert r.returncode == 0
    assert r.stdout == pattern(5000, 7) and r.stderr == pattern(7, 11)
    ev = body(ends(h, 3)[-1])
    assert ev["truncated"] is False and "truncatedStreams" not in ev
    # The child's status stays when its output was cut.
    r = h.run("claude", "spew", str(2 * CAP), "0")
    assert r.returncode == 0 and len(r.stdout) == CAP
    s = metrics(h)
    assert val(s, "clawvisor_invocations_total", agent="alpha", mode=mode,
               outcome="ok") == 4


@pytest.mark.parametrize("mode", MODES)
def test_classified_for_counters_status_stays_the_childs(ex, mode):  # noqa: F811,E501
    h = ex(mode)
    # What classify() retries in the queued path: transient.
    r = h.run("claude", "say", "1", "API Error: 529 Overloaded")
    assert r.returncode == 1
    assert r.stderr == b"API Error: 529 Overloaded\n"
    ev = body(ends(h, 1)[-1])
    assert ev["outcome"] == "transient" and ev["exitCode"] == 1, ev
    assert "Overloaded" in ev["error"]
    # What it does not retry: terminal; the status is still the child's.
    r = h.run("claude", "say", "3", "Invalid API key · Please run /login")
    assert r.returncode == 3
    ev = body(ends(h, 2)[-1])
    assert ev["outcome"] == "terminal", ev
    # Killed by a signal: transient, 128+N for the caller.
    r = h.run("claude", "kill")
    assert r.returncode == 128 + signal.SIGKILL
    assert body(ends(h, 3)[-1])["outcome"] == "transient"
    r = h.run("claude", "exit", "0")
    assert r.returncode == 0
    assert body(ends(h, 4)[-1])["outcome"] == "ok"
    s = metrics(h)
    got = {o: val(s, "clawvisor_invocations_total", agent="alpha",
                  mode=mode, outcome=o)
           for o in ("ok", "transient", "terminal")}
    assert got == {"ok": 1, "transient": 2, "terminal": 1}, got


def start_unread(h, *args):
    """exec with a stdout pipe nobody reads: the worker's relay waits on
    it once the pipe (and the child's) are full."""
    return subprocess.Popen([BIN, "--home", str(h.path), "exec", "--",
                             "claude", *args],
                            cwd=str(h.workspace / "alpha"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=h.env())


def child_gone(h, pid, mode):
    """The child's pid is bwrap's namespace's in bwrap mode: there, no
    process runs the fake with its arguments any more."""
    if mode == "host":
        return no_pid(pid)
    needle = f"{h.cli}/claude\0big\0".encode()
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    return False
        except (OSError, ValueError):
            continue
    return True


def stuck_in_relay(h, p):
    # The child started, wrote what fits and is blocked: not ended.
    wait_for(lambda: exec_log(h, "alpha"), 10 * TIME_SCALE,
             what="the child started")
    time.sleep(1)
    assert p.poll() is None
    assert not [x for x in exec_log(h, "alpha") if x[0] == "end"]
    return exec_log(h, "alpha")[0][4]


@pytest.mark.parametrize("mode", MODES)
def test_timeout_while_the_caller_does_not_read(ex, mode):  # noqa: F811
    h = ex(mode, override={"sandbox": {"timeout_seconds": 3}})
    p = start_unread(h, "big", "100")
    pid = stuck_in_relay(h, p)
    # The caller still does not read stdout; the timeout ends the run.
    t0 = time.monotonic()
    err = p.stderr.read()
    p.wait(30 * TIME_SCALE)
    print(f"exit {time.monotonic() - t0:.2f} s after the child stalled")
    assert p.returncode == 75, err
    assert b"timed out" in err
    wait_for(lambda: child_gone(h, pid, mode), 10 * TIME_SCALE,
             what="child gone")
    ev = body(ends(h, 1)[-1])
    assert ev["outcome"] == "transient"
    s = metrics(h)
    assert val(s, "clawvisor_invocations_total", agent="alpha", mode=mode,
               outcome="transient") == 1
    # The lane and the worker are free again.
    r = h.run("claude", "exit", "4")
    assert r.returncode == 4


@pytest.mark.parametrize("mode", MODES)
def test_cancel_while_the_caller_does_not_read(ex, mode):  # noqa: F811
    h = ex(mode)
    p = start_unread(h, "big", "100")
    pid = stuck_in_relay(h, p)
    p.send_signal(signal.SIGTERM)
    p.wait(30 * TIME_SCALE)
    assert p.returncode == 128 + signal.SIGTERM
    wait_for(lambda: child_gone(h, pid, mode), 10 * TIME_SCALE,
             what="child gone")
    ends(h, 1)
    assert os.listdir(h.path / "run" / "secrets") == []
    r = h.run("claude", "exit", "5")
    assert r.returncode == 5


def test_slow_reader_gets_everything_after_the_child_ended(ex):  # noqa: F811
    """The child is gone long before the caller reads (past the worker's
    2 s drain): what was in its pipe and the worker's still arrives."""
    h = ex()
    # The caller's pipe shrunk to one page: the rest waits in the worker
    # and in the child's pipe (16 pages of 4000-byte writes hold all of
    # it, so the child can end) while the caller does not read.
    rd, wr = os.pipe()
    fcntl.fcntl(wr, 1031, 4096)     # F_SETPIPE_SZ
    n = 60000
    p = subprocess.Popen([BIN, "--home", str(h.path), "exec", "--",
                          "claude", "spew", str(n), "100"],
                         cwd=str(h.workspace / "alpha"), stdout=wr,
                         stderr=subprocess.PIPE, env=h.env())
    os.close(wr)
    wait_for(lambda: [x for x in exec_log(h, "alpha") if x[0] == "end"],
             10 * TIME_SCALE, what="the child ended")
    time.sleep(3)
    assert p.poll() is None     # the worker still holds its output
    out = b""
    with os.fdopen(rd, "rb") as f:
        while True:
            b = f.read(65536)
            if not b:
                break
            out += b
    p.wait(30 * TIME_SCALE)
    err = p.stderr.read()
    assert p.returncode == 0, err
    assert out == pattern(n, 7) and err == pattern(100, 11)


def test_caller_closes_its_stdout(ex):  # noqa: F811
    """A reader that goes away (`| head -c`): the child sees a broken pipe
    as it would have writing there itself, and exec ends."""
    h = ex()
    rd, wr = os.pipe()
    p = subprocess.Popen([BIN, "--home", str(h.path), "exec", "--",
                          "claude", "big", "100"],
                         cwd=str(h.workspace / "alpha"), stdout=wr,
                         stderr=subprocess.PIPE, env=h.env())
    os.close(wr)
    got = os.read(rd, 10)
    assert got == b"x" * len(got) and got
    os.close(rd)
    p.wait(30 * TIME_SCALE)
    err = p.stderr.read()
    # Python's CLI: BrokenPipeError, exit 1 (SIGPIPE is ignored by it).
    assert p.returncode != 0 and b"BrokenPipe" in err, err
    ev = body(ends(h, 1)[-1])
    assert ev["outcome"] == "transient"


def test_line_delay_one_extra_hop(ex):  # noqa: F811
    """stream-json lines reach the caller as written (the figure is
    bench.py's; the bound here is generous)."""
    h = ex()
    p = subprocess.Popen([BIN, "--home", str(h.path), "exec", "--",
                          "claude", "lines", "20", "0.05"],
                         cwd=str(h.workspace / "alpha"),
                         stdout=subprocess.PIPE, env=h.env())
    delays = []
    lines = []

    def reader():
        for line in p.stdout:
            lines.append(line)
            t = __import__("json").loads(line).get("t")
            if t is not None:
                delays.append(time.time() - t)
    th = threading.Thread(target=reader)
    th.start()
    p.wait(60 * TIME_SCALE)
    th.join(10)
    assert p.returncode == 0 and len(lines) == 21
    delays.sort()
    print(f"line delay p50 {delays[len(delays) // 2] * 1000:.2f} ms, "
          f"max {delays[-1] * 1000:.2f} ms")
    assert delays[len(delays) // 2] < 0.25 * TIME_SCALE


def test_docker_mode_with_podman_capped(homes, engine, tmp_path):  # noqa: F811,E501
    """The cap in docker mode (podman): a `cat` command agent in the
    suite's image, its stdin from the caller, its stdout cut at the cap."""
    s = {"agents": {"cat": {"name": "Cat", "provider": "command",
                            "command": ["cat"]}},
         "sandbox": {"mode": "docker", "timeout_seconds": 60,
                     "kill_grace_seconds": 1, "max_output_bytes": CAP,
                     "runtime_pass_env": ["CLAWVISOR_TEST_TAG"],
                     "docker": {"runtime_command": "podman",
                                "image": engine.image, "network": "none",
                                "memory": "256m", "cpus": "1.0",
                                "pids_limit": 64, "user": "auto"}}}
    h = homes(s, start=False)
    h.settings["agents"] = s["agents"]
    h.write_settings(h.settings)
    (h.workspace / "cat").mkdir()
    h.start(env={"CONTAINERS_CONF": str(engine.conf), "DOCKER_HOST": ""})
    data = os.urandom(3 * CAP)
    r = subprocess.run([BIN, "--home", str(h.path), "exec", "--", "cat"],
                       cwd=str(h.workspace / "cat"), capture_output=True,
                       env=h.env(), input=data, timeout=120 * TIME_SCALE)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data[:CAP]
    assert r.stderr.endswith(notice("stdout")), r.stderr
    ev = body(ends(h, 1)[-1])
    assert ev["mode"] == "docker" and ev["truncatedStreams"] == ["stdout"]


def test_cap_said_is_the_runs_not_a_reloads(ex):  # noqa: F811
    """The notice and the reply's maxOutputBytes name the cap the run was
    cut at, even when a reload changes sandbox.max_output_bytes before the
    run ends."""
    h = ex("host", override={"sandbox": {"max_output_bytes": CAP}})
    out = {}

    def run():
        out["r"] = h.run("claude", "spewhold", str(CAP * 3),
                         str(3 * TIME_SCALE))
    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: not t.is_alive() or len(h.events(
        "sandbox_invocation_start")) >= 1, 10 * TIME_SCALE,
        what="the run started")
    assert t.is_alive(), out
    s = h.settings
    s["sandbox"]["max_output_bytes"] = CAP * 2
    h.write_settings(s)
    r = subprocess.run([BIN, "--home", str(h.path), "reload"],
                       capture_output=True, text=True,
                       timeout=30 * TIME_SCALE)
    assert r.returncode == 0 and "generation 2" in r.stdout, r
    t.join(60 * TIME_SCALE)
    r = out["r"]
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout == pattern(CAP, 7)
    assert r.stderr == b"over\n" + notice("stdout")
