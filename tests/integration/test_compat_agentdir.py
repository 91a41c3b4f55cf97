"""
Issue 13, items 8 and 9: TinyClaw's agent directory set-up, and error text
and workspace permissions that point the right way.

TinyClaw 0.0.2-0.0.5 (the file-queue releases), src/lib/invoke.ts
invokeAgent (0.0.5: lines 59-68) calls, before every run:
  ensureAgentDirectory(agentDir)   src/lib/agent-setup.ts:29-89
  updateAgentTeammates(...)        src/lib/agent-setup.ts:95-153
copying from SCRIPT_DIR, its install directory (src/lib/config.ts:6;
scripts/remote-install.sh:76 installs to ~/.tinyclaw). The install fixture
below lays out the files that code reads there, as the 0.0.5 tree ships
them: AGENTS.md (its TEAMMATES markers, AGENTS.md:71-72, on two adjacent
lines), heartbeat.md, SOUL.md and .agents/skills/<skill>/SKILL.md; the
texts around them are stand-ins (the content is the user's, clawvisor
copies it byte for byte).
"""
import json
import os
import stat
import subprocess
import uuid

import pytest

from conftest import BIN, SUITE_MODE, TIME_SCALE
from containers import engine  # noqa: F401 (fixture)

START = "<!-- TEAMMATES_START -->"
END = "<!-- TEAMMATES_END -->"
# AGENTS.md of the install: prose, then the markers on adjacent lines
# (v0.0.5 AGENTS.md:71-72), then more prose.
AGENTS_MD = ("# TinyClaw agent\n\nMention a teammate with [@id: message] "
             "to hand work over.\n\n" + START + "\n" + END +
             "\n\n## Soul\n\nYou have a soul file at `.tinyclaw/SOUL.md`.\n")
HEARTBEAT_MD = "Quick status check: Any pending tasks or issues?\n"
SOUL_MD = "# [Your Name]\n\n<!-- fill this in -->\n"
SKILL_MD = "---\nname: schedule\n---\nSchedule a message.\n"
DASH = "\u2014"
NOT_SET = "tinyclaw.install_dir is not set"


