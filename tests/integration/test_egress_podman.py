"""
The egress path in docker mode on real Podman (SPEC §9, issue 15): the
container runs with `--network none`, the proxy's socket and the bridge
mounted, the token in its env-file; a fake claude in a busybox image of
this test's own asks the TLS stand-in (test_egress_e2e.StandIn) through
busybox wget (straight to the bridge: busybox wget knows no no_proxy),
then the proxy, which swaps the token for the key.
"""
import io
import json
import os
import tarfile
import uuid

import pytest

from containers import _busybox, engine  # noqa: F401 (fixture)
from test_egress_e2e import StandIn, make_ca

CLAUDE = r"""#!/bin/sh
# A fake claude: its message, asked of $ANTHROPIC_BASE_URL with the key
# it holds, by busybox wget.
for a; do msg=$a; done
env > "$PWD/env.txt"
cat /sys/class/net/*/operstate > "$PWD/nets.txt" 2>/dev/null
ls /sys/class/net > "$PWD/netdevs.txt"
# -Y off: busybox wget has no no_proxy, and the base URL is the bridge;
# through a proxy, busybox 1.35's wget sends GET whatever --post-data says
# (test_egress_absolute_form.py).
exec wget -Y off -q -O - --header "x-api-key: $ANTHROPIC_API_KEY" \
    --header "content-type: application/json" \
    --post-data "{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"$msg\"}]}" \
    "$ANTHROPIC_BASE_URL/v1/messages"
"""


def image(engine, claude=CLAUDE):  # noqa: F811
    """A busybox image with claude (a script) in /usr/local/bin."""
    busybox = _busybox()
    out = engine.run("run", "--rm", "--network", "none", engine.image,
                     "busybox", "--list").stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        def add(name, data=None, mode=0o755, link=None, kind=None):
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif link is not None:
                ti.type = tarfile.SYMTYPE
                ti.linkname = link
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        for d in ("bin", "etc", "usr", "usr/local", "usr/local/bin",
                  "workspace", "proc", "sys", "dev", "run"):
            add(d, kind="dir")
        add("tmp", mode=0o1777, kind="dir")
        with open(busybox, "rb") as f:
            add("bin/busybox", f.read())
        for a in out:
            if "/" not in a and a != "busybox":
                add(f"bin/{a}", link="busybox")
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        add("etc/group", b"root:x:0:\n", 0o644)
        add("usr/local/bin/claude", claude.encode())
    tar = engine.root / "egress-rootfs.tar"
    tar.write_bytes(buf.getvalue())
    name = "localhost/clawvisor-test-egress:" + uuid.uuid4().hex[:12]
    r = engine.run("import", "--change", "ENV PATH=/usr/local/bin:/bin",
                   str(tar), name, check=False, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"podman import failed: {r.stderr}", pytrace=False)
    return name


def test_podman_network_none_token_inside_key_outside(homes, engine,  # noqa: F811
                                                     tmp_path):
    ca, cert, key = make_ca(str(tmp_path))
    img = image(engine)
    h = homes({"sandbox": {
        "mode": "docker", "max_attempts": 1, "timeout_seconds": 120,
        "runtime_pass_env": ["CLAWVISOR_TEST_TAG"],
        "docker": {"runtime_command": "podman", "image": img,
                   "network": "default", "memory": "256m", "user": "auto"},
        "egress": {"mode": "proxy", "ca_file": ca,
                   "providers": {"anthropic": {"url": "PLACEHOLDER"}}}},
        "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
        "supervisor": {"workers": 1}}, start=False)
    wd = h.workdir("alpha")
    wd.mkdir(parents=True, exist_ok=True)
    api = StandIn(cert, key, str(wd))
    try:
        s = h.settings
        s["sandbox"]["egress"]["providers"]["anthropic"]["url"] = \
            f"https://127.0.0.1:{api.port}"
        h.write_settings(s)
        secret = f"sk-ant-api03-cvtest-{uuid.uuid4().hex}"
        h.start(env={"ANTHROPIC_API_KEY": secret, "DOCKER_HOST": "",
                     "CONTAINERS_CONF": str(engine.conf)})
        mid = h.drop("hello podman", agent="alpha")
        o = h.wait_outcome(mid, timeout=120)
        assert o[0] == "response", (o, h.log()[-3000:])
        assert json.loads(o[1]["message"])["content"][0]["text"] == \
            "echo:hello podman"
        path, headers, body = api.seen[0]
        lower = {k.lower(): v for k, v in headers.items()}
        assert lower["x-api-key"] == secret
        assert "cvtok-" not in json.dumps(headers)
        env = (wd / "env.txt").read_text()
        assert secret not in env
        assert "ANTHROPIC_API_KEY=cvtok-" in env
        # --network none: a loopback and nothing else.
        assert (wd / "netdevs.txt").read_text().split() == ["lo"]
        for root, _, files in os.walk(h.path):
            for n in files:
                p = os.path.join(root, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        assert secret.encode() not in f.read(), p
        assert engine.names(h.path) == []
    finally:
        api.close()
        engine.run("rmi", "-f", img, check=False)
