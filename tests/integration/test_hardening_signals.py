"""
Signals and stray processes (issue 12, items 2 and 7, and the suspected
escape from the process group).

- A signal to the process group of `serve -f` (Ctrl-C, a closed terminal,
  timeout(1), `kill -SIG -PGID`) reaches the supervisor alone: the workers
  take orders only from it. SIGINT and SIGTERM are then a graceful stop
  (in-flight work gets kill_grace_seconds, then goes back to incoming/
  un-failed), SIGHUP a reload that leaves in-flight work alone.
- A signal during start-up (the container sweep, crash recovery) does not
  kill the supervisor: it is acted on once the loop runs.
- A host-mode invocation that escapes its process group (setsid) does not
  outlive the invocation.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (BIN, TIME_SCALE, pid_alive, proc_cmdline, tagged_pids,
                      wait_for)


def start_in_group(h, wrapper=(), timeout=10):
    """`serve -f` (under wrapper, a command such as timeout(1)) in a
    process group of its own, as a shell starts a foreground job: the pid
    of what it starts is the group's id."""
    n = len(h.procs)
    err = open(h.path / f"daemon-{n}.stderr", "wb")
    since = time.time() * 1000 - 1
    p = subprocess.Popen([*wrapper, BIN, "--home", str(h.path), "serve",
                          "-f"], stdin=subprocess.DEVNULL, stdout=err,
                         stderr=err, env=h.env(), cwd=str(h.path),
                         process_group=0)
    err.close()
    p.stderr_path = h.path / f"daemon-{n}.stderr"
    h.procs.append(p)
    h.proc = p

    def ready():
        if p.poll() is not None:
            raise AssertionError(f"clawvisor exited with {p.returncode}:\n"
                                 + p.stderr_path.read_text(errors="replace"))
        return any((wrapper or e.get("pid") == p.pid) and
                   e["timestamp"] >= since
                   for e in h.events("processor_start"))
    wait_for(ready, timeout, what="processor_start")
    assert os.getpgid(p.pid) == p.pid
    return p


def marked_agent(seconds):
    """A command agent that writes its pid to `pid` in its working
    directory, sleeps, then replies."""
    return {"provider": "command",
            "command": ["sh", "-c", 'echo $$ > pid.tmp && mv pid.tmp pid; '
                        f'sleep {seconds}; echo "done: $1"', "sh",
                        "{message}"]}


def wait_agent(h, agent):
    f = h.workdir(agent) / "pid"
    return int(wait_for(lambda: f.exists() and f.read_text().strip(), 15,
                        what="the agent to start"))


def errors_for(h, mid):
    return [e for e in h.events("sandbox_invocation_error")
            if e.get("messageId") == mid]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["INT", "TERM"])
def test_group_stop_lets_in_flight_work_finish(homes, sig):
    """The stop waits kill_grace_seconds for what runs: a 3 s invocation
    started just before a group SIGINT/SIGTERM finishes and answers. Had
    the workers died with the signal, it would be killed at once."""
    h = homes({"agents": {"cmd": marked_agent(3)},
               "sandbox": {"kill_grace_seconds": 30, "max_attempts": 1}},
              start=False)
    p = start_in_group(h)
    workers = h.wait_workers(4)
    mid = h.drop("finish me", agent="cmd")
    agent = wait_agent(h, "cmd")
    os.killpg(p.pid, sig)
    assert p.wait(40 * TIME_SCALE) == 0
    r = h.wait_response(mid, timeout=1)
    assert r["message"] == "done: finish me"
    assert h.dead_letters(mid) == [] and errors_for(h, mid) == []
    assert not pid_alive(agent)
    assert not any(pid_alive(w) for w in workers)
    for sub in ("incoming", "processing", "deferred", "dead-letter"):
        assert h.files(sub) == [], sub
    assert "exiting: SIGTERM" not in h.log()


def test_timeout_command_stops_gracefully(homes):
    """`timeout 600 clawvisor serve -f`: when its time is up, or when it is
    sent SIGTERM itself, timeout(1) sends SIGTERM (and SIGCONT) to the
    daemon and to its whole process group; it is sent SIGTERM here, so as
    not to depend on how long the start takes. The in-flight invocation
    still gets its grace period, finishes and answers."""
    h = homes({"agents": {"cmd": marked_agent(3)},
               "sandbox": {"kill_grace_seconds": 30, "max_attempts": 1}},
              start=False)
    p = start_in_group(h, wrapper=["timeout", "600"])
    mid = h.drop("time is up", agent="cmd")
    wait_agent(h, "cmd")
    p.send_signal(signal.SIGTERM)
    assert p.wait(40 * TIME_SCALE) == 0
    r = h.wait_response(mid, timeout=1)
    assert r["message"] == "done: time is up"
    assert h.dead_letters(mid) == [] and errors_for(h, mid) == []
    assert "stopping (SIGTERM)" in h.log()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["INT", "TERM"])
