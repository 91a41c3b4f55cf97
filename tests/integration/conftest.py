"""
Fixtures for the integration suite: each test gets temporary homes on which
the real `clawvisor serve -f` runs, with the fake `claude` and `codex` of
fakes/ first on PATH. Helpers drop messages the way TinyClaw's channel
clients do (a temporary name, then rename into queue/incoming/), wait for a
message's outcome, and read events, the log and the fakes' call log.

Every process a test starts carries CLAWVISOR_TEST_TAG=<unique> in its
environment, and so does everything the daemon starts on the host. Teardown
stops the daemons it started (by pid), then looks for any process still
carrying the tag: one left over is a stray (a fake the daemon did not
reap, a worker that outlived its supervisor); it is killed by pid and the
test fails.

Under valgrind (VALGRIND=1 tests/run), CLAWVISOR_WRAP is the command line
every clawvisor the tests start runs under: BIN (and $CLAWVISOR_BIN, which
some tests read themselves) becomes a small script that execs it, so the
pid a test holds is still the daemon's; @ID@ in it becomes an id unique to
each command. CLAWVISOR_TIME_SCALE stretches every wait of these fixtures,
and the tests in WRAP_DESELECT are deselected, with their reason.
"""
import atexit
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FAKES = HERE / "fakes"
# CLAWVISOR_REAL_BIN: set below when CLAWVISOR_BIN becomes a wrapper, so
# that a pytest-xdist worker (which inherits the controller's environment)
# wraps the binary, not the controller's wrapper.
BIN = os.environ.get("CLAWVISOR_REAL_BIN") or os.environ.get(
    "CLAWVISOR_BIN", os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "..", "build", "clawvisor"))
REAL_BIN = os.path.abspath(BIN)
WRAP = shlex.split(os.environ.get("CLAWVISOR_WRAP", ""))
TIME_SCALE = float(os.environ.get("CLAWVISOR_TIME_SCALE") or 1)
if WRAP:
    _wrapdir = tempfile.mkdtemp(prefix="clawvisor-wrap-")
    os.chmod(_wrapdir, 0o755)       # test_control runs it as nobody too
    BIN = os.path.join(_wrapdir, "clawvisor")
    # @ID@ in an argument of the wrapper: an id unique to each command
    # (tests/run names valgrind's logs by it, as pids come round again).
    # Every argument double-quoted, so that the shell expands only that.
    args = ['"' + re.sub(r'([\\"$`])', r'\\\1', a).replace("@ID@", "$id") +
            '"' for a in WRAP + [REAL_BIN]]
    with open(BIN, "w") as f:
        f.write("#!/bin/sh\nid=$(date +%s%N)-$$\nexec " + " ".join(args) +
                ' "$@"\n')
    os.chmod(BIN, 0o755)
    os.environ["CLAWVISOR_REAL_BIN"] = REAL_BIN
    os.environ["CLAWVISOR_BIN"] = BIN
    atexit.register(shutil.rmtree, _wrapdir, True)


def open_up(path):
    """Let the agents' uid (65534) reach path: o+x on it and on every
    directory above it (pytest's and mktemp's directories are 0700)."""
    p = os.path.abspath(path)
    while p != "/":
        os.chmod(p, os.stat(p).st_mode | 0o011)
        p = os.path.dirname(p)


# The sandboxes bind the checkout's fakes and the build's clawvisor-bridge,
# which their uid must reach whichever test comes first, also from a
# checkout in a 0700 directory (a clone into `mktemp -d`).
if os.geteuid() == 0:
    open_up(HERE)
    open_up(os.path.dirname(REAL_BIN))

