"""
Apple mode (SPEC §4; issue 3 items 1, 4 and 8): the real daemon with the
fake `container` of fakes/ first on PATH. The fake takes Apple's documented
syntax only (docs/command-reference.md of apple/container and the parser
behind it) and refuses the rest as the real tool does, so a flag clawvisor
got wrong fails here. It records every call to a JSON-lines log, and the
env-files it is given by the names they hold, their mode and the SHA-256 of
each value, never a value; then runs the container's command on the host in
the directory --workdir maps to, where the fake claude answers.
"""
import hashlib
import json
import os
import re
import signal
import time
import uuid

import pytest

from conftest import TIME_SCALE, pid_alive, proc_cmdline, wait_for

IMAGE = "tinyclaw/agent-runner:latest"
APPLE = {"runtime_command": "container", "image": IMAGE,
         "network": "default", "memory": "512m", "cpus": "1.0",
         "user": "auto"}


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def apple_settings(apple=None, sandbox=None, agents=None):
    a = dict(APPLE)
    a.update(apple or {})
    # The runtime's CLI sees only what it needs (docs/SANDBOX.md): the
    # fake's own settings and the test tag are passed on by name.
    s = {"mode": "apple", "timeout_seconds": 30, "max_attempts": 3,
         "backoff_seconds": 0, "backoff_max_seconds": 1,
         "kill_grace_seconds": 1, "apple": a,
         "runtime_pass_env": ["CLAWVISOR_TEST_TAG", "FAKE_*"]}
    s.update(sandbox or {})
    out = {"sandbox": s, "supervisor": {"workers": 2,
                                        "scan_interval_ms": 200}}
    if agents:
        out["agents"] = agents
    return out


@pytest.fixture
def ahomes(homes, monkeypatch):
    """ahomes(apple=, sandbox=, agents=, settings=, env=, secret=True,
    start=True) -> a Home in apple mode whose daemon has the fake container
    log (h.clog) and state dir (h.cstate) in its environment and, unless
    secret=False, a unique ANTHROPIC_API_KEY (h.secret). Neither key comes
    from the environment the tests run in."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def make(apple=None, sandbox=None, agents=None, settings=None, env=None,
             secret=True, start=True):
        h = homes(settings if settings is not None else
                  apple_settings(apple, sandbox, agents), start=False)
        h.clog = h.path.parent / f"{h.path.name}.container.jsonl"
        h.cstate = h.path.parent / f"{h.path.name}.container-state"
        h.secret = f"sk-ant-cvapple-{uuid.uuid4().hex}"
        e = {"FAKE_CONTAINER_LOG": str(h.clog),
             "FAKE_CONTAINER_STATE": str(h.cstate)}
        if secret:
            e["ANTHROPIC_API_KEY"] = h.secret
        e.update(env or {})
        h.cv_env = e
        if start:
            h.start(env=e)
        return h

    return make


def clog(h, event=None):
    try:
        lines = h.clog.read_text().splitlines()
    except FileNotFoundError:
        return []
    recs = [json.loads(x) for x in lines if x.strip()]
    return [r for r in recs if event is None or r["event"] == event]


def ccalls(h, sub=None):
    """The fake container's calls (argv), `sub` its subcommand."""
    return [r for r in clog(h, "call")
            if sub is None or r["argv"][1:2] == [sub]]


def run_record(h, name):
    (r,) = [r for r in clog(h, "run") if r["name"] == name]
    return r


def secret_files(h):
    d = h.path / "run" / "secrets"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def container_records(h):
    d = h.path / "run" / "containers"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def files_holding(root, needle):
    hits = []
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            p = os.path.join(dirpath, f)
            try:
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                with open(p, "rb") as fh:
                    if needle in fh.read():
                        hits.append(p)
            except OSError:
                pass
    return hits


def expected_argv(h, name, workdir, w, cli, network="default", cpus="1",
                  memory="512m", user=None):
    user = user or f"{os.getuid()}:{os.getgid()}"
    return ["container", "run", "--rm", "--name", name,
            "--label", f"clawvisor.home={h.path}",
            "--workdir", w, "--network", network, "--memory", memory,
            "--cpus", cpus, "--read-only", "--cap-drop", "ALL",
            "--tmpfs", "/tmp", "--user", user,
            "--mount", f"type=bind,source={workdir},target={w}",
            "--env-file", str(h.path / "run" / "secrets" /
                              (name[len('clawvisor-'):] + ".env")),
            IMAGE] + cli


def the_run(h, message):
    """The one `container run` call whose command ends with message."""
    runs = [c for c in ccalls(h, "run") if c["argv"][-1] == message]
    assert len(runs) == 1, runs
    argv = runs[0]["argv"]
    name = argv[argv.index("--name") + 1]
    assert re.fullmatch(r"clawvisor-\d+", name), name
    return runs[0], name


