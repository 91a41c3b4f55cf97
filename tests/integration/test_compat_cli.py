"""
TinyClaw compatibility, second pass (issue 13): what the real `claude`
(2.1.x) and `codex` (0.17x) CLIs need that the first pass missed.

- A message that starts with '-' is text: `--` goes before it (SPEC §4).
  The fakes refuse an unknown option as the real CLIs do (claude: "error:
  unknown option", exit 1; codex: clap's "unexpected argument", exit 2), so
  without the `--` every case below ends as a terminal dead letter.
- Keys: `codex exec` reads only CODEX_API_KEY; TinyClaw's installs set
  OPENAI_API_KEY, whose value the CLI gets as CODEX_API_KEY too. claude
  also logs in with CLAUDE_CODE_OAUTH_TOKEN. The fakes' "show keys" reply
  carries the sha256 of each variable they see, never a value.
"""
import hashlib
import os
import time
import json
import subprocess

import pytest

from conftest import BIN
from test_apple_mode import ahomes, clog, run_record  # noqa: F401

DASHED = ["-x", "--help", "--model opus", "-- foo", "-", "- buy milk"]


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def keys_seen(reply):
    """{"NAME": sha256 or "unset"} from a fake's "show keys" reply (NAME:SHA:
    NAME=value would be redacted)."""
    tail = reply[reply.index("keys:") + 5:]
    return dict(kv.split(":", 1) for kv in tail.split())


@pytest.mark.parametrize("agent,prog", [("alpha", "claude"),
                                        ("beta", "codex")])
def test_dash_messages_are_text(home, agent, prog):
    mids = {m: home.drop(m, agent=agent) for m in DASHED}
    for m, mid in mids.items():
        r = home.wait_response(mid)
        assert r["message"].endswith(f"): {m}"), (m, r["message"])
        (call,) = home.calls(m)
        assert call["prog"] == prog
        assert call["argv"][-2:] == ["--", m], call["argv"]
        assert home.dead_letters(mid) == []


def test_codex_gets_openai_key_as_codex_key_on_host(homes):
    h = homes(start=False)
    h.start(env={"OPENAI_API_KEY": "sk-proj-tinyclaw-0123456789abcdef",
                 "CODEX_API_KEY": ""})
    r = h.wait_response(h.drop("show keys", agent="beta"))
    k = keys_seen(r["message"])
    assert k["CODEX_API_KEY"] == sha("sk-proj-tinyclaw-0123456789abcdef")
    assert k["OPENAI_API_KEY"] == k["CODEX_API_KEY"]


def test_codex_key_of_its_own_wins_on_host(homes):
    h = homes(start=False)
    h.start(env={"OPENAI_API_KEY": "sk-proj-tinyclaw-0123456789abcdef",
                 "CODEX_API_KEY": "sk-codex-own-fedcba9876543210"})
    r = h.wait_response(h.drop("show keys", agent="beta"))
    k = keys_seen(r["message"])
    assert k["CODEX_API_KEY"] == sha("sk-codex-own-fedcba9876543210")
    assert k["OPENAI_API_KEY"] == sha("sk-proj-tinyclaw-0123456789abcdef")


def test_sandbox_codex_key_handed_over(ahomes):  # noqa: F811
    # Apple mode (the fake `container` records the env-file): only
    # OPENAI_API_KEY set; the default allowlist names all four variables.
    okey = "sk-proj-apple-0123456789abcdef"
    h = ahomes(secret=False, env={"OPENAI_API_KEY": okey})
    mid = h.drop("show keys", agent="beta")
    r = h.wait_response(mid, timeout=20)
    k = keys_seen(r["message"])
    assert k["CODEX_API_KEY"] == sha(okey)
    (rec,) = clog(h, "run")
    (ef,) = rec["env_files"]
    assert ef["names"] == ["HOME", "OPENAI_API_KEY", "CODEX_API_KEY"]
    assert ef["sha256"]["CODEX_API_KEY"] == sha(okey)
    assert okey not in h.log()


def test_sandbox_runs_with_either_key(ahomes):  # noqa: F811
    # claude with only the subscription token, codex with only its own key:
    # neither fails closed.
    tok = "sk-ant-oat01-apple-0123456789abcdef"
    ckey = "sk-codex-apple-0123456789abcdef"
    h = ahomes(secret=False, env={"CLAUDE_CODE_OAUTH_TOKEN": tok,
                                  "CODEX_API_KEY": ckey})
    ra = h.wait_response(h.drop("show keys", agent="alpha"), timeout=20)
    rb = h.wait_response(h.drop("show keys", agent="beta"), timeout=20)
    ka, kb = keys_seen(ra["message"]), keys_seen(rb["message"])
    assert ka["CLAUDE_CODE_OAUTH_TOKEN"] == sha(tok)
    assert ka["ANTHROPIC_API_KEY"] == "unset"
    assert kb["CODEX_API_KEY"] == sha(ckey)
    assert kb["OPENAI_API_KEY"] == "unset"
    for rec in clog(h, "run"):
        assert "CODEX_API_KEY" not in rec["env_files"][0]["names"] or \
            rec["env_files"][0]["sha256"]["CODEX_API_KEY"] == sha(ckey)


