#!/usr/bin/python3
"""
clawvisor benchmark: figures, never pass/fail.

Measures, in one run, side by side:

  baseline    the physical limit of this machine: posix_spawn+wait of the
              provider command (/bin/true) in a loop, one loop per core in
              parallel (and one loop alone; fork+exec too, for reference);
              the cost of one atomic write (temporary + write + fsync +
              close + rename)
  throughput  host mode, `command` provider running /bin/true, 1 agent and
              16 agents, supervisor.workers = cores and 2 x cores; N messages
              pre-dropped into queue/incoming/ (and synced) before the daemon
              starts; the clock runs from the start of `clawvisor serve` to
              the N-th response visible in queue/outgoing/; the ratio is to
              a parallel spawn loop run just before and just after
  latency     one message at a time on an idle daemon: rename into incoming/
              to the response renamed into outgoing/ (inotify), p50/p99
  backlog     100,000 messages in incoming/ at start: time to the first
              reply, drain time, supervisor peak RSS (VmHWM), RSS growth per
              10k responses
  idle        CPU time and wake-ups of an idle daemon over 60 s; RSS of the
              supervisor and of each worker
  container   docker mode with runtime_command podman: per-invocation cost
              through clawvisor against `podman run` of the same argv by hand
              and against a bare `podman run --rm IMAGE true`
  bwrap       drop -> reply latency, p50/p99, of the `command` provider
              (true) in host mode, bwrap mode and docker mode with podman,
              in the same run (samples interleaved): bwrap's overhead over
              host in ms and as a ratio, and podman's over bwrap
  exec        `clawvisor exec -- /bin/true` (host mode, the `command`
              agent /bin/true) against a bare spawn of /bin/true, samples
              interleaved in the same run: p50/p99 of each and the p50
              added by exec (client start, control socket, lane, worker,
              the child's fork/exec, the reply)
  egress      a TLS stand-in for the Messages API reached directly and
              through the egress proxy from a bwrap sandbox: TTFB p50,
              1 MiB streamed throughput, egress RSS over 10,000 requests
              (bench_egress.py)

Only the Python 3 standard library; the small C helper benchhelp.c next to
this file is compiled with `cc -O2` on first use. See docs/PERFORMANCE.md.

    /usr/bin/python3 contrib/bench/bench.py            # everything
    /usr/bin/python3 contrib/bench/bench.py --quick    # small N, short idle
    /usr/bin/python3 contrib/bench/bench.py --only throughput,latency
"""
import argparse
import ctypes
import hashlib
import io
import json
import os
import platform
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PARTS = ["baseline", "throughput", "latency", "backlog", "idle", "container",
         "bwrap", "exec", "egress"]
NCPU = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000
EVHDR = struct.Struct("iIII")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# -- /proc -------------------------------------------------------------------