# -- the argv, exactly --------------------------------------------------------------

def test_apple_argv_mapped(ahomes):
    h = ahomes()
    mid = h.drop("hello apple", agent="alpha")
    r = h.wait_response(mid)
    assert r["message"] == ("claude reply (model=claude-sonnet-4-5 "
                            "continue=1 skip=1): hello apple")
    call, name = the_run(h, "hello apple")
    wd = str(h.workdir("alpha"))
    cli = ["claude", "--dangerously-skip-permissions", "--model",
           "claude-sonnet-4-5", "-c", "-p", "--", "hello apple"]
    assert call["argv"] == expected_argv(h, name, wd, "/workspace", cli)
    # Nothing the fake refused, and the container ran and ended well.
    assert clog(h, "refused") == []
    rec = run_record(h, name)
    assert rec["hostdir"] == wd
    assert rec["cpus"] == 1 and rec["memory"] == 512 << 20
    assert rec["networks"] == ["default"]
    (ex,) = [e for e in clog(h, "exit") if e["name"] == name]
    assert ex["status"] == 0 and ex["signal"] is None
    # The CLI ran in the agent's directory, reached through the mapping.
    (c,) = h.calls("hello apple")
    assert c["cwd"] == os.path.realpath(wd)
    # The env-file: 0600 in a 0700 directory, owned by us, holding HOME
    # and the key that is set (OPENAI_API_KEY is not), removed afterwards.
    (ef,) = rec["env_files"]
    assert ef["exists"] and ef["mode"] == "0600" and ef["dir_mode"] == "0700"
    assert ef["uid"] == os.getuid()
    assert ef["names"] == ["HOME", "ANTHROPIC_API_KEY"]
    assert ef["sha256"]["ANTHROPIC_API_KEY"] == sha(h.secret)
    assert ef["sha256"]["HOME"] == sha("/workspace/.tinyclaw-home")
    assert not os.path.exists(ef["path"])
    assert secret_files(h) == [] and container_records(h) == []
    # --rm: the fake forgot the container when it ended.
    assert not (h.cstate / f"{name}.json").exists()


def test_apple_argv_same_path_network_none_whole_cpus(ahomes):
    # network "none" is for the command provider only (a cloud CLI must
    # reach its API); cpus "2.0" is passed as the integer Apple takes.
    h = ahomes(apple={"network": "none", "cpus": "2.0", "memory": "1g"},
               sandbox={"path_mapping_mode": "same-path"},
               agents={"probe": {"provider": "command",
                                 "command": ["claude", "-p", "{message}"]}})
    mid = h.drop("offline probe", agent="probe")
    r = h.wait_response(mid)
    assert r["message"].endswith("): offline probe")
    call, name = the_run(h, "offline probe")
    wd = str(h.workdir("probe"))
    assert call["argv"] == expected_argv(h, name, wd, wd,
                                         ["claude", "-p", "offline probe"],
                                         network="none", cpus="2",
                                         memory="1g")
    rec = run_record(h, name)
    assert rec["networks"] == ["none"] and rec["cpus"] == 2
    (ef,) = rec["env_files"]
    assert ef["sha256"]["HOME"] == sha(f"{wd}/.tinyclaw-home")
    (c,) = h.calls("offline probe")
    assert c["cwd"] == os.path.realpath(wd)


def test_apple_explicit_user_and_integer_cpus(ahomes):
    # cpus as a JSON number, an explicit UID:GID.
    h = ahomes(apple={"cpus": 3, "user": "1234:5678"})
    mid = h.drop("as someone else", agent="alpha")
    h.wait_response(mid)
    call, name = the_run(h, "as someone else")
    argv = call["argv"]
    assert argv[argv.index("--cpus") + 1] == "3"
    assert argv[argv.index("--user") + 1] == "1234:5678"
    assert "--pids-limit" not in argv and "--security-opt" not in argv


def test_apple_per_agent_override(ahomes):
    # The home runs on the host; one agent is sent to Apple's container.
    h = ahomes(sandbox={"mode": "host"},
               agents={"boxed": {"provider": "anthropic",
                                 "sandbox_mode": "apple"}})
    a = h.drop("on the host", agent="alpha")
    b = h.drop("in the box", agent="boxed")
    h.wait_response(a)
    h.wait_response(b)
    assert [c for c in ccalls(h, "run") if c["argv"][-1] == "on the host"] \
        == []
    call, name = the_run(h, "in the box")
    wd = str(h.workdir("boxed"))
    assert call["argv"] == expected_argv(
        h, name, wd, "/workspace",
        ["claude", "--dangerously-skip-permissions", "-c", "-p",
         "--", "in the box"])


