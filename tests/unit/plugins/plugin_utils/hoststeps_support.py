"""Helpers for the host-step tests: run the generated scripts with /bin/sh as root, and act as an attacker."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import ShellHost
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAMES = ("a.portail.test",)


class Recorder:
    """execute() for ShellHost: /bin/sh -c SCRIPT as root; keeps the scripts it ran."""

    def __init__(self, env: dict | None = None) -> None:
        self.env = env
        self.scripts: list[str] = []

    def __call__(self, script: str, data: bytes) -> tuple[int, str, str]:
        self.scripts.append(script)
        p = subprocess.run(["/bin/sh", "-c", script], input=data, capture_output=True, env=self.env, check=False)
        return p.returncode, p.stdout.decode("utf-8", "surrogateescape"), p.stderr.decode("utf-8", "surrogateescape")


def host(run_id: str = "run-aaaaaaaaaaaa", check: bool = False, **kw) -> ShellHost:
    return ShellHost(Recorder(kw.pop("env", None)), lambda _n, _a: {}, check, run_id, **kw)


def as_nobody(cmd: str) -> None:
    """The attacker: an unprivileged account running a shell command."""
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/bin/sh", "-c", cmd], check=True)


def nobody_ids() -> tuple[int, int]:
    import grp
    import pwd

    return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid


def paths(out: Path) -> dict:
    return {
        "key_path": str(out / "privkey.pem"),
        "cert_path": str(out / "cert.pem"),
        "chain_path": str(out / "chain.pem"),
        "fullchain_path": str(out / "fullchain.pem"),
    }


def inspect_args(out: Path, **extra) -> dict:
    args = dict(paths(out), webroot=[], names=list(NAMES), key_type="ec256", prepare_if_due=True, fix_attributes=True)
    args.update(mode="0644", key_mode="0600")
    args.update(extra)
    return args


_CA_KEY = ec.generate_private_key(ec.SECP256R1())


def issue(public_key, names=NAMES, days: int = 90) -> tuple[str, str]:
    """(leaf PEM, chain PEM) for public_key, signed by a test CA."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portail test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(_CA_KEY.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(_CA_KEY, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(_CA_KEY.public_key()), critical=False)
        .sign(_CA_KEY, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return leaf.public_bytes(pem).decode(), ca.public_bytes(pem).decode()


def issue_for_csr(csr_pem: str, names=NAMES) -> tuple[str, str]:
    return issue(x509.load_pem_x509_csr(csr_pem.encode()).public_key(), names)


def deploy_args(out: Path, cert: str, chain: str, **extra) -> dict:
    args = dict(paths(out), cert_pem=cert, chain_pem=chain, mode="0644", key_mode="0600", meta={"directory": "x"})
    args.update(files=[], created_dirs=[])
    args.update(extra)
    return args


def issue_once(out: Path, run_id: str = "run-first000001") -> dict:
    """A first issuance through the steps; returns the deploy result."""
    h = host(run_id)
    state = h("inspect", inspect_args(out))
    cert, chain = issue_for_csr(state["prepared"]["csr"])
    return h("deploy", deploy_args(out, cert, chain))


def spki(pem: bytes, private: bool) -> bytes:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    if private:
        key = serialization.load_pem_private_key(pem, None).public_key()
    else:
        key = x509.load_pem_x509_certificate(pem).public_key()
    return key.public_bytes(serialization.Encoding.DER, fmt)


def served_pair_matches(out: Path) -> bool | None:
    """What a web server would load through the documented paths: True/False, None when a file is missing."""
    try:
        key, cert, full = ((out / n).read_bytes() for n in ("privkey.pem", "cert.pem", "fullchain.pem"))
    except FileNotFoundError:
        return None
    return spki(key, True) == spki(cert, False) == spki(full, False)


def legacy_files(out: Path) -> None:
    """Today's layout: plain files (key + certificate that match)."""
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert, chain = issue(key.public_key())
    (out / "privkey.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(out / "privkey.pem", 0o600)
    (out / "cert.pem").write_text(cert)
    (out / "chain.pem").write_text(chain)
    (out / "fullchain.pem").write_text(cert + chain)
