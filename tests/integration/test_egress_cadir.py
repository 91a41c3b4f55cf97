"""
The certificates upstream TLS trusts, as hashed directories (DECISIONS
262), so that libtls reads only the issuers a handshake needs instead of
parsing the whole bundle at every upstream connection:

- the system's own directory ($SSL_CERT_DIR, else OpenSSL's default,
  /etc/ssl/certs here) is used as it is when it is hashed, and only
  sandbox.egress.ca_file's certificates are written, into HOME/egress/ca
  (0700), named SUBJECTHASH.N as c_rehash names them; made again at each
  reload;
- a system directory that is not hashed: the system bundle is written
  there too;
- a handshake verifies through the system directory alone (a "system"
  directory holding only the test CA, no ca_file) and through HOME's.
"""
import os
import ssl
import stat
import subprocess

from conftest import wait_for
from test_egress_e2e import make_ca
from test_egress_ops import TLSServer, ctl, set_egress, status, tls_checks

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# The system's directory as OpenSSL finds it (the daemon gets this
# environment).
SYSDIR = os.environ.get("SSL_CERT_DIR") or \
    ssl.get_default_verify_paths().openssl_capath


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


def held(d):
    """{file name: certificate} of HOME/egress/ca; None while the egress
    process makes it again."""
    try:
        return {f: pems(d / f)[0] for f in os.listdir(d)}
    except (FileNotFoundError, IndexError):
        return None


def start(homes, tmp_path, env=None, ca_file=True, sysdir=None,
          before=None):
    """A daemon with the proxy on against a TLS server of the test CA's;
    the CA given as ca_file, and/or linked into sysdir (made hashed);
    before(home) runs before the daemon starts."""
    ca, cert, key = make_ca(str(tmp_path))
    if sysdir is not None:
        os.link(ca, sysdir / (subject_hash(ca) + ".0"))
    srv = TLSServer(cert, key)
    e = {"mode": "proxy", "providers": {
        "anthropic": {"url": f"https://127.0.0.1:{srv.port}"}}}
    if ca_file:
        e["ca_file"] = ca
    h = homes({"sandbox": {"mode": "bwrap", "egress": e},
               "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
               "supervisor": {"workers": 1}}, start=False)
    if before is not None:
        before(h)
    h.start(env={"ANTHROPIC_API_KEY": "sk-ant-cvtest-cadir", **(env or {})})
    wait_for(lambda: status(h)["egress"].get("state") == "running", 10,
             what="egress running")
    h.ca, h.srv = ca, srv
    return h


def verified(h):
    checks, _ = tls_checks(h)
    assert len(checks) == 1, checks
    return checks[0]["ok"] and "clawvisor test CA" in checks[0]["detail"]


def test_system_directory_as_it_is_and_ca_file_beside_it(homes, tmp_path):
    h = start(homes, tmp_path)
    try:
        d = h.path / "egress" / "ca"
        st = os.stat(d)
        assert stat.S_ISDIR(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o700
        test_ca = pems(h.ca)
        # ca_file's certificate alone, under its subject hash: the
        # system's are read where they are.
        files = wait_for(lambda: (f := held(d)) and
                         sorted(f.values()) == test_ca and f, 10,
                         what="the test CA alone in HOME/egress/ca")
        assert list(files) == [subject_hash(h.ca) + ".0"]
        assert f"trusted certificates from {SYSDIR}:{d}" in h.log()
        assert verified(h)
        # A reload without ca_file: made again, empty; the handshake no
        # longer verifies.
        s = h.settings
        del s["sandbox"]["egress"]["ca_file"]
        h.write_settings(s)
        assert ctl(h, "reload").returncode == 0
        wait_for(lambda: held(d) == {}, 10, what="HOME/egress/ca empty")
        assert not verified(h)
        # And back.
        set_egress(h, ca_file=h.ca)
        wait_for(lambda: (f := held(d)) and sorted(f.values()) == test_ca,
                 10, what="the test CA back")
        assert verified(h)
    finally:
        h.srv.close()


def test_unhashed_system_directory_gets_the_bundle_written(homes, tmp_path):
    empty = tmp_path / "no-hashes"
    empty.mkdir()
    (empty / "README").write_text("not a hashed directory\n")
    h = start(homes, tmp_path, env={"SSL_CERT_DIR": str(empty)})
    try:
        d = h.path / "egress" / "ca"
        want = sorted(pems(BUNDLE) + pems(h.ca))
        wait_for(lambda: (f := held(d)) and sorted(f.values()) == want, 30,
                 what="the system bundle and the test CA written")
        assert f"trusted certificates from {d}" in h.log()
        assert verified(h)
    finally:
        h.srv.close()


def test_verified_through_the_system_directory_alone(homes, tmp_path):
    """No ca_file; $SSL_CERT_DIR a hashed directory that holds the test
    CA: the handshake verifies, so the system directory is the one read."""
    sysdir = tmp_path / "system-certs"
    sysdir.mkdir()
    h = start(homes, tmp_path, env={"SSL_CERT_DIR": str(sysdir)},
              ca_file=False, sysdir=sysdir)
    try:
        assert verified(h)
        assert held(h.path / "egress" / "ca") == {}
        assert f"trusted certificates from {sysdir}" in h.log()
    finally:
        h.srv.close()


def test_directory_that_cannot_be_made_certificates_in_memory(homes,
                                                              tmp_path):
    """HOME/egress/ca taken by a file: the certificates (the system
    bundle and ca_file) go in memory, said in the log, and a handshake
    still verifies against ca_file's CA."""
    def squat(h):
        (h.path / "egress").mkdir(mode=0o700, exist_ok=True)
        (h.path / "egress" / "ca").write_text("not a directory\n")
    h = start(homes, tmp_path, before=squat)
    try:
        d = h.path / "egress" / "ca"
        log = h.log()
        assert f"egress: CA directory {d}: " in log, log
        assert "egress: trusted certificates in memory (" in log, log
        assert "trusted certificates from" not in log, log
        assert verified(h)
        assert d.read_text() == "not a directory\n"
    finally:
        h.srv.close()
