"""portail.https.acme_certificate against the rig's Pebble and BIND: one task from nothing to a deployed cert.

Addresses 127.0.30.N (certN.portail.test). Every scenario runs twice; the second run changes nothing and,
Pebble having no ARI, sends no request to the CA.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .harness import local_inventory, run_playbook

pytestmark = pytest.mark.rig

TASK = "acme_certificate"


def playbook(args: dict) -> str:
    return (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - name: {TASK}\n"
        "      portail.https.acme_certificate: " + json.dumps(args) + "\n"
        "      register: r\n"
    )


def base(rig, account_key: Path, out: Path, names: list[str], **extra) -> dict:
    args = {
        "names": names,
        "acme_directory": rig["PORTAIL_ACME_DIRECTORY"],
        "acme_ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "account_key_src": str(account_key),
        "terms_agreed": True,
        "key_path": str(out / "privkey.pem"),
        "cert_path": str(out / "cert.pem"),
        "chain_path": str(out / "chain.pem"),
        "fullchain_path": str(out / "fullchain.pem"),
    }
    args.update(extra)
    return args


def list_form(args: dict, out: Path, numbers: Iterable[int]) -> dict:
    """`args` turned to the list form: one certificate cN for certN.portail.test (files in out/cN) per number."""
    for k in ("names", "key_path", "cert_path", "chain_path", "fullchain_path"):
        args.pop(k)
    args["certificates"] = [
        {
            "name": f"c{n}",
            "names": [f"cert{n}.portail.test"],
            "key_path": str(out / f"c{n}" / "privkey.pem"),
            "cert_path": str(out / f"c{n}" / "cert.pem"),
            "chain_path": str(out / f"c{n}" / "chain.pem"),
            "fullchain_path": str(out / f"c{n}" / "fullchain.pem"),
        }
        for n in numbers
    ]
    return args


def dns_settings(rig, **extra) -> dict:
    d = {
        "server": rig["PORTAIL_DNS_PRIMARY"],
        "key_name": rig["PORTAIL_TSIG_NAME"],
        "key_secret": rig["PORTAIL_TSIG_SECRET"],
        "key_algorithm": rig["PORTAIL_TSIG_ALGORITHM"],
        "propagation_timeout": 60,
    }
    d.update(extra)
    return d


def txt_values(server: str, name: str) -> set[str]:
    """TXT values at name (CNAME followed by the authoritative answer)."""
    q = dns.message.make_query(name, dns.rdatatype.TXT)
    resp = dns.query.udp(q, server, timeout=3)
    out: set[str] = set()
    for rrset in resp.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            for rd in rrset:
                out.add(b"".join(rd.strings).decode())
    return out


def assert_no_txt(rig, name: str) -> None:
    """Gone from the primary at once, and from the secondary once it has caught up (NOTIFY + IXFR)."""
    assert txt_values(rig["PORTAIL_DNS_PRIMARY"], name) == set()
    deadline = time.monotonic() + 60
    while txt_values(rig["PORTAIL_DNS_SECONDARY"], name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert txt_values(rig["PORTAIL_DNS_SECONDARY"], name) == set()


def run(tmp: Path, args: dict, **kw):
    return run_playbook(playbook(args), tmp, **kw)


def twice(tmp: Path, args: dict):
    """Run the task twice; assert the first changed, the second did not and cost no CA request."""
    first = run(tmp, args)
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-2000:]
    r1 = first.result(TASK)
    assert r1["changed"] is True
    second = run(tmp, args)
    assert second.rc == 0, second.stdout[-3000:]
    r2 = second.result(TASK)
    assert second.changed() == 0
    assert r2["reason"] == "valid"
    assert r2["acme_requests"] == 0  # Pebble has no ARI: decided locally, no directory fetch
    assert r2["serial"] == r1["serial"]
    return r1, r2


def check_deployed(out: Path, names: list[str], result: dict) -> x509.Certificate:
    key_file = out / "privkey.pem"
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert not (out / "privkey.pem.pending").exists()
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    got = [n.lower() for n in san.get_values_for_type(x509.DNSName)] + [
        str(i) for i in san.get_values_for_type(x509.IPAddress)
    ]
    assert sorted(got) == sorted(names)
    assert format(cert.serial_number, "x") == result["serial"]
    full = (out / "fullchain.pem").read_bytes()
    assert full.startswith((out / "cert.pem").read_bytes())
    assert full.endswith((out / "chain.pem").read_bytes())
    return cert


class Nginx:
    """A minimal nginx of our own (own -c config, -p prefix in tmp) serving a webroot on port 80."""

    def __init__(self, tmp: Path, addresses: list[str]) -> None:
        self.prefix = tmp / "nginx"
        self.webroot = tmp / "www"
        (self.prefix / "logs").mkdir(parents=True)
        (self.prefix / "tmp").mkdir()
        self.webroot.mkdir()
        listens = "\n".join(f"    listen {a}:80;" for a in addresses)
        temps = " ".join(
            f"{k}_temp_path {self.prefix / 'tmp'};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            f"user root;\nworker_processes 1;\nerror_log {self.prefix / 'logs/error.log'};\n"
            f"pid {self.prefix / 'nginx.pid'};\nevents {{ worker_connections 64; }}\n"
            f"http {{\n  access_log off;\n  {temps}\n  server {{\n{listens}\n"
            f"    root {self.webroot};\n    default_type text/plain;\n  }}\n}}\n"
        )
        subprocess.run(["nginx", "-p", str(self.prefix), "-c", str(self.conf)], check=True)
        for a in addresses:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection((a, 80), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)

    def stop(self) -> None:
        pid_file = self.prefix / "nginx.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and pid_file.exists():
                time.sleep(0.05)


@pytest.fixture
def nginx_factory(tmp_path):
    started: list[Nginx] = []

    def make(addresses: list[str]) -> Nginx:
        n = Nginx(tmp_path, addresses)
        started.append(n)
        return n

    yield make
    for n in started:
        n.stop()


def challenge_files(webroot: Path) -> list[Path]:
    return list(webroot.rglob("*"))


# --- issuance -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_http01_into_nginx_webroot(rig, account_key, tmp_path, nginx_factory):
    nginx = nginx_factory(["127.0.30.1"])
    out = tmp_path / "certs" / "cert1"  # does not exist yet: created on the host
    args = base(rig, account_key, out, ["cert1.portail.test"], webroot=str(nginx.webroot))
    r1 = twice(tmp_path, args)[0]
    assert r1["reason"] == "missing"
    assert r1["acme_requests"] - r1["acme_retries"] <= 12  # Pebble rejects 5% of nonces: retries vary
    check_deployed(out, ["cert1.portail.test"], r1)
    assert challenge_files(nginx.webroot) == []  # token files and the directories made for them are gone
    store = out / ".portail-privkey.pem.d"
    assert json.loads((store / "current" / "acme.json").read_text())["directory"] == rig["PORTAIL_ACME_DIRECTORY"]
    for name in ("privkey.pem", "cert.pem", "chain.pem", "fullchain.pem"):  # the documented paths: links into it
        assert os.readlink(out / name) == str(store / "current" / name)


@pytest.mark.slow
def test_ip_identifier_over_http01(rig, account_key, tmp_path, nginx_factory):
    nginx = nginx_factory(["127.0.30.2"])
    out = tmp_path / "cert2"
    args = base(rig, account_key, out, ["127.0.30.2"], webroot=str(nginx.webroot), key_type="rsa2048")
    r1 = twice(tmp_path, args)[0]
    check_deployed(out, ["127.0.30.2"], r1)
    assert r1["key_type"] == "rsa2048"


@pytest.mark.slow
def test_dns01_wildcard_and_apex(rig, account_key, tmp_path):
    out = tmp_path / "cert3"
    names = ["*.cert3.portail.test", "cert3.portail.test"]
    args = base(rig, account_key, out, names, challenge="dns-01", dns=dns_settings(rig), key_type="ec384")
    r1 = twice(tmp_path, args)[0]
    check_deployed(out, names, r1)
    assert_no_txt(rig, "_acme-challenge.cert3.portail.test")


@pytest.mark.slow
def test_dns01_through_cname_into_validation_zone(rig, account_key, tmp_path):
    out = tmp_path / "delegated"
    names = ["delegated.portail.test"]
    args = base(rig, account_key, out, names, challenge="dns-01", dns=dns_settings(rig))
    q = dns.message.make_query("_acme-challenge.delegated.portail.test", dns.rdatatype.CNAME)
    cname = dns.query.udp(q, rig["PORTAIL_DNS_PRIMARY"], timeout=3).answer[0][0].target.to_text()
    assert cname.endswith("validation.test.")
    res = run(tmp_path, args)
    r = res.result(TASK)
    # The value is written at the CNAME target, in the validation zone, and removed afterwards.
    assert r["dns_records"] == [
        {"name": "_acme-challenge.delegated.portail.test.", "target": cname, "zone": "validation.test."}
    ]
    assert_no_txt(rig, cname)
    assert res.rc == 0, r["msg"]
    assert r["changed"] is True
    check_deployed(out, names, r)
    again = run(tmp_path, args).result(TASK)
    assert again["changed"] is False
    assert again["acme_requests"] == 0


@pytest.mark.slow
def test_tls_alpn01_on_free_port_443(rig, account_key, tmp_path):
    out = tmp_path / "cert4"
    args = base(rig, account_key, out, ["cert4.portail.test"], challenge="tls-alpn-01", alpn_address="127.0.30.4")
    r1 = twice(tmp_path, args)[0]
    check_deployed(out, ["cert4.portail.test"], r1)
    with pytest.raises(OSError):  # the responder is gone
        socket.create_connection(("127.0.30.4", 443), timeout=1).close()
    assert not list(Path("/tmp").glob("portail-alpn-*"))


@pytest.mark.slow
def test_tls_alpn01_port_taken_fails_clearly(rig, account_key, tmp_path):
    out = tmp_path / "cert14"
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.30.14", 443))
    blocker.listen(1)
    try:
        args = base(rig, account_key, out, ["cert14.portail.test"], challenge="tls-alpn-01", alpn_address="127.0.30.14")
        res = run(tmp_path, args)
    finally:
        blocker.close()
    assert res.rc != 0
    msg = res.result(TASK)["msg"]
    assert "127.0.30.14:443" in msg and "tls-alpn-01" in msg
    assert not out.exists()


@pytest.mark.slow
def test_renewal_when_names_change_and_diff(rig, account_key, tmp_path, nginx_factory):
    nginx = nginx_factory(["127.0.30.5", "127.0.30.6"])
    out = tmp_path / "cert5"
    args = base(rig, account_key, out, ["cert5.portail.test"], webroot=str(nginx.webroot))
    r1 = twice(tmp_path, args)[0]
    args["names"] = ["cert5.portail.test", "cert6.portail.test"]
    changed = run(tmp_path, args, diff=True)
    assert changed.rc == 0, changed.stdout[-3000:]
    r = changed.result(TASK)
    assert r["changed"] is True and r["reason"] == "names_changed"
    assert "cert6.portail.test" in r["reason_msg"]
    assert r["serial"] != r1["serial"]
    assert "cert6.portail.test" in r["diff"]["after"] and "cert6" not in r["diff"]["before"]
    check_deployed(out, args["names"], r)
    previous = out / ".portail-privkey.pem.d" / "v1"  # the backup: the previous version, whole
    assert os.readlink(out / ".portail-privkey.pem.d" / "current") == "v2"
    old = x509.load_pem_x509_certificate((previous / "cert.pem").read_bytes())
    assert format(old.serial_number, "x") == r1["serial"]
    assert (previous / "privkey.pem").exists()
    again = run(tmp_path, args)
    assert again.rc == 0 and again.changed() == 0


@pytest.mark.slow
def test_force_and_key_type_change(rig, account_key, tmp_path):
    out = tmp_path / "cert7"
    args = base(rig, account_key, out, ["cert7.portail.test"], challenge="dns-01", dns=dns_settings(rig))
    twice(tmp_path, args)
    args["key_type"] = "ec384"
    res = run(tmp_path, args)
    r = res.result(TASK)
    assert res.rc == 0 and r["reason"] == "key_type_changed" and r["key_type"] == "ec384"
    args["force"] = True
    res = run(tmp_path, args)
    assert res.rc == 0 and res.result(TASK)["reason"] == "forced"


def test_check_mode_creates_nothing(rig, account_key, tmp_path, nginx_factory):
    nginx = nginx_factory(["127.0.30.8"])
    out = tmp_path / "cert8"
    args = base(rig, account_key, out, ["cert8.portail.test"], webroot=str(nginx.webroot))
    res = run(tmp_path, args, check=True, diff=True)
    assert res.rc == 0, res.stdout[-3000:]
    r = res.result(TASK)
    assert r["changed"] is True and r["reason"] == "missing"
    assert r["acme_requests"] == 0  # no order, not even a directory fetch
    assert "would issue" in r["msg"]
    assert not out.exists()
    assert challenge_files(nginx.webroot) == []
    # and with a certificate in place, check mode reports nothing to do
    twice(tmp_path, args)
    res = run(tmp_path, args, check=True)
    assert res.rc == 0 and res.changed() == 0


@pytest.mark.slow
def test_list_form_concurrent(rig, account_key, tmp_path, nginx_factory):
    nginx = nginx_factory(["127.0.30.9", "127.0.30.10"])
    out = tmp_path / "many"
    args = base(rig, account_key, out, [], webroot=str(nginx.webroot))
    list_form(args, out, (9, 10))
    args["certificates"].append(
        {
            "name": "c11",
            "names": ["cert11.portail.test"],
            "challenge": "dns-01",
            "dns": dns_settings(rig),
            "key_path": str(out / "c11" / "privkey.pem"),
            "cert_path": str(out / "c11" / "cert.pem"),
        }
    )
    first = run(tmp_path, args)
    assert first.rc == 0, first.stdout[-3000:]
    results = {c["name"]: c for c in first.result(TASK)["certificates"]}
    assert all(c["changed"] for c in results.values()) and len(results) == 3
    for n in (9, 10):
        check_deployed(out / f"c{n}", [f"cert{n}.portail.test"], results[f"c{n}"])
    second = run(tmp_path, args)
    assert second.rc == 0 and second.changed() == 0
    assert second.result(TASK)["acme_requests"] == 0


# --- bad input: a clear error, nothing left behind ------------------------------------------------------


BAD_NAMES = [
    (["bad..name.portail.test"], "http-01", "invalid label"),
    (["-lead.portail.test"], "http-01", "invalid label"),
    (["cert20.portail.test;rm-rf"], "http-01", "invalid label"),
    (["cert20.portail.test;rm -rf /"], "http-01", "white space"),
    (["cert20.portail.test\nx"], "http-01", "control characters"),
    (["*.cert20.portail.test"], "http-01", "needs challenge dns-01"),
    (["cert20.*.portail.test"], "dns-01", "leftmost label"),
    (["127.0.30.20"], "dns-01", "cannot be validated with dns-01"),
    (["localhost"], "http-01", "fully qualified"),
]


@pytest.mark.parametrize(("names", "challenge", "expect"), BAD_NAMES)
def test_bad_names_refused_before_contacting_the_ca(rig, account_key, tmp_path, names, challenge, expect):
    out = tmp_path / "bad"
    extra = {"challenge": challenge, "webroot": str(tmp_path)}
    if challenge == "dns-01":
        extra["dns"] = dns_settings(rig)
    res = run(tmp_path, base(rig, account_key, out, names, **extra))
    assert res.rc != 0
    r = res.result(TASK)
    assert expect in r["msg"]
    assert r.get("acme_requests", 0) == 0
    assert not out.exists()


def test_missing_webroot(rig, account_key, tmp_path):
    out = tmp_path / "cert21"
    res = run(tmp_path, base(rig, account_key, out, ["cert21.portail.test"], webroot=str(tmp_path / "nope")))
    assert res.rc != 0
    r = res.result(TASK)
    assert "webroot does not exist" in r["msg"] and "nope" in r["msg"]
    assert r["acme_requests"] == 0
    assert not out.exists()


@pytest.mark.parametrize(
    ("dns_extra", "expect"),
    [
        ({"server": "127.53.0.99", "timeout": 2}, "127.53.0.99"),
        ({"key_secret": "d3Jvbmcgc2VjcmV0IGZvciB0aGUgdGVzdHMhIQ=="}, "TSIG"),
    ],
    ids=["dns-unreachable", "wrong-tsig-secret"],
)
def test_dns_failures_leave_nothing(rig, account_key, tmp_path, dns_extra, expect):
    out = tmp_path / "cert22"
    names = ["cert22.portail.test"]
    args = base(rig, account_key, out, names, challenge="dns-01", dns=dns_settings(rig, **dns_extra))
    res = run(tmp_path, args)
    assert res.rc != 0
    msg = res.result(TASK)["msg"]
    assert "dns-01" in msg and "cert22.portail.test" in msg and expect in msg, msg
    assert "d3Jvbmcgc2VjcmV0" not in res.stdout + res.stderr
    assert not out.exists()  # the pending key and the directory made for it are removed
    assert_no_txt(rig, "_acme-challenge.cert22.portail.test")


@pytest.mark.slow
def test_unreachable_ca(rig, account_key, tmp_path, nginx_factory):
    nginx = nginx_factory(["127.0.30.23"])
    out = tmp_path / "cert23"
    args = base(rig, account_key, out, ["cert23.portail.test"], webroot=str(nginx.webroot))
    args["acme_directory"] = "https://127.0.0.1:1/dir"
    res = run(tmp_path, args)
    assert res.rc != 0
    msg = res.result(TASK)["msg"]
    assert "127.0.0.1:1" in msg
    assert not out.exists()
    assert challenge_files(nginx.webroot) == []


def test_validation_failure_names_identifier_and_problem(rig, account_key, tmp_path):
    # a webroot that nothing serves: Pebble cannot fetch the token from 127.0.30.24:80
    webroot = tmp_path / "unserved"
    webroot.mkdir()
    out = tmp_path / "cert24"
    args = base(rig, account_key, out, ["cert24.portail.test"], webroot=str(webroot), timeout=60)
    res = run(tmp_path, args)
    assert res.rc != 0
    msg = res.result(TASK)["msg"]
    # certificate, step, identifier, the CA's problem type (urn:ietf:params:acme:error:connection) and detail
    r = res.result(TASK)
    assert r["step"] == "validation" and r["problem"]["type"].endswith(":connection"), r
    assert "validation of cert24.portail.test" in msg and "the CA answered connection" in msg, msg
    assert "port 80" in msg, msg
    assert "connection refused" in msg, msg
    assert not out.exists()
    assert challenge_files(webroot) == []


# --- secrets ---------------------------------------------------------------------------------------------


def pem_body(pem: str) -> str:
    return "".join(pem.strip().splitlines()[1:-1])


@pytest.mark.slow
def test_no_secret_in_vvv_output(rig, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    account_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    out = tmp_path / "cert25"
    args = {
        "names": ["cert25.portail.test"],
        "acme_directory": rig["PORTAIL_ACME_EAB_DIRECTORY"],
        "acme_ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "account_key_content": account_pem,
        "eab_kid": rig["PORTAIL_EAB_KID"],
        "eab_hmac_key": rig["PORTAIL_EAB_HMAC_KEY"],
        "contact": ["mailto:admin@portail.test"],
        "terms_agreed": True,
        "challenge": "dns-01",
        "dns": dns_settings(rig),
        "key_path": str(out / "privkey.pem"),
        "cert_path": str(out / "cert.pem"),
        "fullchain_path": str(out / "fullchain.pem"),
    }
    outputs = []
    for _attempt in range(2):
        res = run(tmp_path, args, verbosity=3, json_output=False)
        assert res.rc == 0, res.stdout[-3000:]
        outputs.append(res.stdout + res.stderr)
    text = "\n".join(outputs)
    cert_key = (out / "privkey.pem").read_text()
    for secret in (
        pem_body(account_pem),
        account_pem.strip().splitlines()[1],
        pem_body(cert_key),
        cert_key.strip().splitlines()[1],
        rig["PORTAIL_TSIG_SECRET"],
        rig["PORTAIL_EAB_HMAC_KEY"],
    ):
        assert secret not in text
    assert "changed=1" in outputs[0] and "changed=0" in outputs[1]


def _shell_without_openssl(tmp: Path) -> Path:
    """A /bin/sh wrapper whose PATH has every usual command except openssl (a host without it)."""
    bindir = tmp / "bin-no-openssl"
    bindir.mkdir()
    for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(d) or os.path.islink(d):
            continue
        for name in os.listdir(d):
            if name != "openssl" and not (bindir / name).exists():
                (bindir / name).symlink_to(os.path.join(d, name))
    wrapper = tmp / "sh-no-openssl"
    wrapper.write_text(f'#!/bin/sh\nPATH={bindir}\nexport PATH\nexec /bin/sh "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.slow
def test_host_without_openssl_fails_clearly_and_changes_nothing(rig, account_key, tmp_path, nginx_factory):
    nginx = nginx_factory(["127.0.30.31"])
    out = tmp_path / "cert31"
    wrapper = _shell_without_openssl(tmp_path)
    inv = local_inventory(tmp_path, {"localhost": {"ansible_shell_executable": str(wrapper)}})
    args = base(rig, account_key, out, ["cert31.portail.test"], webroot=str(nginx.webroot))
    first = run(tmp_path, args, inventory=inv)
    assert first.rc != 0
    r = first.result(TASK)
    assert "install openssl" in r["msg"] and r["acme_requests"] == 0, r["msg"]
    assert not out.exists()
    # with openssl back, the same task issues
    second = run(tmp_path, args)
    assert second.rc == 0 and second.changed() == 1
    check_deployed(out, ["cert31.portail.test"], second.result(TASK))


@pytest.mark.slow
def test_drifted_modes_are_repaired_without_an_order(rig, account_key, tmp_path, nginx_factory):
    nginx = nginx_factory(["127.0.30.32"])
    out = tmp_path / "cert32"
    names = ["cert32.portail.test"]
    args = base(rig, account_key, out, names, webroot=str(nginx.webroot))
    r1 = twice(tmp_path, args)[0]
    check_deployed(out, names, r1)
    assert (out / "cert.pem").stat().st_mode & 0o777 == 0o644
    # new modes asked for, and the key's mode drifted: put back, no order, then nothing to do
    args.update(mode="0640", key_mode="0600")
    (out / "privkey.pem").chmod(0o644)
    res = run(tmp_path, args, check=True)
    assert res.rc == 0 and res.changed() == 1 and (out / "privkey.pem").stat().st_mode & 0o777 == 0o644
    res = run(tmp_path, args)
    assert res.rc == 0 and res.changed() == 1 and res.result(TASK)["reason"] == "valid"
    assert res.result(TASK)["acme_requests"] == 0 and res.result(TASK)["serial"] == r1["serial"]
    assert (out / "privkey.pem").stat().st_mode & 0o777 == 0o600
    assert all((out / f).stat().st_mode & 0o777 == 0o640 for f in ("cert.pem", "chain.pem", "fullchain.pem"))
    again = run(tmp_path, args)
    assert again.rc == 0 and again.changed() == 0


# --- pre-flight --------------------------------------------------------------------------------------------


def _set_a_records(rig, name: str, addresses: list[str]) -> None:
    import dns.query
    import dns.tsigkeyring
    import dns.update

    keyring = dns.tsigkeyring.from_text({rig["PORTAIL_TSIG_NAME"]: rig["PORTAIL_TSIG_SECRET"]})
    upd = dns.update.UpdateMessage(rig["PORTAIL_DNS_ZONE"], keyring=keyring, keyalgorithm=rig["PORTAIL_TSIG_ALGORITHM"])
    upd.delete(name + ".", "A")
    for a in addresses:
        upd.add(name + ".", 60, "A", a)
    resp = dns.query.tcp(upd, rig["PORTAIL_DNS_PRIMARY"], timeout=5)
    assert resp.rcode() == 0


def test_preflight_stops_a_pool_member_that_does_not_serve(rig, account_key, tmp_path, nginx_factory):
    # one name, two addresses (a pool of two): only the first serves the challenge path
    name = "pf.portail.test"
    _set_a_records(rig, name, ["127.0.30.201", "127.0.30.202"])
    try:
        nginx = nginx_factory(["127.0.30.201"])
        out = tmp_path / "pf"
        args = base(
            rig, account_key, out, [name], webroot=str(nginx.webroot), preflight_resolvers=[rig["PORTAIL_DNS_PRIMARY"]]
        )
        res = run(tmp_path, args)
        assert res.rc != 0
        r = res.result(TASK)
        assert r["step"] == "preflight", r["msg"]
        assert "127.0.30.202" in r["msg"] and "no failed authorization" in r["msg"], r["msg"]
        assert "127.0.30.201" not in r["msg"]
        assert "problem" not in r and r["changed"] is False
        assert not out.exists() or not (out / "cert.pem").exists()
        assert [p for p in challenge_files(nginx.webroot) if p.is_file()] == []
        # both members serve the challenge path: the pre-flight passes and the CA validates
        nginx.stop()
        both_dir = tmp_path / "both"
        both_dir.mkdir()
        both = Nginx(both_dir, ["127.0.30.201", "127.0.30.202"])
        try:
            res = run(tmp_path, dict(args, webroot=str(both.webroot)))
            assert res.rc == 0, res.stdout[-3000:]
            assert res.result(TASK)["changed"] is True
        finally:
            both.stop()
    finally:
        _set_a_records(rig, name, [])


# --- dns-01 through the HTTP provider (PowerDNS) -------------------------------------------------------------


def pdns_settings(rig, **extra) -> dict:
    d = {
        "provider": "pdns",
        "api_url": rig["PORTAIL_PDNS_API_URL"],
        "api_key": rig["PORTAIL_PDNS_API_KEY"],
        "resolvers": [rig["PORTAIL_PDNS_ADDRESS"]],
        "propagation_timeout": 60,
    }
    d.update(extra)
    return d


@pytest.mark.slow
def test_dns01_wildcard_and_apex_through_powerdns(rig, account_key, tmp_path):
    zone = rig["PORTAIL_PDNS_ZONE"]
    out = tmp_path / "pdns-cert"
    names = [f"*.www.{zone}", f"www.{zone}"]
    args = base(rig, account_key, out, names, challenge="dns-01", dns=pdns_settings(rig))
    r1 = twice(tmp_path, args)[0]
    check_deployed(out, names, r1)
    assert txt_values(rig["PORTAIL_PDNS_ADDRESS"], f"_acme-challenge.www.{zone}") == set()


@pytest.mark.slow
def test_powerdns_wrong_api_key_refused_before_the_order(rig, account_key, tmp_path):
    zone = rig["PORTAIL_PDNS_ZONE"]
    out = tmp_path / "pdns-bad"
    secret = "not-the-key-0123456789"
    args = base(rig, account_key, out, [f"bad.{zone}"], challenge="dns-01", dns=pdns_settings(rig, api_key=secret))
    res = run(tmp_path, args)
    assert res.rc != 0
    r = res.result(TASK)
    assert r["step"] == "preflight" and "no order was created" in r["msg"], r["msg"]
    assert secret not in res.stdout and secret not in res.stderr
    assert not (out / "cert.pem").exists()


# --- dns-01 with the records written by the playbook (provider external, two phases) -------------------------


def external_playbook(args: dict, rig, fail_between: bool = False) -> str:
    """Phase 1, community.general.nsupdate writes the handed-out records, phase 2; records always removed."""
    nsupdate = {
        "server": rig["PORTAIL_DNS_PRIMARY"],
        "key_name": rig["PORTAIL_TSIG_NAME"],
        "key_secret": rig["PORTAIL_TSIG_SECRET"],
        "key_algorithm": rig["PORTAIL_TSIG_ALGORITHM"],
        "type": "TXT",
        "ttl": 30,
    }
    present = dict(
        nsupdate, zone="{{ item.zone }}", record="{{ item.target }}", value="{{ item.value }}", state="present"
    )
    absent = dict(present, state="absent")
    failing = "\n        - ansible.builtin.fail: {msg: injected}" if fail_between else ""
    return f"""- hosts: localhost
  gather_facts: false
  tasks:
    - name: phase1
      portail.https.acme_certificate: {json.dumps(args)}
      register: p1
    - block:
        - name: records
          community.general.nsupdate: {json.dumps(present)}
          loop: "{{{{ p1.dns_records | default([]) }}}}"
          when: p1.resume is defined{failing}
        - name: {TASK}
          portail.https.acme_certificate: {json.dumps(dict(args, resume="{{ p1.resume }}"))}
          when: p1.resume is defined
          register: r
      rescue:
        - name: abort
          portail.https.acme_certificate: {json.dumps(dict(args, resume="{{ p1.resume }}", abort=True))}
        - ansible.builtin.fail: {{msg: "records could not be created"}}
      always:
        - name: remove records
          community.general.nsupdate: {json.dumps(absent)}
          loop: "{{{{ p1.dns_records | default([]) }}}}"
