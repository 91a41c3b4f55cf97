"""
bwrap mode on the real bubblewrap (SPEC §8, issue 14): what the agent can
and cannot see or do, its limits, and nothing left behind. The daemon runs
as root here, so every sandbox runs as an unprivileged uid (AGENT_UID) with
the ids it took before execing bwrap. bwrap missing is a failure, never a
skip.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import BIN, FAKES, deep_merge, open_up, parse_fake_log, \
    wait_for

AGENT_UID = 65534


def cgroup_prefix(h):
    """clawvisor-<FNV-1a of the home, 8 hex>- (common/cgroup.c)."""
    x = 2166136261
    for b in str(h.path).encode():
        x = ((x ^ b) * 16777619) & 0xffffffff
    return f"clawvisor-{x:08x}-"


def cgroup_parents():
    """Where the daemon (a child of ours) puts its cgroups."""
    out = []
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctls, path = line.rstrip("\n").split(":", 2)
            for c in ctls.split(","):
                own[c or "v2"] = path
    for ctl, base in (("memory", "/sys/fs/cgroup/memory"),
                      ("pids", "/sys/fs/cgroup/pids"),
                      ("cpu", "/sys/fs/cgroup/cpu"),
                      ("v2", "/sys/fs/cgroup/unified"),
                      ("v2", "/sys/fs/cgroup")):
        # Under its own cgroup of the hierarchy, else at the root.
        for p in (base + own.get(ctl, "/").rstrip("/"), base):
            if os.path.isdir(p):
                if p not in out:
                    out.append(p)
                break
    return out


def cgroups_of(h):
    """This home's cgroups, v1 or v2."""
    pre = cgroup_prefix(h)
    return [os.path.join(p, d) for p in cgroup_parents()
            for d in os.listdir(p) if d.startswith(pre)]


def settings(bwrap=None, sandbox=None, agents=None):
    b = {"user": f"{AGENT_UID}:{AGENT_UID}", "memory": "256m",
         "cpus": "1.0", "pids_limit": 64}
    b.update(bwrap or {})
    s = {"mode": "bwrap", "timeout_seconds": 30, "max_attempts": 2,
         "backoff_seconds": 0, "backoff_max_seconds": 1,
         "kill_grace_seconds": 1, "bwrap": b,
         # FAKE_LOG (in the workspace) and the test tag reach the
         # sandbox by name, as any key would.
         "env_allowlist": ["ANTHROPIC_API_KEY", "OPENAI_API_KEY",
                           "CODEX_API_KEY", "FAKE_LOG",
                           "CLAWVISOR_TEST_TAG"]}
    s.update(sandbox or {})
    a = {"sh": {"name": "Shell", "provider": "command",
                "command": ["sh", "-c", "{message}"]}}
    a.update(agents or {})
    return {"sandbox": s, "agents": a,
            "supervisor": {"workers": 2, "scan_interval_ms": 200}}


@pytest.fixture
def bhomes(homes):
    """bhomes(bwrap=, sandbox=, agents=, start=) -> a Home in bwrap mode
    whose fake log is in alpha's workspace (the home is not visible
    inside), with a key in its environment (h.secret)."""
    assert shutil.which("bwrap"), "bwrap not installed (apt-get install " \
        "bubblewrap)"

    def make(bwrap=None, sandbox=None, agents=None, start=True):
        h = homes(settings(bwrap, sandbox, agents), start=False)
        open_up(h.path)
        h.secret = f"sk-ant-cvtest-{uuid.uuid4().hex}"
        for a in ("alpha", "beta", "sh", "other"):
            d = h.workdir(a)
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, AGENT_UID, AGENT_UID)
        # Relative: each agent's own workspace, all it can write to.
        h.cv_env = {"ANTHROPIC_API_KEY": h.secret,
                    "OPENAI_API_KEY": "sk-oai-" + uuid.uuid4().hex,
                    "FAKE_LOG": "fake.log"}
        if start:
            h.start(env=h.cv_env)
        return h

    yield make