# What cannot hold under a wrapper such as valgrind, and why.
WRAP_DESELECT = {
    "test_output.py::test_30mb_reply_bounded":
        "measures the supervisor's VmHWM, which under valgrind is the "
        "tool's own memory and shadow memory",
    "test_chaos_short.py::test_chaos_short":
        "chaos.py picks the workers it kills by the title 'clawvisor: "
        "worker', which under valgrind is valgrind's argv, and holds the "
        "run to 300 s",
    "test_control.py::test_200_concurrent_cli_clients":
        "200 CLI clients at once within 60 s: under valgrind each one "
        "takes seconds of CPU to start",
    "test_control.py::test_stuck_and_slow_clients_do_not_block":
        "times each CLI status to under 5 s, a bound for the daemon that "
        "valgrind's start-up of the client alone comes near",
    "test_control.py::test_pool_resize_on_reload":
        "needs three 0.3 s runs in flight just after a reload; under "
        "valgrind the new workers start after the work is done",
    "test_egress_ops.py::test_initial_environment_block_wiped":
        "under a wrapper (valgrind) /proc/PID/environ is the wrapper's own "
        "block, out of clawvisor's reach",
    "test_order.py::test_cross_agent_parallel":
        "bounds four parallel 1 s runs to 2.5 s of wall time",
    "test_exec.py::test_shim_finds_the_real_cli_after_itself":
        "a shim is a link to the binary run under its name; under a "
        "wrapper the link reaches the wrapper script, which runs the "
        "binary as clawvisor",
    "test_exec.py::test_daemon_with_shims_on_its_path_does_not_loop":
        "a shim is a link to the binary run under its name, which a "
        "wrapper script cannot be",
    "test_exec.py::test_tinyagi_adapter_through_the_shim":
        "runs the CLI through a shim, which a wrapper script cannot be",
    "test_exec_engines.py::test_tinyagi_adapter_docker_mode_with_podman":
        "runs the CLI through a shim, which a wrapper script cannot be",
    "test_exec_engines.py::test_tinyagi_adapter_apple_mode":
        "runs the CLI through a shim, which a wrapper script cannot be",
    "test_exec.py::test_caller_that_stops_reading_100mb":
        "measures the supervisor's VmHWM, which under valgrind is the "
        "tool's own memory",
}
_deselected = []

