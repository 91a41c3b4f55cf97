"""
TinyClaw compatibility, second pass (issue 13, items 6 and 7): senderId in
every response, and the events of failed chains as TinyClaw's visualiser
needs them.

The fixtures reproduce TinyClaw's own files and decisions; each names the
TinyClaw file and lines it follows (repository jlia0/tinyclaw, tags v0.0.2
to v0.0.5, the file-queue releases):

- the channel clients' handling of a response (ClientModel below),
- the team visualiser's handling of events (VisualiserModel below),
- the messages the clients and the heartbeat write (drop_* below),
- the queue processor's events and transcript for a failed step (the
  expectations in the tests).

Agents are the scripted `command` agents of test_compat.py.
"""
import json
import re
import subprocess
import sys
import time

import pytest

from conftest import BIN, BASE_SETTINGS, deep_merge, read_json, wait_for
from test_compat import CHAIN, SCRIPTED, STEP_ERROR, NOTICE, cmd_agent

# ---------------------------------------------------------------------------
# Fixtures: what TinyClaw's programs do
# ---------------------------------------------------------------------------

TEN_MINUTES_MS = 10 * 60 * 1000


class ClientModel:
    """A TinyClaw 0.0.5 channel client's outgoing side.

    src/channels/telegram-client.ts at v0.0.5:
      454-459  pendingMessages.set(queueMessageId, {chatId, messageId,
               timestamp}) when a message is queued;
      461-467  entries older than 10 minutes are deleted (when the next
               message comes in);
      483-484  it reads outgoing/ files starting with "telegram_";
      491-495  pending = pendingMessages.get(messageId); targetChatId =
               pending?.chatId ?? (senderId ? Number(senderId) : null);
      497-537  a target: the reply is sent, the file unlinked;
      539-541  none: "No pending message ... and no valid senderId,
               cleaning up" and the file is unlinked unsent.
    src/channels/discord-client.ts at v0.0.5 does the same (399, 406-418:
    users.fetch(senderId).createDM(); 459-461); so does whatsapp-client.ts
    (406-418). Clients of 0.0.2 to 0.0.4 have no senderId fallback
    (telegram-client.ts v0.0.4:530 "No pending message ..., cleaning up").
    """

    def __init__(self, channel, version="0.0.5"):
        self.channel = channel
        self.version = version
        self.pending = {}       # messageId -> {chatId, timestamp}
        self.sent = []          # (target, text, as_reply)
        self.dropped = []       # messageIds thrown away

    def queued(self, mid, chat_id, now_ms):
        self.pending[mid] = {"chatId": chat_id, "timestamp": now_ms}
        # telegram-client.ts v0.0.5:461-467
        for k in [k for k, v in self.pending.items()
                  if v["timestamp"] < now_ms - TEN_MINUTES_MS]:
            del self.pending[k]

    def expire(self, now_ms):
        """Another message comes in later: old entries go."""
        for k in [k for k, v in self.pending.items()
                  if v["timestamp"] < now_ms - TEN_MINUTES_MS]:
            del self.pending[k]

    def read(self, resp):
        p = self.pending.get(resp["messageId"])
        target = p["chatId"] if p else None
        if target is None and self.version == "0.0.5":
            sid = resp.get("senderId")
            target = sid if sid else None
        if target is None:
            self.dropped.append(resp["messageId"])
            return False
        self.sent.append((target, resp["message"], p is not None))
        self.pending.pop(resp["messageId"], None)
        return True