def test_group_stop_hands_back_after_the_grace(homes, sig):
    """What outlasts the grace is killed then, not at once, and goes back
    to incoming/ as it was claimed: no attempt, no error, no dead letter,
    no reply; with max_attempts 1 the next start answers it."""
    h = homes({"agents": {"cmd": marked_agent(60)},
               "sandbox": {"kill_grace_seconds": 3, "max_attempts": 1}},
              start=False)
    p = start_in_group(h)
    mid = h.drop("hand me back", agent="cmd")
    name = f"discord_{mid}.json"
    agent = wait_agent(h, "cmd")
    original = (h.q / "processing" / name).read_bytes()
    t0 = time.monotonic()
    os.killpg(p.pid, sig)
    time.sleep(1)
    assert pid_alive(agent), "the agent was killed before the grace ended"
    assert p.poll() is None
    assert p.wait(30 * TIME_SCALE) == 0
    assert time.monotonic() - t0 >= 2.5
    assert not pid_alive(agent)
    assert (h.q / "incoming" / name).read_bytes() == original
    assert "attempt" not in json.loads(original)
    for sub in ("processing", "deferred", "dead-letter", "outgoing"):
        assert h.files(sub) == [], sub
    assert errors_for(h, mid) == []
    assert f"{name} handed back to incoming/" in h.log()

    (h.workdir("cmd") / "pid").unlink()
    h.write_settings(json.loads(json.dumps(
        {**h.settings, "agents": {"cmd": marked_agent(0)}})))
    h.start()
    assert h.wait_response(mid)["message"] == "done: hand me back"
    assert h.dead_letters(mid) == []


def test_group_hangup_reloads_and_leaves_work_alone(homes):
    """A closed terminal (the shell's SIGHUP to the job's group) is a
    reload for the supervisor, and nothing for the workers: the running
    invocation finishes and answers, on its first and only attempt."""
    h = homes({"agents": {"cmd": marked_agent(3)},
               "sandbox": {"max_attempts": 1}}, start=False)
    p = start_in_group(h)
    workers = h.wait_workers(4)
    mid = h.drop("hang on", agent="cmd")
    wait_agent(h, "cmd")
    os.killpg(p.pid, signal.SIGHUP)
    os.killpg(p.pid, signal.SIGCONT)    # as the shell sends it
    ev = wait_for(lambda: h.events("config_reloaded"), 10,
                  what="config_reloaded")
    assert ev[-1]["generation"] == 2
    r = h.wait_response(mid, timeout=20)
    assert r["message"] == "done: hang on"
    assert h.dead_letters(mid) == [] and errors_for(h, mid) == []
    assert len(h.events("sandbox_invocation_start")) == 1
    assert p.poll() is None
    assert h.worker_pids() == workers


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT,
                                 signal.SIGHUP], ids=["TERM", "INT", "HUP"])
def test_worker_ignores_signals_from_outside(homes, sig):
    """A worker takes orders from its supervisor only (its socket): a
    signal from anyone else leaves it and its invocation running. When the
    supervisor is truly gone, the worker still cleans up and exits."""
    h = homes({"agents": {"cmd": marked_agent(2)},
               "sandbox": {"max_attempts": 1}, "supervisor": {"workers": 1}})
    (worker,) = h.wait_workers(1)
    mid = h.drop("keep going", agent="cmd")
    agent = wait_agent(h, "cmd")
    os.kill(worker, sig)
    r = h.wait_response(mid, timeout=20)
    assert r["message"] == "done: keep going"
    assert errors_for(h, mid) == []
    assert h.worker_pids() == [worker]

    (h.workdir("cmd") / "pid").unlink()
    mid = h.drop("orphaned", agent="cmd")
    agent = wait_agent(h, "cmd")
    h.kill()
    wait_for(lambda: not pid_alive(worker) and not pid_alive(agent), 10,
             what="the worker and its job to go with the supervisor")


# -- start-up ---------------------------------------------------------------

FAKE_RUNTIME = """#!/bin/sh
# A container runtime: a slow `ps` (the start-up sweep), a slow `kill` (of
# a container that timed out), and a `run` that never ends by itself.
dir=$(dirname "$0")
case "$1" in
ps)
	: > "$dir/ps-started"
	sleep {ps_delay}
	;;
kill)
	: > "$dir/kill-started"
	sleep 2
	: > "$dir/kill-done"
	;;
run)
	exec sleep 60
	;;
esac
exit 0
"""