def test_sandbox_neither_key_names_both(ahomes):  # noqa: F811
    h = ahomes(secret=False)
    mid = h.drop("no key at all", agent="beta")
    dead, _ = h.wait_dead(mid, timeout=20)
    assert dead["errorClass"] == "terminal"
    assert "CODEX_API_KEY or OPENAI_API_KEY is required by the openai " \
        "provider but is not set" in dead["errorMessage"]


def test_doctor_accepts_oauth_token(homes, tmp_path):
    # Doctor without a daemon: the shell's environment counts. Apple mode
    # with the fake `container` on PATH.
    h = homes({"sandbox": {"mode": "apple"},
               "agents": {"alpha": {"provider": "anthropic"},
                          "beta": None}}, start=False)
    env = h.env({"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-doctor-0123456789",
                 "ANTHROPIC_API_KEY": ""})
    p = subprocess.run([BIN, "--home", str(h.path), "sandbox", "doctor",
                        "--json"], env=env, capture_output=True, text=True,
                       timeout=60)
    rep = json.loads(p.stdout)
    checks = {(c["name"], c["detail"]): c["ok"] for c in rep["checks"]}
    assert checks.get(("allowlist", "ANTHROPIC_API_KEY is allowlisted"))
    assert checks.get(("keys", "CLAUDE_CODE_OAUTH_TOKEN is set in this "
                       "shell (no daemon running)")), rep
    assert "sk-ant-oat01-doctor" not in p.stdout + p.stderr


# -- settings TinyClaw's own scripts write ------------------------------------

def removed_member_settings(ws):
    """lib/teams.sh team_add writes .teams[$id] = {name, agents,
    leader_agent}; lib/agents.sh agent_remove then runs
    `jq 'del(.agents[$id])'`, leaving the team as it was."""
    return {
        "workspace": {"path": str(ws), "name": "tinyclaw-workspace"},
        "channels": {"enabled": ["discord"]},
        "agents": {"coder": {"name": "Coder", "provider": "anthropic",
                             "model": "sonnet",
                             "working_directory": str(ws / "coder")}},
        "teams": {"dev": {"name": "Dev Team",
                          "agents": ["coder", "reviewer"],
                          "leader_agent": "reviewer"}},
        "monitoring": {"heartbeat_interval": 3600},
    }


def cli(h, *args):
    return subprocess.run([BIN, "--home", str(h.path), *args],
                          env=h.env(), capture_output=True, text=True,
                          timeout=60)


def test_removed_team_member_is_dropped_at_start(homes):
    h = homes(start=False)
    s = removed_member_settings(h.workspace)
    s["sandbox"] = h.settings["sandbox"]
    h.write_settings(s)
    h.start()
    log = h.log()
    assert 'teams.dev.agents: no agent "reviewer", dropped from the team' \
        in log
    assert 'teams.dev.leader_agent: "reviewer" is not one of the team\'s ' \
        'agents; "coder" leads instead' in log
    # @dev reaches the remaining member, who leads now.
    r = h.wait_response(h.drop("@dev review this"))
    assert r["agent"] == "coder"
    (call,) = h.calls("review this")
    assert call["prog"] == "claude"
    # The doctor shows the warning and does not fail on it.
    p = cli(h, "sandbox", "doctor", "--json")
    rep = json.loads(p.stdout)
    (st,) = [c for c in rep["checks"] if c["name"] == "settings"]
    assert st["ok"] and "dropped from the team" in st["detail"]


def test_removed_team_member_on_reload(home):
    s = removed_member_settings(home.workspace)
    s["sandbox"] = home.settings["sandbox"]
    home.write_settings(s)
    p = cli(home, "reload")
    assert p.returncode == 0, p.stdout + p.stderr
    r = home.wait_response(home.drop("@dev after reload"))
    assert r["agent"] == "coder"


