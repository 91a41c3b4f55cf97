"""
A DNS resolver that never answers, for the egress process's name lookups:
a fake server on an address of 127.53/16 of its own (parallel runs do not
meet), and a daemon started in a mount namespace of its own where
/etc/resolv.conf (and /etc/hosts, when given) are the test's files.
"""
import json
import os
import socket
import subprocess
import threading

import pytest

from conftest import BIN, wait_for


class HungDNS:
    """Takes every query (counted in .queries) and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            self.addr = "127.53.%d.%d" % tuple(os.urandom(2))
            try:
                self.sock.bind((self.addr, 53))
                break
            except OSError as e:
                err = e
        else:
            pytest.fail(f"cannot bind the fake DNS server on "
                        f"127.53.X.Y:53: {err}")
        self.queries = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                d, _ = self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries.append(d)

    def resolv_conf(self, path, timeout):
        """A resolv.conf naming this server; a lookup gives up after
        timeout seconds."""
        path.write_text(f"nameserver {self.addr}\n"
                        f"options timeout:{timeout} attempts:1\n")
        return path

    def close(self):
        self.sock.close()


def serve_in_namespace(h, env, resolv, hosts=None):
    """Start h's daemon with resolv (and hosts) bind-mounted over the
    system's files in a mount namespace of its own (exec'd through, so the
    pid is the daemon's), and wait for its egress process to run."""
    binds = [(str(resolv), "/etc/resolv.conf")]
    if hosts is not None:
        binds.append((str(hosts), "/etc/hosts"))
    script = " && ".join(f'mount --bind "${2 * i}" "${2 * i + 1}"'
                         for i in range(len(binds))) + \
        f' && shift {2 * len(binds) - 1} && exec "$@"'
    args = [a for b in binds for a in b]
    err = open(h.path / "daemon-ns.stderr", "wb")
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
         *args, BIN, "--home", str(h.path), "serve", "-f"],
        stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=h.env(env),
        cwd=str(h.path))
    err.close()
    p.stderr_path = h.path / "daemon-ns.stderr"
    h.procs.append(p)
    h.proc = p

    def up():
        r = subprocess.run([BIN, "--home", str(h.path), "status", "--json"],
                           capture_output=True, text=True, timeout=60,
                           env=h.env(), stdin=subprocess.DEVNULL)
        assert p.poll() is None, p.stderr_path.read_text()
        return r.returncode == 0 and json.loads(r.stdout)[
            "egress"].get("state") == "running"
    wait_for(up, 30, what="egress running")
    return p
