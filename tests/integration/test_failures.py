"""Failures: retries with backoff, dead letters, terminal failures, limits,
zero-valued settings, timeouts (SPEC §3, §5)."""
import json
import re
import subprocess
import time

from conftest import BIN, NOTICE_TEXT, SUITE_MODE, pid_alive, wait_for

DEAD_KEYS = {"failedAt", "errorClass", "errorMessage", "attempt",
             "maxAttempts", "payload"}


def starts(h, mid):
    h.wait_events("sandbox_invocation_end", mid)
    return h.wait_events("sandbox_invocation_start", mid)


def check_notice(notice, mid, agent, original):
    assert notice["message"] == NOTICE_TEXT
    assert notice["messageId"] == mid
    assert notice["channel"] == "discord"
    assert notice["sender"] == "alice"
    assert notice["originalMessage"] == original
    assert notice["agent"] == agent
    assert notice["_path"].name.startswith(f"discord_{mid}_")


def test_transient_then_success(homes):
    h = homes({"sandbox": {"backoff_seconds": 1, "backoff_max_seconds": 1,
                           "max_attempts": 3}})
    t0 = int(time.time() * 1000)
    mid = h.drop("flaky 3", agent="alpha")
    seen = {}

    def deferred_attempt():
        for p in h.files("deferred"):
            try:
                o = json.loads(p.read_text())
            except (ValueError, FileNotFoundError):
                continue
            if o.get("messageId") == mid:
                seen[o["attempt"]] = o
        return seen.get(2)
    wait_for(deferred_attempt, 10, interval=0.02,
             what="the second deferred attempt")
    first, second = seen[1], seen[2]
    for o, n in ((first, 1), (second, 2)):
        assert o["attempt"] == n
        assert o["errorClass"] == "transient"
        assert "exit 1" in o["lastError"] and "Overloaded" in o["lastError"]
        assert t0 <= o["firstSeenAt"] <= int(time.time() * 1000)
        # The message itself is kept as it was.
        assert o["message"] == "flaky 3" and o["channel"] == "discord"
        assert o["sender"] == "alice" and o["agent"] == "alpha"
    assert first["firstSeenAt"] == second["firstSeenAt"]
    r = h.wait_response(mid, timeout=10)
    assert r["message"].endswith("): flaky 3")
    assert not set(r) & {"attempt", "firstSeenAt", "errorClass", "lastError"}
    calls = h.calls("flaky 3")
    assert [c["status"] for c in calls] == [1, 1, 0]
    # backoff_seconds 1 (max 1), +-20%: each retry waited about a second.
    gaps = [b["start"] - a["end"] for a, b in zip(calls, calls[1:])]
    assert all(0.7 <= g <= 1.6 for g in gaps), gaps
    assert h.files("deferred") == [] and h.files("dead-letter") == []
    errs = h.wait_events("sandbox_invocation_error", mid, n=2)
    assert [e["attempt"] for e in errs] == [1, 2]
    assert all(e["errorClass"] == "transient" for e in errs)


def test_dead_letter_after_max_attempts(homes):
    h = homes({"sandbox": {"max_attempts": 2}})
    mid = h.drop("fail transient now", agent="alpha")
    rec, notice = h.wait_dead(mid)
    # SPEC §5's fields, all there (a field added beside them, such as the
    # routed agent, does not break a reader).
    assert DEAD_KEYS <= set(rec), set(rec)
    assert rec["errorClass"] == "transient"
    assert rec["attempt"] == 2 and rec["maxAttempts"] == 2
    assert "Overloaded" in rec["errorMessage"]
    assert isinstance(rec["failedAt"], int)
    p = rec["payload"]
    assert p["messageId"] == mid and p["message"] == "fail transient now"
    assert p["channel"] == "discord" and p["sender"] == "alice"
    assert rec["_path"].name == f"discord_{mid}.json"
    check_notice(notice, mid, "alpha", "fail transient now")
    assert len(h.calls("fail transient now")) == 2
    assert len(h.responses(mid)) == 1
    for sub in ("incoming", "processing", "deferred"):
        assert h.files(sub) == [], sub


