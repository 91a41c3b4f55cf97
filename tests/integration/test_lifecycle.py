"""Start, refuse, reload, stop (SPEC §2, §3, §7)."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BIN, TIME_SCALE, pid_alive, wait_for


def test_second_serve_refused(home):
    p2 = home.spawn()
    try:
        rc = p2.wait(10)
    except subprocess.TimeoutExpired:
        p2.kill()
        raise AssertionError("a second serve on the same home kept running")
    err = home.stderr_text(p2)
    assert rc != 0
    assert "already serving" in err and str(home.pid) in err, err
    # The first one is untouched: its pid file, and it still works.
    pidfile = home.path / "run" / "clawvisor.pid"
    assert pidfile.read_text().strip() == str(home.pid)
    mid = home.drop("still the only one", agent="alpha")
    home.wait_response(mid)


BAD = [
    ({"sandbox": {"docker": {"pids_limit": "many"}}},
     'sandbox.docker.pids_limit: expected an integer >= 0, got "many"'),
    ({"sandbox": {"mode": "lxc"}}, "sandbox.mode"),
    ({"sandbox": {"max_attempts": 0}}, "sandbox.max_attempts"),
    ({"sandbox": {"timeout_seconds": -1}}, "sandbox.timeout_seconds"),
    ({"sandbox": {"backoff_seconds": 1.5}}, "sandbox.backoff_seconds"),
    ({"agents": {"alpha": {"provider": "gemini"}}}, "agents.alpha.provider"),
    ({"agents": {"cmd": {"provider": "command"}}}, "agents.cmd.command"),
    ({"supervisor": {"workers": 0}}, "supervisor.workers"),
]


@pytest.mark.parametrize("override,expect", BAD,
                         ids=[b[1].split(":")[0] for b in BAD])
def test_bad_settings_exit_78(homes, override, expect):
    h = homes(override, start=False)
    p = h.spawn()
    rc = p.wait(10 * TIME_SCALE)
    err = h.stderr_text(p)
    assert rc == 78, (rc, err)
    assert expect in err, err
    assert not (h.path / "run" / "clawvisor.pid").exists() or \
        (h.path / "run" / "clawvisor.pid").read_text() == ""


def test_invalid_json_settings_exit_78(homes):
    h = homes(start=False)
    h.write_settings(None, raw='{"sandbox": {"mode": "host",}')
    p = h.spawn()
    assert p.wait(10 * TIME_SCALE) == 78
    assert "settings.json" in h.stderr_text(p)


def echo_agent(word):
    return {"provider": "command",
            "command": ["sh", "-c", f'echo "{word}: $1"', "sh",
                        "{message}"]}


def test_sighup_reload(homes):
    h = homes({"agents": {"cmd": echo_agent("one")}})
    mid = h.drop("first", agent="cmd")
    assert h.wait_response(mid)["message"] == "one: first"

    s = json.loads(json.dumps(h.settings))
    s["agents"]["cmd"] = echo_agent("two")
    h.write_settings(s)
    h.signal(signal.SIGHUP)
    ev = wait_for(lambda: h.events("config_reloaded"), 5,
                  what="config_reloaded")
    assert ev[-1]["generation"] == 2
    mid = h.drop("second", agent="cmd")
    assert h.wait_response(mid)["message"] == "two: second"

    # A bad configuration is refused; the one in force stays.
    bad = json.loads(json.dumps(s))
    bad["agents"]["cmd"] = echo_agent("three")
    bad["sandbox"]["max_attempts"] = "lots"
    h.write_settings(bad)
    h.signal(signal.SIGHUP)
    ev = wait_for(lambda: h.events("config_reload_failed"), 5,
                  what="config_reload_failed")
    assert "sandbox.max_attempts" in ev[-1]["error"]
    assert "sandbox.max_attempts" in h.log()
    mid = h.drop("third", agent="cmd")
    assert h.wait_response(mid)["message"] == "two: third"
    assert h.proc.poll() is None


def test_sigterm_hands_back_in_flight(homes):
    h = homes({"sandbox": {"kill_grace_seconds": 1, "max_attempts": 1}})
    text = "sleep-once 30 graceful"
    mid = h.drop(text, agent="alpha")
    name = f"discord_{mid}.json"
    original = None
    (call,) = wait_for(lambda: h.calls(text), 10, what="the fake to start")
    original = (h.q / "processing" / name).read_bytes()
    t0 = time.monotonic()
    h.signal(signal.SIGTERM)
    rc = h.proc.wait(10 * TIME_SCALE)
    took = time.monotonic() - t0
    assert rc == 0
    assert 0.8 <= took < 5, took        # kill_grace_seconds, then handed back
    assert not pid_alive(call["pid"])
    # Back in incoming/ as it was: no attempt counted, no error recorded.
    assert (h.q / "incoming" / name).read_bytes() == original
    assert "attempt" not in json.loads(original)
    for sub in ("processing", "deferred", "dead-letter", "outgoing"):
        assert h.files(sub) == [], sub
    assert not [e for e in h.events("sandbox_invocation_error")
                if e["messageId"] == mid]
    assert not (h.path / "run" / "clawvisor.pid").exists()

    # max_attempts is 1: had the stop counted as a failure, the restart
    # would make a dead letter. It runs again and answers instead.
    h.start()
    r = h.wait_response(mid)
    assert r["message"].endswith("): " + text)
    assert len(h.calls(text)) == 2
    assert h.dead_letters(mid) == []


def test_sigterm_idle_stops_at_once(home):
    workers = home.wait_workers(4)
    t0 = time.monotonic()
    home.signal(signal.SIGTERM)
    assert home.proc.wait(5 * TIME_SCALE) == 0
    assert time.monotonic() - t0 < 2
    # The daemon is gone only once its workers are.
    assert not any(pid_alive(p) for p in workers)
    assert not (home.path / "run" / "clawvisor.pid").exists()
    assert "stopped" in home.log()


def test_stop_waits_for_the_workers(home):
    """A worker slow to exit holds the stop up; one that never does is
    killed after 10 s."""
    workers = home.wait_workers(4)
    os.kill(workers[0], signal.SIGSTOP)
    t0 = time.monotonic()
    home.signal(signal.SIGTERM)
    time.sleep(1)
    assert home.proc.poll() is None
    os.kill(workers[0], signal.SIGCONT)
    assert home.proc.wait(5 * TIME_SCALE) == 0
    assert time.monotonic() - t0 >= 1
    assert not any(pid_alive(p) for p in workers)
    assert "did not exit" not in home.log()

    home.start()
    workers = home.wait_workers(4)
    os.kill(workers[1], signal.SIGSTOP)
    t0 = time.monotonic()
    home.signal(signal.SIGTERM)
    assert home.proc.wait(30 * TIME_SCALE) == 0
    assert 9 <= time.monotonic() - t0 < 25
    assert not any(pid_alive(p) for p in workers)
    assert f"(pid {workers[1]}) did not exit in 10000 ms: killed" in \
        home.log()


def test_usage_and_home_flag(tmp_path):
    # No subcommand: usage, status 2.
    p = subprocess.run([BIN], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "usage" in p.stderr
    p = subprocess.run([BIN, "--home", str(tmp_path), "serve", "extra"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    assert not os.path.exists(tmp_path / "run" / "clawvisor.pid")
