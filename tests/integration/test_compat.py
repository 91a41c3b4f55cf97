"""
TinyClaw compatibility suite (SPEC §6, issue 5): a table of cases, each a
set of settings and input message(s) -> the agent calls expected (which
agent or CLI ran, in which order, with which argv), the reply (text and
fields), the chain events and the team transcript.

Agents are either the fake `claude` / `codex` of fakes/ (they echo the
prompt and log their argv to $FAKE_LOG) or `command`-provider agents running
SCRIPTED below: a responder whose replies per agent come from the case's
`script` ({agent: [entry, ...]}, the n-th call of an agent uses the n-th
entry, the last one repeating; an entry is {"reply", "sleep", "fail":
"transient"|"terminal"}). It logs to $FAKE_LOG in the fakes' format, with
prog = the agent id and argv = [agent id, message].

Strings in a case may use $WS (the workspace) and $HOME (the clawvisor home);
they are expanded per test. A `reply` that is a compiled regex must match
the whole text.

COMPAT_DEBUG=1 (with pytest -s) prints each case's chain events and calls.

The reference is TinyClaw's "sequential chain + fan-out" queue processor
(V2 in the research notes). Where clawvisor differs on purpose
(docs/MIGRATION.md) the case says so.
"""
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import BASE_SETTINGS, deep_merge, wait_for

# ---------------------------------------------------------------------------
# TinyClaw's texts and argv
# ---------------------------------------------------------------------------

STEP_ERROR = "Sorry, I encountered an error processing this request."
NOTICE = ("Sorry, I encountered an error processing your request. "
          "Please check the queue logs.")
CUT_NOTE = "\n\n[Response truncated...]"
SEP = "\n\n---\n\n"
CHAIN_TYPES = ("team_chain_start", "chain_step_start", "chain_step_done",
               "chain_handoff", "team_chain_end")


def canned(ids):
    """TinyClaw's multiple-agent ("easter egg") reply, from routing.ts."""
    lst = ", ".join(f"@{i}" for i in ids)
    return ("\U0001F680 **Agent-to-Agent Collaboration - Coming Soon!**\n\n"
            f"You mentioned multiple agents: {lst}\n\n"
            "Right now, I can only route to one agent at a time. But we're "
            "working on something cool:\n\n"
            "\u2728 **Multi-Agent Coordination** - Agents will be able to "
            "collaborate on complex tasks!\n"
            "\u2728 **Smart Routing** - Send instructions to multiple agents "
            "at once!\n"
            "\u2728 **Agent Handoffs** - One agent can delegate to another!"
            "\n\n"
            "For now, please send separate messages to each agent:\n"
            + "\n".join(f"\u2022 `@{i} [your message]`" for i in ids)
            + "\n\n_Stay tuned for updates! \U0001F389_")


def claude_argv(msg, model=None, cont=True):
    return (["claude", "--dangerously-skip-permissions"]
            + (["--model", model] if model else [])
            + (["-c"] if cont else []) + ["-p", "--", msg])


def codex_argv(msg, model=None, resume=True):
    return (["codex", "exec"] + (["resume", "--last"] if resume else [])
            + (["--model", model] if model else [])
            + ["--skip-git-repo-check",
               "--dangerously-bypass-approvals-and-sandbox", "--json", "--", msg])


def claude_reply(msg, model="default", cont=True):
    return f"claude reply (model={model} continue={int(cont)} skip=1): {msg}"


def codex_reply(msg, model="default", resume=True):
    r = int(resume)
    return (f"codex reply (model={model} resume={r} last={r} bypass=1): "
            f"{msg}")


def teammate(frm, text):
    return f"[Message from teammate @{frm}]:\n{text}"


def joined(*parts):
    """TinyClaw's aggregate: ("a", "x"), ("b", "y") -> "@a: x---@b: y"."""
    return SEP.join(f"@{a}: {t}" for a, t in parts)


# ---------------------------------------------------------------------------
# The scripted command agent
# ---------------------------------------------------------------------------

SCRIPTED = r'''
import fcntl, json, os, sys, time
spec_path, agent, message = sys.argv[1], sys.argv[2], sys.argv[3]
log = os.environ.get("FAKE_LOG")
pid = os.getpid()
def logline(s):
    if log:
        with open(log, "a") as f:
            f.write(s)
data = b"".join(x.encode("utf-8", "surrogateescape") + b"\0" for x in
                (os.path.realpath(os.getcwd()), agent, message))
logline("start prog=%s pid=%d t=%.6f data=%s\n" % (agent, pid,
        time.monotonic(), data.hex()))
def done(status):
    logline("end prog=%s pid=%d t=%.6f status=%d\n" % (agent, pid,
            time.monotonic(), status))
    sys.exit(status)
with open(spec_path) as f:
    spec = json.load(f)
entries = spec.get(agent) or [{"reply": "ok from " + agent}]
with open(os.path.join(os.path.dirname(spec_path), "count." + agent),
          "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    n = len(f.read())
    f.write("x")
e = entries[min(n, len(entries) - 1)]
if e.get("sleep"):
    time.sleep(e["sleep"])
if e.get("fail") == "transient":
    sys.stderr.write('API Error: 529 {"type":"overloaded_error"}\n')
    done(1)
if e.get("fail") == "terminal":
    sys.stderr.write("Invalid API key \u00b7 Please run /login\n")
    done(1)
sys.stdout.write(e.get("reply", "").replace("{message}", message))
sys.stdout.flush()
done(0)
'''


def cmd_agent(name):
    return {"name": name, "provider": "command"}


# ---------------------------------------------------------------------------
# Settings used by the cases
# ---------------------------------------------------------------------------