# CLAWVISOR_SUITE_MODE=bwrap (tests/run sets it for a second pass of the
# plain build over BWRAP_SUITE_FILES): the suite's agents run in bwrap
# mode, as SUITE_UID, same-path (so the fakes' cwd is the host path), with
# the host's network (the fake CLIs need none, but claude and codex agents
# fail closed without it), the fakes' log in each agent's workspace (the
# home is not visible inside), dummy keys (bwrap mode fails closed without
# one), and Home.workdir() paths whose mkdir() gives the directory to the
# agent's user, so that a working directory a test makes by hand is the
# agent's to write to, as one the worker makes is. What is about the host's
# processes or one mode is deselected, with its reason.
SUITE_MODE = os.environ.get("CLAWVISOR_SUITE_MODE", "host")
SUITE_UID = 65534
SUITE_DESELECT = {
    # The egress tests set their own modes (bwrap with network none and
    # podman, the proxy on): the pass's network "host" is refused with
    # the proxy, as SPEC §9 requires.
    **{f: "sets its own sandbox modes with the egress proxy, which the "
          "bwrap pass's network \"host\" cannot be combined with"
       for f in ("test_egress_absolute_form.py",
                 "test_egress_bridge.py", "test_egress_bulk.py",
                 "test_egress_config.py", "test_egress_ops.py",
                 "test_egress_e2e.py", "test_egress_podman.py",
                 "test_egress_process.py", "test_egress_proxy.py",
                 "test_egress_real_cli.py", "test_egress_resolve.py",
                 "test_egress_cadir.py")},
    "test_chaos_short.py":
        "chaos.py builds its own homes in host mode: the bwrap pass would only run it twice",
    "test_compat_agentdir.py::test_unwritable_workspace_is_terminal_and_doctor_agrees":
        "about docker mode: the /workspace path it asserts is the mapped one, which the bwrap pass's same-path mapping replaces",
    "test_compat_cli.py::test_sandbox_codex_key_handed_over":
        "about docker mode (runtime_pass_env)",
    "test_compat_cli.py::test_sandbox_runs_with_either_key":
        "about docker mode (runtime_pass_env)",
    "test_compat_cli.py::test_sandbox_neither_key_names_both":
        "about docker mode (runtime_pass_env)",
    "test_control.py::test_usage_errors_exit_2":
        "asserts the default mode (host) or the settings file as written, which the bwrap pass changes",
    "test_control.py::test_status_fields_cli_and_raw":
        "asserts the default mode (host) or the settings file as written, which the bwrap pass changes",
    "test_control.py::test_reload_bad_keeps_old_config":
        "asserts the default mode (host) or the settings file as written, which the bwrap pass changes",
    "test_control.py::test_sandbox_show_zero_values_and_no_secrets":
        "asserts the default mode (host) or the settings file as written, which the bwrap pass changes",
    "test_control.py::test_sandbox_set_docker_keeps_everything_and_reloads":
        "asserts the default mode (host) or the settings file as written, which the bwrap pass changes",
    "test_control.py::test_sandbox_set_validates_and_leaves_file_untouched":
        "asserts the default mode (host) or the settings file as written, which the bwrap pass changes",
    "test_control.py::test_doctor_keys_in_the_daemons_environment":
        "expects no key in the environment; the bwrap pass sets dummy ones",
    "test_control.py::test_reload_under_load":
        "its agent runs a program or writes a log in the clawvisor home, which bwrap mode hides from the agent (as SPEC §8 requires)",
    "test_control.py::test_dead_requeue_resets_attempts_and_succeeds":
        "its agent runs a program or writes a log in the clawvisor home, which bwrap mode hides from the agent (as SPEC §8 requires)",
    "test_crash.py::test_worker_killed_mid_invocation":
        "reads the pids the fake writes, which in bwrap mode are the sandbox's pid namespace's, not the host's",
    "test_crash.py::test_supervisor_killed_with_work_in_flight":
        "reads the pids the fake writes, which in bwrap mode are the sandbox's pid namespace's, not the host's",
    "test_failures.py::test_terminal_failures_not_retried":
        "host mode's exec error texts; bwrap mode fails closed before exec with its own (test_bwrap_mode.py)",
    "test_failures.py::test_timeout_kills_process_group":
        "reads the pids the fake writes, which in bwrap mode are the sandbox's pid namespace's, not the host's (test_bwrap_mode.py tests the same in bwrap mode)",
    "test_hardening_intake.py::test_send_file_is_copied_before_a_later_run":
        "its agent runs a program or writes a log in the clawvisor home, which bwrap mode hides from the agent (as SPEC §8 requires)",
    "test_hardening_intake.py::test_send_file_in_a_chain_is_copied_at_its_step":
        "its agent runs a program or writes a log in the clawvisor home, which bwrap mode hides from the agent (as SPEC §8 requires)",
    "test_hardening_parse.py::test_worst_case_reply_crosses_whole_and_runs_once":
        "its agent runs a program or writes a log in the clawvisor home, which bwrap mode hides from the agent (as SPEC §8 requires)",
    "test_hardening_parse.py::test_huge_hand_off_message_fails_for_its_own_reason":
        "its agent runs a program or writes a log in the clawvisor home, which bwrap mode hides from the agent (as SPEC §8 requires)",
    "test_hardening_secrets.py::test_secret_cut_at_every_edge":
        "its agent runs a program or writes a log in the clawvisor home, which bwrap mode hides from the agent (as SPEC §8 requires)",
    "test_hardening_signals.py::test_group_stop_lets_in_flight_work_finish":
        "reads the pids the fake writes, which in bwrap mode are the sandbox's pid namespace's, not the host's",
    "test_hardening_signals.py::test_group_stop_hands_back_after_the_grace":
        "reads the pids the fake writes, which in bwrap mode are the sandbox's pid namespace's, not the host's",
    "test_hardening_signals.py::test_worker_ignores_signals_from_outside":
        "reads the pids the fake writes, which in bwrap mode are the sandbox's pid namespace's, not the host's",
    "test_lifecycle.py::test_sigterm_hands_back_in_flight":
        "reads the pids the fake writes, which in bwrap mode are the sandbox's pid namespace's, not the host's",
    "test_security.py::test_unreadable_settings_as_nobody":
        "runs the daemon as nobody, which cannot create cgroups: strict limits fail closed, as they must",
    "test_security.py::test_world_writable_settings_warned":
        "counts a warning line that the bwrap pass's own warning (network host) joins",
 "test_security.py::test_world_writable_directories_warned":
        "leaves the workspace 0700 root's, which the agent's user cannot enter",
 "test_docker_mode.py": "about docker mode",
 "test_apple_mode.py": "about apple mode",
 "test_bwrap_mode.py": "runs in bwrap mode in every pass",
 "test_exec.py": "chooses each test's mode itself (host, bwrap, docker) in every pass",
 "test_exec_caps.py": "chooses each test's mode itself (host, bwrap) in every pass",
 "test_exec_engines.py": "chooses each test's mode itself (docker with podman, apple) in every pass",
 "test_security.py::test_missing_settings_runs_on_defaults":
        "no settings.json: host mode, the defaults",
}


