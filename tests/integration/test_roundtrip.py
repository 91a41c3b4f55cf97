"""A message in, a response out: fields, file names, routing (SPEC §4, §6)."""
import re
import time

from conftest import read_json


def test_round_trip_claude(home):
    before = int(time.time() * 1000)
    mid = home.drop("hello there", agent="alpha", channel="discord",
                    sender="alice")
    r = home.wait_response(mid)
    after = int(time.time() * 1000)

    name = r["_path"].name
    m = re.fullmatch(r"discord_(.+)_(\d+)\.json", name)
    assert m, name
    assert m.group(1) == mid
    assert int(m.group(2)) == r["timestamp"]
    assert before <= r["timestamp"] <= after
    assert r["channel"] == "discord"
    assert r["sender"] == "alice"
    assert r["messageId"] == mid
    assert r["agent"] == "alpha"
    assert r["originalMessage"] == "hello there"
    # TinyClaw's argv, the model alias resolved, the reply trimmed.
    assert r["message"] == ("claude reply (model=claude-sonnet-4-5 "
                            "continue=1 skip=1): hello there")
    assert "files" not in r
    keys = set(r) - {"_path"}
    assert keys == {"channel", "sender", "senderId", "message",
                    "originalMessage", "timestamp", "messageId", "agent"}
    assert r["senderId"] == "alice-id"    # copied from the message

    (call,) = home.calls("hello there")
    assert call["argv"] == ["claude", "--dangerously-skip-permissions",
                            "--model", "claude-sonnet-4-5", "-c", "-p",
                            "--", "hello there"]
    assert call["cwd"] == str(home.workdir("alpha"))
    # The claimed message is gone from every queue directory.
    for sub in ("incoming", "processing", "deferred", "dead-letter",
                "corrupt"):
        assert home.files(sub) == [], sub

    # The response is written atomically: never a temporary name left.
    assert not [p for p in (home.q / "outgoing").iterdir()
                if p.name.startswith(".")]
    home.wait_events("response_ready", mid)
    types = [e["type"] for e in home.events()]
    for t in ("message_received", "agent_routed", "sandbox_invocation_start",
              "sandbox_invocation_end", "response_ready"):
        assert t in types, t


def test_round_trip_codex_jsonl(home):
    mid = home.drop("multi parts please", agent="beta")
    r = home.wait_response(mid)
    # Every agent_message, in order, joined by a blank line; the reasoning
    # item and the other events are not part of the reply.
    assert r["message"] == ("codex reply (model=gpt-5 resume=1 last=1 "
                            "bypass=1): multi parts please\n\nsecond part")
    assert r["agent"] == "beta"
    (call,) = home.calls("multi parts please")
    assert call["argv"] == ["codex", "exec", "resume", "--last", "--model",
                            "gpt-5", "--skip-git-repo-check",
                            "--dangerously-bypass-approvals-and-sandbox",
                            "--json", "--", "multi parts please"]


def test_reset_flag_drops_continue(home):
    home.workdir("alpha").mkdir(parents=True, exist_ok=True)
    (home.workdir("alpha") / "reset_flag").write_text("")
    mid = home.drop("fresh start", agent="alpha")
    r = home.wait_response(mid)
    assert "continue=0" in r["message"]
    (call,) = home.calls("fresh start")
    assert "-c" not in call["argv"]
    assert not (home.workdir("alpha") / "reset_flag").exists()
    mid = home.drop("next one", agent="alpha")
    assert "continue=1" in home.wait_response(mid)["message"]


def test_routing_by_agent_field_and_mention(home):
    a = home.drop("to beta by field", agent="beta")
    b = home.drop("@beta to beta by mention")
    c = home.drop("@ALPHA case does not matter")
    d = home.drop("@Beta")                      # no text after: not a mention
    e = home.drop("@nobody unknown mention")    # unknown: default agent
    f = home.drop("plain text")                 # no agent: first agent
    ra, rb, rc, rd, re_, rf = (home.wait_response(x) for x in
                               (a, b, c, d, e, f))
    assert ra["agent"] == "beta"
    assert rb["agent"] == "beta"
    # The "@beta " prefix is stripped from what the agent is sent, but the
    # response keeps the original text.
    assert rb["message"].endswith("): to beta by mention")
    assert rb["originalMessage"] == "@beta to beta by mention"
    assert home.calls("to beta by mention")[0]["prog"] == "codex"
    assert rc["agent"] == "alpha"
    assert rc["message"].endswith("): case does not matter")
    assert rd["agent"] == "alpha" and rd["message"].endswith("): @Beta")
    assert re_["agent"] == "alpha"
    assert re_["message"].endswith("): @nobody unknown mention")
    assert rf["agent"] == "alpha"
    routed = {e["agentId"] for e in home.wait_events("agent_routed", n=6)}
    assert routed == {"alpha", "beta"}


def test_routing_by_agent_name_and_team(homes):
    h = homes({"agents": {"gamma": {"name": "Gamma Ray",
                                    "provider": "anthropic"}},
               "teams": {"devs": {"name": "Developers",
                                  "agents": ["gamma", "beta"],
                                  "leader_agent": "beta"}}})
    a = h.drop("@devs team job")
    b = h.drop("@Alpha by name")
    ra, rb = h.wait_response(a), h.wait_response(b)
    assert ra["agent"] == "beta"
    assert ra["message"].endswith("): team job")
    assert rb["agent"] == "alpha"
    h.wait_events("agent_routed", n=2)
    routed = [e for e in h.events("agent_routed") if e["agentId"] == "beta"]
    assert routed and routed[0]["isTeamRouted"] is True


def test_heartbeat_response_name(home):
    mid = home.drop("heartbeat check", channel="heartbeat", agent="alpha",
                    name="heartbeat_hb1.json", mid="hb1")
    r = home.wait_response(mid)
    assert r["_path"].name == "hb1.json"
    assert r["channel"] == "heartbeat"


def test_unknown_agent_field_falls_back(home):
    mid = home.drop("who gets this", agent="no-such-agent")
    r = home.wait_response(mid)
    assert r["agent"] == "alpha"
    assert read_json(r["_path"])["originalMessage"] == "who gets this"
