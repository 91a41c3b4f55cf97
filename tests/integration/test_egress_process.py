"""
The egress process (SPEC §9, issue 15 layer 2): started by the supervisor
with the proxy on, titled `egress`, in a process group of its own, the only
process holding the provider keys; respawned when it dies, with the keys
again; tokens registered at dispatch and revoked when the attempt ends, as
the egress process itself reports them in `status`.

The keys are looked for in each process's memory (/proc/PID/mem, as root),
not only in /proc/PID/environ: libbsd's setproctitle() overwrites the
initial environment block, so that file alone would prove nothing. The
egress process is the positive control: the scan must find the keys there.
"""
import json
import os
import re
import signal
import subprocess
import uuid

import pytest

from conftest import BIN, REAL_BIN, WRAP, pid_alive, proc_cmdline, \
    proc_ppid, wait_for


def cli_json(h, *args):
    r = subprocess.run([BIN, "--home", str(h.path), *args, "--json"],
                       capture_output=True, text=True, timeout=60,
                       env=h.env(), stdin=subprocess.DEVNULL)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else
                          {"stderr": r.stderr})


def status(h):
    rc, st = cli_json(h, "status")
    assert rc == 0, st
    return st


def is_egress(pid):
    c = proc_cmdline(pid)
    # Under a wrapper the title is the wrapper's command line, which names
    # clawvisor-egress (beside the binary).
    return c.startswith("clawvisor: egress") or \
        bool(WRAP) and f" {REAL_BIN}-egress egress " in c


def egress_pid(h):
    for d in os.listdir("/proc"):
        if d.isdigit() and proc_ppid(int(d)) == h.pid and \
                is_egress(int(d)) and pid_alive(int(d)):
            return int(d)
    return None


def memory_holds(pid, needles):
    """Which of needles (bytes) are anywhere in pid's readable memory. Read
    in chunks that overlap by a needle's length; regions of a GiB or more
    are the sanitizers' shadow and reserves, never a heap of ours."""
    found = set()
    chunk = 8 << 20
    over = max(len(n) for n in needles)
    with open(f"/proc/{pid}/maps") as maps, \
            open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            lo, hi, perms = int(m[1], 16), int(m[2], 16), m[3]
            if perms[0] != "r" or "[vvar" in line or "[vsyscall" in line \
                    or hi - lo >= 1 << 30:
                continue
            for at in range(lo, hi, chunk):
                try:
                    mem.seek(at)
                    data = mem.read(min(chunk + over, hi - at))
                except OSError:
                    continue
                for n in needles:
                    if n in data:
                        found.add(n)
    return found


@pytest.fixture
def proxied(homes):
    keys = {"ANTHROPIC_API_KEY": f"sk-ant-cvtest-{uuid.uuid4().hex}",
            "OPENAI_API_KEY": f"sk-oai-cvtest-{uuid.uuid4().hex}"}
    # bwrap with the agents' directories root's: every invocation ends
    # in the worker (bwrap never runs an agent as root), after its token
    # was registered, without a sandbox.
    h = homes({"sandbox": {"mode": "bwrap", "max_attempts": 1,
                           "egress": {"mode": "proxy"}},
               "supervisor": {"workers": 2},
               "agents": {"alpha": {"name": "A", "provider": "anthropic"},
                          "beta": {"name": "B", "provider": "openai"}}},
              start=False)
    h.start(env=keys)
    h.keys = keys
    return h


def test_egress_holds_the_keys_and_nothing_else_does(proxied):
    h = proxied
    pid = wait_for(lambda: egress_pid(h), 10, what="the egress process")
    assert os.getpgid(pid) == pid, "egress has no process group of its own"
    st = wait_for(lambda: (s := status(h))["egress"].get("keys") and s, 10,
                  what="egress reporting its keys")
    eg = st["egress"]
    assert eg["state"] == "running" and eg["pid"] == pid, eg
    assert sorted(eg["keys"]) == ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
    assert eg["restarts"] == 0
    needles = [v.encode() for v in h.keys.values()]
    workers = h.wait_workers(2)
    # Under a wrapper (valgrind) the supervisor's /proc/PID/environ is the
    # wrapper's own start-up block, out of the supervisor's reach: only its
    # children are checked there; the memory scans below hold either way.
    for p in ([] if WRAP else [h.pid]) + [pid] + workers:
        with open(f"/proc/{p}/environ", "rb") as f:
            env = f.read()
        for n in needles:
            assert n not in env, f"a key in /proc/{p}/environ"
    # Positive control: the scan finds the keys in the holder ...
    assert memory_holds(pid, needles) == set(needles)
    # ... and nowhere in a process that builds sandboxes.
    for w in workers:
        assert memory_holds(w, needles) == set(), f"a key in worker {w}"
    # Nothing secret in what status says.
    text = json.dumps(st)
    for v in h.keys.values():
        assert v not in text


