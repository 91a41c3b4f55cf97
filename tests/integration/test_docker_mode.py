"""
Docker mode on a real engine (SPEC §4, §5; issue 3 item 8), run two ways:
  podman  sandbox.docker.runtime_command "podman";
  docker  the real `docker` CLI against a `podman system service` that the
          session fixture starts (DOCKER_HOST in the daemon's environment).
The image is the suite's busybox image with the fakes (containers.py).
Podman or docker missing is a failure, never a skip.
"""
import hashlib
import os
import signal
import stat
import subprocess
import time
import uuid

import pytest

from conftest import TIME_SCALE, wait_for
from containers import engine, parse_probe  # noqa: F401 (fixture)

RUNTIMES = ["podman", "docker"]


def settings(eng, runtime, docker=None, sandbox=None, agents=None):
    d = {"runtime_command": runtime, "image": eng.image,
         "network": "default", "memory": "256m", "cpus": "1.0",
         "pids_limit": 64, "user": "auto"}
    d.update(docker or {})
    # The test tag reaches the runtime's CLI by name (docs/SANDBOX.md).
    s = {"mode": "docker", "timeout_seconds": 30, "max_attempts": 2,
         "backoff_seconds": 0, "backoff_max_seconds": 1,
         "kill_grace_seconds": 1, "docker": d,
         "runtime_pass_env": ["CLAWVISOR_TEST_TAG"]}
    s.update(sandbox or {})
    a = {"probe": {"name": "Probe", "provider": "command",
                   "command": ["cv-probe", "{message}"]}}
    a.update(agents or {})
    return {"sandbox": s, "agents": a,
            "supervisor": {"workers": 2, "scan_interval_ms": 200}}


@pytest.fixture
def dhomes(homes, engine):  # noqa: F811
    """dhomes(runtime, docker=, sandbox=, agents=, env=) -> a started Home
    in docker mode, with unique secrets in its daemon's environment
    (h.secret, h.openai_secret) and h.cv_env to restart it with."""

    made = []

    def make(runtime, docker=None, sandbox=None, agents=None, env=None,
             start=True):
        h = homes(settings(engine, runtime, docker, sandbox, agents),
                  start=False)
        made.append(h)
        h.secret = f"sk-ant-cvtest-{uuid.uuid4().hex}"
        h.openai_secret = f"sk-oai-cvtest-{uuid.uuid4().hex}"
        e = {"CONTAINERS_CONF": str(engine.conf),
             "ANTHROPIC_API_KEY": h.secret,
             "OPENAI_API_KEY": h.openai_secret}
        if runtime == "docker":
            e["DOCKER_HOST"] = engine.start_service()
        else:
            e["DOCKER_HOST"] = ""
        e.update(env or {})
        h.cv_env = e
        if start:
            h.start(env=e)
        return h

    yield make

    # Whatever a failed test left running: the daemons (by pid, as the
    # homes fixture would), then their containers, so that none outlives
    # the test. The tests themselves assert that none is left.
    for h in made:
        for p in h.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15 * TIME_SCALE)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5 * TIME_SCALE)
        for n in engine.names(h.path):
            engine.run("kill", n, check=False)
            engine.run("rm", "-f", n, check=False)


def no_containers(engine, h, timeout=10):  # noqa: F811
    """Wait until no container of any state carries h's label."""
    left = []

    def gone():
        left[:] = engine.names(h.path)
        return not left
    try:
        wait_for(gone, timeout, interval=0.2, what="containers to go")
    except AssertionError:
        raise AssertionError(f"containers left behind for {h.path}: {left}")


def secrets_dir(h):
    return h.path / "run" / "secrets"


def secret_files(h):
    d = secrets_dir(h)
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def files_holding(root, needle):
    """Every file under root whose bytes contain needle."""
    hits = []
    for dirpath, dirnames, filenames in os.walk(root):
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


def cmdlines_holding(needle):
    hits = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    hits.append(int(d))
        except OSError:
            pass
    return hits


def assert_terminal_once(h, mid, engine, what):  # noqa: F811
    dead, notice = h.wait_dead(mid, timeout=20)
    assert dead["errorClass"] == "terminal", dead
    assert dead["attempt"] == 1, dead
    for w in what:
        assert w in dead["errorMessage"], dead["errorMessage"]
    assert notice is not None
    # Never a fallback to host: the host's fakes were never called.
    assert h.calls() == [], h.calls()
    assert engine.names(h.path) == []
    assert secret_files(h) == []
    time.sleep(0.5)
    assert len(h.dead_letters(mid)) == 1 and len(h.responses(mid)) == 1
    assert h.secret not in h.log()
    assert files_holding(h.path, h.secret.encode()) == []
    return dead


# -- the reply and the container's shape ----------------------------------