def calls(h, message):
    """The fakes' calls for message, from every workspace's fake.log."""
    out = []
    for a in ("alpha", "beta"):
        out += [c for c in parse_fake_log(h.workdir(a) / "fake.log")
                if c["message"] == message]
    return out


def ask(h, script, timeout=30):
    """Run script in the `sh` agent's sandbox; its reply (stdout)."""
    mid = h.drop(script, agent="sh")
    out = h.wait_outcome(mid, timeout=timeout)
    return mid, out


def reply(h, script):
    mid = h.drop(script, agent="sh")
    return h.wait_response(mid, timeout=30)["message"]


def no_leftovers(h):
    """No cgroup of the home left, and no mount of anything of it in the
    host's mount namespace (bwrap's live and die in the sandbox's)."""
    wait_for(lambda: not cgroups_of(h), 10, what="cgroups removed")
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if str(h.path) in line]
    assert not mounts, mounts


def test_round_trip_and_argv_as_host(bhomes, homes):
    h = bhomes(bwrap={"network": "host"})
    mid = h.drop("hello there", agent="alpha")
    r = h.wait_response(mid)
    assert r["message"] == ("claude reply (model=claude-sonnet-4-5 "
                            "continue=1 skip=1): hello there")
    mid = h.drop("multi parts please", agent="beta")
    r = h.wait_response(mid)
    assert r["message"].startswith("codex reply (model=gpt-5")
    (c1,) = calls(h, "hello there")
    (c2,) = calls(h, "multi parts please")
    # Working directory at W (mapped), argv exactly as on the host.
    assert c1["cwd"] == "/workspace"
    assert c1["argv"] == ["claude", "--dangerously-skip-permissions",
                          "--model", "claude-sonnet-4-5", "-c", "-p", "--",
                          "hello there"]
    assert c2["argv"] == ["codex", "exec", "resume", "--last", "--model",
                          "gpt-5", "--skip-git-repo-check",
                          "--dangerously-bypass-approvals-and-sandbox",
                          "--json", "--", "multi parts please"]
    # The same messages in host mode give the same argv.
    host = homes()
    for m, a in (("hello there", "alpha"), ("multi parts please", "beta")):
        host.wait_response(host.drop(m, agent=a))
    assert host.calls("hello there")[0]["argv"] == c1["argv"]
    assert host.calls("multi parts please")[0]["argv"] == c2["argv"]
    no_leftovers(h)


def test_identity_env_and_secrets(bhomes):
    h = bhomes(bwrap={"network": "host"})
    out = reply(h, "id -u; id -g; echo HOME=$HOME; env | cut -d= -f1 | "
                "sort | tr '\\n' ' '; echo; cat /proc/self/status | "
                "grep CapEff")
    lines = out.splitlines()
    assert lines[0] == str(AGENT_UID)
    assert lines[1] == str(AGENT_UID)
    assert lines[2] == "HOME=/workspace/.tinyclaw-home"
    names = set(lines[3].split())
    # Only HOME, PATH and the allowlist (set ones), plus what sh sets.
    assert names <= {"HOME", "PATH", "ANTHROPIC_API_KEY", "OPENAI_API_KEY",
                     "CODEX_API_KEY", "FAKE_LOG", "CLAWVISOR_TEST_TAG",
                     "PWD", "SHLVL", "_", "OLDPWD"}, names
    assert "ANTHROPIC_API_KEY" in names
    assert lines[4].split()[1] == "0000000000000000"
    # The key is in no process's argv (bwrap's included).
    mid = h.drop("sleep 3", agent="alpha")
    h.wait_events("sandbox_invocation_start", mid)
    time.sleep(0.5)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    assert h.secret.encode() not in f.read()
            except OSError:
                pass
    h.wait_response(mid)


