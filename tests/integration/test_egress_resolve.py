"""
The egress process's name lookups in two lanes (DECISIONS 261): a
sandbox's CONNECTs to names that hang (an allowed name whose resolver
never answers) cannot hold up the lookup of a provider's name, which
every invocation needs. The daemon runs in a mount namespace where
/etc/resolv.conf names a DNS server that never answers and /etc/hosts
holds the provider's name; more CONNECT lookups hang than run at once in
a lane (RESOLVE_MAX 8); an invocation's provider request then gets its
reply while every one of them still hangs.
"""
import socket

import pytest

from conftest import FAKES, wait_for
from hung_dns import HungDNS, serve_in_namespace
from test_egress_e2e import (AGENT_UID, StandIn, agent_workdir,
                             fake_claude_bin, make_ca)
from test_egress_ops import status

PROVIDER = "provider.clawvisor-test.example"
HANG = "hang.clawvisor-test.example"


def test_hung_connect_lookups_do_not_hold_up_the_provider(homes, tmp_path):
    dns = HungDNS()
    # Long enough that no hung lookup ends during the test, even under
    # valgrind; the test never waits for it.
    resolv = dns.resolv_conf(tmp_path / "resolv.conf", 30)
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {PROVIDER}\n")
    ca, cert, key = make_ca(str(tmp_path), names=[PROVIDER])
    bindir = fake_claude_bin(tmp_path)
    h = homes({"sandbox": {
        "mode": "bwrap", "max_attempts": 1, "timeout_seconds": 120,
        "bwrap": {"user": f"{AGENT_UID}:{AGENT_UID}", "memory": "512m",
                  "limits": "best-effort"},
        "env_allowlist": ["STANDIN_PORT"],
        "egress": {"mode": "proxy", "ca_file": ca, "max_connections": 64,
                   "allow": [f"{HANG}:443"]}},
        "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
        "supervisor": {"workers": 1}}, start=False)
    wd = agent_workdir(h)
    standin = StandIn(cert, key, str(wd))
    hung = []
    try:
        s = h.settings
        s["sandbox"]["egress"]["providers"] = {"anthropic": {
            "url": f"https://{PROVIDER}:{standin.port}"}}
        h.write_settings(s)
        serve_in_namespace(h, {
            "ANTHROPIC_API_KEY": "sk-ant-cvtest-lanes",
            "STANDIN_PORT": str(standin.port),
            "PATH": f"{bindir}:{FAKES}:/usr/local/bin:/usr/bin:/bin"},
            resolv, hosts)
        sock = str(h.path / "egress" / "proxy.sock")
        # Every CONNECT lookup slot taken, and two more waiting.
        for i in range(10):
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(120)
            c.connect(sock)
            c.sendall(f"CONNECT {HANG}:443 HTTP/1.1\r\nHost: {HANG}:443"
                      f"\r\n\r\n".encode())
            hung.append(c)
        wait_for(lambda: len(dns.queries) > 0, 30,
                 what="a query at the fake DNS")
        wait_for(lambda: status(h)["egress"]["connectionsOpen"] == 10, 30,
                 what="10 connections open")
        # The provider's name is looked up in a lane of its own (from
        # /etc/hosts, at once): the reply arrives.
        mid = h.drop("hello past the hung lookups", agent="alpha")
        o = h.wait_outcome(mid, timeout=120)
        assert o[0] == "response", (o, h.log()[-3000:])
        assert o[1]["message"].strip() == "streamed through egress"
        assert len(standin.seen) == 1
        # ... while every hung CONNECT still waits for its lookup: the
        # provider's did not wait for these to end.
        for c in hung:
            c.setblocking(False)
            with pytest.raises(BlockingIOError):
                c.recv(1)
    finally:
        for c in hung:
            c.close()
        standin.close()
        dns.close()
