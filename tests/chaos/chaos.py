#!/usr/bin/env python3
"""
Chaos test for clawvisor: messages keep arriving while workers are killed,
the supervisor is killed and restarted, and the configuration is reloaded;
at the end every message must have exactly one final outcome.

Python 3 standard library only. Run it directly:

    /usr/bin/python3 tests/chaos/chaos.py               # 2000 messages
    /usr/bin/python3 tests/chaos/chaos.py --short       # CI: 300, < 90 s
    CLAWVISOR_BIN=build/clawvisor tests/chaos/chaos.py --seed 7 --keep

What it does

  * A temporary home with settings.json: --agents agents (default 20) using
    the `command` provider, whose command is tests/chaos/provider.sh. One
    agent in five runs in `apple` mode through the integration suite's
    fake `container` CLI (tests/integration/fakes/container), so that
    env-files under run/secrets/ and container kills are exercised too;
    the rest run in `host` mode. Sandbox: max_attempts 3, backoff_seconds 1
    (0 with --short; reloads switch it between 0 and 1), backoff_max_seconds
    2, timeout_seconds 10, kill_grace_seconds 1; 4 workers (some reloads
    switch to 3 and back).
  * A plan, from --seed: for every message a token, a messageId, an agent
    (by the "agent" field, or by a leading "@agent"), a channel and a mode
    for the provider: ok, flaky (fails K times, then ok), transient (always
    fails), exit127 and auth (terminal), signal (kills itself), hang
    (outlives timeout_seconds; not in --short). A few messages reuse the
    messageId of an earlier one under their own file name: each file is
    its own message and gets its own outcome. A few bad files: bad JSON, a
    missing field, a symlink, a 0-byte file, a FIFO, a directory *.json.
  * `clawvisor --home H serve -f` runs while a producer thread drops the
    files into queue/incoming/ at a steady rate (a dot-name, then rename),
    and a chaos thread, at planned random times, SIGKILLs a random worker
    (a child of the supervisor whose cmdline starts "clawvisor: worker",
    preferably one with an invocation running), SIGKILLs the supervisor
    and starts it again with the same command, and sends SIGHUP (after
    rewriting settings.json, sometimes). Half of the supervisor kills are
    aimed: chaos.py watches queue/processing/ and kills as soon as a
    commit is half done there (a NAME.reply, NAME.dead or temporary
    file); some restarts are killed again while still starting (a crash
    during recovery).
  * The home is a tmpfs of its own (--tmpfs-size), and the chaos thread
    also fills it up (--disk-full times, a file written until ENOSPC,
    held 0.3 to 2 s, then removed) while messages flow: commits, events,
    the log, env-files and the producer's own drops meet a full disk. The
    provider's state, the daemon's stderr and the fake container's state
    are kept outside it. --disk-full 0 runs on a plain directory (no
    root needed).
  * Then it waits for the daemon to drain (`status --json`: nothing in
    incoming/, processing/, deferred/, nothing held, no invocation
    running), runs `clawvisor stop`, waits for the supervisor to exit and
    checks.

Besides one outcome per file, no agent may run again after it succeeded
unless a kill (of a worker or of the supervisor) came in between: a reply
waiting for room on the disk is kept, not made again.

Accounting is per file (per token): a response in outgoing/ is matched
to its file by the token in its originalMessage, a dead letter by the token
in its payload. Each check (Chaos.check) is one test; the last line is
"N passed, N failed"; the exit status is 0 only if all passed.

With a sanitizer build (CLAWVISOR_BIN=build-asan/clawvisor, and e.g.
--duration-bound 200 --drain-timeout 150) any sanitizer report on the
daemon's stderr is a failure too.

Every process the daemon starts carries CLAWVISOR_TEST_TAG=<uuid> in its
environment (the fake container passes it into its "containers" too): any
such process alive after the stop is a stray; it is reported and killed by
pid.
"""
import argparse
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
PROVIDER = HERE / "provider.sh"
FAKE_CONTAINER = TOP / "tests" / "integration" / "fakes" / "container"
NOTICE = ("Sorry, I encountered an error processing your request. "
          "Please check the queue logs.")
CHANNELS = ("discord", "telegram", "whatsapp")
QUEUE_DIRS = ("incoming", "processing", "deferred", "outgoing",
              "dead-letter", "corrupt")
TOK_RE = re.compile(r"\btok=(\S+)")
CORRUPT_NOTICE = ("Sorry, your message could not be read and was not "
                  "processed")

# What a dead letter of each mode may say. Besides its own failure, any
# message may run out of attempts because the chaos interrupted it.
CHAOS_ERRORS = ("died during the invocation", "interrupted: clawvisor "
                "stopped during the invocation")