def test_what_the_agent_cannot_see_or_do(bhomes):
    h = bhomes()
    (h.workdir("other") / "secret.txt").write_text("other agent's data")
    os.chmod(h.workdir("other") / "secret.txt", 0o644)
    settings_json = h.path / "settings.json"
    os.chmod(settings_json, 0o644)
    checks = [
        ("ls /root", "No such file"),
        ("cat /etc/shadow", "No such file"),
        (f"cat {settings_json}", "No such file"),
        (f"cat {h.workdir('other')}/secret.txt", "No such file"),
        ("ls /home", "No such file"),
        ("ls /var", "No such file"),
        ("ls /run", "No such file"),
        ("touch /etc/x", "Read-only file system"),
        ("touch /x", "Read-only file system"),
        ("touch /usr/x", "Read-only file system"),
    ]
    for cmd, want in checks:
        out = reply(h, f"{cmd} 2>&1; echo rc=$?")
        assert want in out, (cmd, out)
        assert not out.endswith("rc=0"), (cmd, out)
    # The workspace and /tmp are writable; the write lands on the host.
    out = reply(h, "echo hi > /workspace/w.txt && echo ok1; "
                "echo t > /tmp/t && echo ok2")
    assert out == "ok1\nok2"
    assert (h.workdir("sh") / "w.txt").read_text() == "hi\n"
    assert os.stat(h.workdir("sh") / "w.txt").st_uid == AGENT_UID
    # Host processes: only the sandbox's own are listed.
    out = reply(h, "ls /proc | grep -c '^[0-9]'")
    assert int(out) <= 5, out
    out = reply(h, f"kill -0 {h.pid} 2>&1; echo rc=$?")
    assert out.endswith("rc=1"), out
    no_leftovers(h)


def test_network_none_cuts_the_host_loopback(bhomes):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    hits = []

    def serve():
        srv.settimeout(20)
        try:
            c, _ = srv.accept()
            hits.append(1)
            c.close()
        except OSError:
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        h = bhomes()
        probe = ("exec 3<>/dev/tcp/127.0.0.1/%d" % port)
        # dash has no /dev/tcp: bash does, and is in /usr/bin.
        out = reply(h, f"bash -c '{probe} && echo connected' 2>&1; "
                    "echo rc=$?; ip -o link 2>/dev/null | wc -l; "
                    "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | "
                    "tr -d ' ' | tr '\\n' ' '")
        assert "connected" not in out, out
        assert "Connection refused" in out, out
        assert out.splitlines()[-1].split() == ["lo"], out
        assert not hits
    finally:
        srv.close()


def sleepers_gone(*secs):
    """No process on the host runs `sleep S` for any S of secs (numbers
    unique to the test: other tests of the machine sleep too)."""
    want = {f"sleep\x00{s}\x00".encode() for s in secs}

    def gone():
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        if f.read() in want:
                            return False
                except OSError:
                    pass
        return True
    return gone


def unique_secs(n):
    base = 100000 + uuid.uuid4().int % 800000
    return [base + i for i in range(n)]


def test_setsid_child_does_not_outlive_the_run(bhomes):
    h = bhomes()
    a, b = unique_secs(2)
    out = reply(h, f"setsid sh -c 'sleep {a}' </dev/null >/dev/null 2>&1 & "
                f"( ( sleep {b} </dev/null >/dev/null 2>&1 & ) & ); "
                "sleep 0.2; echo started")
    assert out == "started"
    wait_for(sleepers_gone(a, b), 10,
             what="the setsid and double-forked children killed")
    no_leftovers(h)


def test_timeout_kills_the_whole_sandbox(bhomes):
    h = bhomes(sandbox={"timeout_seconds": 2, "max_attempts": 1})
    a, b = unique_secs(2)
    mid, out = ask(h, f"setsid sleep {a} & sleep {b}", timeout=30)
    assert out[0] == "dead", out
    assert "timed out" in out[1]["errorMessage"], out[1]
    wait_for(sleepers_gone(a, b), 10,
             what="every process of the sandbox killed")
    no_leftovers(h)


def test_memory_limit_is_terminal(bhomes):
    h = bhomes(bwrap={"memory": "64m"})
    # 200 MB in one shell variable: past the limit.
    mid, out = ask(h, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); "
                   "echo survived ${#x}", timeout=60)
    assert out[0] == "dead", out
    (d,) = h.dead_letters(mid)
    assert "killed: memory limit (sandbox.bwrap.memory 64m)" in \
        d["errorMessage"], d
    # Terminal: one attempt only.
    assert d["errorClass"] == "terminal" and d["attempt"] == 1, d
    no_leftovers(h)


