"""Crashes: a worker killed in the middle of an invocation, the supervisor
killed with work in flight (SPEC §1, §5: exactly one outcome per message,
also across crashes)."""
import json
import os
import signal
import time

from conftest import pid_alive, proc_ppid, wait_for


def test_worker_killed_mid_invocation(homes):
    h = homes({"supervisor": {"workers": 2}})
    workers = h.wait_workers(2)
    mid = h.drop("sleep-once 30 killme", agent="alpha")
    (call,) = wait_for(lambda: h.calls("sleep-once 30 killme"), 10,
                       what="the fake to start")
    victim = proc_ppid(call["pid"])
    assert victim in workers, (victim, workers)
    os.kill(victim, signal.SIGKILL)

    r = h.wait_response(mid, timeout=15)
    assert r["message"].endswith("): sleep-once 30 killme")
    calls = h.calls("sleep-once 30 killme")
    assert len(calls) == 2
    assert calls[0]["end"] is None           # killed with its worker
    wait_for(lambda: not pid_alive(calls[0]["pid"]), 3,
             what="the orphaned fake to be killed")
    errs = h.wait_events("sandbox_invocation_error", mid)
    assert len(errs) == 1
    assert errs[0]["errorClass"] == "transient"
    assert "died" in errs[0]["error"]
    assert errs[0]["attempt"] == 1
    # A new worker takes the dead one's place.
    now = h.wait_workers(2)
    assert victim not in now
    assert set(now) & set(workers) == set(workers) - {victim}
    assert h.files("dead-letter") == [] and h.files("deferred") == []
    assert len(h.responses(mid)) == 1


def test_supervisor_killed_with_work_in_flight(homes):
    agents = ["alpha", "beta", "c1", "c2", "c3", "c4"]
    h = homes({"agents": {a: {"provider": "anthropic"}
                          for a in agents[2:]},
               "supervisor": {"workers": 6}})
    h.wait_workers(6)
    mids = []
    for i in range(5):
        for a in agents:
            mids.append(h.drop(f"sleep 1 crash {a} {i}", agent=a))
    assert len(mids) == 30
    # Let the first round finish and the second be under way.
    wait_for(lambda: len([c for c in h.calls() if c["end"]]) >= 6 and
             len([c for c in h.calls() if not c["end"]]) >= 3, 15,
             what="work in flight")
    workers = h.worker_pids()
    running = [c["pid"] for c in h.calls() if c["end"] is None]
    h.kill()
    # The workers notice their parent is gone and take their jobs along.
    wait_for(lambda: not any(pid_alive(p) for p in workers + running), 5,
             what="workers and their jobs to go with the supervisor")
    in_processing = [p.name for p in h.files("processing")]
    assert in_processing, "nothing was in flight when the supervisor died"

    h.start()
    outcomes = {}

    def all_done():
        for m in mids:
            if m not in outcomes:
                o = h.outcome(m)
                if o is not None:
                    outcomes[m] = o
        h.alive_check()
        return len(outcomes) == len(mids)
    wait_for(all_done, 30, interval=0.1, what="an outcome for all 30")
    time.sleep(0.5)     # anything extra would show up by now
    for m in mids:
        resp, dead = h.responses(m), h.dead_letters(m)
        assert (len(resp), len(dead)) in ((1, 0), (1, 1)), (m, resp, dead)
        if not dead:
            r = resp[0]
            assert r["message"].endswith("): " + r["originalMessage"]), r
    for sub in ("incoming", "processing", "deferred"):
        assert h.files(sub) == [], (sub, h.files(sub))
    # What was running when it died counted one attempt and ran again.
    assert "was running when clawvisor stopped" in h.log()
    for name in in_processing:
        assert not (h.q / "processing" / name).exists()


def test_deferred_retry_survives_a_crash(homes):
    # A retry parked in deferred/ when the supervisor dies keeps its attempt
    # count and its place; the restarted daemon runs it.
    h = homes({"sandbox": {"backoff_seconds": 2, "backoff_max_seconds": 2,
                           "max_attempts": 2}})
    mid = h.drop("flaky 2", agent="alpha")
    name = f"discord_{mid}.json"
    wait_for(lambda: (h.q / "deferred" / name).exists(), 10,
             what="the retry to be parked")
    h.kill()
    parked = json.loads((h.q / "deferred" / name).read_text())
    assert parked["attempt"] == 1
    h.start()
    r = h.wait_response(mid, timeout=10)
    assert r["message"].endswith("): flaky 2")
    calls = h.calls("flaky 2")
    assert [c["status"] for c in calls] == [1, 0]
    # It waited out the rest of its backoff rather than running at once.
    assert calls[1]["start"] - calls[0]["end"] >= 1.4
    assert h.files("deferred") == [] and h.dead_letters(mid) == []


def test_backlog_larger_than_the_window(homes):
    # More files than the supervisor reads ahead (1024): all of them are
    # answered, each once, and one agent's in the order they arrived.
    N = 1100
    agents = {f"e{i}": {"provider": "command",
                        "command": ["printf", "%s", "{message}"]}
              for i in range(8)}
    h = homes({"agents": agents, "supervisor": {"workers": 8}},
              start=False)
    mids = []
    for i in range(N):
        mids.append(h.drop(f"n{i:04d}", agent=f"e{i % 8}",
                           mid=f"bl{i:04d}"))
    h.start()
    pending = set(mids)

    def done():
        for p in h.files("outgoing"):
            m = p.name.split("_")[1]
            pending.discard(m)
        h.alive_check()
        return not pending
    t0 = time.monotonic()
    wait_for(done, 60, interval=0.2, what=f"{N} responses")
    took = time.monotonic() - t0
    resp = {}
    for p in h.files("outgoing"):
        r = json.loads(p.read_text())
        assert r["messageId"] not in resp, f"two responses: {r}"
        resp[r["messageId"]] = r
    assert len(resp) == N
    for i, m in enumerate(mids):
        assert resp[m]["message"] == f"n{i:04d}"
        assert resp[m]["agent"] == f"e{i % 8}"
    # Per agent, the responses' timestamps follow the message numbers.
    for a in range(8):
        stamps = [resp[mids[i]]["timestamp"] for i in range(a, N, 8)]
        assert stamps == sorted(stamps), a
    assert h.files("incoming") == [] and h.files("processing") == []
    print(f"{N} messages in {took:.1f}s")