def test_opencode_agent_refused_alone(homes):
    # 0.0.5's setup wizard offers provider "opencode".
    h = homes({"agents": {"oc": {"name": "Open", "provider": "opencode",
                                 "model": "opencode/claude-sonnet-4-5"}}},
              start=False)
    h.start()
    assert 'agents.oc.provider: "opencode" is not run by clawvisor' in h.log()
    bad = h.drop("hello opencode", agent="oc")
    good = h.drop("hello claude", agent="alpha")
    assert h.wait_response(good)["agent"] == "alpha"
    dead, notice = h.wait_dead(bad)
    assert dead["errorClass"] == "terminal"
    assert 'agents.oc.provider: "opencode" is not run by clawvisor' in \
        dead["errorMessage"]
    assert notice is not None
    assert h.calls("hello opencode") == []
    p = cli(h, "sandbox", "doctor", "--json")
    rep = json.loads(p.stdout)
    (ag,) = [c for c in rep["checks"] if c["name"] == "agent"]
    assert not ag["ok"] and "opencode" in ag["detail"]
    assert p.returncode != 0
    p = cli(h, "sandbox", "show", "--json")
    shown = json.loads(p.stdout)["agents"]["oc"]
    assert shown["provider"] == "opencode" and "refused" in shown


# -- settings.json edited on disk, no reload sent ------------------------------

def generation(h):
    p = cli(h, "status", "--json")
    return json.loads(p.stdout)["generation"]


def test_settings_change_on_disk_is_reloaded(homes):
    from conftest import wait_for
    home = homes({"supervisor": {"watch_settings": True}})
    g0 = generation(home)
    # lib/agents.sh agent_add: jq ... > settings.json.tmp && mv.
    s = json.loads((home.path / "settings.json").read_text())
    s["agents"]["gamma"] = {"name": "Gamma", "provider": "anthropic"}
    tmp = home.path / "settings.json.tmp"
    tmp.write_text(json.dumps(s))
    os.rename(tmp, home.path / "settings.json")
    wait_for(lambda: generation(home) == g0 + 1, 10, what="a reload")
    r = home.wait_response(home.drop("@gamma are you there"))
    assert r["agent"] == "gamma"
    assert "changed on disk: reloading" in home.log()
    # Once: no second reload for the same file.
    time.sleep(1)
    assert generation(home) == g0 + 1

    # Written in place, invalid: refused, the running configuration stays.
    with open(home.path / "settings.json", "w") as f:
        f.write('{"agents": {"gamma": ')
    wait_for(lambda: "reload refused" in home.log(), 10,
             what="the refusal")
    assert generation(home) == g0 + 1
    assert home.wait_response(home.drop("@gamma still here"))["agent"] == \
        "gamma"
    # Removed: a warning, never the defaults.
    os.unlink(home.path / "settings.json")
    wait_for(lambda: "was removed; the running configuration stays" in
             home.log(), 10, what="the warning")
    assert generation(home) == g0 + 1
    # Back and valid: in force again.
    s["agents"]["delta"] = {"name": "Delta", "provider": "openai"}
    (home.path / "settings.json").write_text(json.dumps(s))
    wait_for(lambda: generation(home) == g0 + 2, 10, what="a reload")
    assert home.wait_response(home.drop("@delta hi"))["agent"] == "delta"


# -- TinyClaw's own queue processor on the same home ---------------------------

# What src/queue-processor.ts of v0.0.5 does when it starts
# (recoverOrphanedFiles, lines 69-80, called at line 584): every *.json in
# processing/ is renamed back into incoming/. TINYCLAW_HOME comes from
# src/lib/config.ts line 8. Then it idles, as its 1 s poll would.
NODE_PROCESSOR = r"""
const fs = require('fs'), path = require('path');
const home = process.env.TINYCLAW_HOME;
const inc = path.join(home, 'queue/incoming');
const proc = path.join(home, 'queue/processing');
for (const f of fs.readdirSync(proc).filter(f => f.endsWith('.json'))) {
    try { fs.renameSync(path.join(proc, f), path.join(inc, f)); }
    catch (e) {}
}
fs.writeFileSync(path.join(home, 'node-started'), '');
setInterval(() => {}, 1000);
"""