# CLAWVISOR_PART: tests/run splits a run in two when it runs pytest in
# several processes (pytest-xdist, PYTEST_JOBS): "parallel" is all but
# SERIAL, spread over the processes; "serial" is SERIAL alone, afterwards,
# in one process with nothing else of the suite beside it. SERIAL holds
# what bounds a wall-clock time that CLAWVISOR_TIME_SCALE does not
# stretch, or the delay between lines of a stream, or a load: a test of
# the other process, taking a core, would skew what they measure.
PART = os.environ.get("CLAWVISOR_PART", "")
SERIAL = {
    "test_lifecycle.py": "graceful stops bounded to seconds",
    "test_docker_mode.py": "a timeout and a restart bounded to seconds "
                           "on Podman",
    "test_exec_engines.py": "delays between streamed lines through Podman",
    "test_exec.py::test_tinyagi_adapter_through_the_shim":
        "delays between streamed lines",
    "test_exec_caps.py::test_line_delay_one_extra_hop":
        "delays between streamed lines",
    "test_control.py::test_200_concurrent_cli_clients": "a load",
    "test_control.py::test_stuck_and_slow_clients_do_not_block":
        "each status bounded to 5 s",
    "test_control.py::test_stop_hands_back_in_flight":
        "a stop bounded to 10 s",
    "test_control.py::test_stop_lets_in_flight_finish_within_grace":
        "a stop bounded to 5 s",
    "test_order.py::test_cross_agent_parallel":
        "four parallel runs bounded to 2.5 s",
    "test_metrics.py::test_metrics_slow_clients_do_not_stall_the_queue":
        "the daemon's own 5 s request timer against the queue's pace",
    "test_metrics.py::test_metrics_slow_reader_dropped":
        "the daemon's own 10 s write timer against the queue's pace",
    "test_chaos_short.py": "a load, and the run held to 300 s",
}


def _lookup(table, it):
    mod = it.path.name
    return table.get(f"{mod}::{it.name}") or \
        table.get(f"{mod}::{getattr(it, 'originalname', '')}") or \
        table.get(mod)


class AgentDir(type(Path())):
    """A working directory: mkdir() gives it to SUITE_UID (bwrap pass)."""

    def mkdir(self, mode=0o777, parents=False, exist_ok=False):
        super().mkdir(mode, parents, exist_ok)
        os.chown(self, SUITE_UID, SUITE_UID)


def pytest_collection_modifyitems(config, items):
    table = dict(WRAP_DESELECT if WRAP else {})
    if SUITE_MODE == "bwrap":
        table.update(SUITE_DESELECT)
    keep, dropped = [], []
    for it in items:
        reason = _lookup(table, it)
        if reason:
            # Said once: by the parallel part when there are two.
            if PART != "serial":
                _deselected.append((it.nodeid, reason))
            dropped.append(it)
        elif PART and bool(_lookup(SERIAL, it)) != (PART == "serial"):
            dropped.append(it)      # the other part's: not said
        else:
            keep.append(it)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_sessionfinish(session):
    # An xdist worker: its reasons go to the controller, which prints them.
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["clawvisor_deselected"] = \
            [list(d) for d in _deselected]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    # The controller: every worker collected the same, so once each.
    for d in getattr(node, "workeroutput", {}).get("clawvisor_deselected",
                                                   []):
        if tuple(d) not in _deselected:
            _deselected.append(tuple(d))


def pytest_terminal_summary(terminalreporter):
    for nodeid, reason in _deselected:
        terminalreporter.write_line(f"deselected under "
                                    f"{WRAP[0] if WRAP else SUITE_MODE}: "
                                    f"{nodeid}: {reason}")


NOTICE_TEXT = ("Sorry, I encountered an error processing your request. "
               "Please check the queue logs.")


