"""
The real `claude` and `codex` from the npm registry, through clawvisor in
bwrap mode and in docker mode on Podman, with the egress proxy on (SPEC §9, issue 15 Proof), against a TLS stand-in
that speaks enough of the Messages API or the Responses API (SSE) for a
one-turn reply: the reply arrives, the stand-in saw the real key, and what
the CLI wrote in its home holds no key.

The CLI is installed with `npm install --prefix` into a directory of the
tests' own (tests/integration/.npm-clis, kept between runs as the cache),
never globally: host-mode tests expect no claude on PATH. If the registry
cannot be reached the test fails with npm's reason; it is never skipped.
"""
import http.server
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import cli_image
from conftest import FAKES
from containers import engine  # noqa: F401 (fixture)
from test_egress_e2e import (AGENT_UID, TLSStandIn, agent_workdir, make_ca,
                             open_up)

HERE = Path(__file__).resolve().parent
NPM_DIR = HERE / ".npm-clis"
CLAUDE_VERSION = "2.1.332"
REPLY = "Hello from the stand-in, through the egress proxy."


def install_claude():
    """node_modules/.bin of a --prefix install of claude-code."""
    bindir = NPM_DIR / "node_modules" / ".bin"
    exe = bindir / "claude"
    if exe.exists():
        r = subprocess.run([str(exe), "--version"], capture_output=True,
                           text=True, timeout=60)
        if CLAUDE_VERSION in r.stdout:
            return bindir
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed (apt-get install npm)",
                    pytrace=False)
    NPM_DIR.mkdir(exist_ok=True)
    # npm 11 does not run install scripts unless allowed; claude-code's
    # native binary comes with its platform package and needs none.
    r = subprocess.run([npm, "install", "--prefix", str(NPM_DIR),
                        "--no-audit", "--no-fund",
                        f"@anthropic-ai/claude-code@{CLAUDE_VERSION}"],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 or not exe.exists():
        pytest.fail("npm install @anthropic-ai/claude-code failed (the "
                    "registry unreachable?): " + (r.stderr or r.stdout)[-2000:],
                    pytrace=False)
    return bindir


class MessagesAPI(TLSStandIn):
    """Just enough of Anthropic's Messages API over TLS: every POST to
    /v1/messages answered, streamed (SSE) when asked."""

    def __init__(self, cert, key):
        self.seen = []
        me = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply_json(self, code, obj):
                out = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self):
                me.seen.append(("GET", self.path, dict(self.headers), None))
                self.reply_json(404, {"type": "error", "error": {
                    "type": "not_found_error", "message": "not here"}})

            def do_POST(self):
                n = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                me.seen.append(("POST", self.path, dict(self.headers), body))
                if not self.path.startswith("/v1/messages") or \
                        self.path.startswith("/v1/messages/count_tokens"):
                    if "count_tokens" in self.path:
                        self.reply_json(200, {"input_tokens": 10})
                    else:
                        self.reply_json(404, {"type": "error", "error": {
                            "type": "not_found_error",
                            "message": "not here"}})
                    return
                model = (body or {}).get("model", "claude-test")
                msg = {"id": "msg_cvtest", "type": "message",
                       "role": "assistant", "model": model, "content": [],
                       "stop_reason": None, "stop_sequence": None,
                       "usage": {"input_tokens": 10, "output_tokens": 1}}
                if not (body or {}).get("stream"):
                    msg["content"] = [{"type": "text", "text": REPLY}]
                    msg["stop_reason"] = "end_turn"
                    self.reply_json(200, msg)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()

                def event(name, data):
                    b = (f"event: {name}\ndata: {json.dumps(data)}\n\n"
                         ).encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                    self.wfile.flush()
                event("message_start", {"type": "message_start",
                                        "message": msg})
                event("content_block_start", {
                    "type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}})
                for word in REPLY.split(" "):
                    event("content_block_delta", {
                        "type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta",
                                  "text": word + " "}})
                event("content_block_stop", {"type": "content_block_stop",
                                             "index": 0})
                event("message_delta", {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn",
                              "stop_sequence": None},
                    "usage": {"output_tokens": 12}})
                event("message_stop", {"type": "message_stop"})
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.serve(H, cert, key)