def test_terminal_failures_not_retried(homes):
    h = homes({"sandbox": {"max_attempts": 3},
               "agents": {
                   "ghost": {"provider": "command",
                             "command": ["clawvisor-no-such-program",
                                         "{message}"]},
                   "ghost2": {"provider": "command",
                              "command": ["/nonexistent/dir/prog",
                                          "{message}"]}}})
    a = h.drop("fail auth please", agent="alpha")
    b = h.drop("fail auth codex", agent="beta")
    c = h.drop("to nowhere", agent="ghost")
    d = h.drop("to nowhere either", agent="ghost2")
    for mid, agent, text in ((a, "alpha", "fail auth please"),
                             (b, "beta", "fail auth codex"),
                             (c, "ghost", "to nowhere"),
                             (d, "ghost2", "to nowhere either")):
        rec, notice = h.wait_dead(mid)
        assert rec["errorClass"] == "terminal", rec
        assert rec["attempt"] == 1 and rec["maxAttempts"] == 3
        assert len(starts(h, mid)) == 1, mid
        check_notice(notice, mid, agent, text)
    assert len(h.calls("fail auth please")) == 1
    assert len(h.calls("fail auth codex")) == 1
    assert "Invalid API key" in h.dead_letters(a)[0]["errorMessage"]
    msg = h.dead_letters(c)[0]["errorMessage"]
    assert msg.startswith("clawvisor-no-such-program not found in PATH ("), \
        msg
    msg = h.dead_letters(d)[0]["errorMessage"]
    assert msg == "cannot execute /nonexistent/dir/prog: No such file or " \
        "directory", msg


def test_message_too_big_is_terminal(home):
    limit = 100000                                  # the default
    over = "x" * (limit + 1)
    at = "y" * limit
    a = home.drop(over, agent="alpha")
    b = home.drop(at, agent="alpha")
    rec, notice = home.wait_dead(a)
    assert rec["errorClass"] == "terminal" and rec["attempt"] == 1
    assert "max_message_bytes" in rec["errorMessage"]
    assert rec["payload"]["message"] == over
    assert notice["message"] == NOTICE_TEXT
    assert home.calls(over) == []
    # Exactly at the limit it runs, and the long reply is cut as TinyClaw
    # cuts it.
    r = home.wait_response(b)
    assert len(home.calls(at)) == 1
    assert r["message"].endswith("\n\n[Response truncated...]")
    assert len(r["message"]) == 3900 + len("\n\n[Response truncated...]")


def test_zero_values_kept(homes):
    # timeout 0 = no limit; backoff 0 = retry at once; max_attempts absent
    # = 3; max_concurrency 0 = unlimited.
    h = homes({"sandbox": {"timeout_seconds": 0, "backoff_seconds": 0,
                           "backoff_max_seconds": 0, "max_concurrency": 0,
                           "max_attempts": None}})
    a = h.drop("sleep 2 no limit", agent="alpha")
    b = h.drop("flaky 3", agent="beta")
    rb = h.wait_response(b, timeout=10)
    ra = h.wait_response(a, timeout=10)
    assert ra["message"].endswith("): sleep 2 no limit")
    assert rb["message"].endswith("): flaky 3")
    calls = h.calls("flaky 3")
    assert [c["status"] for c in calls] == [1, 1, 0]
    # Each retry right after the failure (the default would wait 5 s, then
    # 10 s).
    gaps = [b["start"] - a["end"] for a, b in zip(calls, calls[1:])]
    assert all(g < 0.8 for g in gaps), gaps
    assert h.files("dead-letter") == []


def test_timeout_says_what_it_saw(homes):
    # The last line on stderr (what a stuck CLI printed last), else that
    # there was nothing: the dead letter alone tells a hang from a retry
    # loop.
    h = homes({"sandbox": {"timeout_seconds": 1, "kill_grace_seconds": 0,
                           "max_attempts": 1},
               "agents": {"sh": {"name": "Shell", "provider": "command",
                                 "command": ["sh", "-c", "{message}"]}}})
    said = h.drop("echo 'API overloaded, retrying' >&2; echo partial; "
                  "echo 'attempt 2 of 10' >&2; exec sleep 30", agent="sh")
    silent = h.drop("exec sleep 30", agent="sh")
    rec, _ = h.wait_dead(said, timeout=20)
    assert rec["errorMessage"] == ("sh timed out after 1 s; last stderr: "
                                   "attempt 2 of 10"), rec
    assert rec["errorClass"] == "transient"
    rec, _ = h.wait_dead(silent, timeout=20)
    assert rec["errorMessage"] == "sh timed out after 1 s; no output", rec


