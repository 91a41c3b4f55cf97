"""
`clawvisor exec` through the shims in the container modes (SPEC §10, issue
16's proof "in host, bwrap and docker-with-podman modes"): TinyAGI's way of
spawning the CLI (exec/tinyagi_harness.js, which names the TinyAGI file it
follows) against docker mode run by real Podman, and against apple mode
with the fake `container` of fakes/ (Apple's CLI cannot exist on Linux;
the fake takes Apple's syntax only, test_apple_mode.py). Host and bwrap
are test_exec.py::test_tinyagi_adapter_through_the_shim.

Each case: the reply (the stream-json lines as the adapter reads them),
the line timing (printed; bounded generously, bench.py measures it), the
child's exit status through the runtime, SIGTERM from the adapter
cancelling the run with nothing left behind (no container, no env-file,
no process), and exec's own status 143 as the adapter sees it.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BIN, FAKES, TIME_SCALE, pid_alive, wait_for
from containers import engine  # noqa: F401 (fixture)
from test_apple_mode import (ahomes, apple_settings, ccalls,  # noqa: F401
                             clog, container_records, secret_files)
from test_exec import HARNESS, setup_fakes

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_SH = os.path.join(HERE, "exec", "fake_cli.sh")


def adapter(h, shims, cli, kill_after_ms, *args, during=None):
    """Run the TinyAGI harness in alpha's workspace with the shims first
    on PATH and the host's CLI (cli) after them, as a TinyAGI host has
    it; during(proc) is called while it runs. Its JSON report."""
    env = h.env({"PATH": f"{shims}:{cli}:/usr/bin:/bin",
                 "TINYCLAW_HOME": str(h.path)})
    p = subprocess.Popen(["node", HARNESS, str(h.workspace / "alpha"),
                          str(kill_after_ms), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    try:
        if during is not None:
            during(p)
        out, err = p.communicate(timeout=120 * TIME_SCALE)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    return json.loads(out)


def make_shims(tmp_path):
    shims = tmp_path / "shims"
    subprocess.run([BIN, "shim", str(shims)], check=True,
                   capture_output=True)
    return shims


# -- docker mode, run by Podman ----------------------------------------------


@pytest.fixture(scope="module")
def exec_image(engine):  # noqa: F811
    """The suite's busybox image with exec/fake_cli.sh as its claude."""
    data = open(FAKE_SH, "rb").read()
    tag = hashlib.sha256(engine.image.encode() + data).hexdigest()[:16]
    image = f"localhost/clawvisor-test-exec:{tag}"
    if engine.run("image", "exists", image, check=False).returncode == 0:
        return image
    name = f"clawvisor-test-exec-build-{os.getpid()}"
    engine.run("create", "--name", name, engine.image, "true")
    try:
        engine.run("cp", FAKE_SH, f"{name}:/usr/local/bin/claude")
        engine.run("commit", "--quiet", name, image, timeout=120)
    finally:
        engine.run("rm", "-f", name, check=False)
    return image


def uptime_offset():
    """time.time() - /proc/uptime, to read the container's times."""
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    return time.time() - up