# -- configuration errors at start ------------------------------------------------

@pytest.mark.parametrize("where", ["global", "agent"])
def test_apple_fractional_cpus_is_config_error(ahomes, where):
    if where == "global":
        s = apple_settings(apple={"cpus": "1.5"})
    else:
        s = apple_settings(apple={"cpus": "1.5"}, sandbox={"mode": "host"},
                           agents={"boxed": {"provider": "anthropic",
                                             "sandbox_mode": "apple"}})
    h = ahomes(settings=s, start=False)
    p = h.spawn(env=h.cv_env)
    assert p.wait(15 * TIME_SCALE) == 78
    err = h.stderr_text(p)
    assert "sandbox.apple.cpus" in err and "1.5" in err, err
    assert ccalls(h) == []


def test_apple_fractional_cpus_ignored_when_unused(ahomes):
    # Only apple mode takes whole CPUs: a home that never uses it starts.
    h = ahomes(settings=apple_settings(apple={"cpus": "1.5"},
                                       sandbox={"mode": "host"}))
    mid = h.drop("plain host", agent="alpha")
    h.wait_response(mid)
    assert ccalls(h) == []


# -- fail closed -------------------------------------------------------------------

def assert_terminal_nothing_ran(h, mid, what):
    dead, notice = h.wait_dead(mid, timeout=20)
    assert dead["errorClass"] == "terminal", dead
    assert dead["attempt"] == 1 and dead["maxAttempts"] == 3, dead
    for w in what:
        assert w in dead["errorMessage"], dead["errorMessage"]
    assert notice is not None
    # Never a container, never a fallback to host.
    assert ccalls(h) == [], ccalls(h)
    assert h.calls() == [], h.calls()
    assert secret_files(h) == [] and container_records(h) == []
    time.sleep(0.5)
    assert len(h.dead_letters(mid)) == 1 and len(h.responses(mid)) == 1
    assert ccalls(h) == [] and h.calls() == []
    return dead


def test_fail_closed_runtime_missing(ahomes):
    h = ahomes(apple={"runtime_command": "container-not-installed-cv"})
    mid = h.drop("nowhere to run", agent="alpha")
    assert_terminal_nothing_ran(h, mid, ["container-not-installed-cv",
                                         "not found"])


def test_fail_closed_key_not_allowlisted(ahomes):
    h = ahomes(sandbox={"env_allowlist": ["OPENAI_API_KEY"]})
    mid = h.drop("no key allowed", agent="alpha")
    assert_terminal_nothing_ran(h, mid, ["ANTHROPIC_API_KEY",
                                         "env_allowlist"])
    assert h.secret not in h.log()


def test_fail_closed_key_unset(ahomes):
    h = ahomes(secret=False)
    mid = h.drop("no key set", agent="alpha")
    assert_terminal_nothing_ran(h, mid, ["ANTHROPIC_API_KEY", "not set"])


def test_fail_closed_openai_key_unset(ahomes):
    # The key depends on the provider: codex needs OPENAI_API_KEY.
    h = ahomes()
    mid = h.drop("codex without key", agent="beta")
    assert_terminal_nothing_ran(h, mid, ["OPENAI_API_KEY", "not set"])


def test_fail_closed_network_none_cloud(ahomes):
    h = ahomes(apple={"network": "none"})
    a = h.drop("offline claude", agent="alpha")
    assert_terminal_nothing_ran(h, a, ["none", "anthropic"])


def test_fail_closed_key_with_line_break(ahomes):
    # Apple's env-file parser splits at CR (and the other Unicode line
    # breaks): the rest of the value would become a variable of its own.
    h = ahomes(secret=False)
    bad = f"sk-ant-{uuid.uuid4().hex}\rINJECTED=1"
    h.stop()
    e = dict(h.cv_env, ANTHROPIC_API_KEY=bad)
    h.start(env=e)
    mid = h.drop("key with CR", agent="alpha")
    dead = assert_terminal_nothing_ran(h, mid, ["ANTHROPIC_API_KEY"])
    assert bad.split("\r")[0] not in dead["errorMessage"]
    assert files_holding(h.path, bad.split("\r")[0].encode()) == []


def test_fail_closed_workdir_with_equals(ahomes):
    # A '=' in the bind mount's source would be cut by Apple's parser.
    h = ahomes(agents={"eq": {"provider": "anthropic",
                              "working_directory": "dir=odd"}})
    mid = h.drop("odd dir", agent="eq")
    assert_terminal_nothing_ran(h, mid, ["dir=odd", "--mount"])