@pytest.mark.parametrize("runtime", RUNTIMES)
def test_reply_uid_readonly_root_tmpfs(dhomes, engine, runtime):  # noqa: F811
    h = dhomes(runtime, agents={
        "alpha": {"name": "Alpha", "provider": "anthropic",
                  "model": "sonnet"},
        "beta": {"name": "Beta", "provider": "openai", "model": "gpt-5"}})
    mid = h.drop("probe", agent="alpha")
    r = h.wait_response(mid, timeout=30)
    assert r["message"].startswith(
        "claude reply (model=claude-sonnet-4-5 continue=1 skip=1): probe: "), \
        r["message"]
    facts = parse_probe(r["message"])
    assert facts["uid"] == str(os.getuid()), facts
    assert facts["gid"] == str(os.getgid()), facts
    assert facts["root"] == "ro", facts
    assert facts["tmp"] == "rw", facts
    assert facts["workdir"] == "/workspace", facts
    assert facts["home"] == "/workspace/.tinyclaw-home", facts
    # The key arrived through the env-file, and only its hash came back.
    assert facts["key"] == hashlib.sha256(h.secret.encode()).hexdigest()
    # network "default" is a bridge: more than the loopback.
    assert "lo" in facts["nets"].split(",") and \
        len(facts["nets"].split(",")) > 1, facts

    mid2 = h.drop("hello from docker", agent="beta")
    r2 = h.wait_response(mid2, timeout=30)
    assert r2["message"] == ("codex reply (model=gpt-5 resume=1 last=1 "
                             "bypass=1): hello from docker")

    # Nothing left: env-files, container records, containers.
    assert secret_files(h) == []
    assert stat.S_IMODE(secrets_dir(h).stat().st_mode) == 0o700
    no_containers(engine, h)
    rec = h.path / "run" / "containers"
    assert not rec.is_dir() or list(rec.iterdir()) == []
    # The host's fakes were never run: this was all in the container.
    assert h.calls() == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_network_none_and_explicit_user(dhomes, engine, runtime):  # noqa: F811
    h = dhomes(runtime, docker={"network": "none", "user": "4321:4322"})
    mid = h.drop("probe", agent="probe")
    r = h.wait_response(mid, timeout=30)
    facts = parse_probe(r["message"])
    assert facts["nets"] == "lo", facts
    assert facts["netdev"] == "lo", facts
    assert facts["uid"] == "4321" and facts["gid"] == "4322", facts
    assert facts["root"] == "ro" and facts["tmp"] == "rw", facts
    # command provider: no key is required, but an allowlisted one that is
    # set is still passed (through the env-file).
    assert facts["key"] == hashlib.sha256(h.secret.encode()).hexdigest()
    assert secret_files(h) == []
    no_containers(engine, h)


# -- secrets ----------------------------------------------------------------

@pytest.mark.parametrize("runtime", RUNTIMES)
def test_secret_only_in_env_file(dhomes, engine, runtime):  # noqa: F811
    h = dhomes(runtime, agents={
        "alpha": {"name": "Alpha", "provider": "anthropic"}})
    needle = h.secret.encode()
    mid = h.drop("sleep 2", agent="alpha")
    seen_file = seen_container = False
    env_lines = set()
    deadline = time.monotonic() + 20
    leaks = []
    while h.outcome(mid) is None and time.monotonic() < deadline:
        names = secret_files(h)
        if names:
            for n in names:
                p = secrets_dir(h) / n
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                seen_file = True
                assert stat.S_ISREG(st.st_mode), oct(st.st_mode)
                assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
                assert st.st_uid == os.getuid()
                try:
                    lines = p.read_text().splitlines()
                except FileNotFoundError:
                    continue
                if lines:
                    env_lines.update(lines)
            assert stat.S_IMODE(secrets_dir(h).stat().st_mode) == 0o700
        leaks += cmdlines_holding(needle)
        leaks += cmdlines_holding(h.openai_secret.encode())
        if not seen_container and engine.names(h.path):
            seen_container = True
        time.sleep(0.05)
    r = h.wait_response(mid, timeout=20)
    assert "sleep 2" in r["message"]
    assert seen_file, "never saw the env-file while the container ran"
    assert seen_container, "never saw the container while it ran"
    assert leaks == [], f"secret in the argv of pids {leaks}"
    # The env-file holds HOME and every allowlisted variable that is set.
    assert {"HOME=/workspace/.tinyclaw-home", f"ANTHROPIC_API_KEY={h.secret}",
            f"OPENAI_API_KEY={h.openai_secret}"} <= env_lines, env_lines
    assert secret_files(h) == []

    # A reply that echoes the key is redacted, in both shapes.
    mid2 = h.drop("probe leak", agent="alpha")
    r2 = h.wait_response(mid2, timeout=30)
    assert h.secret not in r2["message"]
    assert "bare " in r2["message"]
    assert parse_probe(r2["message"])["key"] == \
        hashlib.sha256(needle).hexdigest()

    no_containers(engine, h)
    assert secret_files(h) == []
    h.stop()
    # The secrets are in no file under the home, the log included.
    assert files_holding(h.path, needle) == []
    assert files_holding(h.path, h.openai_secret.encode()) == []
    assert h.secret not in h.log()