def test_tinyagi_adapter_docker_mode_with_podman(homes, engine,  # noqa: F811
                                                exec_image, tmp_path):
    assert shutil.which("node"), "node not installed"
    s = {"agents": {"alpha": {"name": "A", "provider": "anthropic"}},
         "sandbox": {"mode": "docker", "timeout_seconds": 120,
                     "kill_grace_seconds": 1,
                     "docker": {"runtime_command": "podman",
                                "image": exec_image, "network": "default",
                                "memory": "256m", "cpus": "1.0",
                                "pids_limit": 64, "user": "auto"}}}
    h = homes(s, start=False)
    h.settings["agents"] = s["agents"]
    h.write_settings(h.settings)
    (h.workspace / "alpha").mkdir()
    h.start(env={"CONTAINERS_CONF": str(engine.conf), "DOCKER_HOST": "",
                 "ANTHROPIC_API_KEY": "sk-ant-exec-engines"})
    # The host's claude, which a TinyAGI host has on PATH: its path is
    # reduced to its base name, the image's claude (fake_cli.sh) runs.
    cli = tmp_path / "hostcli"
    cli.mkdir()
    shutil.copy(FAKE_SH, cli / "claude")
    shims = make_shims(tmp_path)

    # The reply: each stream-json line as the CLI writes it, 0.3 s apart.
    o = adapter(h, shims, cli, 0, "claude", "lines", "5", "0.3")
    assert o["code"] == 0 and o["signal"] is None, \
        json.dumps(o) + "\n" + h.log()[-3000:]
    lines = [json.loads(x["line"]) for x in o["lines"]]
    assert [x.get("i") for x in lines[:5]] == [0, 1, 2, 3, 4], o
    assert lines[5:] == [{"type": "result", "result": "ok"}], o
    off = uptime_offset()
    # /proc/uptime has 10 ms steps: a delay may read up to 10 ms long.
    delays = [x["at"] - (json.loads(x["line"])["up"] + off)
              for x in o["lines"][:5]]
    print("docker/podman: write-to-read delays (ms):",
          [round(d * 1000, 1) for d in delays])
    # Generous (a loaded machine, shared with other suites' podman runs).
    assert max(delays) < 0.5 * TIME_SCALE, delays
    # Lines arrive spread out, not in one lump at the end.
    assert o["lines"][4]["at"] - o["lines"][0]["at"] > 0.9, o
    assert not engine.names(h.path)

    # Exit statuses: the child's own, through podman and exec.
    for n in (3, 1, 0):
        o = adapter(h, shims, cli, 0, "claude", "exit", str(n))
        assert o["code"] == n and f"leaving with {n}" in o["stderr"], \
            json.dumps(o) + "\n" + h.log()[-3000:]

    # SIGTERM to stop a run, as killAgentProcess() does: the container is
    # killed by name, exec exits 143, nothing is left behind.
    seen = []

    def running(p):
        names = wait_for(lambda: engine.names(h.path), 60 * TIME_SCALE,
                         what="the container")
        seen.extend(names)
        assert p.poll() is None
    o = adapter(h, shims, cli, 10000 * TIME_SCALE, "claude", "sleep", "300",
                during=running)
    assert o["code"] == 128 + signal.SIGTERM and o["signal"] is None, o
    assert o["lines"] and o["lines"][0]["line"].startswith("sleeping"), o
    assert len(seen) == 1 and seen[0].startswith("clawvisor-"), seen
    # The container's PID 1 is fake_cli.sh's `exec sleep`, which ignores
    # the SIGTERM podman's client forwards (PID 1 has no default action):
    # only `podman kill NAME` (the worker's cancel) ends it, and SIGKILL
    # to the client alone would leave it running.
    wait_for(lambda: not engine.names(h.path), 30 * TIME_SCALE,
             what="no container left")
    # By its name too, whatever its labels.
    r = engine.run("ps", "-a", "--filter", f"name=^{seen[0]}$",
                   "--format", "{{.Names}}")
    assert r.stdout.split() == [], r.stdout
    assert os.listdir(h.path / "run" / "secrets") == []
    assert os.listdir(h.path / "run" / "containers") == []
    # The worker and the daemon took it as a cancel, not a failure.
    assert h.proc.poll() is None


# -- apple mode, with the fake `container` --------------------------------------


def apple_exec_home(ahomes, tmp_path):  # noqa: F811
    """An apple-mode home whose "image" has the exec fake as its claude:
    the fake container runs the command on the host with the daemon's
    PATH, where test_exec.py's fake_cli.py comes first."""
    cli = setup_fakes(tmp_path)
    h = ahomes(start=False,
               settings=apple_settings(agents={
                   "alpha": {"name": "A", "provider": "anthropic"}}))
    h.settings["agents"] = {"alpha": {"name": "A", "provider": "anthropic"}}
    h.write_settings(h.settings)
    (h.workspace / "alpha").mkdir(parents=True, exist_ok=True)
    h.cv_env["PATH"] = f"{cli}:{FAKES}:/usr/bin:/bin"
    h.start(env=h.cv_env)
    h.cli = cli
    return h


def runs_of(h, *cmd):
    """The `container run` calls whose command is cmd (after the image)."""
    out = []
    for c in ccalls(h, "run"):
        argv = c["argv"]
        if argv[-len(cmd):] == list(cmd):
            out.append(c)
    return out


def name_of(run):
    argv = run["argv"]
    return argv[argv.index("--name") + 1]