@pytest.fixture
def node_processor(tmp_path):
    """start(home) -> the Popen of `node dist/queue-processor.js` on it."""
    import shutil
    if shutil.which("node") is None:
        pytest.fail("node is not installed (.ci/run installs nodejs)")
    procs = []

    def start(h):
        d = tmp_path / "tinyclaw" / "dist"
        d.mkdir(parents=True, exist_ok=True)
        (d / "queue-processor.js").write_text(NODE_PROCESSOR)
        p = subprocess.Popen(["node", "dist/queue-processor.js"],
                             cwd=str(d.parent),
                             env=h.env({"TINYCLAW_HOME": str(h.path)}))
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_node_processor_is_reported(home, node_processor):
    from conftest import wait_for
    p = node_processor(home)
    wait_for(lambda: (home.path / "node-started").exists(), 10,
             what="node")
    st = json.loads(cli(home, "status", "--json").stdout)
    assert any(f"pid {p.pid}" in w for w in st["warnings"]), st["warnings"]
    out = cli(home, "status").stdout
    assert "warning: TinyClaw's queue processor runs on this home" in out
    d = cli(home, "sandbox", "doctor", "--json")
    rep = json.loads(d.stdout)
    (c,) = [c for c in rep["checks"] if c["name"] == "processor"]
    assert not c["ok"] and f"pid {p.pid}" in c["detail"]
    assert d.returncode != 0
    p.kill()
    p.wait()
    st = json.loads(cli(home, "status", "--json").stdout)
    assert st["warnings"] == []


def test_settings_watch_off(homes):
    h = homes({"supervisor": {"watch_settings": False}})
    s = json.loads((h.path / "settings.json").read_text())
    s["agents"]["gamma"] = {"name": "Gamma", "provider": "anthropic"}
    (h.path / "settings.json").write_text(json.dumps(s))
    time.sleep(1.5)
    assert generation(h) == 1
    assert cli(h, "reload").returncode == 0
    assert generation(h) == 2


def test_claimed_file_moved_back_is_answered_once(home, node_processor):
    from conftest import wait_for
    mid = home.drop("sleep 3 then answer", agent="alpha")
    name = wait_for(lambda: [p.name for p in
                             (home.path / "queue" / "processing").iterdir()
                             if p.name.endswith(".json")], 10,
                    what="the claim")[0]
    wait_for(lambda: home.calls("sleep 3 then answer"), 10, what="the run")
    node_processor(home)
    wait_for(lambda: (home.path / "node-started").exists(), 10,
             what="node")
    wait_for(lambda: f"queue/processing/{name}, which clawvisor was "
             "running, was moved back to queue/incoming/" in home.log(), 10,
             what="the warning")
    home.wait_response(mid)
    wait_for(lambda: "removed, not run twice" in home.log(), 10,
             what="the copy removed")
    time.sleep(1)
    assert len(home.responses(mid)) == 1
    assert len(home.calls("sleep 3 then answer")) == 1
    assert list((home.path / "queue" / "incoming").iterdir()) == []
    assert home.log().count("was moved back to queue/incoming/") == 1


# -- repairable JSON: strict, but the sender learns it --------------------------

def heartbeat_file(agent, prompt, mid):
    """lib/heartbeat-cron.sh of v0.0.5, lines 85-94: a here-document with
    the agent's heartbeat.md pasted in unescaped."""
    return ('{\n'
            '  "channel": "heartbeat",\n'
            '  "sender": "System",\n'
            f'  "senderId": "heartbeat_{agent}",\n'
            f'  "message": "@{agent} {prompt}",\n'
            f'  "timestamp": {int(time.time())}000,\n'
            f'  "messageId": "{mid}"\n'
            '}\n')


def test_broken_heartbeat_gets_a_notice(home):
    from conftest import wait_for
    mid = f"heartbeat_alpha_{int(time.time())}_4242"
    home.drop_raw(f"{mid}.json", heartbeat_file(
        "alpha", 'Look at the "inbox" folder.', mid).encode())
    note = wait_for(lambda: [p for p in (home.path / "queue" /
                                         "corrupt").iterdir()
                             if p.name.endswith(".error")], 10,
                    what="the corrupt note")[0].read_text()
    # Line 5 is the message; json-c stops at the i after the quote, as JSON.parse does.
    assert "reason: not valid JSON at line 5, column 35:" in note, note
    assert 'near "' in note and 'inbox' in note
    resp = wait_for(lambda: home.responses(mid), 10, what="the notice")
    (r,) = resp
    assert r["_path"].name == f"{mid}.json"
    assert r["message"].startswith("Sorry, your message could not be read "
                                   "and was not processed (not valid JSON "
                                   "at line 5, column 35")
    assert r["channel"] == "heartbeat" and r["sender"] == "System"
    assert r["senderId"] == "heartbeat_alpha"
    assert home.calls() == []
    ev = home.wait_events("response_ready", mid)
    assert ev


def test_corrupt_without_sender_gets_no_notice(home):
    from conftest import wait_for
    home.drop_raw("nobody.json", b'{"message": "hi", oops}')
    wait_for(lambda: (home.path / "queue" / "corrupt" / "nobody.json.error")
             .exists(), 10, what="the corrupt note")
    time.sleep(0.5)
    assert list((home.path / "queue" / "outgoing").iterdir()) == []