def deep_merge(base, over):
    """over wins; a None value in over removes the key."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """pred() until it returns something truthy; that, or AssertionError.
    timeout is stretched by CLAWVISOR_TIME_SCALE."""
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what}")
        time.sleep(interval)


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return st[st.rindex(")") + 2] != "Z"


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def proc_ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    return int(st[st.rindex(")") + 2:].split()[1])


def is_worker(pid):
    """A clawvisor worker by its title; under a wrapper the title is the
    wrapper's argv, which holds the worker's."""
    c = proc_cmdline(pid)
    return c.startswith("clawvisor: worker") or \
        bool(WRAP) and f" {REAL_BIN} worker " in c


def tagged_pids(tag):
    """Processes whose environment holds CLAWVISOR_TEST_TAG=tag."""
    needle = f"CLAWVISOR_TEST_TAG={tag}".encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0") and pid_alive(int(d)):
            found.append(int(d))
    return found


def read_json(path):
    with open(path) as f:
        return json.load(f)


def parse_fake_log(path):
    """The fakes' call log: one dict per call, in start order."""
    calls, by_pid = [], {}
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        parts = line.split(" ")
        kind, fields = parts[0], dict(p.split("=", 1) for p in parts[1:]
                                      if "=" in p)
        if kind == "start":
            data = bytes.fromhex(fields["data"]).decode(errors="replace")
            cwd, *argv = data.split("\0")[:-1]
            c = {"prog": fields["prog"], "pid": int(fields["pid"]),
                 "start": float(fields["t"]), "cwd": cwd,
                 "argv": argv, "message": argv[-1] if argv else None,
                 "end": None, "status": None}
            calls.append(c)
            by_pid[c["pid"]] = c
        elif kind == "end" and int(fields["pid"]) in by_pid:
            c = by_pid[int(fields["pid"])]
            c["end"] = float(fields["t"])
            c["status"] = int(fields["status"])
    return calls


