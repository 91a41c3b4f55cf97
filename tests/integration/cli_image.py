"""
An agent image with Node and the real `claude` and `codex` for the
docker-mode (Podman) cases of test_egress_real_cli.py, built offline from
this machine's own files: no registry image can be pulled here, and the
product's route (`clawvisor sandbox build-image`, contrib/
Dockerfile.agent-runner on the Debian base contrib/agent-runner/
verify-image.sh makes) needs mmdebstrap, a Debian mirror and the npm
registry from inside build containers, and minutes (docs/TESTING.md).

The layout is the agent-runner image's (`npm install --global` under
/usr/local): /usr/local/bin/node, /usr/local/lib/node_modules/ with the
packages of the tests' npm prefix (tests/integration/.npm-clis, which
test_egress_real_cli.py fills), busybox for /bin/sh, the host's loader and
the libraries `ldd` lists for node and claude's native binary, the host's
CA bundle. `claude` and `codex` on PATH are small wrappers that record
what the CLI is started with (its environment, the network devices it
sees, its parent's command line: the bridge) in its working directory and
exec the real CLI, so that a test can check the sandbox from inside
without a fake CLI.

The tag is the CLIs' versions and a hash of every input (this file, the
node binary, the libraries, each package file's name and size), so that
the image is built once per machine and reused by every run (CI runs the
suite three times); a build removes the repository's older tags.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from containers import _busybox

REPO = "localhost/clawvisor-test-clis"
PACKAGES = ("@anthropic-ai/claude-code", "@anthropic-ai/claude-code-linux-x64",
            "@openai/codex", "@openai/codex-linux-x64")
NM = "usr/local/lib/node_modules"
AGENT_UID = 10001      # the agent-runner image's `agent`

# Records the sandbox as the CLI sees it, then runs the real CLI.
WRAPPER = r"""#!/bin/sh
env > "$PWD/cv-env.txt"
ls /sys/class/net > "$PWD/cv-netdevs.txt"
tr '\0' ' ' < "/proc/$PPID/cmdline" > "$PWD/cv-parent.txt"
exec __REAL__ "$@"
"""
REAL = {"claude": f"/{NM}/@anthropic-ai/claude-code/bin/claude.exe",
        "codex": f"/{NM}/@openai/codex/bin/codex.js"}


def _libs(*exes):
    """The shared objects ldd lists for exes, by the path it names."""
    out = set()
    for exe in exes:
        r = subprocess.run(["ldd", str(exe)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.fail(f"ldd {exe}: {r.stderr or r.stdout}", pytrace=False)
        for line in r.stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                out.add(parts[2])
            elif parts and parts[0].startswith("/"):
                out.add(parts[0])
    return sorted(out)


def _inputs(npm_dir):
    """What the image is made of, and the hash of it that names it."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (apt-get install nodejs)",
                    pytrace=False)
    node = os.path.realpath(node)
    nm = Path(npm_dir) / "node_modules"
    for p in PACKAGES:
        if not (nm / p / "package.json").exists():
            pytest.fail(f"{nm / p} is missing: the npm install of the CLIs "
                        "did not complete", pytrace=False)
    claude_exe = nm / "@anthropic-ai/claude-code/bin/claude.exe"
    libs = _libs(node, claude_exe)
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    with open(node, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    for lib in libs:
        st = os.stat(lib)
        h.update(f"{lib} {st.st_size}\n".encode())
    for p in PACKAGES:
        for root, dirs, files in os.walk(nm / p):
            dirs.sort()
            for n in sorted(files):
                f = os.path.join(root, n)
                h.update(f"{os.path.relpath(f, nm)} "
                         f"{os.lstat(f).st_size}\n".encode())
    versions = [json.loads((nm / p / "package.json").read_text())["version"]
                for p in ("@anthropic-ai/claude-code", "@openai/codex")]
    tag = f"{REPO}:{versions[0]}-{versions[1]}-{h.hexdigest()[:12]}"
    return tag, node, libs, nm


def _write_rootfs(out, node, libs, nm):
    """The root file system as a tar stream on out."""
    busybox = _busybox()
    applets = sorted(set(subprocess.run(
        [busybox, "--list"], capture_output=True, text=True,
        check=True).stdout.split()) - {"busybox"})

    def owned(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as t:
        def add_dir(name, mode=0o755):
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            ti.mode = mode
            t.addfile(ti)

        def add_data(name, data, mode=0o755):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = mode
            t.addfile(ti, io.BytesIO(data))

        def add_link(name, target):
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            t.addfile(ti)

        def add_host(name, path):
            """A host file's bytes under name (links followed)."""
            ti = owned(t.gettarinfo(os.path.realpath(path), name))
            with open(path, "rb") as f:
                t.addfile(ti, f)

        dirs = ["bin", "etc", "etc/ssl", "etc/ssl/certs", "usr", "usr/bin",
                "usr/local", "usr/local/bin", "usr/local/lib", NM,
                f"{NM}/@anthropic-ai", f"{NM}/@openai", "workspace",
                "proc", "sys", "dev", "run"]
        for lib in libs:
            d = os.path.dirname(lib).lstrip("/")
            parts = d.split("/")
            for i in range(1, len(parts) + 1):
                dirs.append("/".join(parts[:i]))
        for d in sorted(set(dirs), key=lambda s: (s.count("/"), s)):
            add_dir(d)
        add_dir("tmp", 0o1777)
        add_host("bin/busybox", busybox)
        for a in applets:
            if "/" not in a:
                add_link(f"bin/{a}", "busybox")
        # codex.js starts with #!/usr/bin/env node.
        add_link("usr/bin/env", "/bin/busybox")
        add_data("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                 b"agent:x:%d:%d::/workspace/.tinyclaw-home:/bin/sh\n" %
                 (AGENT_UID, AGENT_UID), 0o644)
        add_data("etc/group", b"root:x:0:\nagent:x:%d:\n" % AGENT_UID,
                 0o644)
        if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
            add_host("etc/ssl/certs/ca-certificates.crt",
                     "/etc/ssl/certs/ca-certificates.crt")
        for lib in libs:
            add_host(lib.lstrip("/"), lib)
        add_host("usr/local/bin/node", node)
        # The packages as npm laid them out (tarfile keeps hard links:
        # claude.exe is one of the platform package's binary).
        for p in PACKAGES:
            t.add(str(nm / p), arcname=f"{NM}/{p}", filter=owned)
        for cli, real in REAL.items():
            add_data(f"usr/local/bin/{cli}",
                     WRAPPER.replace("__REAL__", real).encode())


def build(engine, npm_dir):
    """The image's name: built unless this machine has it already."""
    tag, node, libs, nm = _inputs(npm_dir)
    if engine.run("image", "exists", tag, check=False).returncode == 0:
        return tag
    t0 = time.monotonic()
    log = engine.root / "cli-image-import.log"
    with open(log, "wb") as lf:
        p = subprocess.Popen(
            [engine.podman, "import",
             "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin",
             "--change", "ENV DISABLE_AUTOUPDATER=1",
             "--change", "ENV NPM_CONFIG_UPDATE_NOTIFIER=false",
             "--change", "WORKDIR /workspace", "-", tag],
            stdin=subprocess.PIPE, stdout=lf, stderr=lf, env=engine.env())
    try:
        _write_rootfs(p.stdin, node, libs, nm)
        p.stdin.close()
    except BrokenPipeError:
        pass            # podman's own words say why, below
    except BaseException:
        # A cut tar stream must not become an image under the good tag.
        p.kill()
        p.wait()
        engine.run("rmi", "-f", tag, check=False, timeout=120)
        raise
    if p.wait(timeout=600) != 0:
        pytest.fail(f"podman import of {tag} failed: "
                    f"{log.read_text(errors='replace')[-2000:]}",
                    pytrace=False)
    print(f"built {tag} in {time.monotonic() - t0:.1f} s")
    # Older builds of this image: each holds the CLIs (~800 MB).
    r = engine.run("images", "--format", "{{.Repository}}:{{.Tag}}",
                   REPO, check=False)
    for old in r.stdout.split():
        if old != tag and old.startswith(REPO + ":"):
            engine.run("rmi", "-f", old, check=False, timeout=120)
    return tag