class VisualiserModel:
    """src/visualizer/team-visualizer.tsx, handleEvent (agent states only).

    v0.0.5 lines 283-309: the agents shown are the members of every team,
    or every agent when there is no team, all 'idle'. Lines 334-419:
      agent_routed      -> the agent 'active'             (334-346)
      chain_step_start  -> the agent 'active'             (353-360)
                           v0.0.2 (353-368): and every other 'active'
                           agent 'waiting'
      chain_step_done   -> the agent 'done'               (362-371)
      chain_handoff     -> toAgent 'waiting'              (373-386)
      team_chain_end    -> every agent of `agents` 'done' (388-401)
      response_ready    -> 3000 ms later, every 'done' or 'error' agent
                           'idle'                          (403-418)
    Nothing else ever leaves 'active' or 'waiting'.
    """

    def __init__(self, settings, version):
        self.version = version
        teams = settings.get("teams") or {}
        ids = {a for t in teams.values() for a in t["agents"]}
        if not ids:
            ids = set(settings["agents"])
        self.state = {a: "idle" for a in ids}

    def run(self, events):
        timeline = [(e["timestamp"], i, e) for i, e in enumerate(events)]
        for e in events:
            if e["type"] == "response_ready":
                timeline.append((e["timestamp"] + 3000, len(timeline),
                                 {"type": "_reset"}))
        for _, _, e in sorted(timeline, key=lambda t: t[:2]):
            self.handle(e)
        return self.state

    def set(self, aid, status):
        if aid in self.state:
            self.state[aid] = status

    def handle(self, e):
        t = e["type"]
        if t == "agent_routed":
            self.set(str(e["agentId"]), "active")
        elif t == "chain_step_start":
            if self.version == "0.0.2":
                for k, v in self.state.items():
                    if k != e["agentId"] and v == "active":
                        self.state[k] = "waiting"
            self.set(str(e["agentId"]), "active")
        elif t == "chain_step_done":
            self.set(str(e["agentId"]), "done")
        elif t == "chain_handoff":
            self.set(str(e["toAgent"]), "waiting")
        elif t == "team_chain_end":
            for a in e["agents"]:
                self.set(a, "done")
        elif t == "_reset":
            for k, v in self.state.items():
                if v in ("done", "error"):
                    self.state[k] = "idle"


def drop_telegram(h, text, chat_id="424242", **kw):
    """src/channels/telegram-client.ts v0.0.5:439-450: {channel, sender,
    senderId (the chat id, a string), message, timestamp, messageId,
    files?} written to incoming/telegram_<messageId>.json."""
    mid = kw.pop("mid", None) or f"{int(time.time() * 1000)}_{h.seq}"
    obj = {"channel": "telegram", "sender": "Alice", "senderId": chat_id,
           "message": text, "timestamp": int(time.time() * 1000),
           "messageId": mid}
    obj.update(kw)
    h.drop(None, obj=obj, name=f"telegram_{mid}.json")
    return mid


def drop_heartbeat(h, agent, prompt):
    """lib/heartbeat-cron.sh v0.0.5:85-94: {channel "heartbeat", sender
    "System", senderId "heartbeat_<agent>", message "@<agent> <prompt>",
    timestamp, messageId} as incoming/<messageId>.json."""
    mid = f"heartbeat_{agent}_{int(time.time())}_{h.seq}"
    obj = {"channel": "heartbeat", "sender": "System",
           "senderId": f"heartbeat_{agent}", "message": f"@{agent} {prompt}",
           "timestamp": int(time.time()) * 1000, "messageId": mid}
    h.drop(None, obj=obj, name=f"{mid}.json")
    return mid


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

# No team: the visualiser shows every agent (team-visualizer.tsx v0.0.5:292)
SOLO = {"agents": {"solo": cmd_agent("Solo"), "other": cmd_agent("Other")},
        "teams": {}}


def scripted_home(homes, settings, script, extra=None):
    """A home whose command agents run test_compat's SCRIPTED responder."""
    h = homes(start=False)
    s = deep_merge(BASE_SETTINGS, {"agents": None, "teams": None})
    s = deep_merge(s, settings)
    s = deep_merge(s, extra or {})
    s["workspace"] = {"path": str(h.workspace.resolve())}
    spec = h.path / "script" / "spec.json"
    spec.parent.mkdir()
    spec.write_text(json.dumps(script))
    prog = h.path / "script" / "scripted.py"
    prog.write_text(SCRIPTED)
    for aid, a in s["agents"].items():
        if a.get("provider") == "command":
            a["command"] = [sys.executable, str(prog), str(spec), aid,
                            "{message}"]
    h.write_settings(s)
    return h