class Home:
    """One clawvisor home and the daemon(s) run on it."""

    def __init__(self, root, tag, settings):
        self.path = root
        self.tag = tag
        self.workspace = root / "workspace"
        self.fake_log = root / "fake.log"
        self.q = root / "queue"
        self.procs = []          # every Popen started on this home
        self.proc = None         # the current daemon
        self.seq = 0
        self.path.mkdir(parents=True, exist_ok=True)
        self.workspace.mkdir(exist_ok=True)
        if SUITE_MODE == "bwrap":
            open_up(self.path)  # the agent's user reaches its workspace
        self.write_settings(settings)

    # -- configuration -------------------------------------------------

    def write_settings(self, settings, raw=None):
        """settings.json, written atomically (raw text if given)."""
        self.settings = settings
        text = raw if raw is not None else json.dumps(settings, indent=2)
        tmp = self.path / ".settings.json.tmp"
        tmp.write_text(text)
        os.rename(tmp, self.path / "settings.json")

    def workdir(self, agent):
        if SUITE_MODE == "bwrap":
            return AgentDir(self.workspace / agent)
        return self.workspace / agent

    def env(self, extra=None):
        e = dict(os.environ)
        e["PATH"] = f"{FAKES}:{e.get('PATH', '/usr/bin:/bin')}"
        e["FAKE_LOG"] = str(self.fake_log)
        if SUITE_MODE == "bwrap":
            e["FAKE_LOG"] = "fake.log"      # in the agent's cwd
            e.setdefault("ANTHROPIC_API_KEY", "sk-ant-suite-dummy")
            e.setdefault("OPENAI_API_KEY", "sk-oai-suite-dummy")
        e["CLAWVISOR_TEST_TAG"] = self.tag
        e.pop("TINYCLAW_HOME", None)
        if extra:
            e.update(extra)
        return e

    # -- the daemon ------------------------------------------------------

    def spawn(self, *args, env=None):
        """Start `clawvisor --home H serve -f ARGS`, not waiting."""
        n = len(self.procs)
        err = open(self.path / f"daemon-{n}.stderr", "wb")
        p = subprocess.Popen([BIN, "--home", str(self.path), "serve", "-f",
                              *args], stdin=subprocess.DEVNULL, stdout=err,
                             stderr=err, env=self.env(env),
                             cwd=str(self.path))
        err.close()
        p.stderr_path = self.path / f"daemon-{n}.stderr"
        self.procs.append(p)
        return p

    def start(self, *args, env=None, timeout=10):
        """Start the daemon and wait until it is ready."""
        since = time.time() * 1000 - 1
        p = self.spawn(*args, env=env)
        self.proc = p

        def ready():
            if p.poll() is not None:
                raise AssertionError(
                    f"clawvisor exited with {p.returncode} at start:\n"
                    + p.stderr_path.read_text(errors="replace"))
            for e in self.events("processor_start"):
                if e.get("pid") == p.pid and e["timestamp"] >= since:
                    return True
            return False
        wait_for(ready, timeout, what="processor_start")
        return p

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self, proc=None):
        p = proc or self.proc
        return p.stderr_path.read_text(errors="replace")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, timeout=15):
        """SIGTERM and wait; the exit status."""
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout * TIME_SCALE)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5 * TIME_SCALE)
            raise AssertionError(f"clawvisor did not stop within {timeout}s")

    def kill(self):
        """SIGKILL the supervisor (only), as a crash would."""
        self.proc.kill()
        self.proc.wait(5 * TIME_SCALE)

    def worker_pids(self):
        """Live workers of the current supervisor, by its children."""
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit() and proc_ppid(int(d)) == self.proc.pid and \
                    is_worker(int(d)) and pid_alive(int(d)):
                out.append(int(d))
        return sorted(out)

    def wait_workers(self, n, timeout=10):
        return wait_for(lambda: (w := self.worker_pids()) and len(w) == n
                        and w, timeout, what=f"{n} workers")

    def vm_hwm_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")

    # -- the queue -------------------------------------------------------

    def drop(self, message, agent=None, channel="discord", sender="alice",
             mid=None, name=None, extra=None, obj=None):
        """Drop a message into incoming/ atomically; its messageId."""
        self.seq += 1
        if obj is None:
            mid = mid or f"m{self.seq}-{uuid.uuid4().hex[:8]}"
            obj = {"channel": channel, "sender": sender,
                   "senderId": f"{sender}-id", "message": message,
                   "timestamp": int(time.time() * 1000), "messageId": mid}
            if agent is not None:
                obj["agent"] = agent
            if extra:
                obj.update(extra)
        else:
            mid = obj.get("messageId")
        data = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
        self.drop_raw(name or f"{channel}_{mid}.json", data)
        return mid

    def drop_raw(self, name, data):
        inc = self.q / "incoming"
        inc.mkdir(parents=True, exist_ok=True)
        tmp = inc / f".tmp-{uuid.uuid4().hex}"
        if isinstance(data, str):
            data = data.encode()
        tmp.write_bytes(data)
        os.rename(tmp, inc / name)
        return inc / name

    def files(self, sub):
        d = self.q / sub
        if not d.is_dir():
            return []
        return sorted(p for p in d.iterdir() if not p.name.startswith("."))

    def responses(self, mid):
        """Responses in outgoing/ for mid (json.load'ed, with _path)."""
        out = []
        for p in self.files("outgoing"):
            if p.name == f"{mid}.json" or f"_{mid}_" in p.name:
                try:
                    r = read_json(p)
                except (json.JSONDecodeError, FileNotFoundError):
                    continue
                if r.get("messageId") == mid:
                    r["_path"] = p
                    out.append(r)
        return out

    def dead_letters(self, mid):
        out = []
        for p in self.files("dead-letter"):
            try:
                r = read_json(p)
            except (json.JSONDecodeError, FileNotFoundError):
                continue
            if r.get("payload", {}).get("messageId") == mid:
                r["_path"] = p
                out.append(r)
        return out

    def outcome(self, mid):
        """('dead', record, notice) / ('response', response, None) / None.
        The daemon moves a dead letter into place before its notice, so
        outgoing/ is read first: a notice seen means its dead letter is
        there to be seen too."""
        resp = self.responses(mid)
        dead = self.dead_letters(mid)
        if dead and resp:
            return ("dead", dead[0], resp[0])
        if resp and not dead:
            return ("response", resp[0], None)
        return None

    def alive_check(self):
        """AssertionError if the daemon we expect to be running is gone."""
        p = self.proc
        if p is not None and p.poll() is not None:
            raise AssertionError(
                f"clawvisor (pid {p.pid}) died with status {p.returncode}:"
                f"\n{self.stderr_text()[-3000:]}")

    def wait_outcome(self, mid, timeout=15):
        def check():
            o = self.outcome(mid)
            if o is None:
                self.alive_check()
            return o
        return wait_for(check, timeout, what=f"an outcome for {mid}")

    def wait_response(self, mid, timeout=15):
        o = self.wait_outcome(mid, timeout)
        assert o[0] == "response", f"{mid}: expected a response, got {o}"
        return o[1]

    def wait_dead(self, mid, timeout=15):
        o = self.wait_outcome(mid, timeout)
        assert o[0] == "dead", f"{mid}: expected a dead letter, got {o}"
        return o[1], o[2]

    # -- what happened ---------------------------------------------------

    def events(self, type=None):
        """Events (of type), in the order they happened: by timestamp, then
        by name (the names of one millisecond count up)."""
        out = []
        d = self.path / "events"
        if not d.is_dir():
            return out
        for p in d.iterdir():
            if p.name.startswith(".") or not p.name.endswith(".json"):
                continue
            try:
                e = read_json(p)
            except (json.JSONDecodeError, FileNotFoundError):
                continue
            if type is None or e.get("type") == type:
                out.append((e.get("timestamp", 0), p.name, e))
        out.sort(key=lambda t: t[:2])
        return [t[2] for t in out]

    def wait_events(self, type, mid=None, n=1, timeout=5):
        """At least n events of type (for messageId mid): events are
        written in a batch at the end of a loop iteration, so one may show
        up just after the outcome it tells of."""
        def got():
            ev = [e for e in self.events(type)
                  if mid is None or e.get("messageId") == mid]
            return ev if len(ev) >= n else None
        return wait_for(got, timeout, what=f"{n} {type} event(s)")

    def log(self):
        try:
            return (self.path / "logs" / "clawvisor.log").read_text(
                errors="replace")
        except FileNotFoundError:
            return ""

    def calls(self, message=None):
        """The fakes' calls, in start order (only for message if given)."""
        c = parse_fake_log(self.fake_log)
        if SUITE_MODE == "bwrap":
            # One log per working directory; pids are the sandboxes'.
            for f in self.workspace.glob("**/fake.log"):
                c += parse_fake_log(f)
            c.sort(key=lambda x: x["start"])
        if message is not None:
            c = [x for x in c if x["message"] == message]
        return c