# -- secrets -------------------------------------------------------------------------

def test_secret_only_in_env_file(ahomes):
    h = ahomes()
    mid = h.drop("sleep 2 secret check", agent="alpha")
    started = wait_for(lambda: clog(h, "started"), 15,
                       what="the container to start")
    (st,) = started
    name = st["name"]
    run_pid = st["pid"]
    ef = h.path / "run" / "secrets" / (name[len("clawvisor-"):] + ".env")
    # While it runs: the env-file is there, 0600, and no process's argv
    # holds the key, not the runtime client's nor the container's.
    mode = os.stat(ef).st_mode & 0o7777
    assert mode == 0o600, oct(mode)
    assert os.stat(ef.parent).st_mode & 0o7777 == 0o700
    assert pid_alive(run_pid) and pid_alive(st["child_pid"])
    cl = proc_cmdline(run_pid)
    assert "container run" in cl and name in cl, cl
    assert h.secret not in cl
    assert h.secret not in proc_cmdline(st["child_pid"])
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    assert h.secret.encode() not in f.read(), d
            except OSError:
                pass
    h.wait_response(mid)
    assert not ef.exists() and secret_files(h) == []
    # The key reached the CLI, through the env-file only.
    rec = run_record(h, name)
    assert rec["env_sha256"]["ANTHROPIC_API_KEY"] == sha(h.secret)
    assert "ANTHROPIC_API_KEY" in rec["env_files"][0]["names"]
    for c in ccalls(h):
        assert not any(h.secret in a for a in c["argv"]), c
    # Nowhere under the home, nor in what the fake recorded.
    assert files_holding(h.path, h.secret.encode()) == []
    assert h.secret not in h.clog.read_text()


# -- lifecycle ------------------------------------------------------------------------

def test_timeout_kills_container_by_name(ahomes):
    h = ahomes(sandbox={"timeout_seconds": 2, "kill_grace_seconds": 2,
                        "max_attempts": 1})
    mid = h.drop("sleep 30 until timeout", agent="alpha")
    dead, _ = h.wait_dead(mid, timeout=30)
    assert dead["errorClass"] == "transient"
    assert "timed out" in dead["errorMessage"]
    _, name = the_run(h, "sleep 30 until timeout")
    # `container kill NAME`, exactly as Apple's CLI takes it.
    kills = ccalls(h, "kill")
    assert [k["argv"] for k in kills] == [["container", "kill", name]]
    (started,) = [e for e in clog(h, "started") if e["name"] == name]
    (killed,) = clog(h, "killed")
    (ex,) = [e for e in clog(h, "exit") if e["name"] == name]
    # The kill stopped the container (SIGKILL from `container kill`, not
    # a SIGTERM forwarded by the client being terminated).
    assert killed["name"] == name and killed["signal"] == signal.SIGKILL
    assert killed["child_pid"] == started["child_pid"]
    assert started["t"] <= kills[0]["t"] <= ex["t"]
    assert ex["signal"] == signal.SIGKILL and ex["status"] == 137
    assert not pid_alive(started["child_pid"])
    assert clog(h, "refused") == []
    assert not (h.cstate / f"{name}.json").exists()
    assert secret_files(h) == [] and container_records(h) == []


def test_crash_leftover_removed_with_rm_force(ahomes):
    # A crash of the daemon and its workers leaves the container running
    # and its record in run/containers/: the next start removes it with
    # `container rm -f NAME`, which Apple's CLI takes (rm = delete, -f =
    # --force).
    h = ahomes()
    mid = h.drop("sleep-once 60 crash", agent="alpha")
    (st,) = wait_for(lambda: clog(h, "started"), 15,
                     what="the container to start")
    name = st["name"]
    assert container_records(h) == [name]
    workers = h.worker_pids()
    os.kill(h.pid, signal.SIGSTOP)
    for w in workers:
        os.kill(w, signal.SIGKILL)
    h.kill()
    assert pid_alive(st["child_pid"])
    h.start(env=h.cv_env)
    rms = ccalls(h, "rm")
    assert [r["argv"] for r in rms] == [["container", "rm", "-f", name]]
    (deleted,) = clog(h, "deleted")
    assert deleted["name"] == name
    wait_for(lambda: not pid_alive(st["child_pid"]), 5,
             what="the left-over container to go")
    assert not (h.cstate / f"{name}.json").exists()
    # The message is run again (the marker makes it quick) and answered.
    r = h.wait_response(mid, timeout=20)
    assert r["message"].endswith("): sleep-once 60 crash")
    runs = ccalls(h, "run")
    assert len(runs) == 2 and rms[0]["t"] < runs[1]["t"]
    assert secret_files(h) == [] and container_records(h) == []