# -- lifecycle --------------------------------------------------------------

@pytest.mark.parametrize("runtime", RUNTIMES)
def test_timed_out_container_is_gone(dhomes, engine, runtime):  # noqa: F811
    h = dhomes(runtime, sandbox={"timeout_seconds": 2,
                                 "kill_grace_seconds": 1, "max_attempts": 1},
               agents={"alpha": {"name": "Alpha", "provider": "anthropic"}})
    t0 = time.monotonic()
    mid = h.drop("sleep 30", agent="alpha")
    names = wait_for(lambda: engine.names(h.path), 15, interval=0.1,
                     what="the container to start")
    dead, notice = h.wait_dead(mid, timeout=25)
    took = time.monotonic() - t0
    assert dead["errorClass"] == "transient", dead
    assert "timed out" in dead["errorMessage"], dead
    assert took < 20, took
    no_containers(engine, h)
    r = engine.run("ps", "-a", "--format", "{{.Names}}")
    for n in names:
        assert n not in r.stdout.split(), (n, r.stdout)
    assert secret_files(h) == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_daemon_crash_leaves_no_container(dhomes, engine, runtime):  # noqa: F811
    h = dhomes(runtime, sandbox={"max_attempts": 3},
               agents={"alpha": {"name": "Alpha", "provider": "anthropic"}})
    # 20 s the first time only (a marker in the working directory).
    mid = h.drop("sleep-once 20", agent="alpha")
    (old,) = wait_for(lambda: engine.names(h.path), 15, interval=0.1,
                      what="the container to start")
    wait_for(lambda: (h.workdir("alpha") / "sleep-once.done").exists(), 10,
             what="the fake to start sleeping")
    h.kill()                                    # SIGKILL, as a crash
    # Its workers go too (they watch their parent); the container may not.
    t0 = time.monotonic()
    h.start(env=h.cv_env, timeout=40)
    took = time.monotonic() - t0
    # The sweep runs before the new daemon takes work: the old one is gone.
    r = engine.run("ps", "-a", "--format", "{{.Names}}")
    assert old not in r.stdout.split(), (old, r.stdout)
    # ... and it is killed, not stopped with the engine's 10 s grace.
    assert took < 8, f"restart took {took:.1f}s"
    r = h.wait_response(mid, timeout=30)
    assert "sleep-once 20" in r["message"]
    no_containers(engine, h)
    time.sleep(1)
    assert len(h.responses(mid)) == 1 and h.dead_letters(mid) == []
    assert secret_files(h) == []
    assert h.secret not in h.log()


# -- fail closed ------------------------------------------------------------

CLOUD = {"alpha": {"name": "Alpha", "provider": "anthropic"},
         "beta": {"name": "Beta", "provider": "openai"}}


def test_fail_closed_runtime_missing(dhomes, engine):  # noqa: F811
    h = dhomes("clawvisor-no-such-runtime", agents=CLOUD)
    mid = h.drop("hello", agent="alpha")
    assert_terminal_once(h, mid, engine, ["clawvisor-no-such-runtime"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fail_closed_key_not_allowlisted(dhomes, engine, runtime):  # noqa: F811
    h = dhomes(runtime, agents=CLOUD,
               sandbox={"env_allowlist": ["OPENAI_API_KEY"]})
    mid = h.drop("hello", agent="alpha")
    assert_terminal_once(h, mid, engine, ["ANTHROPIC_API_KEY",
                                          "env_allowlist"])
    # The other provider, whose key is allowlisted, still works.
    mid2 = h.drop("hello", agent="beta")
    assert "codex reply" in h.wait_response(mid2, timeout=30)["message"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fail_closed_key_unset(dhomes, engine, runtime):  # noqa: F811
    h = dhomes(runtime, agents=CLOUD, env={"OPENAI_API_KEY": ""})
    mid = h.drop("hello", agent="beta")
    assert_terminal_once(h, mid, engine, ["OPENAI_API_KEY", "not set"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fail_closed_network_none_cloud(dhomes, engine, runtime):  # noqa: F811
    h = dhomes(runtime, agents=CLOUD, docker={"network": "none"})
    mid = h.drop("hello", agent="alpha")
    assert_terminal_once(h, mid, engine, ["none", "anthropic"])
    mid2 = h.drop("hello", agent="beta")
    assert_terminal_once(h, mid2, engine, ["none", "openai"])


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("image", ["clawvisor-test-no-such-image:latest",
                                   "localhost/clawvisor-test-no-such-image:1"])
def test_fail_closed_image_missing(dhomes, engine, runtime, image):  # noqa: F811
    h = dhomes(runtime, agents=CLOUD, docker={"image": image})
    mid = h.drop("hello", agent="alpha")
    dead = assert_terminal_once(h, mid, engine, ["125"])
    assert h.secret not in dead["errorMessage"]
