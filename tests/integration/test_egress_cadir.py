"""
The certificates upstream TLS trusts, as a hashed directory (DECISIONS
262): HOME/egress/ca holds every certificate of the system bundle and of
sandbox.egress.ca_file, one file each, named SUBJECTHASH.N as c_rehash
names them (so that libtls reads only the issuers a handshake needs,
instead of parsing the whole bundle at every upstream connection); it is
the egress process's own (0700) and is made again at each reload. That the
handshakes verify through it is what test_egress_ops.py's doctor checks
and every e2e test show.
"""
import os
import stat
import subprocess

from conftest import wait_for
from test_egress_ops import ctl, set_egress, status, tlsd  # noqa: F401

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def pems(path):
    """The certificates of a PEM file, each as its base64 body."""
    out, cur = [], None
    for line in open(path):
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            cur = []
        elif line == "-----END CERTIFICATE-----":
            out.append("".join(cur))
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def subject_hash(path):
    return subprocess.run(["openssl", "x509", "-subject_hash", "-noout",
                           "-in", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_trusted_certificates_as_a_hashed_directory(tlsd):  # noqa: F811
    h = tlsd
    d = h.path / "egress" / "ca"
    st = os.stat(d)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    system = pems(BUNDLE)
    test_ca = pems(h.ca)
    assert len(test_ca) == 1

    def held():
        """What the directory holds; None while the egress process makes
        it again (the configuration it gets after its start, a reload)."""
        try:
            return {f: pems(d / f)[0] for f in os.listdir(d)}
        except (FileNotFoundError, IndexError):
            return None

    def holds(certs):
        got = held()
        return got if got is not None and \
            sorted(got.values()) == sorted(certs) else None
    # Every certificate once, the system's and the test CA, nothing else.
    files = wait_for(lambda: holds(system + test_ca), 10,
                     what="the system's certificates and the test CA")
    # Named as OpenSSL looks them up: the test CA by its subject hash.
    name = [f for f, body in files.items() if body == test_ca[0]]
    assert len(name) == 1
    assert name[0].split(".")[0] == subject_hash(h.ca)
    # A reload without ca_file: made again, the test CA gone.
    s = h.settings
    del s["sandbox"]["egress"]["ca_file"]
    h.write_settings(s)
    assert ctl(h, "reload").returncode == 0
    wait_for(lambda: holds(system), 10,
             what="the directory made again without the test CA")
    # And back with it: handshakes verify again (the doctor's check).
    set_egress(h, ca_file=h.ca)
    wait_for(lambda: holds(system + test_ca), 10, what="the test CA back")
    assert status(h)["egress"]["state"] == "running"