# And, with --disk-full, what a full disk may fail (an env-file, say).
DISK_ERRORS = ("No space left on device",)
MODE_ERRORS = {
    "ok": (),
    "flaky": ("exit 1",),
    "transient": ("exit 1",),
    "exit127": ("exit 127",),
    "auth": ("authentication failed",),
    "signal": ("signal 9", "exit 137"),
    "hang": ("timed out",),
}
NEVER_OK = ("transient", "exit127", "auth", "signal", "hang")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def fill(path):
    """Write path until its filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    size = 1 << 20
    try:
        while size >= 512:
            try:
                os.write(fd, b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                size //= 2
    finally:
        os.close(fd)


# -- /proc -------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def pid_alive(pid):
    s = proc_stat(pid)
    return s is not None and s[0] != "Z"


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children(pid):
    out = []
    for p in all_pids():
        s = proc_stat(p)
        if s is not None and s[1] == pid and s[0] != "Z":
            out.append(p)
    return out


def tagged_pids(tag):
    needle = f"CLAWVISOR_TEST_TAG={tag}".encode()
    out = []
    for p in all_pids():
        if p == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0") and pid_alive(p):
            out.append(p)
    return out


# -- the plan ----------------------------------------------------------------

def make_plan(args, rng, run_id):
    """The agents, the messages (dicts) and the bad files ((name, kind))."""
    agents = [f"a{i:02d}" for i in range(args.agents)]
    msgs = []
    weights = [("ok", 50), ("flaky", 25), ("transient", 5), ("exit127", 5),
               ("auth", 5), ("signal", 4)]
    modes = [m for m, w in weights for _ in range(w)]
    for i in range(args.messages):
        tok = f"t{i:05d}"
        mode = rng.choice(modes)
        m = {
            "tok": tok,
            "id": f"{run_id}-{i:05d}",
            "agent": rng.choice(agents),
            "channel": rng.choice(CHANNELS),
            "mode": mode,
            "sleep": f"{rng.uniform(0.0, args.max_sleep):.3f}",
            "fails": 0,
            "prefix": rng.random() < 0.1,
        }
        if mode == "flaky":
            # 1 or 2 failures: ok on a later attempt; 3: a dead letter.
            m["fails"] = rng.choice((1, 1, 1, 2, 2, 3))
        if mode in ("exit127", "auth"):
            m["sleep"] = "0"
        msgs.append(m)
    # Timeouts are slow (timeout_seconds per attempt): a few, full run only.
    if not args.short:
        for m in rng.sample(msgs, min(args.hangs, len(msgs))):
            m["mode"], m["sleep"], m["fails"] = "hang", "0", 0
    # Duplicate messageIds: a later file reuses an earlier file's id.
    ndup = max(2, args.messages // 200)
    for k in range(ndup):
        i = rng.randrange(len(msgs) // 2, len(msgs))
        j = rng.randrange(0, i)
        if not msgs[i].get("dup") and not msgs[j].get("dup"):
            msgs[i]["id"] = msgs[j]["id"]
            msgs[i]["dup"] = True
    for m in msgs:
        text = (f"chaos tok={m['tok']} id={m['id']} mode={m['mode']} "
                f"sleep={m['sleep']} fails={m['fails']}")
        obj = {"channel": m["channel"], "sender": "chaos",
               "senderId": "chaos-1", "message": text,
               "messageId": m["id"]}
        if m["prefix"]:
            obj["message"] = f"@{m['agent']} {text}"
        else:
            obj["agent"] = m["agent"]
        m["obj"] = obj
        m["file"] = f"chaos-{m['tok']}.json"
    bad = ["bad-json", "missing-field", "symlink", "empty", "fifo",
           "directory", "bad-json", "empty"]
    bad_files = [(f"chaos-bad-{k}-{n}.json", k) for n, k in enumerate(bad)]
    return agents, msgs, bad_files


def make_schedule(args, rng, duration):
    """[(t, action)], sorted: actions spread over the drop period."""
    ev = []

    def spread(n, action, lo=0.05, hi=0.95):
        for k in range(n):
            # One in each of n equal slots, at a random place in it.
            a = lo + (hi - lo) * k / n
            b = lo + (hi - lo) * (k + 1) / n
            ev.append((duration * rng.uniform(a, b), action))

    spread(args.restarts, "restart", 0.1, 0.9)
    spread(args.worker_kills, "kill-worker")
    spread(args.reloads, "reload")
    spread(args.disk_full, "disk-full")
    ev.sort()
    return ev


# -- the home and the daemon -------------------------------------------------

class Chaos:
    def __init__(self, args):
        self.args = args
        self.bin = args.bin
        self.rng = random.Random(args.seed)
        self.run_id = f"c{args.seed:x}"
        self.tag = uuid.uuid4().hex
        self.home = Path(tempfile.mkdtemp(prefix="clawvisor-chaos-"))
        self.mounted = False
        if args.disk_full > 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                                f"size={args.tmpfs_size},mode=0700",
                                "tmpfs", str(self.home)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                os.rmdir(self.home)
                raise SystemExit(f"cannot mount a tmpfs for the home "
                                 f"({r.stderr.strip()}); run as root or "
                                 "with --disk-full 0")
            self.mounted = True
        # What must survive a full home: outside it.
        self.aux = Path(tempfile.mkdtemp(prefix="clawvisor-chaos-aux-"))
        self.state = self.aux / "provider-state"
        self.cstate = self.aux / "container-state"
        self.q = self.home / "queue"
        self.bindir = self.aux / "bin"
        self.kills = []             # time.time() of every kill
        self.chaos_errors = CHAOS_ERRORS + (DISK_ERRORS if args.disk_full
                                            else ())
        self.procs = []
        self.proc = None
        self.counts = {"worker_kills": 0, "worker_kills_busy": 0,
                       "supervisor_kills": 0, "restarts": 0,
                       "kills_during_start": 0, "kills_in_commit": 0,
                       "reloads": 0, "disk_full": 0,
                       "reload_changes": 0, "skipped": 0}
        self.errors = []
        self.client_errors = []
        self.results = []
        self.backoff = 0 if args.short else 1
        self.workers = 4

    # settings.json, written atomically
    def settings(self):
        agents = {}
        for i, a in enumerate(self.agents):
            wd = self.home / "workspace" / a
            agents[a] = {
                "name": f"Chaos {a}", "provider": "command",
                "command": ["/bin/sh", str(PROVIDER), str(self.state),
                            "{message}"],
                "working_directory": str(wd),
            }
            if not self.args.host_only and i % 5 == 4:
                agents[a]["sandbox_mode"] = "apple"
        return {
            "workspace": {"path": str(self.home / "workspace")},
            "agents": agents,
            "sandbox": {
                "mode": "host",
                "timeout_seconds": 10,
                "max_attempts": 3,
                "backoff_seconds": self.backoff,
                "backoff_max_seconds": 2,
                "kill_grace_seconds": 1,
                "apple": {"runtime_command": str(FAKE_CONTAINER)},
            },
            "supervisor": {"workers": self.workers,
                           "scan_interval_ms": 1000},
        }

    def write_settings(self):
        tmp = self.home / ".settings.json.tmp"
        try:
            tmp.write_text(json.dumps(self.settings(), indent=2))
        except OSError:
            tmp.unlink(missing_ok=True)     # a full disk
            raise
        os.rename(tmp, self.home / "settings.json")

    def env(self):
        e = dict(os.environ)
        e.pop("TINYCLAW_HOME", None)
        e["CLAWVISOR_TEST_TAG"] = self.tag
        # The fake container is "#!/usr/bin/env python3": make that the
        # system's python, not a slow wrapper (pyenv shims take seconds).
        e["PATH"] = f"{self.bindir}:{e.get('PATH', '/usr/bin:/bin')}"
        e["FAKE_CONTAINER_STATE"] = str(self.cstate)
        e["FAKE_CONTAINER_LOG"] = str(self.aux / "fake-container.log")
        return e

    def client(self, *args, timeout=10):
        try:
            return subprocess.run([self.bin, "--home", str(self.home),
                                   *args], capture_output=True, text=True,
                                  env=self.env(), timeout=timeout)
        except (subprocess.TimeoutExpired, OSError) as e:
            self.client_errors.append(f"{' '.join(args)}: {e!r}")
            return None

    def status(self):
        r = self.client("status", "--json")
        if r is None or r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def spawn(self):
        n = len(self.procs)
        path = self.aux / f"daemon-{n}.stderr"
        with open(path, "wb") as err:
            p = subprocess.Popen([self.bin, "--home", str(self.home),
                                  "serve", "-f"], stdin=subprocess.DEVNULL,
                                 stdout=err, stderr=err, env=self.env(),
                                 cwd=str(self.home), start_new_session=True)
        p.stderr_path = path
        self.procs.append(p)
        self.proc = p
        return p

    def wait_ready(self, p, timeout=20):
        """True once p answers status; False if it died or timed out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                return False
            s = self.status()
            if s is not None and s.get("pid") == p.pid:
                return True
            time.sleep(0.05)
        return False

    def start(self):
        """Start the daemon; retried a few times if a start fails."""
        for attempt in range(5):
            p = self.spawn()
            if self.wait_ready(p):
                return p
            if p.poll() is None:
                continue
            self.errors.append(f"daemon-{len(self.procs) - 1} exited with "
                               f"{p.returncode} at start: " +
                               p.stderr_path.read_text(errors="replace")
                               [-2000:])
            time.sleep(0.5)
        raise SystemExit("clawvisor does not start; see " + str(self.home))

    def kill_supervisor(self):
        p = self.proc
        if p is None or p.poll() is not None:
            return
        self.kills.append(time.time())
        p.kill()
        p.wait()
        self.counts["supervisor_kills"] += 1
        self.note_commit_window()

    def note_commit_window(self):
        """Count a kill that left a commit half done in processing/."""
        try:
            names = os.listdir(self.q / "processing")
        except OSError:
            return
        if any(n.endswith((".reply", ".dead")) or n.startswith(".tmp.")
               for n in names):
            self.counts["kills_in_commit"] += 1

    def wait_commit(self, timeout=3.0):
        """Spin until a commit is under way in processing/ (a NAME.reply,
        NAME.dead or temporary file), so that the kill lands inside it."""
        d = self.q / "processing"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                for n in os.listdir(d):
                    if n.endswith((".reply", ".dead")) or \
                            n.startswith(".tmp."):
                        return True
            except OSError:
                pass
        return False

    # -- the chaos actions ---------------------------------------------------

    def worker_pids(self):
        p = self.proc
        if p is None or p.poll() is not None:
            return []
        return [c for c in children(p.pid)
                if proc_cmdline(c).startswith("clawvisor: worker")]

    def kill_worker(self):
        ws = self.worker_pids()
        if not ws:
            self.counts["skipped"] += 1
            return
        busy = [w for w in ws if children(w)]
        if busy and self.rng.random() < 0.85:
            w = self.rng.choice(busy)
            self.counts["worker_kills_busy"] += 1
        else:
            w = self.rng.choice(ws)
        try:
            self.kills.append(time.time())
            os.kill(w, signal.SIGKILL)
            self.counts["worker_kills"] += 1
        except ProcessLookupError:
            self.counts["skipped"] += 1

    def restart(self):
        if self.rng.random() < 0.5:
            # Aim at the commit protocol: kill while a response or a dead
            # letter is half committed.
            self.wait_commit()
        self.kill_supervisor()
        time.sleep(self.rng.uniform(0.05, 1.0))
        if self.rng.random() < 0.3:
            # Killed again while starting: recovery itself is interrupted.
            p = self.spawn()
            time.sleep(self.rng.uniform(0.0, 0.4))
            if p.poll() is None:
                self.kills.append(time.time())
                p.kill()
                p.wait()
                self.counts["kills_during_start"] += 1
            time.sleep(self.rng.uniform(0.05, 0.3))
        self.start()
        self.counts["restarts"] += 1

    def reload(self):
        p = self.proc
        if p is None or p.poll() is not None:
            self.counts["skipped"] += 1
            return
        if self.rng.random() < 0.6:
            old = self.backoff, self.workers
            self.backoff = 1 - self.backoff
            if self.rng.random() < 0.3:
                self.workers = 3 if self.workers == 4 else 4
            try:
                self.write_settings()
                self.counts["reload_changes"] += 1
            except OSError:
                self.backoff, self.workers = old    # the disk is full
        os.kill(p.pid, signal.SIGHUP)
        self.counts["reloads"] += 1

    def commit_log_counts(self):
        """Commits that failed and commits that finished on a later try,
        from every supervisor's stderr so far."""
        text = "".join(self.stderr_text(p) for p in self.procs)
        return (len(re.findall(r"commit failed, kept in memory", text)),
                len(re.findall(r": committed after \d+ tr", text)))

    def disk_full(self):
        """Fill the home's filesystem, hold it full a moment, free it.
        When commits failed meanwhile, give the supervisor up to 5 s to
        finish one on a later try before the next chaos action: a restart
        at once would drop the commits kept in memory (their messages are
        run again) and the retry would never be seen."""
        path = self.home / ".chaos-fill"
        before = self.commit_log_counts()
        try:
            fill(path)
            time.sleep(self.rng.uniform(0.3, 2.0))
        finally:
            path.unlink(missing_ok=True)
        self.counts["disk_full"] += 1
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            failed, done = self.commit_log_counts()
            if failed == before[0] or done > before[1]:
                break
            time.sleep(0.05)

    def chaos_thread(self, schedule, t0):
        try:
            for t, action in schedule:
                d = t0 + t - time.monotonic()
                if d > 0:
                    time.sleep(d)
                if action == "restart":
                    self.restart()
                elif action == "kill-worker":
                    self.kill_worker()
                elif action == "disk-full":
                    self.disk_full()
                else:
                    self.reload()
        except BaseException as e:          # reported, not hidden
            self.errors.append(f"chaos thread: {e!r}")

    # -- the producer --------------------------------------------------------

    def drop_bytes(self, name, data, mtime=None):
        inc = self.q / "incoming"
        tmp = inc / f".chaos-{uuid.uuid4().hex}.tmp"
        # A producer meeting a full disk tries again, as a client would.
        for _ in range(600):
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                break
            except OSError as e:
                tmp.unlink(missing_ok=True)
                if e.errno != errno.ENOSPC:
                    raise
                time.sleep(0.05)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.rename(tmp, inc / name)

    def drop_bad(self, name, kind):
        inc = self.q / "incoming"
        if kind == "bad-json":
            # Cut short, and old enough not to pass for a file still
            # being written.
            self.drop_bytes(name, b'{"channel": "discord", "message": ',
                            mtime=time.time() - 10)
        elif kind == "missing-field":
            self.drop_bytes(name, json.dumps(
                {"channel": "discord", "sender": "x", "messageId":
                 "chaos-no-message"}).encode())
        elif kind == "symlink":
            tmp = inc / f".chaos-{uuid.uuid4().hex}.tmp"
            os.symlink(str(self.home / "settings.json"), tmp)
            os.rename(tmp, inc / name)
        elif kind == "empty":
            self.drop_bytes(name, b"")
        elif kind == "fifo":
            tmp = inc / f".chaos-{uuid.uuid4().hex}.tmp"
            os.mkfifo(tmp, 0o600)
            os.rename(tmp, inc / name)
        elif kind == "directory":
            tmp = inc / f".chaos-{uuid.uuid4().hex}.tmp"
            os.mkdir(tmp, 0o700)
            os.rename(tmp, inc / name)

    def producer_thread(self, items, t0, rate):
        try:
            for k, (kind, item) in enumerate(items):
                d = t0 + k / rate - time.monotonic()
                if d > 0:
                    time.sleep(d)
                if kind == "msg":
                    obj = dict(item["obj"])
                    obj["timestamp"] = int(time.time() * 1000)
                    self.drop_bytes(item["file"], json.dumps(obj).encode())
                else:
                    self.drop_bad(*item)
        except BaseException as e:
            self.errors.append(f"producer thread: {e!r}")

    # -- the run -------------------------------------------------------------

    def drain(self, timeout):
        """Wait until nothing is left to do; the last status or None."""
        deadline = time.monotonic() + timeout
        calm = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.errors.append(f"the daemon exited with "
                                   f"{self.proc.returncode} while draining")
                self.start()
            s = self.status()
            if s is not None:
                q = s.get("queue", {})
                busy = [w for w in s.get("workers", [])
                        if w.get("state") == "busy"]
                idle = (q.get("incoming") == 0 and q.get("processing") == 0
                        and q.get("deferred") == 0 and q.get("held") == 0
                        and q.get("commitsWaiting", 0) == 0
                        and not busy and
                        s.get("permits", {}).get("inUse") == 0)
                calm = calm + 1 if idle else 0
                if calm >= 3:
                    return s
            time.sleep(0.3)
        return None

    def run(self):
        args = self.args
        self.agents, self.msgs, self.bad = make_plan(args, self.rng,
                                                      self.run_id)
        items = [("msg", m) for m in self.msgs]
        for name, kind in self.bad:
            items.insert(self.rng.randrange(len(items) + 1),
                         ("bad", (name, kind)))
        rate = len(items) / args.drop_seconds
        schedule = make_schedule(args, self.rng, args.drop_seconds)
        self.state.mkdir()
        self.cstate.mkdir()
        self.bindir.mkdir()
        os.symlink(sys.executable, self.bindir / "python3")
        for a in self.agents:
            (self.home / "workspace" / a).mkdir(parents=True)
        self.write_settings()
        log(f"home {self.home}; {len(self.msgs)} messages "
            f"({sum(1 for m in self.msgs if m.get('dup'))} reusing a "
            f"messageId), {len(self.bad)} bad files, {args.agents} agents, "
            f"seed {args.seed}, dropped over {args.drop_seconds:.0f}s")
        self.t_start = time.monotonic()
        self.start()
        t0 = time.monotonic()
        prod = threading.Thread(target=self.producer_thread,
                                args=(items, t0, rate), daemon=True)
        chaos = threading.Thread(target=self.chaos_thread,
                                 args=(schedule, t0), daemon=True)
        prod.start()
        chaos.start()
        prod.join()
        chaos.join()
        log(f"all dropped after {time.monotonic() - t0:.1f}s; chaos: "
            + ", ".join(f"{k} {v}" for k, v in self.counts.items()))
        if self.proc.poll() is not None:
            self.start()
        t_drain = time.monotonic()
        self.final_status = self.drain(args.drain_timeout)
        self.drain_seconds = time.monotonic() - t_drain
        log(f"drained: {self.final_status is not None} "
            f"after {self.drain_seconds:.1f}s")
        r = self.client("stop", timeout=60)
        self.stop_rc = None if r is None else r.returncode
        try:
            self.exit_rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.exit_rc = "timeout"
            self.proc.kill()
            self.proc.wait()
        # What the supervisor left running when it exited (workers still
        # cleaning up, say); then give it all a moment to end by itself.
        self.at_exit = [f"{p} {proc_cmdline(p)[:80]}"
                        for p in tagged_pids(self.tag)]
        self.left = self.strays()
        self.elapsed = time.monotonic() - self.t_start
        self.check()

    # -- the checks ----------------------------------------------------------

    def ok(self, name, passed, detail=""):
        self.results.append((name, bool(passed), detail))
        mark = "PASS" if passed else "FAIL"
        print(f"{mark}: {name}" + (f": {detail}" if detail and not passed
                                   else ""), flush=True)

    def listdir(self, sub):
        d = self.q / sub
        try:
            return sorted(os.listdir(d))
        except FileNotFoundError:
            return []

    def load(self, sub, name):
        try:
            with open(self.q / sub / name) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def times(self, name):
        """The times (second field) of the lines of a provider state
        file."""
        try:
            with open(self.state / name) as f:
                return [float(line.split()[1]) for line in f
                        if len(line.split()) == 2]
        except OSError:
            return []

    @staticmethod
    def stderr_text(p):
        try:
            return p.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def strays(self, timeout=5):
        """Tagged processes still alive after up to timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = tagged_pids(self.tag)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def check(self):
        by_tok = {m["tok"]: m for m in self.msgs}
        files_per_id = {}
        for m in self.msgs:
            files_per_id[m["id"]] = files_per_id.get(m["id"], 0) + 1

        self.ok("the daemon drained within the time limit",
                self.final_status is not None,
                f"no idle status within {self.args.drain_timeout}s")
        self.ok("`clawvisor stop` succeeded and the supervisor exited 0",
                self.stop_rc == 0 and self.exit_rc == 0,
                f"stop {self.stop_rc}, exit {self.exit_rc}")
        self.ok("chaos and producer threads ran without error",
                not self.errors, "; ".join(self.errors)[:2000])

        # Responses.
        resp = {}                      # tok -> [(name, obj)]
        bad_resp, stray_resp, notices_for_bad = [], [], []
        for name in self.listdir("outgoing"):
            if name.startswith("."):
                continue
            o = self.load("outgoing", name)
            if not isinstance(o, dict):
                bad_resp.append(f"{name}: not JSON")
                continue
            mt = TOK_RE.search(str(o.get("originalMessage", "")))
            m = by_tok.get(mt.group(1)) if mt else None
            if m is None and o.get("messageId") == "chaos-no-message" and \
                    str(o.get("message", "")).startswith(CORRUPT_NOTICE):
                # The "missing-field" bad file names its sender: it is
                # told its message was not processed (QUEUE.md).
                notices_for_bad.append(name)
                continue
            if m is None:
                stray_resp.append(name)
                continue
            resp.setdefault(m["tok"], []).append((name, o))
            want = f"{m['channel']}_{re.sub(r'[^A-Za-z0-9._-]', '_', m['id'])}_"
            if not name.startswith(want) or o.get("messageId") != m["id"] \
                    or o.get("channel") != m["channel"]:
                bad_resp.append(f"{name}: id/channel/name do not match "
                                f"{m['file']}")
            text = o.get("message", "")
            if text != NOTICE and not (
                    text.startswith("chaos-reply ") and
                    f"id={m['id']} " in text and f"tok={m['tok']} " in text):
                bad_resp.append(f"{name}: reply {text[:80]!r} does not "
                                f"answer {m['file']}")
        # Dead letters.
        dead = {}
        bad_dead = []
        for name in self.listdir("dead-letter"):
            if name.startswith("."):
                continue
            o = self.load("dead-letter", name)
            p = o.get("payload") if isinstance(o, dict) else None
            if not isinstance(p, dict):
                bad_dead.append(f"{name}: not a dead letter")
                continue
            mt = TOK_RE.search(str(p.get("message", "")))
            m = by_tok.get(mt.group(1)) if mt else None
            if m is None:
                bad_dead.append(f"{name}: no message of ours")
                continue
            dead.setdefault(m["tok"], []).append((name, o))
            missing = [k for k in ("failedAt", "errorClass", "errorMessage",
                                   "attempt", "maxAttempts")
                       if k not in o]
            if missing:
                bad_dead.append(f"{name}: missing {missing}")
                continue
            if p.get("messageId") != m["id"]:
                bad_dead.append(f"{name}: payload messageId "
                                f"{p.get('messageId')} != {m['id']}")
            if not 1 <= o["attempt"] <= o["maxAttempts"]:
                bad_dead.append(f"{name}: attempt {o['attempt']} of "
                                f"{o['maxAttempts']}")
            if o["errorClass"] == "transient" and \
                    o["attempt"] != o["maxAttempts"]:
                bad_dead.append(f"{name}: transient dead letter after "
                                f"{o['attempt']} of {o['maxAttempts']}")
            err = str(o["errorMessage"])
            if not any(s in err for s in MODE_ERRORS[m["mode"]] +
                       self.chaos_errors):
                bad_dead.append(f"{name}: mode {m['mode']} but error "
                                f"{err[:100]!r}")

        none, dup, mismatch, never_ok = [], [], [], []
        n_ok = n_dead = 0
        for m in self.msgs:
            rs = resp.get(m["tok"], [])
            ds = dead.get(m["tok"], [])
            notices = [r for r in rs if r[1].get("message") == NOTICE]
            replies = [r for r in rs if r[1].get("message") != NOTICE]
            if not rs and not ds:
                none.append(m["file"])
            elif len(rs) > 1 or len(ds) > 1:
                dup.append(f"{m['file']}: {[r[0] for r in rs]} "
                           f"{[d[0] for d in ds]}")
            elif len(notices) != len(ds):
                mismatch.append(f"{m['file']}: {len(replies)} replies, "
                                f"{len(notices)} notices, {len(ds)} dead "
                                "letters")
            elif replies:
                n_ok += 1
                if m["mode"] in NEVER_OK:
                    never_ok.append(f"{m['file']} ({m['mode']})")
            else:
                n_dead += 1
        per_id = []
        for mid, k in files_per_id.items():
            toks = [m["tok"] for m in self.msgs if m["id"] == mid]
            nr = sum(len(resp.get(t, [])) for t in toks)
            nd = sum(len(dead.get(t, [])) for t in toks)
            nn = sum(1 for t in toks for r in resp.get(t, [])
                     if r[1].get("message") == NOTICE)
            if nr != k or nd != nn:
                per_id.append(f"{mid}: {k} files, {nr} responses, {nn} "
                              f"notices, {nd} dead letters")
        self.n_ok, self.n_dead = n_ok, n_dead

        def few(v):
            return f"{len(v)}: " + "; ".join(v[:8])

        self.ok("every message has an outcome", not none, few(none))
        self.ok("no message has two outcomes (responses or dead letters)",
                not dup, few(dup))
        self.ok("a dead letter always comes with exactly one notice, and "
                "a reply never with a dead letter", not mismatch,
                few(mismatch))
        self.ok("per messageId: one response per file, one dead letter "
                "per notice", not per_id, few(per_id))
        self.ok("every response answers its own message",
                not bad_resp, few(bad_resp))
        self.ok("no response for a message that was never dropped",
                not stray_resp, few(stray_resp))
        # A kill between the move to corrupt/ and the notice's commit may
        # lose a notice; two would be a bug.
        nmissing = sum(1 for _, k in self.bad if k == "missing-field")
        self.ok("a bad file that names its sender gets at most one notice",
                len(notices_for_bad) <= nmissing,
                f"{len(notices_for_bad)} notices, {nmissing} such files")
        self.ok("dead letters are well-formed and blame the right failure",
                not bad_dead, few(bad_dead))
        self.ok("messages that can never succeed never got a reply",
                not never_ok, few(never_ok))

        # No agent ran again after it had succeeded, unless a kill came
        # in between (from a second before the success, as a worker killed
        # just as its agent replied loses that reply).
        rerun = []
        for m in self.msgs:
            oks = self.times(f"{m['tok']}.ok")
            for r in self.times(f"{m['tok']}.runs"):
                before = [t for t in oks if t < r]
                if before and not any(max(before) - 1.0 <= k <= r
                                      for k in self.kills):
                    rerun.append(f"{m['file']}: ran at {r:.3f} after "
                                 f"succeeding at {max(before):.3f}")
                    break
        self.ok("no agent ran again after it succeeded (without a kill in "
                "between)", not rerun, few(rerun))
        if self.args.disk_full:
            failed, done = self.commit_log_counts()
            self.commit_counts = (failed, done)
            self.ok("the full disk made commits fail, and they were tried "
                    "again", failed > 0 and done > 0 and
                    self.counts["disk_full"] == self.args.disk_full,
                    f"{failed} failed, {done} finished later, disk filled "
                    f"{self.counts['disk_full']} of {self.args.disk_full} "
                    "times")

        # corrupt/
        corrupt = set(self.listdir("corrupt"))
        want = {n for n, _ in self.bad}
        miss = [n for n in sorted(want) if n not in corrupt or
                f"{n}.error" not in corrupt]
        extra = [n for n in sorted(corrupt) if not n.startswith(".") and
                 n not in want and n.removesuffix(".error") not in want]
        self.ok("every bad file is in queue/corrupt with its .error note",
                not miss, few(miss))
        self.ok("nothing else is in queue/corrupt", not extra, few(extra))

        left = [f"{d}/{n}" for d in ("incoming", "processing", "deferred")
                for n in self.listdir(d)]
        self.ok("incoming/, processing/ and deferred/ are empty", not left,
                few(left))
        temps = [f"{d}/{n}" for d in QUEUE_DIRS for n in self.listdir(d)
                 if n.startswith(".")]
        self.ok("no temporary files left in queue/", not temps, few(temps))

        secrets = os.listdir(self.home / "run" / "secrets") \
            if (self.home / "run" / "secrets").is_dir() else []
        self.ok("no env-file left in run/secrets", not secrets,
                few(secrets))
        recs = os.listdir(self.home / "run" / "containers") \
            if (self.home / "run" / "containers").is_dir() else []
        self.ok("no container record left in run/containers", not recs,
                few(recs))

        strays = [p for p in self.left if pid_alive(p)]
        prov = [p for p in strays if str(PROVIDER) in proc_cmdline(p) and
                str(self.home) in proc_cmdline(p)]
        ours = [p for p in strays if proc_cmdline(p).startswith(
            ("clawvisor: worker", "clawvisor: supervisor"))]
        desc = [f"{p} {proc_cmdline(p)[:100]}" for p in strays]
        self.ok("no stray provider process", not prov, few(desc))
        self.ok("no worker or supervisor left", not ours, few(desc))
        self.ok("no other process of the run left", not strays, few(desc))
        for p in strays:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

        # A sanitizer build reports on the daemon's stderr (workers share
        # it): any report is a failure.
        reports = []
        for p in self.procs:
            try:
                text = p.stderr_path.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if re.search(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer"
                             r"|runtime error:|SUMMARY: \w+Sanitizer", line):
                    reports.append(f"{p.stderr_path.name}: {line[:160]}")
        self.ok("no sanitizer report on the daemon's stderr", not reports,
                few(reports))

        if self.args.duration_bound:
            self.ok(f"the run took at most {self.args.duration_bound:.0f}s",
                    self.elapsed <= self.args.duration_bound,
                    f"{self.elapsed:.1f}s")

    def report(self):
        runs = 0
        for p in self.state.glob("*.runs"):
            with open(p) as f:
                runs += sum(1 for _ in f)
        by_mode = {}
        for m in self.msgs:
            by_mode[m["mode"]] = by_mode.get(m["mode"], 0) + 1
        dead_cls = {}
        for name in self.listdir("dead-letter"):
            o = self.load("dead-letter", name) or {}
            c = o.get("errorClass", "?")
            dead_cls[c] = dead_cls.get(c, 0) + 1
        errs = []
        try:
            with open(self.home / "logs" / "clawvisor.log",
                      errors="replace") as f:
                errs = [line.rstrip() for line in f if ": error: " in line]
        except OSError:
            pass
        c = self.counts
        print()
        print(f"messages       {len(self.msgs)} files, "
              f"{len({m['id'] for m in self.msgs})} messageIds, "
              f"modes {json.dumps(by_mode, sort_keys=True)}")
        print(f"outcomes       ok {self.n_ok}, dead {self.n_dead} "
              f"{json.dumps(dead_cls, sort_keys=True)}, corrupt "
              f"{len([n for n in self.listdir('corrupt') if not n.endswith('.error')])}")
        print(f"provider runs  {runs}")
        print(f"chaos          worker kills {c['worker_kills']} "
              f"({c['worker_kills_busy']} busy), supervisor restarts "
              f"{c['restarts']} (killed during start {c['kills_during_start']}"
              f", with a commit half done {c['kills_in_commit']}), reloads {c['reloads']} ({c['reload_changes']} with a "
              f"changed settings.json), skipped {c['skipped']}")
        if self.args.disk_full:
            failed, done = getattr(self, "commit_counts", (0, 0))
            print(f"disk full      {c['disk_full']} times; {failed} "
                  f"commits failed, {done} finished on a later try")
        print(f"elapsed        {self.elapsed:.1f}s (drain "
              f"{self.drain_seconds:.1f}s)")
        print(f"at exit        {len(self.at_exit)} process(es) of the run "
              "still alive when the supervisor exited")
        for line in self.at_exit[:10]:
            print("   ", line)
        if self.client_errors:
            print(f"client errors  {len(self.client_errors)}: "
                  + "; ".join(self.client_errors[:3]))
        print(f"log errors     {len(errs)}")
        for line in errs[:10]:
            print("   ", line[:300])
        print(f"home           {self.home} (provider state, stderr: "
              f"{self.aux})")
        npass = sum(1 for r in self.results if r[1])
        nfail = len(self.results) - npass
        print(f"{npass} passed, {nfail} failed")
        return nfail == 0

    def cleanup(self, keep):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for p in tagged_pids(self.tag):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if keep:
            if self.mounted:
                print(f"{self.home} is still mounted (a tmpfs): umount it "
                      "when done")
            return
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.home)], check=False)
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.aux, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, help="default 2000 (--short: "
                    "300)")
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--seed", type=int, help="default: random (printed)")
    ap.add_argument("--short", action="store_true",
                    help="CI: 300 messages, 2 restarts, a few worker kills")
    ap.add_argument("--duration-bound", type=float, metavar="SECONDS",
                    help="fail if the whole run takes longer (--short: 90)")
    ap.add_argument("--drop-seconds", type=float,
                    help="drop the messages over this long")
    ap.add_argument("--restarts", type=int,
                    help="supervisor SIGKILLs and restarts (6; --short: 2)")
    ap.add_argument("--worker-kills", type=int, help="40 (--short: 6)")
    ap.add_argument("--reloads", type=int, help="SIGHUPs, 15 (--short: 3)")
    ap.add_argument("--disk-full", type=int, help="times the home's "
                    "tmpfs is filled up and freed, 8 (--short: 2); 0: no "
                    "tmpfs")
    ap.add_argument("--tmpfs-size", help="size of the home's tmpfs, 256m "
                    "(--short: 64m)")
    ap.add_argument("--hangs", type=int, default=4,
                    help="messages that time out (not with --short)")
    ap.add_argument("--drain-timeout", type=float)
    ap.add_argument("--max-sleep", type=float,
                    help="the provider sleeps up to this long (seconds)")
    ap.add_argument("--host-only", action="store_true",
                    help="no agent in apple mode (fake container)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the home (it is always kept on failure)")
    ap.add_argument("--bin", default=os.environ.get(
        "CLAWVISOR_BIN", str(TOP / "build" / "clawvisor")))
    args = ap.parse_args()
    short = args.short
    d = {"messages": 300 if short else 2000,
         "drop_seconds": 15 if short else 120,
         "max_sleep": 0.15 if short else 0.25,
         "restarts": 2 if short else 6,
         "worker_kills": 6 if short else 40,
         "reloads": 3 if short else 15,
         "disk_full": 2 if short else 8,
         "tmpfs_size": "64m" if short else "256m",
         "drain_timeout": 60 if short else 600,
         "duration_bound": 90 if short else None}
    for k, v in d.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    if args.agents < 1 or args.messages < 4:
        ap.error("need at least 1 agent and 4 messages")
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        ap.error(f"no clawvisor binary at {args.bin} (set CLAWVISOR_BIN)")
    c = Chaos(args)
    ok = False
    try:
        c.run()
        ok = c.report()
    finally:
        c.cleanup(keep=args.keep or not ok)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