def test_real_claude_through_the_proxy_in_bwrap(homes, tmp_path):
    bindir = install_claude()
    open_up(NPM_DIR)
    ca, cert, key = make_ca(str(tmp_path))
    api = MessagesAPI(cert, key)
    secret = f"sk-ant-api03-cvtest-{uuid.uuid4().hex}"
    try:
        h = homes({"sandbox": {
            "mode": "bwrap", "max_attempts": 1, "timeout_seconds": 180,
            "bwrap": {"user": f"{AGENT_UID}:{AGENT_UID}", "memory": "2g",
                      "limits": "best-effort"},
            "egress": {"mode": "proxy", "ca_file": ca, "providers": {
                "anthropic": {"url": f"https://127.0.0.1:{api.port}"}}}},
            "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
            "supervisor": {"workers": 1}}, start=False)
        wd = agent_workdir(h)
        h.start(env={"ANTHROPIC_API_KEY": secret,
                     "PATH": f"{bindir}:{FAKES}:/usr/local/bin:/usr/bin:"
                             "/bin"})
        mid = h.drop("Say hello.", agent="alpha")
        o = h.wait_outcome(mid, timeout=240)
        seen = [(m, p) for m, p, _, _ in api.seen]
        assert o[0] == "response", (o, seen, h.log()[-3000:])
        assert REPLY in o[1]["message"], o[1]["message"]
        posts = [s for s in api.seen if s[1].startswith("/v1/messages")]
        assert posts, seen
        # The real CLI, by its own user agent.
        agents = {{k.lower(): v for k, v in s[2].items()}.get(
            "user-agent", "") for s in posts}
        assert any(a.startswith("claude-cli/" + CLAUDE_VERSION)
                   for a in agents), agents
        for _, _, headers, _ in api.seen:
            lower = {k.lower(): v for k, v in headers.items()}
            assert lower.get("x-api-key") == secret, lower
            assert "cvtok-" not in json.dumps(headers)
        # What the CLI kept in its home holds no key.
        for root, _, files in os.walk(wd):
            for n in files:
                p = os.path.join(root, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        assert secret.encode() not in f.read(), p
    finally:
        api.close()


CODEX_VERSION = "0.171.0"
CODEX_REPLY = "Hello from the Responses stand-in."


def install_codex():
    bindir = NPM_DIR / "node_modules" / ".bin"
    exe = bindir / "codex"
    if exe.exists():
        r = subprocess.run([str(exe), "--version"], capture_output=True,
                           text=True, timeout=60)
        if CODEX_VERSION in r.stdout:
            return bindir
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed (apt-get install npm)",
                    pytrace=False)
    NPM_DIR.mkdir(exist_ok=True)
    r = subprocess.run([npm, "install", "--prefix", str(NPM_DIR),
                        "--no-audit", "--no-fund",
                        f"@openai/codex@{CODEX_VERSION}"],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 or not exe.exists():
        pytest.fail("npm install @openai/codex failed (the registry "
                    "unreachable?): " + (r.stderr or r.stdout)[-2000:],
                    pytrace=False)
    return bindir


class ResponsesAPI(TLSStandIn):
    """Just enough of OpenAI's Responses API over TLS: the websocket
    attempt refused (codex then posts), POST /v1/responses streamed."""

    def __init__(self, cert, key):
        self.seen = []
        me = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def plain(self, code, text):
                out = text.encode()
                self.send_response(code)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self):
                me.seen.append(("GET", self.path, dict(self.headers), None))
                self.plain(404, "no websocket here")

            def do_POST(self):
                n = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                me.seen.append(("POST", self.path, dict(self.headers), body))
                if self.path != "/v1/responses":
                    self.plain(404, "not here")
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()

                def event(data):
                    b = (f"event: {data['type']}\ndata: {json.dumps(data)}"
                         "\n\n").encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                    self.wfile.flush()
                model = (body or {}).get("model", "gpt-test")
                resp = {"id": "resp_cvtest", "object": "response",
                        "created_at": 1700000000, "status": "in_progress",
                        "model": model, "output": []}
                item = {"id": "msg_cvtest", "type": "message",
                        "status": "in_progress", "role": "assistant",
                        "content": []}
                event({"type": "response.created", "response": resp})
                event({"type": "response.output_item.added",
                       "output_index": 0, "item": item})
                event({"type": "response.content_part.added",
                       "item_id": "msg_cvtest", "output_index": 0,
                       "content_index": 0, "part": {
                           "type": "output_text", "text": "",
                           "annotations": []}})
                for word in CODEX_REPLY.split(" "):
                    event({"type": "response.output_text.delta",
                           "item_id": "msg_cvtest", "output_index": 0,
                           "content_index": 0, "delta": word + " "})
                done = dict(item, status="completed", content=[{
                    "type": "output_text", "text": CODEX_REPLY,
                    "annotations": []}])
                event({"type": "response.output_item.done",
                       "output_index": 0, "item": done})
                event({"type": "response.completed", "response": dict(
                    resp, status="completed", output=[done], usage={
                        "input_tokens": 10,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": 8,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": 18})})
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.serve(H, cert, key)