def proc_status(pid):
    """VmRSS, VmHWM (KiB) and context switches of pid."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
                elif k in ("voluntary_ctxt_switches",
                           "nonvoluntary_ctxt_switches"):
                    out[k] = int(v)
    except OSError:
        pass
    return out


def proc_cpu(pid):
    """(own CPU seconds, reaped children's CPU seconds) of pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return (0.0, 0.0)
    fields = st[st.rindex(")") + 2:].split()
    ut, stt, cut, cst = (int(x) for x in fields[11:15])
    return ((ut + stt) / CLK_TCK, (cut + cst) / CLK_TCK)


def proc_runtime(pid):
    """Exact CPU time of pid in seconds (schedstat), else from stat."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return proc_cpu(pid)[0]


# -- inotify -----------------------------------------------------------------

class Inotify:
    """Names renamed or written into one directory, via libc's inotify."""

    def __init__(self, path, mask=IN_MOVED_TO):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self.libc.inotify_add_watch(self.fd, str(path).encode(),
                                       mask) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.overflow = False

    def read(self, timeout):
        """Names seen within timeout seconds (possibly none)."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        names = []
        if not r:
            return names
        while True:
            try:
                buf = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            off = 0
            while off < len(buf):
                _, mask, _, ln = EVHDR.unpack_from(buf, off)
                off += EVHDR.size
                if mask & IN_Q_OVERFLOW:
                    self.overflow = True
                name = buf[off:off + ln].rstrip(b"\0").decode()
                off += ln
                if name and not name.startswith("."):
                    names.append(name)
        return names

    def close(self):
        os.close(self.fd)


# -- the helper and the daemon -------------------------------------------------

def helper(workdir):
    """Path of the compiled benchhelp."""
    src = HERE / "benchhelp.c"
    exe = Path(workdir) / "benchhelp"
    if not exe.exists():
        subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return str(exe)


def find_binary(arg):
    if arg:
        return os.path.abspath(arg)
    for b in ("build-bench", "build"):
        p = ROOT / b / "clawvisor"
        if p.exists():
            return str(p)
    sys.exit("no clawvisor binary: build it (see docs/PERFORMANCE.md) or "
             "pass --bin")


def message(i, agent, text=None):
    mid = f"m{i:07d}"
    return mid, json.dumps({
        "channel": "bench", "sender": "bench", "senderId": "1",
        "message": text or f"message {i}", "timestamp": int(time.time() *
                                                             1000),
        "messageId": mid, "agent": agent}).encode()


class Daemon:
    """A home and the `clawvisor serve -f` running on it."""

    def __init__(self, bench, name, agents=1, workers=None, command=None,
                 sandbox=None, env=None):
        self.b = bench
        self.home = Path(tempfile.mkdtemp(prefix=f"cv-bench-{name}-",
                                          dir=bench.args.dir))
        self.q = self.home / "queue"
        for d in ("incoming", "outgoing", "dead-letter"):
            (self.q / d).mkdir(parents=True, exist_ok=True)
        self.agents = [f"a{i:02d}" for i in range(agents)]
        ws = self.home / "workspace"
        settings = {
            "workspace": {"path": str(ws)},
            "agents": {a: {"name": a, "provider": "command",
                           "command": command or ["/bin/true"],
                           "working_directory": str(ws / a)}
                       for a in self.agents},
            "sandbox": dict({"mode": "host", "timeout_seconds": 120,
                             "max_attempts": 1}, **(sandbox or {})),
            "supervisor": {"workers": workers or NCPU,
                           "scan_interval_ms": 1000},
        }
        (self.home / "settings.json").write_text(json.dumps(settings,
                                                            indent=2))
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("TINYCLAW_HOME", None)
        self.proc = None

    def drop_direct(self, n, start=0):
        """Write n messages straight into incoming/ (daemon not running):
        round robin over the agents, names in creation order. Then sync:
        the messages are on disk when the daemon starts, so that its
        first flush (syncfs) does not write them out for us."""
        inc = self.q / "incoming"
        for i in range(start, start + n):
            mid, data = message(i, self.agents[i % len(self.agents)])
            fd = os.open(inc / f"{mid}.json", os.O_WRONLY | os.O_CREAT |
                         os.O_EXCL, 0o600)
            os.write(fd, data)
            os.close(fd)
        os.sync()

    def prepare(self, i, agent=None, text=None):
        """A message written to a temporary name in incoming/: (tmp, final)."""
        mid, data = message(i, agent or self.agents[0], text)
        inc = self.q / "incoming"
        tmp = inc / f".{mid}.tmp"
        tmp.write_bytes(data)
        return tmp, inc / f"{mid}.json"

    def start(self):
        self.stderr = open(self.home / "daemon.stderr", "wb")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(
            [self.b.bin, "--home", str(self.home), "serve", "-f"],
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
            env=self.env, cwd=str(self.home))
        return self.t_start

    def ctl(self, *args, timeout=30):
        return subprocess.run([self.b.bin, "--home", str(self.home), *args],
                              capture_output=True, text=True,
                              env=self.env, timeout=timeout)

    def status(self):
        r = self.ctl("status", "--json")
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def wait_ready(self, timeout=30):
        """Until every worker said hello; returns the status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clawvisor exited with "
                                   f"{self.proc.returncode}: see "
                                   f"{self.home}/daemon.stderr")
            st = self.status()
            if st and st["workers"] and all(
                    w["state"] in ("idle", "busy") for w in st["workers"]):
                return st
            time.sleep(0.05)
        raise RuntimeError("clawvisor did not become ready")

    def worker_pids(self):
        st = self.status()
        return [w["pid"] for w in st["workers"] if w["pid"] > 0] if st else []

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.ctl("stop", timeout=30)
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        self.stderr.close()
        self.proc = None

    def count(self, sub):
        return sum(1 for e in os.scandir(self.q / sub)
                   if e.name.endswith(".json") and not
                   e.name.startswith("."))

    def cleanup(self):
        """Stop the daemon. The home is removed at the end of the whole
        run: on ext4 without a journal, every file created while many
        were recently deleted costs a scan of them (see PERFORMANCE.md),
        so removing a home now would slow down the parts that follow."""
        self.stop()
        self.b.homes.append(self.home)


def round_trip(d, ino, i, timeout):
    """Drop message i (prepared, then renamed into incoming/) and wait for
    its response in outgoing/: the seconds from the rename to it."""
    tmp, final = d.prepare(i)
    t0 = time.perf_counter()
    os.rename(tmp, final)
    while not ino.read(timeout):
        if d.proc.poll() is not None:
            raise RuntimeError("clawvisor exited")
    return time.perf_counter() - t0