def test_tinyagi_adapter_apple_mode(ahomes, tmp_path):  # noqa: F811
    assert shutil.which("node"), "node not installed"
    h = apple_exec_home(ahomes, tmp_path)
    shims = make_shims(tmp_path)

    o = adapter(h, shims, h.cli, 0, "claude", "lines", "5", "0.3")
    assert o["code"] == 0, json.dumps(o) + "\n" + h.log()[-3000:]
    lines = [json.loads(x["line"]) for x in o["lines"]]
    assert [x.get("i") for x in lines[:5]] == [0, 1, 2, 3, 4], o
    assert lines[-1] == {"type": "result", "result": "ok"}, o
    delays = [x["at"] - json.loads(x["line"])["t"] for x in o["lines"][:5]]
    print("apple (fake container): write-to-read delays (ms):",
          [round(d * 1000, 1) for d in delays])
    assert max(delays) < 0.25 * TIME_SCALE, delays
    assert o["lines"][4]["at"] - o["lines"][0]["at"] > 0.9, o
    # The image's claude by its base name; stdin is /dev/null for the
    # adapter (stdio 'ignore'), so no --interactive.
    (run,) = runs_of(h, "claude", "lines", "5", "0.3")
    argv = run["argv"]
    assert argv[:3] == ["container", "run", "--rm"], argv
    assert "--interactive" not in argv and "-i" not in argv, argv
    assert argv[-5] == "tinyclaw/agent-runner:latest", argv

    o = adapter(h, shims, h.cli, 0, "claude", "exit", "3")
    assert o["code"] == 3 and "leaving with 3" in o["stderr"], o

    # SIGTERM: exec cancels, the worker kills the container by name with
    # `container kill NAME`, exec exits 143.
    o = adapter(h, shims, h.cli, 3000 * TIME_SCALE, "claude", "sleep",
                "300")
    assert o["code"] == 128 + signal.SIGTERM and o["signal"] is None, o
    assert o["lines"] and o["lines"][0]["line"].startswith("sleeping"), o
    pid = int(o["lines"][0]["line"].split()[1])
    (run,) = runs_of(h, "claude", "sleep", "300")
    name = name_of(run)
    # `container kill NAME` first, then `container rm -f NAME` once the
    # client is reaped (worker.c container_reap), as Apple's CLI takes them.
    kills = [k for k in ccalls(h, "kill") if k["argv"][2:] == [name]]
    assert [k["argv"] for k in kills] == [["container", "kill", name]], \
        ccalls(h)
    rms = [r for r in ccalls(h, "rm") if r["argv"][-1] == name]
    assert [r["argv"] for r in rms] == [["container", "rm", "-f", name]]
    assert kills[0]["t"] <= rms[0]["t"]
    killed = [e for e in clog(h, "killed") if e["name"] == name]
    assert killed and killed[0]["child_pid"] == pid, clog(h)
    wait_for(lambda: not pid_alive(pid), 10 * TIME_SCALE,
             what="the container's process to go")
    wait_for(lambda: not (h.cstate / f"{name}.json").exists(),
             10 * TIME_SCALE, what="the fake to forget the container")
    assert secret_files(h) == [] and container_records(h) == []


def test_exec_apple_mode_stdin_and_status(ahomes, tmp_path):  # noqa: F811
    """docs/EXEC.md: stdin that is a pipe or a file reaches the container
    (`--interactive`); the child's status comes back as it is."""
    h = apple_exec_home(ahomes, tmp_path)
    wd = str(h.workspace / "alpha")

    def run(*args, **kw):
        return subprocess.run([BIN, "--home", str(h.path), "exec", "--",
                               *args], cwd=wd, capture_output=True,
                              env=h.env({"PATH": f"{h.cli}:/usr/bin:/bin"}),
                              timeout=60 * TIME_SCALE, **kw)
    r = run("claude", "stdin", input=b"through apple\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"through apple\n"
    (piped,) = runs_of(h, "claude", "stdin")
    assert "--interactive" in piped["argv"], piped["argv"]
    f = tmp_path / "in.txt"
    f.write_bytes(b"from a file\n")
    with open(f, "rb") as fh:
        r = run("claude", "stdin", stdin=fh)
    assert r.returncode == 0 and r.stdout == b"from a file\n", r.stderr
    # Nothing to forward: no --interactive, the child reads EOF.
    r = run("claude", "stdin", stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == b"", r.stderr
    runs = runs_of(h, "claude", "stdin")
    assert len(runs) == 3
    assert "--interactive" in runs[1]["argv"]
    assert "--interactive" not in runs[2]["argv"]
    r = run("claude", "exit", "5")
    assert r.returncode == 5 and b"leaving with 5" in r.stderr
    # The key went by env-file only, never argv.
    for c in ccalls(h):
        assert not any(h.secret in a for a in c["argv"]), c
    assert secret_files(h) == [] and container_records(h) == []