def test_tokens_registered_and_revoked_and_respawn(proxied):
    h = proxied
    wait_for(lambda: status(h)["egress"].get("keys"), 10,
             what="egress ready")
    # Each invocation ends in the worker (root's directory), but its token
    # was registered at dispatch and revoked at its end.
    a = h.drop("one for claude", agent="alpha")
    b = h.drop("one for codex", agent="beta")
    for mid in (a, b):
        rec, _ = h.wait_dead(mid, timeout=30)
        assert "never runs an agent as root" in rec["errorMessage"], rec
    eg = wait_for(lambda: (e := status(h)["egress"]).get(
        "tokensRevoked") == 2 and e, 10, what="two tokens revoked")
    assert eg["tokensRegistered"] == 2 and eg["tokensLive"] == 0, eg
    assert h.calls("one for claude") == [] and h.calls("one for codex") == []

    # Killed: respawned, with the keys again, and tokens flow again.
    old = egress_pid(h)
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: (p := egress_pid(h)) and p != old and p, 30,
                   what="a new egress process")
    eg = wait_for(lambda: (e := status(h)["egress"]).get("pid") == new and
                  e.get("keys") and e, 10, what="the new egress ready")
    assert eg["restarts"] == 1 and eg["state"] == "running", eg
    assert sorted(eg["keys"]) == ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
    assert memory_holds(new, [v.encode() for v in h.keys.values()]) == \
        {v.encode() for v in h.keys.values()}
    assert "egress killed by signal 9; respawning" in h.log()
    c = h.drop("after the respawn", agent="alpha")
    h.wait_dead(c, timeout=30)
    eg = wait_for(lambda: (e := status(h)["egress"]).get(
        "tokensRevoked") == 1 and e, 10, what="the new process's token")
    assert eg["tokensRegistered"] == 1 and eg["tokensLive"] == 0, eg


def test_reload_cannot_turn_the_proxy_off(proxied):
    h = proxied
    # Running first (under valgrind its start takes seconds): then the
    # refused reload leaves it so.
    wait_for(lambda: status(h)["egress"]["state"] == "running", 10,
             what="egress running")
    s = dict(h.settings)
    s["sandbox"] = dict(s["sandbox"], egress={"mode": "off"})
    h.write_settings(s)
    rc, rep = cli_json(h, "reload")
    assert rc != 0, rep
    assert "takes a restart" in json.dumps(rep), rep
    assert status(h)["egress"]["state"] == "running"
    assert status(h)["generation"] == 1


def test_stop_takes_egress_with_it(proxied):
    h = proxied
    pid = wait_for(lambda: egress_pid(h), 10, what="the egress process")
    assert h.stop() == 0
    wait_for(lambda: not pid_alive(pid), 10, what="egress gone")
    assert "egress[" in h.log() and "exiting: SIGTERM" in h.log()


def test_doctor_and_key_view_with_the_proxy(proxied):
    h = proxied
    wait_for(lambda: status(h)["egress"].get("keys"), 10,
             what="egress ready")
    r = subprocess.run([BIN, "--home", str(h.path), "sandbox", "doctor",
                        "--json"], capture_output=True, text=True,
                       timeout=120, env=h.env(), stdin=subprocess.DEVNULL)
    rep = json.loads(r.stdout)
    checks = {}
    for c in rep["checks"]:
        checks.setdefault(c["name"], []).append(c)
    eg = checks["egress"][0]
    assert eg["ok"] is True and "running" in eg["detail"], eg
    assert checks["egress network"][0]["ok"] is True
    px = checks["egress proxy"][0]
    assert px["ok"] is True and "clawvisor-bridge" in px["detail"], px
    # The keys are found, held by the egress process.
    keys = checks["keys"]
    assert keys and all(k["ok"] for k in keys), keys
    out = r.stdout + r.stderr
    for v in h.keys.values():
        assert v not in out