def wait_responses(d, ino, n, timeout, on_count=None):
    """Count names renamed into outgoing/ until n; (first, last) times."""
    seen, first, last = 0, None, None
    deadline = time.monotonic() + timeout
    while seen < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {seen} of {n} responses after "
                               f"{timeout}s ({d.home})")
        if d.proc.poll() is not None:
            raise RuntimeError(f"clawvisor exited with {d.proc.returncode}")
        names = ino.read(0.5)
        now = time.monotonic()
        if ino.overflow:
            ino.overflow = False
            c = d.count("outgoing")
            names = [None] * max(0, c - seen)
        for _ in names:
            seen += 1
            if first is None:
                first = now
            last = now
            if on_count:
                on_count(seen)
    return first, last


def pct(v, p):
    s = sorted(v)
    k = (len(s) - 1) * p / 100
    i = int(k)
    return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (k - i)


# -- the parts -----------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = find_binary(args.bin)
        self.work = Path(tempfile.mkdtemp(prefix="cv-bench-",
                                          dir=args.dir))
        self.help = helper(self.work)
        self.homes = []      # removed at the end
        self.rows = []       # (section, figure, value, target/note)
        self.loads = []
        self.res = {}

    def row(self, section, figure, value, note=""):
        self.rows.append((section, figure, value, note))
        log(f"  {section:<11} {figure:<44} {value:>16}  {note}")

    def note_load(self, part):
        la = loadavg()
        self.loads.append((part, la))
        log(f"[{part}] load average {la}")

    # 1. baseline
    def spawn_rate(self, n, loops, how):
        """Spawns per second of `loops` helper loops of n spawns each."""
        cmd = [self.help, "spawn", str(n), "/bin/true"] + (
            ["fork"] if how == "fork" else [])
        t0 = time.monotonic()
        ps = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
              for _ in range(loops)]
        for p in ps:
            p.communicate()
            if p.returncode != 0:
                raise RuntimeError("benchhelp spawn failed")
        return loops * n / (time.monotonic() - t0)

    def baseline(self):
        a = self.args
        self.note_load("baseline")
        n = a.n
        serial = self.spawn_rate(n, 1, "spawn")
        parallel = self.spawn_rate(n, NCPU, "spawn")
        fserial = self.spawn_rate(n, 1, "fork")
        fparallel = self.spawn_rate(n, NCPU, "fork")
        self.res["spawn_serial"] = serial
        self.res["spawn_parallel"] = parallel
        self.row("baseline", "posix_spawn /bin/true + wait, 1 loop",
                 f"{serial:.0f}/s", f"{1000 / serial:.2f} ms per spawn")
        self.row("baseline", f"posix_spawn /bin/true + wait, {NCPU} loops",
                 f"{parallel:.0f}/s", "the physical limit for throughput")
        self.row("baseline", "fork+exec /bin/true + wait, 1 loop",
                 f"{fserial:.0f}/s", f"{1000 / fserial:.2f} ms per spawn")
        self.row("baseline", f"fork+exec /bin/true + wait, {NCPU} loops",
                 f"{fparallel:.0f}/s", "(fork copies the page tables)")
        fdir = self.work / "fsync"
        fdir.mkdir()
        out = subprocess.run([self.help, "fsync", str(fdir), str(a.fsyncs),
                              "400"], capture_output=True, text=True,
                             check=True).stdout.split()
        us = [float(x) for x in out]
        self.homes.append(fdir)
        self.res["fsync_p50_us"] = pct(us, 50)
        self.row("baseline", "atomic write+fsync+rename (400 B), p50",
                 f"{pct(us, 50):.0f} us", f"p99 {pct(us, 99):.0f} us, "
                 f"mean {statistics.mean(us):.0f} us, {len(us)} writes")

    # 2. throughput
    def throughput_one(self, agents, workers, n):
        d = Daemon(self, f"tp{agents}x{workers}", agents=agents,
                   workers=workers)
        try:
            d.drop_direct(n)
            ino = Inotify(d.q / "outgoing")
            t0 = d.start()
            first, last = wait_responses(d, ino, n, timeout=max(
                600, n / 5))
            ino.close()
            sv_cpu = proc_runtime(d.proc.pid)
            wk = d.worker_pids()
            wk_cpu = sum(proc_runtime(p) for p in wk)
            dead = d.count("dead-letter")
        finally:
            d.cleanup()
        rate = n / (last - t0)
        steady = (n - 1) / (last - first) if last > first else 0
        return rate, steady, sv_cpu / n * 1e6, wk_cpu / n * 1e6, dead

    def throughput(self):
        """Each run is framed by a short parallel spawn loop (before and
        after, N/4 spawns per loop): the ratio is to their mean, measured
        under the same load as the run."""
        a = self.args
        m = max(100, a.n // 4)
        for agents in (1, 16):
            for workers in a.workers:
                self.note_load(f"throughput {agents}a/{workers}w")
                before = self.spawn_rate(m, NCPU, "spawn")
                serial = self.spawn_rate(m, 1, "spawn") if agents == 1 \
                    else None
                rate, steady, svus, wkus, dead = self.throughput_one(
                    agents, workers, a.n)
                base = (before + self.spawn_rate(m, NCPU, "spawn")) / 2
                self.res[f"tp_{agents}_{workers}"] = rate
                self.res[f"tp_{agents}_{workers}_ratio"] = rate / base
                ratio = f"{100 * rate / base:.0f}% of parallel spawn " \
                    f"({base:.0f}/s around it)"
                if serial:
                    ratio += f", {100 * rate / serial:.0f}% of 1 loop"
                tgt = "  [target >= 80%]" if agents == 16 else ""
                self.row("throughput", f"{agents} agent(s), {workers} "
                         f"workers, N={a.n}", f"{rate:.0f} msg/s",
                         ratio + tgt)
                self.row("throughput", "  steady (first to last reply)",
                         f"{steady:.0f} msg/s",
                         f"supervisor {svus:.0f} us CPU/msg, workers "
                         f"{wkus:.0f} us CPU/msg" +
                         (f", {dead} dead letters!" if dead else ""))

    # 3. latency
    def latency(self):
        a = self.args
        self.note_load("latency")
        d = Daemon(self, "lat", agents=1, workers=NCPU)
        lat = []
        try:
            ino = Inotify(d.q / "outgoing")
            d.start()
            d.wait_ready()
            time.sleep(0.5)
            for i in range(a.samples + 5):
                t = round_trip(d, ino, i, 10)
                if i >= 5:          # the first few warm the caches
                    lat.append(t * 1000)
                time.sleep(a.latency_gap)
            ino.close()
        finally:
            d.cleanup()
        self.res["lat_p50"] = pct(lat, 50)
        self.res["lat_p99"] = pct(lat, 99)
        spawn = 1000 / self.res["spawn_serial"] if "spawn_serial" in \
            self.res else None
        self.row("latency", f"rename to response, p50 ({len(lat)} samples)",
                 f"{pct(lat, 50):.2f} ms", "[target < 5 ms]" +
                 (f"; one bare spawn is {spawn:.2f} ms" if spawn else ""))
        self.row("latency", "rename to response, p99",
                 f"{pct(lat, 99):.2f} ms",
                 f"min {min(lat):.2f}, max {max(lat):.2f} ms")

    # 4. backlog
    def backlog(self):
        a = self.args
        n = a.backlog
        d = Daemon(self, "backlog", agents=16, workers=a.backlog_workers)
        samples = []
        try:
            log(f"[backlog] writing {n} messages into incoming/ ...")
            t = time.monotonic()
            d.drop_direct(n)
            log(f"[backlog] written in {time.monotonic() - t:.1f}s")
            self.note_load("backlog")
            ino = Inotify(d.q / "outgoing")
            pid_box = {}

            def on_count(c):
                if c % 10000 == 0:
                    st = proc_status(pid_box["pid"])
                    samples.append((c, st.get("VmRSS", 0),
                                    time.monotonic()))
            t0 = d.start()
            pid_box["pid"] = d.proc.pid
            first, last = wait_responses(d, ino, n, timeout=max(1800, n / 5),
                                         on_count=on_count)
            ino.close()
            st = proc_status(d.proc.pid)
            hwm = st.get("VmHWM", 0)
            sv_cpu = proc_runtime(d.proc.pid)
            dead = d.count("dead-letter")
        finally:
            d.cleanup()
        self.res["bl_first"] = first - t0
        self.res["bl_drain"] = last - t0
        self.res["bl_hwm"] = hwm
        self.row("backlog", f"{n} at start: time to first reply",
                 f"{(first - t0) * 1000:.0f} ms", "[target < 1 s]")
        self.row("backlog", "drain time", f"{last - t0:.1f} s",
                 f"{n / (last - t0):.0f} msg/s, 16 agents, "
                 f"{a.backlog_workers} workers, supervisor "
                 f"{sv_cpu / n * 1e6:.0f} us CPU/msg" +
                 (f", {dead} dead letters!" if dead else ""))
        self.row("backlog", "supervisor peak RSS (VmHWM)",
                 f"{hwm / 1024:.1f} MiB", "[target < 32 MiB]")
        if len(samples) >= 2:
            # Least squares over the samples from the first on (the
            # window is full by then), leaving out the one taken as the
            # backlog ends (the list of names is freed then).
            pts = samples[:-1] if len(samples) >= 3 else samples
            mc = statistics.mean(c for c, _, _ in pts)
            mr = statistics.mean(r for _, r, _ in pts)
            growth = sum((c - mc) * (r - mr) for c, r, _ in pts) / sum(
                (c - mc) ** 2 for c, _, _ in pts) * 10000
            self.res["bl_growth"] = growth
            self.row("backlog", "supervisor RSS growth per 10k msgs",
                     f"{growth:+.0f} KiB", "[target ~0]; VmRSS at " +
                     ", ".join(f"{c // 1000}k={r // 1024}M" if r >= 10240
                               else f"{c // 1000}k={r}K"
                               for c, r, _ in samples[:: max(1, len(
                                   samples) // 5)]))

    # 5. idle
    def idle(self):
        a = self.args
        d = Daemon(self, "idle", agents=1, workers=NCPU)
        try:
            d.start()
            d.wait_ready()
            time.sleep(1)
            self.note_load("idle")
            pids = [d.proc.pid] + d.worker_pids()
            c0 = [proc_runtime(p) for p in pids]
            s0 = [proc_status(p) for p in pids]
            time.sleep(a.idle_seconds)
            c1 = [proc_runtime(p) for p in pids]
            s1 = [proc_status(p) for p in pids]
        finally:
            d.cleanup()

        def wakes(i):
            return (s1[i].get("voluntary_ctxt_switches", 0) -
                    s0[i].get("voluntary_ctxt_switches", 0)) / a.idle_seconds
        svms = (c1[0] - c0[0]) * 1000
        wkms = sum(c1[i] - c0[i] for i in range(1, len(pids))) * 1000
        self.res["idle_sv_ms"] = svms
        self.row("idle", f"supervisor CPU over {a.idle_seconds:g} s",
                 f"{svms:.1f} ms", f"{100 * svms / 1000 / a.idle_seconds:.3f}"
                 f"% of a core, {wakes(0):.1f} wake-ups/s [target ~0]")
        self.row("idle", f"{len(pids) - 1} workers' CPU over "
                 f"{a.idle_seconds:g} s", f"{wkms:.1f} ms",
                 f"{sum(wakes(i) for i in range(1, len(pids))):.1f} "
                 f"wake-ups/s in all")
        self.row("idle", "supervisor RSS", f"{s1[0].get('VmRSS', 0)} KiB")
        self.row("idle", "RSS of each worker", ", ".join(
            f"{s.get('VmRSS', 0)}" for s in s1[1:]) + " KiB")

    # 6. container
    def container_image(self, env):
        bb = next((p for p in ("/bin/busybox", "/usr/bin/busybox")
                   if os.path.exists(p)), None)
        if bb is None:
            raise RuntimeError("busybox is not installed")
        applets = sorted(set(subprocess.run(
            [bb, "--list"], capture_output=True, text=True,
            check=True).stdout.split()) - {"busybox"})
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w",
                          format=tarfile.GNU_FORMAT) as t:
            for name in ("bin", "etc", "workspace", "proc", "sys", "dev",
                         "tmp"):
                ti = tarfile.TarInfo(name)
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o1777 if name == "tmp" else 0o755
                t.addfile(ti)
            data = Path(bb).read_bytes()
            ti = tarfile.TarInfo("bin/busybox")
            ti.size, ti.mode = len(data), 0o755
            t.addfile(ti, io.BytesIO(data))
            for ap in applets:
                if "/" not in ap:
                    ti = tarfile.TarInfo(f"bin/{ap}")
                    ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
                    t.addfile(ti)
            for name, text in (("etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
                               ("etc/group", b"root:x:0:\n")):
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode = len(text), 0o644
                t.addfile(ti, io.BytesIO(text))
        data = buf.getvalue()
        image = f"localhost/clawvisor-bench:{hashlib.sha256(data).hexdigest()[:16]}"
        if subprocess.run(["podman", "image", "exists", image], env=env,
                          capture_output=True).returncode != 0:
            tar = self.work / "rootfs.tar"
            tar.write_bytes(data)
            subprocess.run(["podman", "import", "--change",
                            "ENV PATH=/bin", str(tar), image], env=env,
                           check=True, capture_output=True)
        return image

    def container(self):
        a = self.args
        if shutil.which("podman") is None:
            self.row("container", "podman", "not installed", "skipped")
            return
        conf = self.work / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = '
                        '["nofile=1024:1024", "nproc=1000:1000"]\n'
                        '[engine]\nruntime = "runc"\n'
                        'cgroup_manager = "cgroupfs"\n')
        env = dict(os.environ, CONTAINERS_CONF=str(conf))
        env.pop("DOCKER_HOST", None)
        image = self.container_image(env)
        # A wrapper that records the argv the worker builds (and its
        # env-file), used once, so that the same argv can be run by hand.
        rec = self.work / "argv.bin"
        envcopy = self.work / "envfile.copy"
        wrap = self.work / "podman-rec"
        wrap.write_text(f"""#!/bin/sh
: > {rec}
prev=
for a; do
	printf '%s\\0' "$a" >> {rec}
	[ "$prev" = --env-file ] && cp "$a" {envcopy}
	prev=$a
done
exec podman "$@"
""")
        wrap.chmod(0o755)
        sb = {"mode": "docker", "docker": {
            "runtime_command": "podman", "image": image,
            "network": a.container_network}}
        d = Daemon(self, "ctr", agents=1, workers=1, command=["true"],
                   sandbox=dict(sb, docker=dict(sb["docker"],
                                                runtime_command=str(wrap))),
                   env={"CONTAINERS_CONF": str(conf)})
        try:
            ino = Inotify(d.q / "outgoing")
            d.start()
            d.wait_ready()
            tmp, final = d.prepare(0)
            os.rename(tmp, final)
            while not ino.read(60):
                pass
            d.stop()
            argv = rec.read_bytes().split(b"\0")[:-1]
            argv = [x.decode() for x in argv]
            if d.count("dead-letter"):
                raise RuntimeError(f"the container run failed: see "
                                   f"{d.home}")
            # The real thing from now on.
            settings = json.loads((d.home / "settings.json").read_text())
            settings["sandbox"]["docker"]["runtime_command"] = "podman"
            (d.home / "settings.json").write_text(json.dumps(settings))
            d.start()
            d.wait_ready()
            self.note_load("container")
            by_hand, bare, through = [], [], []
            envfile = self.work / "envfile"
            shutil.copy(envcopy, envfile)
            for i in range(a.container_runs + 1):
                # Interleaved, so that a change of load hits all three.
                hand = ["podman"] + argv
                hand[hand.index("--name") + 1] = f"cv-bench-hand-{i}"
                hand[hand.index("--env-file") + 1] = str(envfile)
                t0 = time.perf_counter()
                subprocess.run(hand, env=env, check=True,
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
                t1 = time.perf_counter()
                subprocess.run(["podman", "run", "--rm", "--network",
                                hand[hand.index("--network") + 1], image,
                                "true"], env=env, check=True,
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
                t2 = time.perf_counter()
                t = round_trip(d, ino, i + 1, 60)
                if i > 0:   # the first of each warms up
                    by_hand.append((t1 - t0) * 1000)
                    bare.append((t2 - t1) * 1000)
                    through.append(t * 1000)
            ino.close()
            dead = d.count("dead-letter")
        finally:
            d.cleanup()
        mh, mb, mt = (statistics.median(x) for x in (by_hand, bare, through))
        self.res["ctr_overhead"] = 100 * (mt - mh) / mh
        self.row("container", "bare `podman run --rm --network "
                 f"{argv[argv.index('--network') + 1]} IMAGE true`, median",
                 f"{mb:.0f} ms", f"{len(bare)} runs, mean "
                 f"{statistics.mean(bare):.0f} ms")
        self.row("container", "same argv as clawvisor's, by hand, median",
                 f"{mh:.0f} ms", f"network {a.container_network}, mean "
                 f"{statistics.mean(by_hand):.0f} ms")
        self.row("container", "through clawvisor (rename to reply), median",
                 f"{mt:.0f} ms", f"mean {statistics.mean(through):.0f} ms" +
                 (f", {dead} dead letters!" if dead else ""))
        self.row("container", "clawvisor overhead vs the same argv",
                 f"{100 * (mt - mh) / mh:+.1f}%", "[target < 5%]")
        self.row("container", "clawvisor vs bare podman run",
                 f"{100 * (mt - mb) / mb:+.1f}%",
                 "includes the sandbox flags' own cost")

    # 7. bwrap
    def egress(self):
        import bench_egress
        os.chmod(self.work, 0o711)      # the sandbox's user reaches it
        bench_egress.run(self, self.args.quick)

    def bwrap(self):
        a = self.args
        if shutil.which("bwrap") is None:
            raise RuntimeError("bwrap is not installed (apt-get install "
                               "bubblewrap)")
        uid = 65534 if os.getuid() == 0 else os.getuid()
        bw = {"mode": "bwrap", "bwrap": {"user": f"{uid}:{uid}",
                                         "network": "none"}}
        modes = [("host", {}, {}), ("bwrap", bw, {})]
        if shutil.which("podman") is not None:
            conf = self.work / "containers.conf"
            conf.write_text('[containers]\ndefault_ulimits = '
                            '["nofile=1024:1024", "nproc=1000:1000"]\n'
                            '[engine]\nruntime = "runc"\n'
                            'cgroup_manager = "cgroupfs"\n')
            env = dict(os.environ, CONTAINERS_CONF=str(conf))
            env.pop("DOCKER_HOST", None)
            image = self.container_image(env)
            modes.append(("podman", {"mode": "docker", "docker": {
                "runtime_command": "podman", "image": image,
                "network": "none"}}, {"CONTAINERS_CONF": str(conf)}))
        ds, inos, lat = {}, {}, {}
        try:
            for name, sb, env in modes:
                d = Daemon(self, f"bw-{name}", agents=1, workers=1,
                           command=["true"], sandbox=sb, env=env)
                if name == "bwrap":
                    # The agent's user must reach its workspace.
                    os.chmod(d.home, 0o711)
                    w = d.home / "workspace" / d.agents[0]
                    w.mkdir(parents=True)
                    os.chmod(d.home / "workspace", 0o711)
                    os.chown(w, uid, uid)
                ds[name] = d
                inos[name] = Inotify(d.q / "outgoing")
                d.start()
                d.wait_ready()
                lat[name] = []
            time.sleep(0.5)
            self.note_load("bwrap")
            n = max(a.samples // (10 if "podman" in ds else 1), 20)
            for i in range(n + 3):
                for name, d in ds.items():
                    t = round_trip(d, inos[name], i, 60)
                    if i >= 3:      # the first few warm the caches
                        lat[name].append(t * 1000)
                    time.sleep(a.latency_gap)
            for name, d in ds.items():
                if d.count("dead-letter"):
                    raise RuntimeError(f"{name}: runs failed, see {d.home}")
        finally:
            for name, d in ds.items():
                inos[name].close()
                d.cleanup()
        for name in ds:
            self.row("bwrap", f"{name}: drop to reply, p50 / p99 "
                     f"({len(lat[name])})",
                     f"{pct(lat[name], 50):.2f} / {pct(lat[name], 99):.2f} "
                     "ms")
        h50, b50 = pct(lat["host"], 50), pct(lat["bwrap"], 50)
        self.res["bwrap_over_host"] = b50 - h50
        self.row("bwrap", "bwrap over host, p50", f"{b50 - h50:+.2f} ms",
                 f"x{b50 / h50:.2f} [target < 10 ms]")
        if "podman" in ds:
            p50 = pct(lat["podman"], 50)
            self.row("bwrap", "podman (docker mode) over bwrap, p50",
                     f"x{p50 / b50:.1f}", f"{p50 - b50:+.0f} ms "
                     "[target: bwrap at least 30x faster]")

    # 8. exec
    def exec(self):
        a = self.args
        d = Daemon(self, "exec", agents=1, workers=1, command=["/bin/true"])
        bare, via, ping = [], [], []
        try:
            (d.home / "workspace" / d.agents[0]).mkdir(parents=True)
            d.start()
            d.wait_ready()
            cmd = [self.bin, "--home", str(d.home), "exec", "--agent",
                   d.agents[0], "--", "/bin/true"]
            self.note_load("exec")
            for i in range(a.samples + 5):
                t0 = time.perf_counter()
                subprocess.run(["/bin/true"], check=True)
                t1 = time.perf_counter()
                r = subprocess.run(cmd, stdin=subprocess.DEVNULL)
                t2 = time.perf_counter()
                if r.returncode != 0:
                    raise RuntimeError(f"clawvisor exec exited "
                                       f"{r.returncode}, see {d.home}")
                # The client's own start and one control round trip.
                subprocess.run([self.bin, "--home", str(d.home), "status",
                                "--json"], stdout=subprocess.DEVNULL)
                t3 = time.perf_counter()
                if i >= 5:      # the first few warm the caches
                    bare.append((t1 - t0) * 1000)
                    via.append((t2 - t1) * 1000)
                    ping.append((t3 - t2) * 1000)
        finally:
            d.cleanup()
        self.row("exec", f"bare spawn /bin/true, p50 / p99 ({len(bare)})",
                 f"{pct(bare, 50):.2f} / {pct(bare, 99):.2f} ms")
        self.row("exec", f"clawvisor exec -- /bin/true, p50 / p99",
                 f"{pct(via, 50):.2f} / {pct(via, 99):.2f} ms")
        self.row("exec", "clawvisor status (client start + one control "
                 "round trip), p50", f"{pct(ping, 50):.2f} ms", "for reference")
        added = pct(via, 50) - pct(bare, 50)
        self.res["exec_added_p50"] = added
        self.row("exec", "added by exec, p50", f"{added:+.2f} ms",
                 "[target < 3 ms, host mode]")
        self.exec_lines()

    LINES_SCRIPT = (
        "import json, sys, time\n"
        "for i in range(int(sys.argv[1])):\n"
        "    sys.stdout.write(json.dumps({'type': 'assistant', 'i': i,\n"
        "                                 't': time.time()}) + '\\n')\n"
        "    sys.stdout.flush()\n"
        "    time.sleep(0.02)\n")

    def exec_lines(self, n=50):
        """A stream-json consumer's delay: from the child's write of a
        line to the caller's read of it, through `clawvisor exec` (the
        worker's relay, one pipe more than a direct write)."""
        py = sys.executable if os.path.isabs(sys.executable) else \
            "/usr/bin/python3"
        d = Daemon(self, "exec-lines", agents=1, workers=1, command=[py])
        delays = []
        try:
            (d.home / "workspace" / d.agents[0]).mkdir(parents=True)
            d.start()
            d.wait_ready()
            p = subprocess.Popen([self.bin, "--home", str(d.home), "exec",
                                  "--agent", d.agents[0], "--", py, "-c",
                                  self.LINES_SCRIPT, str(n)],
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE)
            for line in p.stdout:
                t = time.time()
                delays.append((t - json.loads(line)["t"]) * 1000)
            if p.wait() != 0:
                raise RuntimeError(f"clawvisor exec exited {p.returncode},"
                                   f" see {d.home}")
        finally:
            d.cleanup()
        self.res["exec_line_p50"] = pct(delays, 50)
        self.row("exec", f"line delay, child write -> caller read, p50 / "
                 f"p95 ({len(delays)})", f"{pct(delays, 50):.2f} / "
                 f"{pct(delays, 95):.2f} ms", "[target < 50 ms, host mode]")

    def report(self, parts):
        print()
        print(f"clawvisor benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
              f"{platform.node()}  nproc={NCPU}  kernel "
              f"{platform.release()}")
        print(f"binary {self.bin}")
        print(f"homes under {self.args.dir or tempfile.gettempdir()}")
        print()
        w = max(len(r[1]) for r in self.rows) if self.rows else 10
        print(f"{'part':<11} {'figure':<{w}} {'value':>16}  note")
        print("-" * (w + 50))
        for s, f, v, n in self.rows:
            print(f"{s:<11} {f:<{w}} {v:>16}  {n}")
        print()
        print("load average (1, 5, 15 min) at the start of each part:")
        for p, la in self.loads:
            print(f"  {p:<28} {la}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="comma-separated parts: " +
                    ",".join(PARTS))
    ap.add_argument("--quick", action="store_true",
                    help="small N (300, backlog 10000), idle 10 s, "
                    "50 latency samples, 5 container runs")
    ap.add_argument("--bin", help="clawvisor binary (default: build-bench/ "
                    "or build/)")
    ap.add_argument("--dir", help="where the temporary homes go (default "
                    "$TMPDIR or /tmp; keep it on the disk being measured)")
    ap.add_argument("-n", type=int, help="messages per throughput run "
                    "and spawns per baseline loop (2000)")
    ap.add_argument("--backlog", type=int, help="backlog size (100000)")
    ap.add_argument("--backlog-workers", type=int, default=NCPU,
                    help=f"workers for the backlog run ({NCPU})")
    ap.add_argument("--workers", help="comma-separated supervisor.workers "
                    f"values for throughput ({NCPU},{2 * NCPU})")
    ap.add_argument("--samples", type=int, help="latency samples (300)")
    ap.add_argument("--latency-gap", type=float, default=0.02,
                    help="pause between latency samples, s (0.02)")
    ap.add_argument("--idle-seconds", type=float, help="idle period (60)")
    ap.add_argument("--fsyncs", type=int, default=500,
                    help="atomic writes for the fsync figure (500)")
    ap.add_argument("--container-runs", type=int, help="runs of each "
                    "container variant (20)")
    ap.add_argument("--container-network", default="none",
                    choices=("none", "default"),
                    help="sandbox.docker.network for the container part")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary homes")
    a = ap.parse_args()
    q = a.quick
    a.n = a.n or (300 if q else 2000)
    a.backlog = a.backlog or (10000 if q else 100000)
    a.samples = a.samples or (50 if q else 300)
    a.idle_seconds = a.idle_seconds or (10 if q else 60)
    a.container_runs = a.container_runs or (5 if q else 20)
    a.workers = [int(x) for x in a.workers.split(",")] if a.workers else \
        [NCPU, 2 * NCPU]
    parts = PARTS if not a.only else [p.strip() for p in a.only.split(",")]
    for p in parts:
        if p not in PARTS:
            ap.error(f"unknown part {p!r}: one of {', '.join(PARTS)}")
    b = Bench(a)
    log(f"clawvisor benchmark: {', '.join(parts)}; binary {b.bin}")
    todo = (["baseline"] if "baseline" in parts or "throughput" in parts
            or "latency" in parts else []) + [p for p in parts
                                              if p != "baseline"]
    try:
        for p in todo:
            try:
                getattr(b, p)()
            except (RuntimeError, OSError, subprocess.SubprocessError,
                    ValueError) as e:
                # A figure that could not be taken: say so, go on.
                b.row(p, "could not be measured", "-", str(e)[:200])
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        b.report(parts)
        if not a.keep:
            log("removing the temporary homes ...")
            for h in b.homes:
                shutil.rmtree(h, ignore_errors=True)
            shutil.rmtree(b.work, ignore_errors=True)
        else:
            log("kept: " + " ".join(str(h) for h in [b.work] + b.homes))


if __name__ == "__main__":
    main()