CHAIN_TYPES = ("team_chain_start", "chain_step_start", "chain_step_done",
               "chain_handoff", "team_chain_end")


def chain_events(h):
    return [e for e in h.events() if e["type"] in CHAIN_TYPES]


def settle_events(h, mid):
    """The response_ready of mid, then a moment for its batch."""
    h.wait_events("response_ready", mid, timeout=10)
    time.sleep(0.2)
    return h.events()


def transcripts(h, team):
    d = h.path / "chats" / team
    return sorted(d.glob("*.md")) if d.is_dir() else []


# ---------------------------------------------------------------------------
# Item 6: senderId in every response
# ---------------------------------------------------------------------------

def test_sender_id_in_normal_response(homes):
    h = scripted_home(homes, SOLO, {"solo": [{"reply": "hello"}]})
    h.start()
    mid = drop_telegram(h, "@solo hi", chat_id="777")
    r = h.wait_response(mid, timeout=20)
    assert r["message"] == "hello"
    assert r["senderId"] == "777"
    # SPEC §6's order of fields: senderId right after sender
    keys = [k for k in r if not k.startswith("_")]
    assert keys[:3] == ["channel", "sender", "senderId"], keys


def test_no_sender_id_none_invented(homes):
    h = scripted_home(homes, SOLO, {"solo": [{"reply": "hello"}]})
    h.start()
    mid = h.drop("@solo hi", obj={"channel": "discord", "sender": "bob",
                                  "message": "@solo hi", "messageId": "ns1",
                                  "timestamp": int(time.time() * 1000)})
    r = h.wait_response(mid, timeout=20)
    assert "senderId" not in r


def test_sender_id_in_dead_letter_notice(homes):
    h = scripted_home(homes, SOLO, {"solo": [{"fail": "terminal"}]})
    h.start()
    mid = drop_telegram(h, "@solo hi", chat_id="778")
    rec, notice = h.wait_dead(mid, timeout=20)
    assert notice["message"] == NOTICE
    assert notice["senderId"] == "778"
    assert rec["payload"]["senderId"] == "778"


def test_sender_id_in_multi_agent_reply(homes):
    h = scripted_home(homes, SOLO, {})
    h.start()
    mid = drop_telegram(h, "@solo and @other both", chat_id="779")
    r = h.wait_response(mid, timeout=20)
    assert "Coming Soon" in r["message"]
    assert r["senderId"] == "779"


def test_sender_id_in_chain_response(homes):
    h = scripted_home(homes, CHAIN, {
        "lead": [{"reply": "[@coder: go]"}], "coder": [{"reply": "done"}]})
    h.start()
    mid = drop_telegram(h, "@dev build", chat_id="780")
    r = h.wait_response(mid, timeout=20)
    assert r["message"].endswith("@coder: done")
    assert r["senderId"] == "780"


def test_sender_id_in_failed_chain_notice(homes):
    h = scripted_home(homes, CHAIN, {"lead": [{"fail": "terminal"}]})
    h.start()
    mid = drop_telegram(h, "@dev build", chat_id="781")
    _, notice = h.wait_dead(mid, timeout=20)
    assert notice["senderId"] == "781"


def test_sender_id_in_heartbeat_response(homes):
    h = scripted_home(homes, SOLO, {"solo": [{"reply": "alive"}]})
    h.start()
    mid = drop_heartbeat(h, "solo", "check in")
    r = h.wait_response(mid, timeout=20)
    assert r["_path"].name == f"{mid}.json"
    assert r["senderId"] == "heartbeat_solo"


