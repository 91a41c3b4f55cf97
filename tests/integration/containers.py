"""
Session fixtures for docker-mode tests on a real container engine: Podman
(root, runc, cgroupfs) with a containers.conf of our own, a tiny test image
built offline, and a `podman system service` for the real `docker` CLI.

A missing podman or docker is a failure, not a skip: CI installs them.

The image is a busybox rootfs (busybox-static's /bin/busybox and a symlink
per applet) holding the suite's own fakes (fakes/claude, fakes/codex,
fakes/fake-common.sh) under /opt/fakes, and on PATH:
  claude, codex  wrappers: a message starting with "probe" is replaced by
                 what cv-probe prints, then the fake runs as usual (so the
                 argv is still checked as the real CLI checks it);
  cv-probe       prints one "key=value" line per fact about its container:
                 uid, gid, root (ro/rw), tmp (rw/ro), nets (interfaces),
                 home, key (sha256 of $ANTHROPIC_API_KEY, or "unset"),
                 workdir; with "leak" it also prints the key itself, to check
                 that the daemon redacts it.
"""
import hashlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FAKES = HERE / "fakes"
IMAGE_REPO = "localhost/clawvisor-test-agent"

CONTAINERS_CONF = """\
# Written by the clawvisor integration suite (tests/integration/containers.py)
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""

PROBE = r"""#!/bin/sh
# cv-probe [leak]: facts about this container, one key=value a line.
echo "uid=$(id -u)"
echo "gid=$(id -g)"
if (echo x > /cv-probe-write) 2>/dev/null; then
	rm -f /cv-probe-write
	echo "root=rw"
else
	echo "root=ro"
fi
if echo x > /tmp/cv-probe-write 2>/dev/null && [ "$(cat /tmp/cv-probe-write)" = x ]; then
	rm -f /tmp/cv-probe-write
	echo "tmp=rw"
else
	echo "tmp=ro"
fi
nets=
for n in /sys/class/net/*; do
	nets="$nets${nets:+,}${n##*/}"
done
echo "nets=$nets"
devs=
while read -r l; do
	case "$l" in
	*:*) d=${l%%:*}; devs="$devs${devs:+,}$d" ;;
	esac
done < /proc/net/dev
echo "netdev=$devs"
echo "home=$HOME"
echo "workdir=$(pwd)"
if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
	echo "key=$(printf '%s' "$ANTHROPIC_API_KEY" | sha256sum | cut -d' ' -f1)"
else
	echo "key=unset"
fi
case "${1:-}" in
*leak*)
	echo "ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY"
	echo "bare $ANTHROPIC_API_KEY bare"
	;;
esac
exit 0
"""

WRAPPER = r"""#!/bin/sh
# The suite's fake __PROG__, with "probe" messages answered by cv-probe.
last=
for a; do last=$a; done
case "$last" in
probe*) ;;
*) exec /opt/fakes/__PROG__ "$@" ;;
esac
res=$(cv-probe "$last" | tr '\n' ' ')
n=$#
i=0
for a; do
	[ "$i" = 0 ] && set --
	i=$((i + 1))
	if [ "$i" = "$n" ]; then
		set -- "$@" "probe: $res"
	else
		set -- "$@" "$a"
	fi
