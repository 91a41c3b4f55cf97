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