def test_fork_bomb_stops_at_pids_limit(bhomes):
    h = bhomes(bwrap={"pids_limit": 16})
    # The inner shell forks until it cannot ("Cannot fork", exit 2); the
    # outer one then kills what it started, with builtins only.
    out = reply(h, "sh -c 'for i in $(seq 40); do sleep 30 & echo $! >> "
                "pids; done' 2>err; echo rc=$?; while read p; do kill $p; "
                "done < pids; n=0; while read p; do n=$((n+1)); done < pids; "
                "echo started=$n; read e < err; echo \"$e\"")
    lines = out.splitlines()
    assert lines[0] == "rc=2", out
    n = int(lines[1].split("=")[1])
    # bwrap, its init and the two shells count too.
    assert 5 < n < 16, out
    assert "fork" in lines[2].lower(), out
    no_leftovers(h)


def test_root_owned_workspace_refused_with_user_auto(bhomes):
    h = bhomes(bwrap={"user": "auto"})
    os.chown(h.workdir("sh"), 0, 0)
    mid, out = ask(h, "echo hi")
    assert out[0] == "dead", out
    (d,) = h.dead_letters(mid)
    assert "is owned by root: sandbox.bwrap.user \"auto\"" in d["errorMessage"]
    assert d["errorClass"] == "terminal" and d["attempt"] == 1, d
    # auto takes the owner: AGENT_UID's workspace runs as AGENT_UID.
    os.chown(h.workdir("sh"), AGENT_UID, AGENT_UID)
    assert reply(h, "id -u") == str(AGENT_UID)


def test_network_none_with_claude_is_terminal(bhomes):
    h = bhomes()
    mid = h.drop("hello", agent="alpha")
    out = h.wait_outcome(mid)
    assert out[0] == "dead", out
    assert out[1]["errorMessage"] == (
        "sandbox.bwrap.network \"none\" cannot work with the anthropic "
        "provider: its CLI must reach the API; set it to \"host\"")
    assert out[1]["errorClass"] == "terminal"


def test_missing_bwrap_is_terminal(bhomes):
    h = bhomes(bwrap={"runtime_command": "no-such-bwrap"})
    mid, out = ask(h, "echo hi")
    assert out[0] == "dead", out
    (d,) = h.dead_letters(mid)
    assert ("\"no-such-bwrap\" not found in PATH "
            "(sandbox.bwrap.runtime_command): install bubblewrap") in \
        d["errorMessage"], d
    assert d["errorClass"] == "terminal" and d["attempt"] == 1, d


def test_stale_cgroups_swept_at_start(bhomes):
    h = bhomes()
    assert reply(h, "echo hi") == "hi"
    no_leftovers(h)
    h.stop()
    # What a crash leaves: cgroups of this home, one with a process in it
    # (v1 here: memory and pids hierarchies; on v2, the v2 one).
    stale = []
    for p in cgroup_parents()[:2]:
        d = os.path.join(p, cgroup_prefix(h) + "12345")
        os.mkdir(d)
        stale.append(d)
    sleeper = subprocess.Popen(["sleep", "304"])
    with open(os.path.join(stale[0], "cgroup.procs"), "w") as f:
        f.write(str(sleeper.pid))
    # Another home's is not ours to remove.
    other = os.path.join(cgroup_parents()[0], "clawvisor-00000000-1")
    os.mkdir(other)
    try:
        h.start(env=h.cv_env)
        wait_for(lambda: not [d for d in stale if os.path.isdir(d)], 10,
                 what="stale cgroups swept")
        assert sleeper.wait(10) == -signal.SIGKILL
        assert "removed 2 stale cgroups of an earlier run" in h.log()
        assert os.path.isdir(other)
    finally:
        os.rmdir(other)
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_dead_worker_cgroup_removed(bhomes):
    h = bhomes()
    mid = h.drop("sleep 30", agent="sh")
    h.wait_events("sandbox_invocation_start", mid)
    wait_for(lambda: cgroups_of(h), 10, what="the run's cgroup")
    for w in h.worker_pids():
        os.kill(w, signal.SIGKILL)
    no_leftovers(h)