def test_sender_id_in_notice_made_by_recovery(homes):
    """A message left in processing/ by a crash, out of attempts: the notice
    that start-up recovery writes (commit.c) carries senderId too."""
    h = scripted_home(homes, SOLO, {}, {"sandbox": {"max_attempts": 1}})
    proc = h.q / "processing"
    proc.mkdir(parents=True, exist_ok=True)
    mid = "crashed-1"
    (proc / f"telegram_{mid}.json").write_text(json.dumps({
        "channel": "telegram", "sender": "Alice", "senderId": "782",
        "message": "@solo hi", "timestamp": int(time.time() * 1000),
        "messageId": mid}))
    h.start()
    _, notice = h.wait_dead(mid, timeout=20)
    assert notice["senderId"] == "782"
    # a notice is a response: its response_ready too (no agent: the
    # recovery does not route)
    (ready,) = h.wait_events("response_ready", mid)
    assert ready["responseText"] == NOTICE and "agentId" not in ready


def test_late_notice_delivered_by_0_0_5_client(homes):
    """The pending entry has expired (a dead letter comes about 30 minutes
    after its message with the default 600 s x 3 attempts): a 0.0.5 client
    delivers the notice to senderId instead of throwing it away."""
    h = scripted_home(homes, SOLO, {"solo": [{"fail": "terminal"}]})
    h.start()
    client = ClientModel("telegram")
    t0 = int(time.time() * 1000)
    mid = drop_telegram(h, "@solo hi", chat_id="4242")
    client.queued(mid, 4242, t0)
    _, notice = h.wait_dead(mid, timeout=20)
    assert notice["_path"].name.startswith("telegram_")
    # 30 minutes later another message comes in: the entry expires
    client.expire(t0 + 30 * 60 * 1000)
    assert mid not in client.pending
    assert client.read(read_json(notice["_path"])), client.dropped
    assert client.sent == [("4242", NOTICE, False)]
    # without senderId (the old response) the same client threw it away
    old = dict(read_json(notice["_path"]))
    old.pop("senderId")
    assert not ClientModel("telegram").read(old)


# ---------------------------------------------------------------------------
# Item 7: events of failed chains, transcripts, the visualiser
# ---------------------------------------------------------------------------

TRANSCRIPT_FAILED_FIRST = """\
# Team Chain: Dev Team (@dev)
**Date:** {DATE}
**Channel:** discord | **Sender:** alice
**Steps:** 1

---

## User Message

@dev build it

---

## Step 1: Lead (@lead)

""" + STEP_ERROR + "\n"

TRANSCRIPT_FAILED_SECOND = """\
# Team Chain: Dev Team (@dev)
**Date:** {DATE}
**Channel:** discord | **Sender:** alice
**Steps:** 2

---

## User Message

@dev build it

---

## Step 1: Lead (@lead)

[@coder: write it]

---

## Step 2: Coder (@coder)

""" + STEP_ERROR + "\n"