done
exec /opt/fakes/__PROG__ "$@"
"""


def parse_probe(text):
    """The key=value facts in a probe reply."""
    out = {}
    body = text.split("probe: ", 1)[-1]
    for tok in body.replace("\n", " ").split(" "):
        if "=" in tok:
            k, v = tok.split("=", 1)
            out.setdefault(k, v)
    return out


def _need(prog):
    path = shutil.which(prog)
    if path is None:
        pytest.fail(f"{prog} is not installed: docker-mode tests need it "
                    f"(.ci/run installs podman, runc and busybox-static)",
                    pytrace=False)
    return path


def _busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    pytest.fail("busybox is not installed (apt-get install busybox-static)",
                pytrace=False)


def _rootfs_tar(busybox):
    """The image's rootfs as tar bytes (deterministic: sorted, mtime 0)."""
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                         check=True).stdout.split()
    applets = sorted(set(out) - {"busybox"})
    buf = io.BytesIO()

    def add_dir(t, name, mode=0o755):
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.DIRTYPE
        ti.mode = mode
        t.addfile(ti)

    def add_file(t, name, data, mode=0o755):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = mode
        t.addfile(ti, io.BytesIO(data))

    def add_link(t, name, target):
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.SYMTYPE
        ti.linkname = target
        t.addfile(ti)

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for d in ("bin", "etc", "opt", "opt/fakes", "usr", "usr/local",
                  "usr/local/bin", "workspace", "proc", "sys", "dev"):
            add_dir(t, d)
        add_dir(t, "tmp", 0o1777)
        add_file(t, "bin/busybox", Path(busybox).read_bytes())
        for a in applets:
            if "/" not in a:
                add_link(t, f"bin/{a}", "busybox")
        add_file(t, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        add_file(t, "etc/group", b"root:x:0:\n", 0o644)
        for f in ("claude", "codex", "fake-common.sh"):
            add_file(t, f"opt/fakes/{f}", (FAKES / f).read_bytes())
        add_file(t, "usr/local/bin/cv-probe", PROBE.encode())
        for prog in ("claude", "codex"):
            add_file(t, f"usr/local/bin/{prog}",
                     WRAPPER.replace("__PROG__", prog).encode())
    return buf.getvalue()


class Engine:
    """Podman on this machine, with our containers.conf."""

    def __init__(self, root):
        self.root = root
        self.podman = _need("podman")
        self.conf = root / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF)
        self.image = None
        self.service = None
        self.sock = None

    def env(self, extra=None):
        e = dict(os.environ)
        e["CONTAINERS_CONF"] = str(self.conf)
        e.pop("DOCKER_HOST", None)
        if extra:
            e.update(extra)
        return e

    def run(self, *args, check=True, timeout=60):
        return subprocess.run([self.podman, *args], capture_output=True,
                              text=True, env=self.env(), check=check,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def build_image(self):
        data = _rootfs_tar(_busybox())
        tag = hashlib.sha256(data).hexdigest()[:16]
        image = f"{IMAGE_REPO}:{tag}"
        if self.run("image", "exists", image, check=False).returncode != 0:
            tar = self.root / "rootfs.tar"
            tar.write_bytes(data)
            r = self.run("import", "--change",
                         "ENV PATH=/usr/local/bin:/bin", str(tar), image,
                         check=False, timeout=120)
            if r.returncode != 0:
                pytest.fail(f"podman import failed: {r.stderr}",
                            pytrace=False)
        self.image = image
        return image

    def names(self, home):
        """Names of every container (any state) labelled with home."""
        r = self.run("ps", "-a", "--filter", f"label=clawvisor.home={home}",
                     "--format", "{{.Names}}")
        return [n for n in r.stdout.split() if n]

    def start_service(self):
        """`podman system service` on a socket of ours; DOCKER_HOST."""
        if self.service is not None:
            return f"unix://{self.sock}"
        _need("docker")
        self.sock = self.root / "podman.sock"
        log = open(self.root / "podman-service.log", "wb")
        self.service = subprocess.Popen(
            [self.podman, "system", "service", "--time=0",
             f"unix://{self.sock}"], stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, env=self.env(), start_new_session=True)
        log.close()
        host = f"unix://{self.sock}"
        deadline = time.monotonic() + 30
        while True:
            if self.service.poll() is not None:
                pytest.fail("podman system service exited: " +
                            (self.root / "podman-service.log").read_text(),
                            pytrace=False)
            r = subprocess.run(["docker", "version", "--format",
                                "{{.Server.Version}}"], capture_output=True,
                               text=True, env=self.env({"DOCKER_HOST": host}),
                               stdin=subprocess.DEVNULL)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"docker cannot reach podman system service: "
                            f"{r.stderr}", pytrace=False)
            time.sleep(0.2)
        return host

    def close(self):
        if self.service is not None and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(15)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait(5)
        self.service = None


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """Podman with our containers.conf and the test image built."""
    e = Engine(tmp_path_factory.mktemp("engine"))
    try:
        e.build_image()
        yield e
    finally:
        e.close()