def reload(h):
    """What TinyClaw's CLI edit would trigger by itself (the suite runs
    with supervisor.watch_settings off: conftest.py)."""
    p = subprocess.run([BIN, "--home", str(h.path), "reload"],
                       env=h.env(), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def install_dir(tmp_path, claude_dir=False):
    """TinyClaw's install directory (SCRIPT_DIR) as 0.0.5 ships it."""
    d = tmp_path / f"tinyclaw-install-{uuid.uuid4().hex[:6]}"
    (d / ".agents" / "skills" / "schedule").mkdir(parents=True)
    (d / "AGENTS.md").write_text(AGENTS_MD)
    (d / "heartbeat.md").write_text(HEARTBEAT_MD)
    (d / "SOUL.md").write_text(SOUL_MD)
    (d / ".agents" / "skills" / "schedule" / "SKILL.md").write_text(SKILL_MD)
    if claude_dir:
        # Not in the 0.0.5 tree, but copied when an install has one
        # (agent-setup.ts:36-41).
        (d / ".claude" / "hooks").mkdir(parents=True)
        (d / ".claude" / "settings.json").write_text('{"hooks": {}}\n')
        (d / ".claude" / "hooks" / "start.sh").write_text("#!/bin/sh\n")
        (d / ".claude" / "CLAUDE.md").write_text("the install's own\n")
    return d


def block(me, mates):
    """The block updateAgentTeammates writes (agent-setup.ts:119-129)."""
    b = f"\n### You\n\n- `@{me[0]}` {DASH} **{me[1]}** ({me[2]})\n"
    if mates:
        b += "\n### Your Teammates\n\n"
        for t in mates:
            b += f"- `@{t[0]}` {DASH} **{t[1]}** ({t[2]})\n"
    return b


def with_block(text, b):
    """TinyClaw's splice (agent-setup.ts:131): text up to the end of the
    first start marker, the block, text from the first end marker."""
    s = text.index(START) + len(START)
    return text[:s] + b + text[text.index(END):]


TEAM = {"teams": {"dev": {"name": "Dev", "agents": ["alpha", "beta"],
                          "leader_agent": "alpha"}}}
ALPHA = ("alpha", "Alpha", "sonnet")
BETA = ("beta", "Beta", "gpt-5")


def run_ok(h, text, agent):
    mid = h.drop(text, agent=agent)
    r = h.wait_response(mid, timeout=30)
    assert "reply" in r["message"], r
    return r


# -- item 8: the set-up ------------------------------------------------------

def test_new_agent_directory_set_up_as_tinyclaw(homes, tmp_path):
    inst = install_dir(tmp_path, claude_dir=True)
    h = homes(dict(TEAM, tinyclaw={"install_dir": str(inst)}))
    run_ok(h, "hello", "alpha")
    run_ok(h, "hello", "beta")
    for me, mate in ((ALPHA, BETA), (BETA, ALPHA)):
        w = h.workdir(me[0])
        want = with_block(AGENTS_MD, block(me, [mate]))
        # agent-setup.ts:50-55, then 131-132.
        assert (w / "AGENTS.md").read_text() == want
        # AGENTS.md's copy (57-61), over the install's own .claude/CLAUDE.md
        # (copied before it, 36-41), then the same splice (144-148).
        assert (w / ".claude" / "CLAUDE.md").read_text() == want
        assert (w / ".claude" / "settings.json").read_text() == \
            '{"hooks": {}}\n'
        assert (w / ".claude" / "hooks" / "start.sh").read_text() == \
            "#!/bin/sh\n"
        assert (w / "heartbeat.md").read_text() == HEARTBEAT_MD  # 43-48
        assert (w / ".tinyclaw" / "SOUL.md").read_text() == SOUL_MD  # 82-88
        # Skills: links to the install's .agents/skills (63-80).
        skills = str(inst / ".agents" / "skills")
        for link in (w / ".claude" / "skills", w / ".agent" / "skills"):
            assert link.is_symlink() and os.readlink(link) == skills
        assert (w / ".claude" / "skills" / "schedule" / "SKILL.md"
                ).read_text() == SKILL_MD
    assert NOT_SET not in h.log()
    rep = doctor(h, None)
    assert {"name": "tinyclaw", "ok": True, "detail": "agent directories "
            f"are set up from {inst}"} in rep["checks"], rep
    # The install directory itself is read, never written.
    assert (inst / "AGENTS.md").read_text() == AGENTS_MD
    assert (inst / ".claude" / "CLAUDE.md").read_text() == "the install's own\n"


def test_user_files_kept_and_block_refreshed(homes, tmp_path):
    inst = install_dir(tmp_path)
    h = homes(dict(TEAM, tinyclaw={"install_dir": str(inst)}), start=False)
    w = h.workdir("alpha")
    (w / ".tinyclaw").mkdir(parents=True)
    (w / ".claude").mkdir()
    mine = ("# My own notes\n\n" + START + "\n- `@old` stale\n" + END +
            "\n\nMy closing words.\n")
    (w / "AGENTS.md").write_text(mine)
    os.chmod(w / "AGENTS.md", 0o640)
    (w / ".tinyclaw" / "SOUL.md").write_text("I am Alpha.\n")
    (w / "heartbeat.md").write_text("my heartbeat\n")
    (w / ".claude" / "CLAUDE.md").write_text("my claude notes\n\n\n")
    h.start()
    run_ok(h, "hello", "alpha")
    assert (w / "AGENTS.md").read_text() == with_block(
        mine, block(ALPHA, [BETA]))
    assert stat.S_IMODE(os.stat(w / "AGENTS.md").st_mode) == 0o640
    assert (w / ".tinyclaw" / "SOUL.md").read_text() == "I am Alpha.\n"
    assert (w / "heartbeat.md").read_text() == "my heartbeat\n"
    # No markers in CLAUDE.md: TinyClaw appends them after trimEnd()
    # (agent-setup.ts:149-151).
    assert (w / ".claude" / "CLAUDE.md").read_text() == (
        "my claude notes\n\n" + START + block(ALPHA, [BETA]) + END + "\n")

    # The team changes on disk (TinyClaw's CLI edits settings.json): the
    # next call rewrites the block, in both files, and nothing else.
    s = dict(h.settings)
    s["agents"] = dict(s["agents"], gamma={
        "name": "Gamma", "provider": "anthropic", "model": "opus"})
    s["teams"] = {"dev": {"name": "Dev", "agents": ["alpha", "gamma"],
                          "leader_agent": "alpha"},
                  "ops": {"name": "Ops", "agents": ["beta", "alpha",
                                                    "gamma"]}}
    h.write_settings(s)
    reload(h)
    run_ok(h, "hello again", "alpha")
    b2 = block(ALPHA, [("gamma", "Gamma", "opus"), BETA])
    assert (w / "AGENTS.md").read_text() == with_block(mine, b2)
    assert (w / ".claude" / "CLAUDE.md").read_text() == (
        "my claude notes\n\n" + START + b2 + END + "\n")
    assert (w / ".tinyclaw" / "SOUL.md").read_text() == "I am Alpha.\n"


def test_no_symlink_followed_out_of_the_workdir(homes, tmp_path):
    inst = install_dir(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "AGENTS.md").write_text(AGENTS_MD)
    (outside / "claude").mkdir()
    h = homes(dict(TEAM, tinyclaw={"install_dir": str(inst)}), start=False)
    w = h.workdir("alpha")
    w.mkdir(parents=True)
    os.symlink(outside / "AGENTS.md", w / "AGENTS.md")
    os.symlink(outside / "claude", w / ".claude")
    os.symlink(outside / "heartbeat.md", w / "heartbeat.md")  # dangling
    os.symlink(outside / "tc", w / ".tinyclaw")               # dangling
    h.start()
    run_ok(h, "hello", "alpha")
    # Nothing outside was written or created, the links are still links.
    assert (outside / "AGENTS.md").read_text() == AGENTS_MD
    assert sorted(p.name for p in outside.iterdir()) == ["AGENTS.md",
                                                         "claude"]
    assert list((outside / "claude").iterdir()) == []
    for name in ("AGENTS.md", ".claude", "heartbeat.md", ".tinyclaw"):
        assert (w / name).is_symlink(), name
    assert "AGENTS.md: cannot open: is a symbolic link" in h.log()
    assert h.log().count(".claude: is a symbolic link, not followed") == 1


def test_install_dir_unset_warns_once_and_still_keeps_teammates(homes):
    h = homes(TEAM, start=False)
    w = h.workdir("alpha")
    w.mkdir(parents=True)
    (w / "AGENTS.md").write_text(AGENTS_MD)   # from TinyClaw's `agent add`
    h.start()
    run_ok(h, "hello", "alpha")
    run_ok(h, "hello", "beta")
    assert h.log().count(NOT_SET) == 1, h.log()
    # No template was copied anywhere...
    assert not (w / "heartbeat.md").exists()
    assert not (w / ".tinyclaw").exists()
    # (The bwrap pass gives the CLI HOME=W/.tinyclaw-home and a fake log in
    # W: those are the suite's, not the set-up's.)
    made = {".tinyclaw-home", "fake.log"} if SUITE_MODE == "bwrap" else set()
    assert sorted(p.name for p in h.workdir("beta").iterdir()
                  if p.name not in made) == []
    # ...but the block an existing AGENTS.md asks for is kept up to date.
    assert (w / "AGENTS.md").read_text() == with_block(
        AGENTS_MD, block(ALPHA, [BETA]))
    assert (w / ".claude" / "CLAUDE.md").read_text() == (
        "\n\n" + START + block(ALPHA, [BETA]) + END + "\n")
    # A reload that changes nothing about it says nothing again.
    h.write_settings(dict(h.settings, supervisor={
        "workers": 3, "scan_interval_ms": 200, "watch_settings": False}))
    reload(h)
    run_ok(h, "hello 2", "alpha")
    assert h.log().count(NOT_SET) == 1, h.log()


def test_install_dir_without_agents_md_warns_once(homes, tmp_path):
    empty = tmp_path / "not-an-install"
    empty.mkdir()
    (empty / "SOUL.md").write_text(SOUL_MD)
    h = homes({"tinyclaw": {"install_dir": str(empty)}})
    run_ok(h, "hello", "alpha")
    run_ok(h, "hello 2", "alpha")
    msg = (f"tinyclaw.install_dir: {empty}/AGENTS.md: No such file or "
           f"directory: agent directories are not set up from it")
    assert h.log().count(msg) == 1, h.log()
    assert not (h.workdir("alpha") / ".tinyclaw").exists()
    rep = doctor(h, None)
    assert {"name": "tinyclaw", "ok": False,
            "detail": msg.split("tinyclaw.install_dir: ", 1)[1],
            "fix": "set tinyclaw.install_dir to TinyClaw's install directory"
                   " (the one with its AGENTS.md, heartbeat.md and "
                   "SOUL.md)"} in rep["checks"], rep


@pytest.mark.parametrize("value,error", [
    (5, "tinyclaw.install_dir: expected a string, got 5"),
    ("relative/dir", 'tinyclaw.install_dir: expected an absolute path, got '
     '"relative/dir"'),
    ("", 'tinyclaw.install_dir: expected an absolute path, got ""'),
])
def test_install_dir_validated(homes, value, error):
    h = homes({"tinyclaw": {"install_dir": value}}, start=False)
    p = h.spawn()
    assert p.wait(15 * TIME_SCALE) == 78
    assert error in p.stderr_path.read_text()


def test_command_agents_are_left_alone(homes, tmp_path):
    inst = install_dir(tmp_path)
    h = homes({"tinyclaw": {"install_dir": str(inst)},
               "agents": {"cmd": {"provider": "command",
                                  "command": ["echo", "{message}"]}}})
    mid = h.drop("hi", agent="cmd")
    h.wait_response(mid, timeout=20)
    assert sorted(p.name for p in h.workdir("cmd").iterdir()) == []


# -- item 9: error text from the provider's own report -----------------------

def test_codex_error_is_its_turn_failed_report(homes):
    h = homes()
    mid = h.drop("fail auth codex", agent="beta")
    dead, _ = h.wait_dead(mid, timeout=30)
    assert dead["errorClass"] == "terminal"
    assert "Incorrect API key provided" in dead["errorMessage"], dead
    assert "websocket" not in dead["errorMessage"], dead
    assert len(h.calls("fail auth codex")) == 1


def test_codex_transient_error_text_is_its_report(homes):
    h = homes({"sandbox": {"max_attempts": 1}})
    mid = h.drop("fail transient", agent="beta")
    dead, _ = h.wait_dead(mid, timeout=30)
    assert dead["errorClass"] == "transient"
    assert dead["errorMessage"].endswith(
        ": stream disconnected before completion"), dead


# -- item 9: the workspace of a container user -------------------------------

def dsettings(eng, user, agents, install=None):
    s = {"sandbox": {"mode": "docker", "timeout_seconds": 60,
                     "max_attempts": 3, "backoff_seconds": 0,
                     "backoff_max_seconds": 1, "kill_grace_seconds": 1,
                     "docker": {"runtime_command": "podman",
                                "image": eng.image, "network": "default",
                                "memory": "256m", "cpus": "1.0",
                                "pids_limit": 64, "user": user}},
         "agents": agents,
         "supervisor": {"workers": 2, "scan_interval_ms": 200}}
    if install is not None:
        s["tinyclaw"] = {"install_dir": str(install)}
    return s


def denv(eng):
    return {"CONTAINERS_CONF": str(eng.conf), "DOCKER_HOST": "",
            "ANTHROPIC_API_KEY": f"sk-ant-cvtest-{uuid.uuid4().hex}",
            "OPENAI_API_KEY": f"sk-oai-cvtest-{uuid.uuid4().hex}"}


AGENTS = {"alpha": {"name": "Alpha", "provider": "anthropic",
                    "model": "sonnet"},
          "beta": {"name": "Beta", "provider": "openai", "model": "gpt-5"}}


def doctor(h, env):
    p = subprocess.run([BIN, "--home", str(h.path), "sandbox", "doctor",
                        "--json"], env=h.env(env), capture_output=True,
                       text=True, timeout=120)
    return json.loads(p.stdout)


def test_container_user_gets_the_workspace_it_needs(homes, engine,  # noqa: F811
                                                    tmp_path):
    inst = install_dir(tmp_path)
    h = homes(dsettings(engine, "10001:10002", AGENTS, inst), start=False)
    e = denv(engine)
    rep = doctor(h, e)
    assert not [c for c in rep["checks"]
                if c["name"] == "workspace" and not c["ok"]], rep
    h.start(env=e)
    for agent in ("alpha", "beta"):
        mid = h.drop(f"hello {agent}", agent=agent)
        r = h.wait_response(mid, timeout=60)
        assert "reply" in r["message"], r
        w = h.workdir(agent)
        st = os.stat(w)
        assert (st.st_uid, st.st_gid) == (10001, 10002)
        # The CLI made its state directory in HOME, in the workspace.
        home = w / ".tinyclaw-home"
        assert (home / (".claude" if agent == "alpha" else ".codex")
                ).is_dir()
        # What the set-up made is the agent's too (it edits SOUL.md).
        for p in ("AGENTS.md", ".tinyclaw", ".tinyclaw/SOUL.md", ".claude",
                  ".claude/CLAUDE.md"):
            st = os.lstat(w / p)
            assert (st.st_uid, st.st_gid) == (10001, 10002), p


def test_unwritable_workspace_is_terminal_and_doctor_agrees(  # noqa: F811
        homes, engine, tmp_path):
    h = homes(dsettings(engine, "10001:10002", AGENTS), start=False)
    for agent in ("alpha", "beta"):
        h.workdir(agent).mkdir(parents=True)     # root's, 0755
        os.chmod(h.workdir(agent), 0o755)
    e = denv(engine)
    rep = doctor(h, e)
    bad = [c["detail"] for c in rep["checks"]
           if c["name"] == "workspace" and not c["ok"]]
    assert len(bad) == 2, rep
    assert "the container user 10001:10002 cannot write it" in bad[0]
    assert rep["ok"] is False
    h.start(env=e)
    msgs = {}
    for agent, text in (("alpha", "hello eacces"),
                        ("beta", "hello eacces codex")):
        mid = h.drop(text, agent=agent)
        dead, _ = h.wait_dead(mid, timeout=60)
        assert dead["errorClass"] == "terminal", dead
        assert dead["attempt"] == 1, dead
        assert len(h.calls(text)) == 0     # the host's fakes never ran
        msgs[agent] = dead["errorMessage"]
        assert "cannot write the working directory /workspace" in \
            msgs[agent], dead
    # claude names the path (EACCES ... mkdir '/workspace/...'); codex does
    # not, and the owner and mode of the directory tell.
    assert "EACCES: permission denied, mkdir " \
        "'/workspace/.tinyclaw-home/.claude'" in msgs["alpha"]
    assert "the user the CLI runs as cannot write there" in msgs["beta"]
    assert "Permission denied (os error 13)" in msgs["beta"]