"""


@pytest.mark.slow
def test_dns01_external_provider_two_phases_through_a_cname(rig, account_key, tmp_path):
    out = tmp_path / "ext"
    names = ["delegated.portail.test", "cert25.portail.test"]
    dns = {"provider": "external", "resolvers": [rig["PORTAIL_DNS_PRIMARY"]], "propagation_timeout": 60}
    # a fresh account: Pebble would reuse another test's valid authorization for delegated.portail.test
    fresh = tmp_path / "fresh-account.key"
    fresh.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    args = base(rig, fresh, out, names, challenge="dns-01", dns=dns)
    res = run_playbook(external_playbook(args, rig), tmp_path)
    assert res.rc == 0, res.failures()
    p1 = res.result("phase1")
    targets = {r["target"] for r in p1["dns_records"]}
    # the CNAME of _acme-challenge.delegated.portail.test was followed into validation.test
    assert any(t.endswith(rig["PORTAIL_DNS_ZONE2"] + ".") or t.endswith(rig["PORTAIL_DNS_ZONE2"]) for t in targets), (
        targets
    )
    r = res.result(TASK)
    assert r["changed"] is True and not r.get("failed")
    check_deployed(out, names, r["certificates"][0])
    for rec in p1["dns_records"]:
        assert txt_values(rig["PORTAIL_DNS_PRIMARY"], rec["target"]) == set()
    # nothing due: the second run hands out nothing and changes nothing
    again = run_playbook(external_playbook(args, rig), tmp_path)
    assert again.rc == 0 and again.changed() == 0
    assert "resume" not in again.result("phase1")


def test_dns01_external_failure_between_phases_gives_back_the_key(rig, account_key, tmp_path):
    out = tmp_path / "ext-fail"
    names = ["cert26.portail.test"]
    dns = {"provider": "external", "resolvers": [rig["PORTAIL_DNS_PRIMARY"]], "propagation_timeout": 60}
    args = base(rig, account_key, out, names, challenge="dns-01", dns=dns)
    res = run_playbook(external_playbook(args, rig, fail_between=True), tmp_path)
    assert res.rc != 0
    assert res.result("abort")["changed"] in (True, False) and not res.result("abort").get("failed")
    assert not (out / "cert.pem").exists()
    leftovers = [p.name for p in out.rglob("*") if "pending" in p.name or p.name == "lock"] if out.exists() else []
    assert leftovers == [], leftovers
    assert txt_values(rig["PORTAIL_DNS_PRIMARY"], "_acme-challenge.cert26.portail.test") == set()