def fake_runtime_home(homes, ps_delay=0, sandbox=None, start=False):
    h = homes({"sandbox": {"mode": "docker", **(sandbox or {})},
               "agents": {"cmd": {"provider": "command",
                                  "command": ["true"]}}}, start=False)
    rt = h.path / "fake-runtime"
    rt.write_text(FAKE_RUNTIME.replace("{ps_delay}", str(ps_delay)))
    rt.chmod(0o755)
    s = json.loads(json.dumps(h.settings))
    s["sandbox"]["docker"] = {"runtime_command": str(rt)}
    h.write_settings(s)
    if start:
        h.start()
    return h


def slow_start_home(homes, delay):
    h = fake_runtime_home(homes, ps_delay=delay)
    h.marker = h.path / "ps-started"
    return h


def test_usr1_and_hup_during_startup(homes):
    """logrotate's SIGUSR1 and a SIGHUP while the container sweep runs:
    the daemon lives, then reopens its log and reloads."""
    h = slow_start_home(homes, 4)
    since = time.time() * 1000 - 1
    p = h.spawn()
    wait_for(h.marker.exists, 15, what="the container sweep")
    log = h.path / "logs" / "clawvisor.log"
    os.rename(log, log.with_suffix(".log.1"))    # as logrotate does
    p.send_signal(signal.SIGUSR1)
    p.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert p.poll() is None, f"died with {p.returncode}"
    wait_for(lambda: any(e.get("pid") == p.pid and e["timestamp"] >= since
                         for e in h.events("processor_start")),
             30, what="processor_start")
    ev = wait_for(lambda: h.events("config_reloaded"), 10,
                  what="config_reloaded")
    assert ev[-1]["generation"] == 2
    h.proc = p
    h.wait_workers(4)
    time.sleep(0.5)
    assert h.stop() == 0
    # Reopened: what was logged once the loop ran went to a new file.
    old, new = log.with_suffix(".log.1").read_text(), log.read_text()
    assert "stopped" in new and "stopped" not in old
    assert "SIGHUP: reloading" in old + new
    # Nothing died of the SIGUSR1 passed on to the workers just started.
    assert "killed by signal" not in old + new


def test_term_during_startup_stops_cleanly(homes):
    h = slow_start_home(homes, 3)
    p = h.spawn()
    h.proc = p
    wait_for(h.marker.exists, 15, what="the container sweep")
    p.send_signal(signal.SIGTERM)
    assert p.wait(30 * TIME_SCALE) == 0
    assert not (h.path / "run" / "clawvisor.pid").exists()
    assert "stopped" in h.log()


def test_signal_does_not_cut_a_container_kill_short(homes):
    """A handled signal (here logrotate's SIGUSR1, which the supervisor
    passes on) while a worker waits for `RUNTIME kill` of a container that
    timed out: the helper is not taken for timed out and killed, the kill
    completes."""
    h = fake_runtime_home(homes, start=True, sandbox={
        "timeout_seconds": 1, "kill_grace_seconds": 1, "max_attempts": 1})
    mid = h.drop("hello", agent="cmd")
    wait_for((h.path / "kill-started").exists, 15,
             what="the container kill")
    h.signal(signal.SIGUSR1)
    rec, _ = h.wait_dead(mid, timeout=20)
    assert "timed out" in rec["errorMessage"]
    assert (h.path / "kill-done").exists(), "the kill was cut short"


# -- processes that leave the process group ---------------------------------

def escaped(h):
    return [p for p in tagged_pids(h.tag)
            if proc_cmdline(p).strip() == "sleep 333"]


def test_escaped_process_killed_with_invocation(homes):
    h = homes({"agents": {"esc": {
        "provider": "command",
        "command": ["sh", "-c", "setsid -f sleep 333; sleep 1; echo hi"]}},
        "sandbox": {"max_attempts": 1}})
    mid = h.drop("go", agent="esc")
    assert h.wait_response(mid)["message"] == "hi"
    wait_for(lambda: not escaped(h), 5, what="sleep 333 to be gone")


def test_escaped_process_killed_on_timeout(homes):
    h = homes({"agents": {"esc": {
        "provider": "command",
        "command": ["sh", "-c", "setsid -f sleep 333; exec sleep 60"]}},
        "sandbox": {"max_attempts": 1, "timeout_seconds": 2,
                    "kill_grace_seconds": 1}})
    mid = h.drop("go", agent="esc")
    wait_for(lambda: escaped(h), 10, what="sleep 333 to start")
    rec, _ = h.wait_dead(mid, timeout=20)
    assert "timed out" in rec["errorMessage"]
    wait_for(lambda: not escaped(h), 5, what="sleep 333 to be gone")