# Fake claude / codex agents. Names differ from ids so that routing by name
# is told apart from routing by id; "crew" (named "Makers") leads to gamma.
ROUTE = {
    "agents": {
        "alpha": {"name": "Ace", "provider": "anthropic", "model": "sonnet"},
        "beta": {"name": "Bolt", "provider": "openai", "model": "gpt-5"},
        "gamma": {"name": "Gus", "provider": "anthropic", "model": "opus"},
        "delta": {"name": "Dot", "provider": "anthropic",
                  "model": "claude-sonnet-4-5"},
        "default": {"name": "Fallback", "provider": "anthropic"},
    },
    "teams": {
        "crew": {"name": "Makers", "agents": ["delta", "gamma"],
                 "leader_agent": "gamma"},
    },
}
ROUTE_NO_DEFAULT = {"agents": {k: v for k, v in ROUTE["agents"].items()
                               if k != "default"},
                    "teams": ROUTE["teams"]}

# Scripted agents: team "dev" (lead, coder, reviewer), team "pp" (ping,
# pong), and outsider and solo in no team.
CHAIN = {
    "agents": {
        "lead": cmd_agent("Lead"),
        "coder": cmd_agent("Coder"),
        "reviewer": cmd_agent("Reviewer"),
        "ping": cmd_agent("Ping"),
        "pong": cmd_agent("Pong"),
        "outsider": cmd_agent("Outsider"),
        "solo": cmd_agent("Solo"),
    },
    "teams": {
        "dev": {"name": "Dev Team", "agents": ["lead", "coder", "reviewer"],
                "leader_agent": "lead"},
        "pp": {"name": "PingPong", "agents": ["ping", "pong"],
               "leader_agent": "ping"},
    },
}

# Fake claude agents in a team: the leader echoes the prompt, so the prompt
# decides the hand-off.
PAIR = {
    "agents": {
        "ann": {"name": "Ann", "provider": "anthropic", "model": "sonnet"},
        "bob": {"name": "Bob", "provider": "anthropic", "model": "sonnet"},
    },
    "teams": {"pair": {"name": "Pair", "agents": ["ann", "bob"],
                       "leader_agent": "ann"}},
}

S4 = "claude-sonnet-4-5"
O4 = "claude-opus-4-6"


def M(message, **kw):
    """An input message: drop() keywords, and what its reply must be."""
    return {"message": message, **kw}


def E(*groups):
    """Expected chain events: groups in order, order inside a group free."""
    return [g if isinstance(g, (list, tuple)) else [g] for g in groups]


SINGLE_EVENTS = E("team_chain_start", "chain_step_start", "chain_step_done",
                  "chain_handoff", "chain_step_start", "chain_step_done",
                  "team_chain_end")
ONE_STEP_EVENTS = E("team_chain_start", "chain_step_start",
                    "chain_step_done", "team_chain_end")

TRANSCRIPT_SINGLE = """\
# Team Chain: Dev Team (@dev)
**Date:** {DATE}
**Channel:** discord | **Sender:** alice
**Steps:** 2

---

## User Message

@dev build it

---

## Step 1: Lead (@lead)

Plan ready. [@coder: write the code]

---

## Step 2: Coder (@coder)

Code written.
"""

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