BASE_SETTINGS = {
    "agents": {
        "alpha": {"name": "Alpha", "provider": "anthropic",
                  "model": "sonnet"},
        "beta": {"name": "Beta", "provider": "openai", "model": "gpt-5"},
    },
    "sandbox": {
        "mode": "host",
        "timeout_seconds": 30,
        "backoff_seconds": 0,
        "kill_grace_seconds": 1,
    },
    # The tests write settings.json and then reload, counting generations;
    # the watcher would race them (a reload of its own 0.25 s after the
    # write). test_compat_cli.py turns it on where it is the subject.
    "supervisor": {"workers": 4, "scan_interval_ms": 200,
                   "watch_settings": False},
}


SUITE_SETTINGS = {} if SUITE_MODE != "bwrap" else {
    "sandbox": {
        "mode": "bwrap", "path_mapping_mode": "same-path",
        "bwrap": {"user": f"{SUITE_UID}:{SUITE_UID}", "network": "host"},
        "env_allowlist": ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN",
                          "OPENAI_API_KEY", "CODEX_API_KEY", "FAKE_LOG",
                          "CLAWVISOR_TEST_TAG"],
    },
}


@pytest.fixture
def homes(tmp_path):
    """A factory: homes(settings_override=None, start=True) -> Home."""
    tag = uuid.uuid4().hex
    made = []

    def make(override=None, start=True, name=None):
        root = tmp_path / (name or f"home{len(made)}")
        s = deep_merge(BASE_SETTINGS, SUITE_SETTINGS)
        s = deep_merge(s, override or {})
        s = deep_merge(s, {"workspace": {"path": str(root / "workspace")}})
        h = Home(root, tag, s)
        made.append(h)
        if start:
            h.start()
        return h

    yield make

    # Stop what we started, by pid: SIGTERM, then SIGKILL.
    for h in made:
        for p in h.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in h.procs:
            try:
                p.wait(10 * TIME_SCALE)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5 * TIME_SCALE)
    # Then nothing of ours may be left: workers, fakes, grandchildren.
    strays = []
    deadline = time.monotonic() + 5 * TIME_SCALE
    while time.monotonic() < deadline:
        strays = tagged_pids(tag)
        if not strays:
            break
        time.sleep(0.1)
    described = [f"{p} {proc_cmdline(p)!r}" for p in strays]
    for p in strays:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not strays, f"stray processes left behind: {described}"


@pytest.fixture
def home(homes):
    """One started daemon on BASE_SETTINGS."""
    return homes()