def doctor(h, env=None):
    p = subprocess.run([BIN, "--home", str(h.path), "sandbox", "doctor",
                        "--json"], env=h.env(env or h.cv_env),
                       capture_output=True, text=True, timeout=120)
    return p.returncode, json.loads(p.stdout)["checks"]


def test_doctor_bwrap_checks(bhomes):
    h = bhomes(bwrap={"network": "host"}, start=False)
    rc, checks = doctor(h)
    by = {}
    for c in checks:
        by.setdefault(c["name"], []).append(c)
    assert rc == 0, checks
    assert by["bwrap"][0]["ok"] and "bwrap" in by["bwrap"][0]["detail"]
    assert by["sandbox"][0]["ok"]
    assert by["sandbox"][0]["detail"] == ("a test sandbox started and was "
                                          "torn down")
    # Which limits hold, and how (v1 or v2).
    lim = by["limits"][0]
    assert lim["ok"], lim
    assert "memory (v" in lim["detail"] and "pids (v" in lim["detail"]
    # The fakes are what PATH has: visible inside, read-only.
    assert [c["detail"] for c in by["cli"]] == [
        f"claude is visible inside the sandbox: {FAKES}/claude",
        f"codex is visible inside the sandbox: {FAKES}/codex"]
    assert not cgroups_of(h)
    net = [c for c in checks if c["name"] == "network"][0]
    assert net["ok"] and net["detail"].startswith(
        "warning: sandbox.bwrap.network is \"host\"")
    # network none with claude and codex: a failure; bwrap missing too.
    h.write_settings(deep_merge(h.settings, {"sandbox": {"bwrap": {
        "network": "none", "runtime_command": "no-such-bwrap"}}}))
    rc, checks = doctor(h)
    assert rc == 1
    bw = [c for c in checks if c["name"] == "bwrap"][0]
    assert not bw["ok"]
    assert bw["fix"].startswith("install bubblewrap")
    net = [c for c in checks if c["name"] == "network"][0]
    assert not net["ok"] and "cannot reach their API" in net["detail"]


def test_send_file_mapped_and_contained(bhomes):
    h = bhomes()
    mid = h.drop("echo report > /workspace/r.txt; echo 'Here. "
                 "[send_file: /workspace/r.txt] [send_file: /etc/passwd]'",
                 agent="sh")
    r = h.wait_response(mid)
    assert len(r["files"]) == 1, r
    # W is mapped back to the working directory on the host, copied out.
    assert r["files"][0].endswith("r.txt")
    with open(r["files"][0]) as f:
        assert f.read() == "report\n"
    # A path outside W is not the sandbox's to send.
    assert "/etc/passwd" in r["message"] and "could not attach" in \
        r["message"], r["message"]


def test_failure_names_the_cli_not_bwrap(bhomes):
    # bwrap passes the CLI's exit status through: the message is the CLI's.
    h = bhomes(sandbox={"max_attempts": 1})
    mid, out = ask(h, "echo oops >&2; exit 3")
    assert out[0] == "dead", out
    assert out[1]["errorMessage"] == "sh exit 3: oops", out[1]