CASES = [
    # ---- routing ---------------------------------------------------------
    dict(name="route_agent_field_first",
         settings=ROUTE,
         messages=[M("@alpha hi", agent="beta",
                     reply=codex_reply("@alpha hi", "gpt-5"),
                     fields={"agent": "beta",
                             "originalMessage": "@alpha hi"})],
         # pre-routed: the text goes as is, @alpha is not looked at
         calls=[dict(prog="codex", argv=codex_argv("@alpha hi", "gpt-5"),
                     cwd="$WS/beta")]),
    dict(name="route_agent_field_unknown_falls_back_to_prefix",
         settings=ROUTE,
         messages=[M("@alpha hi", agent="nosuch",
                     reply=claude_reply("hi", S4),
                     fields={"agent": "alpha"})],
         calls=[dict(prog="claude", argv=claude_argv("hi", S4),
                     cwd="$WS/alpha")]),
    dict(name="route_agent_field_exact_case",
         settings=ROUTE,
         # TinyClaw looks agents[agent] up exactly: "ALPHA" is not alpha,
         # so the text routes (to the default agent here).
         messages=[M("hi", agent="ALPHA", reply=claude_reply("hi"),
                     fields={"agent": "default"})],
         calls=[dict(prog="claude", argv=claude_argv("hi"),
                     cwd="$WS/default")]),
    dict(name="route_at_agent_id_prefix_stripped",
         settings=ROUTE,
         messages=[M("@beta hello there",
                     reply=codex_reply("hello there", "gpt-5"),
                     fields={"agent": "beta",
                             "originalMessage": "@beta hello there"})],
         calls=[dict(prog="codex", argv=codex_argv("hello there", "gpt-5"),
                     cwd="$WS/beta")],
         event_fields=[("agent_routed", 0, {"agentId": "beta",
                                            "isTeamRouted": False})]),
    dict(name="route_at_agent_id_case_insensitive",
         settings=ROUTE,
         # /^@(\S+)\s+([\s\S]*)$/: all the whitespace after the id goes
         messages=[M("@ALPHA  \n hello\nworld",
                     reply=claude_reply("hello\nworld", S4),
                     fields={"agent": "alpha"})],
         calls=[dict(prog="claude", argv=claude_argv("hello\nworld", S4),
                     cwd="$WS/alpha")]),
    dict(name="route_at_team_id_to_leader",
         settings=ROUTE,
         messages=[M("@crew hello", reply=claude_reply("hello", O4),
                     fields={"agent": "gamma"})],
         calls=[dict(prog="claude", argv=claude_argv("hello", O4),
                     cwd="$WS/gamma")],
         events=ONE_STEP_EVENTS,
         event_fields=[("agent_routed", 0, {"agentId": "gamma",
                                            "isTeamRouted": True}),
                       ("team_chain_start", 0, {"teamId": "crew",
                                                "teamName": "Makers",
                                                "leader": "gamma"})]),
    dict(name="route_at_agent_name",
         settings=ROUTE,
         messages=[M("@bolt do it", reply=codex_reply("do it", "gpt-5"),
                     fields={"agent": "beta"})],
         calls=[dict(prog="codex", argv=codex_argv("do it", "gpt-5"))]),
    dict(name="route_at_agent_name_case_insensitive",
         settings=ROUTE,
         messages=[M("@ACE do it", reply=claude_reply("do it", S4),
                     fields={"agent": "alpha"})],
         calls=[dict(prog="claude", argv=claude_argv("do it", S4),
                     cwd="$WS/alpha")]),
    dict(name="route_at_team_name_to_leader",
         settings=ROUTE,
         messages=[M("@MAKERS ship it", reply=claude_reply("ship it", O4),
                     fields={"agent": "gamma"})],
         calls=[dict(prog="claude", argv=claude_argv("ship it", O4),
                     cwd="$WS/gamma")],
         event_fields=[("agent_routed", 0, {"isTeamRouted": True})]),
    dict(name="route_unknown_to_default_unchanged",
         settings=ROUTE,
         messages=[M("@nobody hi", reply=claude_reply("@nobody hi"),
                     fields={"agent": "default"})],
         calls=[dict(prog="claude", argv=claude_argv("@nobody hi"),
                     cwd="$WS/default")]),
    dict(name="route_no_prefix_to_default",
         settings=ROUTE,
         messages=[M("good morning", reply=claude_reply("good morning"),
                     fields={"agent": "default"})],
         calls=[dict(prog="claude", argv=claude_argv("good morning"),
                     cwd="$WS/default")]),
    dict(name="route_prefix_without_text_not_routed",
         settings=ROUTE,
         # the regex needs text after the id: "@alpha" alone is no prefix
         messages=[M("@alpha", reply=claude_reply("@alpha"),
                     fields={"agent": "default"})],
         calls=[dict(prog="claude", argv=claude_argv("@alpha"),
                     cwd="$WS/default")]),
    dict(name="route_unknown_no_default_first_agent",
         settings=ROUTE_NO_DEFAULT,
         messages=[M("@nobody hi", reply=claude_reply("@nobody hi", S4),
                     fields={"agent": "alpha"})],
         calls=[dict(prog="claude", argv=claude_argv("@nobody hi", S4),
                     cwd="$WS/alpha")]),
    dict(name="multi_agents_canned_reply",
         settings=ROUTE,
         # beta and gamma are in no team together; mentions anywhere count,
         # case-insensitively; the list is in order of mention
         messages=[M("@Beta please ask @GAMMA",
                     reply=canned(["beta", "gamma"]),
                     name_re=r"discord_{mid}_\d+\.json",
                     absent=["agent", "files"])],
         calls=[]),
    dict(name="multi_repeated_mention_is_one_agent",
         settings=ROUTE,
         # TinyClaw counted "@alpha ... @alpha" as two agents and sent the
         # canned reply naming "@alpha, @alpha"; clawvisor counts each
         # agent once and routes
         messages=[M("@alpha tell @ALPHA hi",
                     reply=claude_reply("tell @ALPHA hi", S4),
                     fields={"agent": "alpha"})],
         calls=[dict(prog="claude", argv=claude_argv("tell @ALPHA hi", S4))]),
    dict(name="multi_agents_canned_three_not_one_team",
         settings=ROUTE,
         messages=[M("hi @delta @gamma @alpha", reply=canned(
             ["delta", "gamma", "alpha"]), absent=["agent"])],
         calls=[]),
    dict(name="multi_agents_one_team_no_canned",
         settings=ROUTE,
         messages=[M("hi @delta and @gamma",
                     reply=claude_reply("hi @delta and @gamma"),
                     fields={"agent": "default"})],
         calls=[dict(prog="claude", cwd="$WS/default",
                     argv=claude_argv("hi @delta and @gamma"))]),
    dict(name="multi_team_ids_not_counted",
         settings=ROUTE,
         # only agent ids count: @crew + @alpha is one agent; @crew routes
         messages=[M("@crew and @alpha hi",
                     reply=claude_reply("and @alpha hi", O4),
                     fields={"agent": "gamma"})],
         calls=[dict(prog="claude", argv=claude_argv("and @alpha hi", O4))]),
    dict(name="multi_mention_with_punctuation_not_counted",
         settings=ROUTE,
         # /@(\S+)/ takes "beta," which is no agent id: one agent only
         messages=[M("@alpha compare with @beta, please",
                     reply=claude_reply("compare with @beta, please", S4),
                     fields={"agent": "alpha"})],
         calls=[dict(prog="claude",
                     argv=claude_argv("compare with @beta, please", S4))]),

    # ---- team chains -----------------------------------------------------
    dict(name="chain_single_handoff",
         settings=CHAIN,
         script={"lead": [{"reply": "Plan ready. [@coder: write the code]"}],
                 "coder": [{"reply": "Code written.\n"}]},
         messages=[M("@dev build it",
                     reply=joined(("lead",
                                   "Plan ready. [@coder: write the code]"),
                                  ("coder", "Code written.")),
                     fields={"agent": "lead"}, absent=["files"])],
         calls=[dict(prog="lead", message="build it", cwd="$WS/lead"),
                dict(prog="coder", cwd="$WS/coder",
                     message=teammate("lead", "write the code"))],
         events=SINGLE_EVENTS,
         event_fields=[
             ("team_chain_start", 0, {"teamId": "dev", "teamName": "Dev Team",
                                      "agents": ["lead", "coder",
                                                 "reviewer"],
                                      "leader": "lead"}),
             ("chain_step_start", 0, {"teamId": "dev", "step": 1,
                                      "agentId": "lead",
                                      "agentName": "Lead"}),
             ("chain_step_done", 0, {"step": 1, "agentId": "lead",
                                     "responseLength": 36}),
             ("chain_handoff", 0, {"teamId": "dev", "fromAgent": "lead",
                                   "toAgent": "coder", "step": 1}),
             ("chain_step_start", 1, {"step": 2, "agentId": "coder",
                                      "agentName": "Coder"}),
             ("chain_step_done", 1, {"step": 2, "agentId": "coder",
                                     "responseLength": 13,
                                     "responseText": "Code written."}),
             ("team_chain_end", 0, {"teamId": "dev", "totalSteps": 2,
                                    "agents": ["lead", "coder"]}),
             ("agent_routed", 0, {"agentId": "lead", "isTeamRouted": True}),
         ],
         transcript=("dev", TRANSCRIPT_SINGLE)),
    dict(name="chain_tag_case_insensitive_and_trimmed",
         settings=CHAIN,
         script={"lead": [{"reply": "[@CODER:   spaced out  ]"}],
                 "coder": [{"reply": "fine"}]},
         messages=[M("@lead go", reply=joined(
             ("lead", "[@CODER:   spaced out  ]"), ("coder", "fine")))],
         calls=[dict(prog="lead", message="go"),
                dict(prog="coder", message=teammate("lead", "spaced out"))]),
    dict(name="chain_bare_mention_handoff",
         settings=CHAIN,
         # unknown @nobody and the speaker itself are skipped; the first
         # teammate ("@coder," with its comma) gets the whole reply; only
         # one hand-off, so @reviewer gets nothing
         script={"lead": [{"reply": "Ask @nobody or @lead; then @coder, go."
                                    " And @reviewer later."}],
                 "coder": [{"reply": "Going."}]},
         messages=[M("@dev plan", reply=joined(
             ("lead", "Ask @nobody or @lead; then @coder, go. And "
                      "@reviewer later."),
             ("coder", "Going.")))],
         calls=[dict(prog="lead", message="plan"),
                dict(prog="coder", message=teammate(
                    "lead", "Ask @nobody or @lead; then @coder, go. And "
                            "@reviewer later."))],
         events=SINGLE_EVENTS),
    dict(name="chain_tags_win_over_bare_mentions",
         settings=CHAIN,
         script={"lead": [{"reply": "@coder look. [@reviewer: check]"}],
                 "reviewer": [{"reply": "Checked."}]},
         messages=[M("@dev x", reply=joined(
             ("lead", "@coder look. [@reviewer: check]"),
             ("reviewer", "Checked.")))],
         calls=[dict(prog="lead", message="x"),
                dict(prog="reviewer", message=teammate("lead", "check"))]),
    dict(name="chain_not_a_teammate_ends",
         settings=CHAIN,
         # outsider is an agent but not in dev; lead is the speaker itself
         script={"lead": [{"reply": "[@outsider: help] [@lead: me]"}]},
         messages=[M("@dev x", reply="[@outsider: help] [@lead: me]",
                     fields={"agent": "lead"})],
         calls=[dict(prog="lead", message="x")],
         events=ONE_STEP_EVENTS,
         event_fields=[("team_chain_end", 0, {"totalSteps": 1,
                                              "agents": ["lead"]})]),
    dict(name="chain_direct_member_runs_in_team",
         settings=CHAIN,
         # @coder is not routed by team, but coder belongs to dev: the
         # message still runs as a chain of dev
         script={"coder": [{"reply": "[@reviewer: see]"}],
                 "reviewer": [{"reply": "S\u00e9en \U0001F600"}]},
         messages=[M("@coder fix", reply=joined(
             ("coder", "[@reviewer: see]"),
             ("reviewer", "S\u00e9en \U0001F600")),
             fields={"agent": "coder"})],
         calls=[dict(prog="coder", message="fix"),
                dict(prog="reviewer", message=teammate("coder", "see"))],
         # responseLength is JavaScript's length: UTF-16 units
         event_fields=[("chain_step_done", 1, {"responseLength": 7}),
                       ("agent_routed", 0, {"isTeamRouted": False}),
                       ("team_chain_start", 0, {"teamId": "dev",
                                                "leader": "lead"})]),
    dict(name="chain_solo_agent_no_chain",
         settings=CHAIN,
         script={"solo": [{"reply": "[@lead: hi] @coder"}]},
         messages=[M("@solo x", reply="[@lead: hi] @coder",
                     fields={"agent": "solo"})],
         calls=[dict(prog="solo", message="x")],
         # TinyClaw 0.0.4+: every invocation is a step, without teamId
         # (test_compat_chain.py)
         events=E("chain_step_start", "chain_step_done")),
    dict(name="chain_fanout_parallel_mention_order",
         settings=CHAIN,
         # reviewer is mentioned first but finishes last; the fan-out
         # results never hand off again (coder's tag is not followed)
         script={"lead": [{"reply": "Split: [@reviewer: review it] "
                                    "[@coder: code it]"}],
                 "reviewer": [{"sleep": 1.2, "reply": "Reviewed."}],
                 "coder": [{"sleep": 0.8,
                            "reply": "Coded. [@reviewer: look]"}]},
         messages=[M("@dev work", reply=joined(
             ("lead", "Split: [@reviewer: review it] [@coder: code it]"),
             ("reviewer", "Reviewed."),
             ("coder", "Coded. [@reviewer: look]")),
             fields={"agent": "lead"})],
         calls=[dict(prog="lead", message="work"),
                dict(prog="reviewer", message=teammate("lead", "review it")),
                dict(prog="coder", message=teammate("lead", "code it"))],
         parallel_tail=2,
         events=E("team_chain_start", "chain_step_start", "chain_step_done",
                  ["chain_handoff", "chain_handoff", "chain_step_start",
                   "chain_step_start", "chain_step_done",
                   "chain_step_done"],
                  "team_chain_end"),
         # TinyClaw numbers a fan-out's hand-offs as the step they leave
         # and every fan-out step as the one step after it
         event_fields=[("chain_handoff", 0, {"toAgent": "reviewer",
                                             "step": 1}),
                       ("chain_handoff", 1, {"toAgent": "coder", "step": 1}),
                       ("chain_step_start", 1, {"step": 2}),
                       ("chain_step_start", 2, {"step": 2}),
                       ("chain_step_done", 1, {"agentId": "coder",
                                               "step": 2}),
                       ("chain_step_done", 2, {"agentId": "reviewer",
                                               "step": 2}),
                       ("team_chain_end", 0, {"totalSteps": 3, "agents": [
                           "lead", "reviewer", "coder"]})],
         check="fanout_parallel"),
    dict(name="chain_fanout_one_step_fails",
         settings=CHAIN,
         script={"lead": [{"reply": "[@coder: a] [@reviewer: b]"}],
                 "coder": [{"fail": "terminal"}],
                 "reviewer": [{"reply": "Reviewed."}]},
         messages=[M("@dev go", reply=joined(
             ("lead", "[@coder: a] [@reviewer: b]"), ("coder", STEP_ERROR),
             ("reviewer", "Reviewed.")))],
         calls=[dict(prog="lead", message="go"),
                dict(prog="coder", message=teammate("lead", "a")),
                dict(prog="reviewer", message=teammate("lead", "b"))],
         parallel_tail=2, no_dead=True),
    dict(name="chain_step_limit",
         settings=deep_merge(CHAIN, {"supervisor": {"max_chain_steps": 3}}),
         script={"ping": [{"reply": "[@pong: your turn]"}],
                 "pong": [{"reply": "[@ping: back to you]"}]},
         messages=[M("@pp serve", reply=joined(
             ("ping", "[@pong: your turn]"), ("pong", "[@ping: back to you]"),
             ("ping", "[@pong: your turn]")),
             fields={"agent": "ping"})],
         calls=[dict(prog="ping", message="serve"),
                dict(prog="pong", message=teammate("ping", "your turn")),
                dict(prog="ping", message=teammate("pong", "back to you"))],
         events=E("team_chain_start",
                  "chain_step_start", "chain_step_done", "chain_handoff",
                  "chain_step_start", "chain_step_done", "chain_handoff",
                  "chain_step_start", "chain_step_done",
                  "team_chain_end"),
         event_fields=[("team_chain_end", 0, {"teamId": "pp",
                                              "totalSteps": 3})],
         transcript_steps=("pp", 3),
         settle=0.5),
    dict(name="chain_step_limit_default_10",
         settings=CHAIN,
         script={"ping": [{"reply": "[@pong: ball]"}],
                 "pong": [{"reply": "[@ping: again]"}]},
         messages=[M("@ping serve", reply=joined(*[
             ("ping", "[@pong: ball]") if i % 2 == 0 else
             ("pong", "[@ping: again]") for i in range(10)]),
             fields={"agent": "ping"})],
         calls=[dict(prog=("ping", "pong")[i % 2]) for i in range(10)],
         event_fields=[("team_chain_end", 0, {"totalSteps": 10})],
         settle=0.5),
    dict(name="chain_step_transient_retries_that_step_only",
         settings=CHAIN,
         script={"lead": [{"reply": "[@coder: go]"}],
                 "coder": [{"fail": "transient"}, {"reply": "Recovered."}]},
         messages=[M("@dev go", reply=joined(("lead", "[@coder: go]"),
                                             ("coder", "Recovered.")))],
         calls=[dict(prog="lead", message="go"),
                dict(prog="coder", message=teammate("lead", "go")),
                dict(prog="coder", message=teammate("lead", "go"))],
         event_fields=[("team_chain_end", 0, {"totalSteps": 2,
                                              "agents": ["lead", "coder"]})],
         no_dead=True),
    dict(name="chain_first_step_transient_retried",
         settings=CHAIN,
         script={"lead": [{"fail": "transient"}, {"reply": "[@coder: go]"}],
                 "coder": [{"reply": "Done."}]},
         messages=[M("@dev go", reply=joined(("lead", "[@coder: go]"),
                                             ("coder", "Done.")))],
         calls=[dict(prog="lead", message="go"),
                dict(prog="lead", message="go"),
                dict(prog="coder", message=teammate("lead", "go"))],
         event_fields=[("team_chain_start", 0, {"teamId": "dev"}),
                       ("team_chain_end", 0, {"totalSteps": 2,
                                              "agents": ["lead", "coder"]})],
         no_dead=True),
    dict(name="chain_step_terminal_ends_with_error",
         settings=CHAIN,
         script={"lead": [{"reply": "[@coder: go]"}],
                 "coder": [{"fail": "terminal"}],
                 "reviewer": [{"reply": "never"}]},
         messages=[M("@dev go", reply=joined(("lead", "[@coder: go]"),
                                             ("coder", STEP_ERROR)),
                     fields={"agent": "lead"})],
         calls=[dict(prog="lead", message="go"),
                dict(prog="coder", message=teammate("lead", "go"))],
         events=SINGLE_EVENTS,
         event_fields=[("chain_step_done", 1, {"agentId": "coder",
                                               "responseText": STEP_ERROR})],
         no_dead=True, settle=0.3),
    dict(name="chain_step_transient_exhausted_ends_with_error",
         settings=deep_merge(CHAIN, {"sandbox": {"max_attempts": 2}}),
         script={"lead": [{"reply": "[@coder: go]"}],
                 "coder": [{"fail": "transient"}]},
         messages=[M("@dev go", reply=joined(("lead", "[@coder: go]"),
                                             ("coder", STEP_ERROR)))],
         calls=[dict(prog="lead"), dict(prog="coder"), dict(prog="coder")],
         no_dead=True),
    dict(name="chain_first_step_terminal_dead_letter",
         settings=CHAIN,
         # clawvisor differs (MIGRATION.md "Failures"): a failed first step
         # is the message failing: dead letter and the notice
         script={"lead": [{"fail": "terminal"}]},
         messages=[M("@dev go", dead=True, reply=NOTICE)],
         calls=[dict(prog="lead", message="go")],
         # the failed step ends its step and its chain, as TinyClaw's
         # (test_compat_chain.py)
         events=E("team_chain_start", "chain_step_start", "chain_step_done",
                  "team_chain_end"),
         event_fields=[("chain_step_done", 0, {"step": 1,
                                               "responseText": STEP_ERROR}),
                       ("team_chain_end", 0, {"totalSteps": 1,
                                              "agents": ["lead"]})],
         transcript_steps=("dev", 1),
         settle=0.3),
    dict(name="chain_files_merged_from_all_steps",
         settings=CHAIN,
         files={"$WS/lead/plan.md": "plan", "$WS/coder/code.py": "code"},
         script={"lead": [{"reply": "[send_file: $WS/lead/plan.md]\n"
                                    "[@CODER: implement]"}],
                 "coder": [{"reply": "Done [send_file: $WS/coder/code.py] "
                                     "[send_file: $WS/lead/plan.md]"}]},
         messages=[M("@dev go", reply=joined(("lead", "[@CODER: implement]"),
                                             ("coder", "Done")),
                     copies=["$WS/lead/plan.md", "$WS/coder/code.py"])],
         calls=[dict(prog="lead"),
                dict(prog="coder", message=teammate("lead", "implement"))]),
    dict(name="chain_per_agent_reset_in_later_step",
         settings=PAIR,
         files={"$WS/bob/reset_flag": "reset"},
         # ann echoes "[@bob: hi]": a hand-off to bob, whose own flag
         # drops -c for his call only
         messages=[M("@pair [@bob: hi]", reply=joined(
             ("ann", claude_reply("[@bob: hi]", S4)),
             ("bob", claude_reply(teammate("ann", "hi"), S4, cont=False))))],
         calls=[dict(prog="claude", argv=claude_argv("[@bob: hi]", S4),
                     cwd="$WS/ann"),
                dict(prog="claude", cwd="$WS/bob",
                     argv=claude_argv(teammate("ann", "hi"), S4,
                                      cont=False))],
         gone=["$WS/bob/reset_flag"]),

    # ---- reset flags -----------------------------------------------------
    dict(name="reset_global_flag_claude",
         settings=ROUTE,
         files={"$HOME/reset_flag": "reset"},
         messages=[M("@alpha one", reply=claude_reply("one", S4, False)),
                   M("@alpha two", reply=claude_reply("two", S4))],
         calls=[dict(prog="claude", argv=claude_argv("one", S4, False)),
                dict(prog="claude", argv=claude_argv("two", S4))],
         gone=["$HOME/reset_flag"]),
    dict(name="reset_agent_flag_codex",
         settings=ROUTE,
         files={"$WS/beta/reset_flag": ""},
         messages=[M("@beta one", reply=codex_reply("one", "gpt-5", False)),
                   M("@beta two", reply=codex_reply("two", "gpt-5"))],
         calls=[dict(prog="codex", argv=codex_argv("one", "gpt-5", False)),
                dict(prog="codex", argv=codex_argv("two", "gpt-5"))],
         gone=["$WS/beta/reset_flag"]),
    dict(name="reset_agent_flag_only_its_agent",
         settings=ROUTE,
         files={"$WS/alpha/reset_flag": ""},
         messages=[M("@beta one", reply=codex_reply("one", "gpt-5")),
                   M("@alpha two", reply=claude_reply("two", S4, False)),
                   M("@alpha three", reply=claude_reply("three", S4))],
         calls=[dict(prog="codex", argv=codex_argv("one", "gpt-5")),
                dict(prog="claude", argv=claude_argv("two", S4, False)),
                dict(prog="claude", argv=claude_argv("three", S4))],
         gone=["$WS/alpha/reset_flag"]),
    dict(name="reset_global_flag_taken_by_next_agent",
         settings=ROUTE,
         files={"$HOME/reset_flag": "", "$WS/beta/reset_flag": ""},
         # one call resets, and both flags it saw are consumed
         messages=[M("@beta one", reply=codex_reply("one", "gpt-5", False)),
                   M("@alpha two", reply=claude_reply("two", S4)),
                   M("@beta three", reply=codex_reply("three", "gpt-5"))],
         calls=[dict(prog="codex", argv=codex_argv("one", "gpt-5", False)),
                dict(prog="claude", argv=claude_argv("two", S4)),
                dict(prog="codex", argv=codex_argv("three", "gpt-5"))],
         gone=["$HOME/reset_flag", "$WS/beta/reset_flag"]),

    # ---- response details ------------------------------------------------
    dict(name="cut_4000_untouched",
         settings=CHAIN, script={"solo": [{"reply": "x" * 4000}]},
         messages=[M("@solo long", reply="x" * 4000)],
         calls=[dict(prog="solo")]),
    dict(name="cut_4001",
         settings=CHAIN, script={"solo": [{"reply": "y" * 3999 + "za"}]},
         messages=[M("@solo long", reply="y" * 3900 + CUT_NOTE)],
         calls=[dict(prog="solo")]),
    dict(name="cut_counts_characters_not_bytes",
         settings=CHAIN, script={"solo": [{"reply": "\u00e9" * 4000}]},
         messages=[M("@solo long", reply="\u00e9" * 4000)],
         calls=[dict(prog="solo")]),
    dict(name="cut_emoji_2000_is_4000_units_untouched",
         settings=CHAIN, script={"solo": [{"reply": "\U0001F600" * 2000}]},
         messages=[M("@solo long", reply="\U0001F600" * 2000)],
         calls=[dict(prog="solo")]),
    dict(name="cut_emoji_counted_as_two_units",
         settings=CHAIN,
         script={"solo": [{"reply": "\U0001F600" * 2000 + "a"}]},
         messages=[M("@solo long", reply="\U0001F600" * 1950 + CUT_NOTE)],
         calls=[dict(prog="solo")]),
    dict(name="cut_never_splits_a_surrogate_pair",
         settings=CHAIN,
         # JavaScript's substring(0, 3900) would keep half of the 1950th
         # emoji; clawvisor (UTF-8 out) keeps the 1949 whole ones
         script={"solo": [{"reply": "a" + "\U0001F600" * 2000}]},
         messages=[M("@solo long",
                     reply="a" + "\U0001F600" * 1949 + CUT_NOTE)],
         calls=[dict(prog="solo")]),
    dict(name="cut_applies_to_chain_aggregate",
         settings=CHAIN,
         script={"lead": [{"reply": "[@coder: go]"}],
                 "coder": [{"reply": "c" * 3990}]},
         messages=[M("@dev go", reply=("@lead: [@coder: go]" + SEP
                                       + "@coder: " + "c" * 4000)[:3900]
                     + CUT_NOTE)],
         calls=[dict(prog="lead"), dict(prog="coder")]),
    dict(name="heartbeat_file_name",
         settings=ROUTE,
         messages=[M("@alpha check in", channel="heartbeat", mid="hb-42",
                     name_re=r"hb-42\.json",
                     reply=claude_reply("check in", S4),
                     fields={"channel": "heartbeat", "messageId": "hb-42",
                             "agent": "alpha"})],
         calls=[dict(prog="claude")]),
    dict(name="response_file_name",
         settings=ROUTE,
         messages=[M("@alpha hi", channel="telegram", sender="bob",
                     name_re=r"telegram_{mid}_\d+\.json",
                     reply=claude_reply("hi", S4),
                     fields={"channel": "telegram", "sender": "bob",
                             "originalMessage": "@alpha hi"},
                     absent=["files"])],
         calls=[dict(prog="claude")]),
    dict(name="send_file_single_agent",
         settings=CHAIN,
         files={"$WS/solo/report.txt": "report"},
         script={"solo": [{"reply": "Here it is.\n"
                                    "[send_file: $WS/solo/report.txt]"}]},
         messages=[M("@solo report", reply="Here it is.",
                     copies=["$WS/solo/report.txt"])],
         calls=[dict(prog="solo")]),
    dict(name="send_file_missing_named",
         settings=CHAIN,
         # MIGRATION.md: the tag is stripped and the path named (TinyClaw
         # left the tag in the text)
         script={"solo": [{"reply": "Here [send_file: /nonexistent/x.txt]"}]},
         messages=[M("@solo report", reply="Here\n\n[clawvisor: could not "
                     "attach: /nonexistent/x.txt (no such file)]",
                     absent=["files"])],
         calls=[dict(prog="solo")]),
    dict(name="codex_agent_messages_joined",
         settings=ROUTE,
         # MIGRATION.md: every agent_message, joined by a blank line
         messages=[M("@beta multi part",
                     reply=codex_reply("multi part", "gpt-5")
                     + "\n\nsecond part")],
         calls=[dict(prog="codex", argv=codex_argv("multi part", "gpt-5"))]),
]


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------

