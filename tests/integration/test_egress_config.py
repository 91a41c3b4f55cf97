"""
sandbox.egress (SPEC §9, issue 15), the settings layer: what `serve`
refuses at start (exit 78, the error naming the keys), what `sandbox show`
says, and that with the proxy on an invocation is never started while the egress
process is down: it fails as transient, and neither the agent nor the key
ever runs.
"""
import json
import os
import subprocess
import uuid

from conftest import BIN, TIME_SCALE

EX_CONFIG = 78


def cli_json(h, *args):
    r = subprocess.run([BIN, "--home", str(h.path), *args, "--json"],
                       capture_output=True, text=True, timeout=60,
                       env=h.env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def serve_refused(homes, settings):
    """serve on these settings: its exit status and stderr."""
    h = homes(settings, start=False)
    p = h.spawn()
    rc = p.wait(30 * TIME_SCALE)
    return rc, h.stderr_text(p)


def test_proxy_with_bwrap_host_network_is_refused_naming_both(homes):
    rc, err = serve_refused(homes, {"sandbox": {
        "mode": "bwrap", "bwrap": {"network": "host"},
        "egress": {"mode": "proxy"}}})
    assert rc == EX_CONFIG, err
    assert "sandbox.bwrap.network" in err and \
        "sandbox.egress.mode" in err, err


def test_proxy_with_host_or_apple_mode_is_refused(homes):
    for mode in ("host", "apple"):
        rc, err = serve_refused(homes, {"sandbox": {
            "mode": mode, "egress": {"mode": "proxy"}}})
        assert rc == EX_CONFIG, err
        assert f'sandbox.egress.mode: "proxy" needs a docker, podman or ' \
            f'bwrap sandbox, got sandbox.mode "{mode}"' in err, err
    rc, err = serve_refused(homes, {
        "sandbox": {"mode": "docker", "egress": {"mode": "proxy"}},
        "agents": {"loose": {"name": "L", "provider": "anthropic",
                             "sandbox_mode": "host"}}})
    assert rc == EX_CONFIG, err
    assert "agents.loose.sandbox_mode" in err, err


def test_bad_egress_keys_are_refused_by_name(homes):
    for egress, key in (({"mode": "on"}, "sandbox.egress.mode"),
                        ({"allow": ["example.com"]},
                         "sandbox.egress.allow[0]"),
                        ({"providers": {"anthropic": {
                            "url": "http://api.anthropic.com"}}},
                         "sandbox.egress.providers.anthropic.url"),
                        ({"ca_file": "relative.pem"},
                         "sandbox.egress.ca_file")):
        rc, err = serve_refused(homes, {"sandbox": {
            "mode": "bwrap", "egress": egress}})
        assert rc == EX_CONFIG, (egress, err)
        assert key + ":" in err, (egress, err)


def test_sandbox_show_and_fail_closed(homes):
    secret = f"sk-ant-cvtest-{uuid.uuid4().hex}"
    h = homes({"sandbox": {
        "mode": "docker", "max_attempts": 1,
        "docker": {"network": "default"},
        "egress": {"mode": "proxy", "allow": ["registry.npmjs.org:443"],
                   "providers": {"openai": {
                       "url": "https://127.0.0.1:9443/v1"}}}},
        "agents": {"alpha": {"name": "A", "provider": "anthropic"},
                   "sh": {"name": "S", "provider": "command",
                          "command": ["sh", "-c", "{message}"]}}},
        start=False)
    # The egress process cannot make its socket's directory: it exits at
    # every start, and invocations find it down.
    (h.path / "egress").write_text("not a directory\n")
    h.start(env={"ANTHROPIC_API_KEY": secret})
    show = cli_json(h, "sandbox", "show")
    eg = show["sandbox"]["egress"]
    assert eg["mode"] == "proxy"
    assert eg["allow"] == ["registry.npmjs.org:443"]
    assert eg["providers"]["openai"]["url"] == "https://127.0.0.1:9443/v1"
    assert eg["providers"]["anthropic"]["url"] == \
        "https://api.anthropic.com"
    assert eg["sandbox_network"] == "none + the proxy"
    assert eg["ca_file"] is None
    assert show["sandbox"]["docker"]["network"] == "default"

    # With the egress process down neither runs, before anything starts.
    marker = h.workspace / "sh-ran"
    a = h.drop("hello claude", agent="alpha")
    b = h.drop(f"touch {marker}", agent="sh")
    for mid in (a, b):
        rec, _ = h.wait_dead(mid, timeout=30)
        assert rec["errorClass"] == "transient", rec
        assert rec["errorMessage"].startswith("egress: the proxy is not "
                                              "running"), rec
    assert h.calls("hello claude") == []
    assert not marker.exists()
    # The key is nowhere clawvisor wrote.
    for root, _, files in os.walk(h.path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            try:
                with open(p, "rb") as fh:
                    assert secret.encode() not in fh.read(), p
            except (FileNotFoundError, PermissionError):
                pass
