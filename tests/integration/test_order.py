"""One agent runs one message at a time, in arrival order; different agents
run in parallel (SPEC §6)."""
import time


def test_per_agent_order_no_overlap(home):
    # Several messages to one agent, dropped in order, with different run
    # times: a queue that reordered or overlapped them would show it.
    texts = [f"sleep {d} order-{i}" for i, d in
             enumerate(["0.4", "0.1", "0.3", "0", "0.2", "0"])]
    mids = []
    for t in texts:
        mids.append(home.drop(t, agent="alpha"))
        time.sleep(0.02)    # distinct mtimes: arrival order is defined
    for m in mids:
        home.wait_response(m, timeout=20)
    calls = [c for c in home.calls() if c["message"] in texts]
    assert [c["message"] for c in calls] == texts
    for a, b in zip(calls, calls[1:]):
        assert a["end"] is not None
        assert a["end"] <= b["start"], (a, b)
    # And the responses were written in the same order.
    stamps = [home.responses(m)[0]["timestamp"] for m in mids]
    assert stamps == sorted(stamps)


def test_cross_agent_parallel(homes):
    h = homes({"agents": {"gamma": {"provider": "anthropic"},
                          "delta": {"provider": "openai"}}})
    agents = ["alpha", "beta", "gamma", "delta"]
    t0 = time.monotonic()
    mids = [h.drop(f"sleep 1 par-{a}", agent=a) for a in agents]
    for m in mids:
        h.wait_response(m, timeout=10)
    took = time.monotonic() - t0
    # Four agents, four workers, one second each: about one second (plus
    # the fakes' start-up), not four.
    assert took < 2.5, took
    calls = [c for c in h.calls() if c["message"].startswith("sleep 1 par-")]
    assert len(calls) == 4
    latest_start = max(c["start"] for c in calls)
    earliest_end = min(c["end"] for c in calls)
    assert latest_start < earliest_end, "the four runs did not overlap"


def test_one_agent_serial_while_other_runs(home):
    # alpha has two 1 s messages; beta one. beta must not wait for alpha's
    # queue, and alpha's second must wait for its first.
    a1 = home.drop("sleep 1 a-first", agent="alpha")
    time.sleep(0.02)
    a2 = home.drop("sleep 1 a-second", agent="alpha")
    b1 = home.drop("sleep 1 b-only", agent="beta")
    for m in (a1, a2, b1):
        home.wait_response(m, timeout=10)
    c = {x["message"]: x for x in home.calls()}
    assert c["sleep 1 a-first"]["end"] <= c["sleep 1 a-second"]["start"]
    assert c["sleep 1 b-only"]["start"] < c["sleep 1 a-first"]["end"]


def test_max_concurrency_permits(homes):
    # One permit: two agents that would run in parallel take turns.
    h = homes({"sandbox": {"max_concurrency": 1}})
    a = h.drop("sleep 0.5 permit-a", agent="alpha")
    b = h.drop("sleep 0.5 permit-b", agent="beta")
    for m in (a, b):
        h.wait_response(m, timeout=10)
    x, y = sorted((c for c in h.calls() if "permit-" in c["message"]),
                  key=lambda c: c["start"])
    assert x["end"] <= y["start"], (x, y)