def expand(v, subst):
    if isinstance(v, str):
        for k, r in subst.items():
            v = v.replace(k, r)
        return v
    if isinstance(v, list):
        return [expand(x, subst) for x in v]
    if isinstance(v, tuple):
        return tuple(expand(x, subst) for x in v)
    if isinstance(v, dict):
        return {expand(k, subst): expand(x, subst) for k, x in v.items()}
    return v


def chain_events(h):
    return [e for e in h.events() if e.get("type") in CHAIN_TYPES]


def check_transcript(h, team, expected):
    d = h.path / "chats" / team
    files = sorted(d.glob("*.md")) if d.is_dir() else []
    assert len(files) == 1, f"transcripts in {d}: {files}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{3}\.md",
                        files[0].name), files[0].name
    text = files[0].read_text()
    if isinstance(expected, int):
        assert f"**Steps:** {expected}\n" in text
        assert len(re.findall(r"^## Step \d+: ", text, re.M)) == expected
        return
    pat = re.escape(expected).replace(
        re.escape("{DATE}"), r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    assert re.fullmatch(pat, text), f"transcript:\n{text}"


def check_calls(calls, expected, parallel_tail):
    got = [c["prog"] for c in calls]
    want = [c["prog"] for c in expected]
    if parallel_tail:
        k = len(want) - parallel_tail
        assert got[:k] == want[:k] and \
            sorted(got[k:]) == sorted(want[k:]), (got, want)
        # match the parallel tail by program
        calls = calls[:k] + sorted(calls[k:], key=lambda c: c["prog"])
        expected = expected[:k] + sorted(expected[k:],
                                         key=lambda c: c["prog"])
    else:
        assert got == want, f"calls: {got}, expected {want}"
    for i, (c, e) in enumerate(zip(calls, expected)):
        for key in ("argv", "message", "cwd"):
            if key in e:
                assert c[key] == e[key], \
                    f"call {i} ({c['prog']}) {key}: {c[key]!r} != {e[key]!r}"


def check_fanout_parallel(h, calls):
    lead, *fan = calls
    assert all(c["end"] is not None for c in calls)
    # both fan-out agents started before either ended, after the leader
    assert max(c["start"] for c in fan) < min(c["end"] for c in fan), fan
    assert min(c["start"] for c in fan) >= lead["end"] - 0.01
    span = max(c["end"] for c in fan) - min(c["start"] for c in fan)
    assert span < 1.9, f"fan-out took {span:.2f}s: not in parallel"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_compat(homes, case):
    h = homes(start=False)
    ws = str(h.workspace.resolve())
    subst = {"$WS": ws, "$HOME": str(h.path.resolve())}
    case = expand(case, subst)

    settings = deep_merge(BASE_SETTINGS, {"agents": None, "teams": None})
    settings = deep_merge(settings, case["settings"])
    settings["workspace"] = {"path": ws}
    script = case.get("script")
    if script is not None or any(
            a.get("provider") == "command"
            for a in settings["agents"].values()):
        spec = h.path / "script" / "spec.json"
        spec.parent.mkdir()
        spec.write_text(json.dumps(script or {}))
        prog = h.path / "script" / "scripted.py"
        prog.write_text(SCRIPTED)
        for aid, a in settings["agents"].items():
            if a.get("provider") == "command":
                a["command"] = [sys.executable, str(prog), str(spec), aid,
                                "{message}"]
    h.write_settings(settings)
    for path, content in case.get("files", {}).items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    h.start()

    # One message at a time: each is dropped once the last one is answered.
    for m in case["messages"]:
        kw = {k: m[k] for k in ("agent", "channel", "sender", "mid")
              if k in m}
        mid = h.drop(m["message"], **kw)
        if m.get("dead"):
            dead, notice = h.wait_dead(mid, timeout=20)
            r = notice
        else:
            r = h.wait_response(mid, timeout=20)
        want = m["reply"]
        if isinstance(want, re.Pattern):
            assert want.fullmatch(r["message"]), r["message"][:500]
        else:
            assert r["message"] == want, \
                f"reply:\n{r['message'][:2000]!r}\nexpected:\n" \
                f"{want[:2000]!r}"
        for k, v in m.get("fields", {}).items():
            assert r.get(k) == v, f"field {k}: {r.get(k)!r} != {v!r}"
        for k in m.get("absent", []):
            assert k not in r, f"field {k} present: {r[k]!r}"
        if "copies" in m:
            # clawvisor differs (SANDBOX.md): `files` names copies in
            # HOME/files/, made when the reply was taken, in tag order
            got = r.get("files", [])
            assert len(got) == len(m["copies"]), got
            for g, src in zip(got, m["copies"]):
                g = Path(g)
                assert g.parent == h.path.resolve() / "files", g
                assert g.name.startswith("clawvisor-") and \
                    g.name.endswith("-" + Path(src).name), g
                assert g.read_bytes() == Path(src).read_bytes(), g
        if "name_re" in m:
            assert re.fullmatch(m["name_re"].replace("{mid}", re.escape(mid)),
                                r["_path"].name), r["_path"].name
        if case.get("no_dead"):
            assert h.dead_letters(mid) == []
        if m.get("dead"):
            continue
        # the response_ready event comes with the response
        wait_for(lambda: any(e.get("messageId") == mid
                             for e in h.events("response_ready")), 5,
                 what="response_ready")

    # Whatever ran after the reply (a stray hand-off) would show here.
    time.sleep(case.get("settle", 0.1))
    calls = h.calls()
    if os.environ.get("COMPAT_DEBUG"):
        for e in chain_events(h):
            print(json.dumps(e)[:300])
        for c in calls:
            print(c["prog"], repr(c["message"])[:100])
    check_calls(calls, case["calls"], case.get("parallel_tail", 0))
    assert all(c["end"] is not None for c in calls), "a call never ended"

    if "events" in case:
        got = [e["type"] for e in chain_events(h)]
        pos = 0
        for g in case["events"]:
            part = got[pos:pos + len(g)]
            assert Counter(part) == Counter(g), \
                f"chain events {got}, expected groups {case['events']}"
            pos += len(g)
        assert pos == len(got), f"extra chain events: {got[pos:]}"
    for typ, n, want in case.get("event_fields", []):
        evs = h.events(typ)
        assert len(evs) > n, f"no {typ} #{n}: {evs}"
        for k, v in want.items():
            assert evs[n].get(k) == v, f"{typ}#{n}.{k}: {evs[n].get(k)!r}" \
                f" != {v!r} ({evs[n]})"
    if "transcript" in case:
        check_transcript(h, *case["transcript"])
    if "transcript_steps" in case:
        check_transcript(h, *case["transcript_steps"])
    for p in case.get("gone", []):
        assert not os.path.exists(p), f"{p} not consumed"
    if case.get("check") == "fanout_parallel":
        check_fanout_parallel(h, calls)