def test_timeout_kills_process_group(homes):
    # SIGTERM at the timeout is ignored by "stubborn", so the SIGKILL comes
    # kill_grace_seconds later; the grandchild goes with its group. A second
    # home with kill_grace_seconds 0 kills at once.
    slow = homes({"sandbox": {"timeout_seconds": 1, "kill_grace_seconds": 2,
                              "max_attempts": 1}})
    fast = homes({"sandbox": {"timeout_seconds": 1, "kill_grace_seconds": 0,
                              "max_attempts": 1}})
    ms = slow.drop("spawn stubborn", agent="alpha")
    mf = fast.drop("spawn stubborn", agent="alpha")
    durations = {}
    for h, mid in ((slow, ms), (fast, mf)):
        rec, _ = h.wait_dead(mid, timeout=15)
        assert rec["errorClass"] == "transient"
        assert "timed out" in rec["errorMessage"]
        (end,) = h.wait_events("sandbox_invocation_end", mid)
        durations[h] = end["durationMs"]
        pidfile = h.workdir("alpha") / "spawn.pid"
        assert pidfile.exists(), "the grandchild never started"
        gpid = int(pidfile.read_text())
        (call,) = h.calls("spawn stubborn")
        wait_for(lambda: not pid_alive(gpid) and not pid_alive(call["pid"]),
                 2, what="the fake and its grandchild to be gone")
        assert call["end"] is None        # killed, not finished
    assert 2800 <= durations[slow] <= 5000, durations[slow]
    assert 900 <= durations[fast] <= 1900, durations[fast]


def test_cli_not_found_says_why_as_the_doctor_does(homes, tmp_path):
    # Host mode, no claude on PATH but a file of that name without the
    # execute bit: execvp says EACCES ("Permission denied") for what is in
    # effect not found. The dead letter and the doctor say the same thing,
    # and say which it is.
    bad = tmp_path / "bin"
    bad.mkdir()
    (bad / "claude").write_text("#!/bin/sh\necho hi\n")
    (bad / "claude").chmod(0o644)
    path = f"{bad}:/usr/bin:/bin"
    h = homes({"sandbox": {"max_attempts": 3}}, start=False)
    h.start(env={"PATH": path})
    mid = h.drop("hello", agent="alpha")
    rec, _ = h.wait_dead(mid, timeout=20)
    want = (f"claude not found in PATH ({path}); {bad}/claude is there "
            "but not executable")
    if SUITE_MODE == "bwrap":
        want += ": bwrap mode runs the CLI installed on the host, read-only"
    assert rec["errorMessage"] == want, rec
    assert rec["errorClass"] == "terminal" and rec["attempt"] == 1, rec
    if SUITE_MODE == "bwrap":
        return      # the doctor's bwrap checks are test_bwrap_mode.py's
    p = subprocess.run([BIN, "--home", str(h.path), "sandbox", "doctor",
                        "--json"], env=dict(h.env(), PATH=path),
                       capture_output=True, text=True, timeout=60)
    (cli,) = [c for c in json.loads(p.stdout)["checks"]
              if c["name"] == "cli" and c["detail"].startswith("claude ")]
    assert not cli["ok"], cli
    assert cli["detail"] == want + " (host mode)", cli
    # Plain not found: no note.
    (bad / "claude").unlink()
    mid = h.drop("hello again", agent="alpha")
    rec, _ = h.wait_dead(mid, timeout=20)
    assert rec["errorMessage"] == f"claude not found in PATH ({path})", rec


def test_every_dead_letter_and_success_is_logged(homes):
    # The same transient failure over and over (the case: its
    # retry line held back) must not hide the dead letters it ends in;
    # a success gets its line too.
    h = homes({"sandbox": {"max_attempts": 3, "backoff_seconds": 0,
                           "backoff_max_seconds": 1},
               "agents": {"sh": {"name": "Shell", "provider": "command",
                                 "command": ["sh", "-c", "{message}"]}}})
    fails = [h.drop("echo overloaded >&2; exit 1", agent="sh",
                    mid=f"f{i}") for i in range(3)]
    for mid in fails:
        h.wait_dead(mid, timeout=30)
    ok = h.drop("echo fine", agent="sh", mid="fine")
    h.wait_response(ok)
    log = h.log()
    for mid in fails:
        assert re.search(rf"_{mid}\.json \(agent sh\): transient failure, "
                         r"attempt 3 of 3: dead letter: sh exit 1: "
                         r"overloaded", log), log
    assert len(re.findall(r": dead letter: sh exit 1: overloaded", log)) == 3
    # Nine failures, six of them retries: their line once a minute.
    assert len(re.findall(r"transient failure, attempt \d of 3, retry in",
                          log)) == 1, log
    mode = SUITE_MODE
    assert re.search(rf"_fine\.json \(agent sh, {mode} mode\): ok in \d+ ms, "
                     r"attempt 1", log), log