def test_sandbox_set_bwrap_and_show(homes):
    h = homes()
    env = h.env()
    p = subprocess.run([BIN, "--home", str(h.path), "sandbox", "set",
                        "bwrap"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    with open(h.path / "settings.json") as f:
        assert json.load(f)["sandbox"]["mode"] == "bwrap"
    p = subprocess.run([BIN, "--home", str(h.path), "sandbox", "show",
                        "--json"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    show = json.loads(p.stdout)
    sb = show.get("sandbox", show)
    assert sb["mode"] == "bwrap", show
    assert sb["bwrap"] == {"runtime_command": "bwrap", "network": "none",
                           "user": "auto", "ro_paths": [], "memory": "2g",
                           "cpus": "1.0", "pids_limit": 256,
                           "limits": "strict"}, sb["bwrap"]


# -- a kernel that refuses the namespaces bwrap needs ------------------------
#
# The limits in /proc/sys/user are per user namespace, and a namespace's
# creation is charged to every ancestor: a daemon started in a user
# namespace of its own (ids mapped one to one, so it is still root to the
# files and cgroups it uses) whose limit is 0 meets a real refusal from the
# real kernel, while the host's sysctls stay as they are.

USERNS_LAUNCHER = r'''
import ctypes, os, sys
sep = sys.argv.index("--")
limits, prog = sys.argv[1:sep], sys.argv[sep + 1:]
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    # The parent's maps are written from here, outside: only a process
    # with CAP_SETUID in the parent namespace may map more than itself.
    os.close(w)
    os.read(r, 1)
    for f in ("uid_map", "gid_map"):
        with open(f"/proc/{os.getppid()}/{f}", "w") as m:
            m.write("0 0 65536\n")
    os._exit(0)
os.close(r)
if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
    sys.exit("unshare(CLONE_NEWUSER): " + os.strerror(ctypes.get_errno()))
os.write(w, b"x")
os.close(w)
if os.waitpid(pid, 0)[1] != 0:
    sys.exit("cannot write the user namespace's id maps")
for kv in limits:
    k, v = kv.split("=")
    with open("/proc/sys/user/" + k, "w") as f:
        f.write(v)
os.execvp(prog[0], prog)
'''


@pytest.fixture
def userns_limited(monkeypatch, tmp_path):
    """userns_limited(LIMIT=VALUE, ...): the daemons the test starts from
    then on run in a user namespace with those /proc/sys/user limits."""
    import conftest
    launcher = tmp_path / "userns-launch.py"
    launcher.write_text(USERNS_LAUNCHER)

    def limit(*limits):
        wrapper = tmp_path / "clawvisor-in-userns"
        wrapper.write_text("#!/bin/sh\nexec /usr/bin/python3 " +
                           f"{launcher} {' '.join(limits)} -- " +
                           f"{conftest.BIN} \"$@\"\n")
        wrapper.chmod(0o755)
        monkeypatch.setattr(conftest, "BIN", str(wrapper))
    return limit


def test_user_namespaces_refused_names_the_sysctl(bhomes, userns_limited):
    userns_limited("max_user_namespaces=0")
    h = bhomes(sandbox={"max_attempts": 3})
    mid, out = ask(h, "echo hi")
    assert out[0] == "dead", out
    (d,) = h.dead_letters(mid)
    assert d["errorMessage"] == (
        "the kernel refuses unprivileged user namespaces "
        "(user.max_user_namespaces = 0), which bwrap needs: set sysctl "
        "user.max_user_namespaces=15000, or use another sandbox.mode"), d
    assert d["errorClass"] == "terminal" and d["attempt"] == 1, d
    # The doctor, run on the same kernel (in the same limits), says so.
    import conftest
    p = subprocess.run([conftest.BIN, "--home", str(h.path), "sandbox",
                        "doctor", "--json"], env=h.env(h.cv_env),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p
    bad = [c for c in json.loads(p.stdout)["checks"] if not c["ok"]]
    assert any("user.max_user_namespaces = 0" in json.dumps(c)
               for c in bad), bad
    no_leftovers(h)


def test_bwrap_refused_a_namespace_is_terminal_with_the_hint(
        bhomes, userns_limited):
    # User namespaces are allowed (the check before the run passes), but
    # the kernel refuses the mount namespace bwrap then asks for: bwrap's
    # own error, not the agent's, and no retry.
    userns_limited("max_mnt_namespaces=0")
    h = bhomes(sandbox={"max_attempts": 3})
    mid, out = ask(h, "echo hi")
    assert out[0] == "dead", out
    (d,) = h.dead_letters(mid)
    assert d["errorMessage"].startswith(
        "bwrap cannot build the sandbox: bwrap: Creating new namespace "
        "failed: "), d
    assert "(are unprivileged user namespaces allowed? see " \
        "kernel.unprivileged_userns_clone, user.max_user_namespaces, " \
        "kernel.apparmor_restrict_unprivileged_userns)" in \
        d["errorMessage"], d
    assert d["errorClass"] == "terminal" and d["attempt"] == 1, d
    no_leftovers(h)