def check_transcript(h, team, expected):
    """queue-processor.ts v0.0.2:270-310: the chat lines, one file per
    chain named from toISOString()."""
    files = transcripts(h, team)
    assert len(files) == 1, files
    pat = re.escape(expected).replace(
        re.escape("{DATE}"), r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    text = files[0].read_text()
    assert re.fullmatch(pat, text), f"transcript:\n{text}"


def visualiser_idle(settings, events):
    for v in ("0.0.2", "0.0.5"):
        state = VisualiserModel(settings, v).run(events)
        assert all(s == "idle" for s in state.values()), (v, state)


@pytest.mark.parametrize("fail,extra", [
    ("terminal", {}),
    ("transient", {"sandbox": {"max_attempts": 2}}),
], ids=["terminal", "transient_exhausted"])
def test_failed_first_step_ends_its_step_and_chain(homes, fail, extra):
    """queue-processor.ts v0.0.2:165-207: a step whose invocation throws
    answers "Sorry, I encountered an error processing this request.",
    emits chain_step_done with it, and with no teammate in it the chain
    ends: team_chain_end with that agent, the transcript, the response and
    response_ready (v0.0.2:356-359). clawvisor's response is the dead
    letter's notice (MIGRATION.md)."""
    h = scripted_home(homes, CHAIN, {"lead": [{"fail": fail}]}, extra)
    h.start()
    mid = h.drop("@dev build it")
    rec, notice = h.wait_dead(mid, timeout=20)
    events = settle_events(h, mid)
    types = [e["type"] for e in chain_events(h)]
    starts = 1 if fail == "terminal" else 2   # one per attempt
    assert types == (["team_chain_start"] + ["chain_step_start"] * starts
                     + ["chain_step_done", "team_chain_end"]), types
    (done,) = h.events("chain_step_done")
    assert done["teamId"] == "dev" and done["step"] == 1
    assert done["agentId"] == "lead" and done["agentName"] == "Lead"
    assert done["responseText"] == STEP_ERROR
    assert done["responseLength"] == len(STEP_ERROR)
    (end,) = h.events("team_chain_end")
    assert end["totalSteps"] == 1 and end["agents"] == ["lead"]
    (ready,) = [e for e in h.events("response_ready")
                if e["messageId"] == mid]
    assert ready["responseText"] == NOTICE == notice["message"]
    assert ready["agentId"] == "lead"
    assert ready["channel"] == "discord" and ready["sender"] == "alice"
    # TinyClaw's order: the step's end, the chain's end, the response
    order = [e["type"] for e in events if e["type"] in (
        "chain_step_done", "team_chain_end", "response_ready")]
    assert order == ["chain_step_done", "team_chain_end", "response_ready"]
    check_transcript(h, "dev", TRANSCRIPT_FAILED_FIRST)
    visualiser_idle(h.settings, events)


def test_failed_later_step_transcript_and_events(homes):
    h = scripted_home(homes, CHAIN, {
        "lead": [{"reply": "[@coder: write it]"}],
        "coder": [{"fail": "terminal"}]})
    h.start()
    mid = h.drop("@dev build it")
    r = h.wait_response(mid, timeout=20)
    assert r["message"].endswith("@coder: " + STEP_ERROR)
    events = settle_events(h, mid)
    starts = h.events("chain_step_start")
    assert [(e["agentId"], e["step"], e["fromAgent"]) for e in starts] == [
        ("lead", 1, None), ("coder", 2, "lead")]
    dones = h.events("chain_step_done")
    assert [(e["agentId"], e["responseText"]) for e in dones] == [
        ("lead", "[@coder: write it]"), ("coder", STEP_ERROR)]
    check_transcript(h, "dev", TRANSCRIPT_FAILED_SECOND)
    visualiser_idle(h.settings, events)


def test_failed_fanout_step_visualiser(homes):
    h = scripted_home(homes, CHAIN, {
        "lead": [{"reply": "[@coder: a] [@reviewer: b]"}],
        "coder": [{"fail": "terminal"}],
        "reviewer": [{"reply": "fine"}]})
    h.start()
    mid = h.drop("@dev go")
    h.wait_response(mid, timeout=20)
    events = settle_events(h, mid)
    (end,) = h.events("team_chain_end")
    assert end["agents"] == ["lead", "coder", "reviewer"]
    assert len(h.events("chain_step_start")) == 3
    assert len(h.events("chain_step_done")) == 3
    visualiser_idle(h.settings, events)


def test_solo_message_is_a_step_ok(homes):
    """queue-processor.ts v0.0.5:344-354: every invocation, in a team or
    not, has chain_step_start {agentId, agentName, fromAgent: null} and
    chain_step_done {agentId, agentName, responseLength, responseText}."""
    h = scripted_home(homes, SOLO, {"solo": [{"reply": "hi there"}]})
    h.start()
    mid = h.drop("@solo hello")
    h.wait_response(mid, timeout=20)
    events = settle_events(h, mid)
    (start,) = h.events("chain_step_start")
    assert start["agentId"] == "solo" and start["agentName"] == "Solo"
    assert start["fromAgent"] is None and "teamId" not in start
    (done,) = h.events("chain_step_done")
    assert done["responseText"] == "hi there" and "teamId" not in done
    assert done["responseLength"] == 8
    assert h.events("team_chain_start") == []
    assert h.events("team_chain_end") == []
    visualiser_idle(h.settings, events)


def test_solo_dead_letter_is_a_response(homes):
    """queue-processor.ts v0.0.2:139-146 / v0.0.5:346-389: a failed
    invocation answers with the error text, and that answer is the
    response, with response_ready."""
    h = scripted_home(homes, SOLO, {"solo": [{"fail": "terminal"}]})
    h.start()
    mid = h.drop("@solo hello")
    h.wait_dead(mid, timeout=20)
    events = settle_events(h, mid)
    types = [e["type"] for e in events if e["type"] in (
        "message_received", "agent_routed", "chain_step_start",
        "chain_step_done", "response_ready")]
    assert types == ["message_received", "agent_routed", "chain_step_start",
                     "chain_step_done", "response_ready"], types
    (done,) = h.events("chain_step_done")
    assert done["responseText"] == NOTICE
    (ready,) = h.events("response_ready")
    assert ready["messageId"] == mid and ready["agentId"] == "solo"
    assert ready["responseText"] == NOTICE
    visualiser_idle(h.settings, events)


def test_refused_agent_dead_letter_visualiser(homes):
    """An agent clawvisor refuses (opencode) never runs: its step still
    ends, so the visualiser does not keep it busy."""
    settings = {"agents": {"solo": {"name": "Solo", "provider": "opencode"},
                           "other": cmd_agent("Other")}, "teams": {}}
    h = scripted_home(homes, settings, {})
    h.start()
    mid = h.drop("@solo hello")
    h.wait_dead(mid, timeout=20)
    events = settle_events(h, mid)
    assert [e["agentId"] for e in h.events("chain_step_done")] == ["solo"]
    visualiser_idle(h.settings, events)


def test_multi_agent_message_received(homes):
    """queue-processor.ts v0.0.2:45 and v0.0.5:236-238: message_received
    comes before routing, so the multiple-agent ("easter egg") message has
    one (v0.0.2:72-90: no agent_routed, no invocation)."""
    h = scripted_home(homes, SOLO, {})
    h.start()
    mid = h.drop("@solo and @other both")
    h.wait_response(mid, timeout=20)
    events = settle_events(h, mid)
    (rec,) = [e for e in h.events("message_received")
              if e["messageId"] == mid]
    assert rec["channel"] == "discord" and rec["sender"] == "alice"
    assert rec["message"] == "@solo and @other both"
    assert h.events("agent_routed") == []
    assert chain_events(h) == []
    # the canned reply names no agent: neither does its response_ready
    (ready,) = h.events("response_ready")
    assert "agentId" not in ready
    assert h.calls() == []
    visualiser_idle(h.settings, events)
    # counted as received, as it is counted ok
    st = json.loads(subprocess.run(
        [BIN, "--home", str(h.path), "status", "--json"],
        capture_output=True, text=True, env=h.env(), check=True).stdout)
    assert st["counters"]["received"] == st["counters"]["ok"] == 1, st


@pytest.mark.parametrize("script,running,agents", [
    ({"lead": [{"reply": "[@coder: slow]"}],
      "coder": [{"sleep": 30, "reply": "late"}]}, "coder", ["lead", "coder"]),
    ({"lead": [{"sleep": 30, "reply": "late"}]}, "lead", ["lead"]),
], ids=["handoff_step", "first_step"])
def test_interrupted_chain_end_lists_running_step(homes, script, running,
                                                  agents):
    """A stop while a step runs hands the chain back; its team_chain_end
    still lists the step that had started, so the visualiser does not keep
    that agent busy."""
    h = scripted_home(homes, CHAIN, script,
                      {"sandbox": {"kill_grace_seconds": 1}})
    h.start()
    mid = h.drop("@dev go")
    wait_for(lambda: any(e["agentId"] == running
                         for e in h.events("chain_step_start")), 20,
             what=f"{running}'s step")
    assert h.stop() == 0
    (end,) = h.events("team_chain_end")
    assert end["agents"] == agents
    assert [p.name for p in (h.q / "incoming").glob("*.json")] == [
        f"discord_{mid}.json"], "not handed back"
    state = VisualiserModel(h.settings, "0.0.5").run(h.events())
    assert state[running] == "done", state