def test_real_codex_through_the_proxy_in_bwrap(homes, tmp_path):
    bindir = install_codex()
    open_up(NPM_DIR)
    ca, cert, key = make_ca(str(tmp_path))
    api = ResponsesAPI(cert, key)
    secret = f"sk-proj-cvtest-{uuid.uuid4().hex}"
    try:
        h = homes({"sandbox": {
            "mode": "bwrap", "max_attempts": 1, "timeout_seconds": 180,
            # codex's native binary is a sibling package in the prefix's
            # node_modules, which bwrap mode shows as the CLI's install
            # directory (DECISIONS 250): no ro_paths.
            "bwrap": {"user": f"{AGENT_UID}:{AGENT_UID}", "memory": "2g",
                      "limits": "best-effort"},
            "egress": {"mode": "proxy", "ca_file": ca, "providers": {
                "openai": {"url": f"https://127.0.0.1:{api.port}"}}}},
            "agents": {"beta": {"name": "B", "provider": "openai"}},
            "supervisor": {"workers": 1}}, start=False)
        wd = agent_workdir(h, "beta")
        h.start(env={"OPENAI_API_KEY": secret,
                     "PATH": f"{bindir}:{FAKES}:/usr/local/bin:/usr/bin:"
                             "/bin"})
        mid = h.drop("Say hello.", agent="beta")
        o = h.wait_outcome(mid, timeout=240)
        seen = [(m, p) for m, p, _, _ in api.seen]
        assert o[0] == "response", (o, seen, h.log()[-3000:])
        assert CODEX_REPLY in o[1]["message"], o[1]["message"]
        posts = [s for s in api.seen if s[0] == "POST"]
        assert posts and all(s[1] == "/v1/responses" for s in posts), seen
        for _, _, headers, _ in api.seen:
            lower = {k.lower(): v for k, v in headers.items()}
            assert lower.get("authorization") == f"Bearer {secret}", lower
            assert "cvtok-" not in json.dumps(headers)
        for root, _, files in os.walk(wd):
            for n in files:
                p = os.path.join(root, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        assert secret.encode() not in f.read(), p
    finally:
        api.close()


# -- docker mode on Podman ------------------------------------------------
#
# The same CLIs in an image of this machine's own files (cli_image.py: the
# agent-runner image's layout, no registry needed), run by clawvisor's
# docker mode with `runtime_command: podman`, the egress proxy on. The
# image's `claude` and `codex` are wrappers that record the CLI's
# environment, network devices and parent (the bridge) in its working
# directory, then exec the real CLI. The agent's user is the image's
# `agent` (contrib/Dockerfile.agent-runner's uid).
IMAGE_UID = cli_image.AGENT_UID

def podman_home(homes, engine, img, provider, agent, url, ca):  # noqa: F811
    h = homes({"sandbox": {
        "mode": "docker", "max_attempts": 1, "timeout_seconds": 180,
        "runtime_pass_env": ["CLAWVISOR_TEST_TAG"],
        # network "default" as written: the proxy makes it none.
        "docker": {"runtime_command": "podman", "image": img,
                   "network": "default", "memory": "2g", "pids_limit": 512,
                   # claude refuses to skip permissions as root.
                   "user": f"{IMAGE_UID}:{IMAGE_UID}"},
        "egress": {"mode": "proxy", "ca_file": ca,
                   "providers": {provider: {"url": url}}}},
        "agents": {agent: {"name": agent.title(), "provider": provider}},
        "supervisor": {"workers": 1}}, start=False)
    wd = h.workdir(agent)
    wd.mkdir(parents=True, exist_ok=True)
    os.chown(wd, IMAGE_UID, IMAGE_UID)
    return h, wd


def check_inside(h, wd, engine, secret, names):  # noqa: F811
    """The CLI held the token under each of names and never the key, ran
    with a loopback only (--network none) under the bridge; nothing in the
    workspace or the home holds the key; no container is left."""
    env = dict(line.split("=", 1) for line in
               (wd / "cv-env.txt").read_text().splitlines() if "=" in line)
    for n in names:
        assert env.get(n, "").startswith("cvtok-"), (n, env.get(n))
    assert secret not in json.dumps(env)
    assert env.get("HTTPS_PROXY", "").startswith("http://127.0.0.1:"), env
    assert (wd / "cv-netdevs.txt").read_text().split() == ["lo"]
    # The CLI's parent: the bridge clawvisor mounted, on the socket it
    # mounted (common/egress_token.h).
    parent = (wd / "cv-parent.txt").read_text().split()
    assert parent[0] == "/run/clawvisor/bridge", parent
    assert parent[2] == "/run/clawvisor/egress.sock", parent
    for top in (wd, h.path):
        for root, _, files in os.walk(top):
            for n in files:
                p = os.path.join(root, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        assert secret.encode() not in f.read(), p
    assert engine.names(h.path) == []


def test_real_claude_through_the_proxy_in_podman(homes, engine,  # noqa: F811
                                                 tmp_path):
    install_claude()
    install_codex()
    img = cli_image.build(engine, NPM_DIR)
    ca, cert, key = make_ca(str(tmp_path))
    api = MessagesAPI(cert, key)
    secret = f"sk-ant-api03-cvtest-{uuid.uuid4().hex}"
    try:
        h, wd = podman_home(homes, engine, img, "anthropic", "alpha",
                            f"https://127.0.0.1:{api.port}", ca)
        h.start(env={"ANTHROPIC_API_KEY": secret, "DOCKER_HOST": "",
                     "CONTAINERS_CONF": str(engine.conf)})
        mid = h.drop("Say hello.", agent="alpha")
        o = h.wait_outcome(mid, timeout=240)
        seen = [(m, p) for m, p, _, _ in api.seen]
        assert o[0] == "response", (o, seen, h.log()[-3000:])
        assert REPLY in o[1]["message"], o[1]["message"]
        posts = [s for s in api.seen if s[1].startswith("/v1/messages")]
        assert posts, seen
        agents = {{k.lower(): v for k, v in s[2].items()}.get(
            "user-agent", "") for s in posts}
        assert any(a.startswith("claude-cli/" + CLAUDE_VERSION)
                   for a in agents), agents
        for _, _, headers, _ in api.seen:
            lower = {k.lower(): v for k, v in headers.items()}
            assert lower.get("x-api-key") == secret, lower
            assert "cvtok-" not in json.dumps(headers)
        check_inside(h, wd, engine, secret, ["ANTHROPIC_API_KEY"])
    finally:
        api.close()


def test_real_codex_through_the_proxy_in_podman(homes, engine,  # noqa: F811
                                                tmp_path):
    install_claude()
    install_codex()
    img = cli_image.build(engine, NPM_DIR)
    ca, cert, key = make_ca(str(tmp_path))
    api = ResponsesAPI(cert, key)
    secret = f"sk-proj-cvtest-{uuid.uuid4().hex}"
    try:
        h, wd = podman_home(homes, engine, img, "openai", "beta",
                            f"https://127.0.0.1:{api.port}", ca)
        h.start(env={"OPENAI_API_KEY": secret, "DOCKER_HOST": "",
                     "CONTAINERS_CONF": str(engine.conf)})
        mid = h.drop("Say hello.", agent="beta")
        o = h.wait_outcome(mid, timeout=240)
        seen = [(m, p) for m, p, _, _ in api.seen]
        assert o[0] == "response", (o, seen, h.log()[-3000:])
        assert CODEX_REPLY in o[1]["message"], o[1]["message"]
        posts = [s for s in api.seen if s[0] == "POST"]
        assert posts and all(s[1] == "/v1/responses" for s in posts), seen
        for _, _, headers, _ in api.seen:
            lower = {k.lower(): v for k, v in headers.items()}
            assert lower.get("authorization") == f"Bearer {secret}", lower
            assert "cvtok-" not in json.dumps(headers)
        check_inside(h, wd, engine, secret,
                     ["OPENAI_API_KEY", "CODEX_API_KEY"])
    finally:
        api.close()
