"""Helpers for the nginx / Apache role tests: a throwaway CA, curl and openssl probes, config snapshots.

Everything here talks to real servers; nothing is mocked. Addresses are 127.0.20.N only.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class ThrowawayCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem_path: Path

    @classmethod
    def create(cls, directory: Path) -> ThrowawayCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portail.https throwaway test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        pem_path = directory / "ca.pem"
        pem_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert, pem_path)

    def issue(self, names: list[str]) -> tuple[bytes, bytes]:
        """(fullchain PEM, private key PEM) for a leaf certificate covering names."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        fullchain = cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return fullchain, key_pem


def deploy_cert(ca: ThrowawayCA, cert_dir: Path, site: str, names: list[str]) -> bytes:
    """Write <cert_dir>/<site>/{fullchain,privkey,chain}.pem like the certificate role will; return the leaf DER."""
    fullchain, key = ca.issue(names)
    d = cert_dir / site
    d.mkdir(parents=True, exist_ok=True)
    (d / "privkey.pem").write_bytes(key)
    (d / "privkey.pem").chmod(0o600)
    (d / "fullchain.pem").write_bytes(fullchain)
    (d / "chain.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    leaf = x509.load_pem_x509_certificate(fullchain)
    return leaf.public_bytes(serialization.Encoding.DER)


def public_tmpdir(prefix: str) -> Path:
    """A directory the web server's unprivileged workers can read (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str
    http_version: str


def curl(url: str, address: str, *, cafile: Path | None = None, http2: bool = False) -> Response:
    """GET url with curl, resolving its host to address; headers lower-cased (last value wins)."""
    host = url.split("/")[2]
    port = "443" if url.startswith("https:") else "80"
    cmd = ["curl", "-sS", "--max-time", "10", "--resolve", f"{host}:{port}:{address}", "-D", "-"]
    cmd += ["-w", "\n%{http_version}"]
    if cafile:
        cmd += ["--cacert", str(cafile)]
    if http2:
        cmd.append("--http2")
    cmd.append(url)
    # bytes, not text=True: universal newlines would turn the CRLF that separates headers into LF
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode("utf-8", "replace")
    head, rest = out.split("\r\n\r\n", 1) if "\r\n\r\n" in out else (out, "")
    body, version = rest.rsplit("\n", 1) if "\n" in rest else ("", rest)
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, v = line.split(":", 1) if ":" in line else (line, "")
        headers[k.strip().lower()] = v.strip()
    return Response(status, headers, body, version)


def tls_handshake(address: str, name: str, version: str) -> tuple[bool, str]:
    """openssl s_client with only `version` (tls1, tls1_1, tls1_2, tls1_3) enabled; (accepted, output).

    SECLEVEL=0 on the client so that a refusal of TLS 1.0/1.1 really comes from the server.
    """
    cmd = ["openssl", "s_client", "-connect", f"{address}:443", "-servername", name, f"-{version}"]
    if version in ("tls1", "tls1_1"):
        cmd += ["-cipher", "DEFAULT@SECLEVEL=0"]
    proc = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=20, check=False)
    out = proc.stdout + proc.stderr
    accepted = proc.returncode == 0 and "Cipher is (NONE)" not in out and "New, " in out
    return accepted, out


def served_cert_der(address: str, name: str, cafile: Path) -> bytes:
    """The leaf certificate served for name, after verifying it against cafile."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((address, 443), timeout=10) as sock, ctx.wrap_socket(sock, server_hostname=name) as s:
        der = s.getpeercert(binary_form=True)
    assert der is not None
    return der


def listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def wait_listening(address: str, port: int, up: bool = True, attempts: int = 50) -> bool:
    for _attempt in range(attempts):
        if listening(address, port) == up:
            return True
        time.sleep(0.1)
    return False


def tree_digest(root: Path) -> dict[str, str]:
    """path -> content hash (or link target) for every file under root."""
    out: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class ConfigSnapshot:
    """Copy a configuration tree aside and put it back exactly (files, links, modes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.saved = Path(tempfile.mkdtemp(prefix="portail-confsnap-")) / root.name
        shutil.copytree(root, self.saved, symlinks=True)

    def restore(self) -> None:
        shutil.rmtree(self.root)
        shutil.copytree(self.saved, self.root, symlinks=True)
        shutil.rmtree(self.saved.parent)


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


class HttpsLoop:
    """Fetch https://<name>/ again and again from a given source address until stopped; count the outcomes.

    Each fetch is a new TCP + TLS connection (what a visitor's browser does), verified against cafile.
    """

    def __init__(self, address: str, name: str, cafile: Path, source: str) -> None:
        self.address, self.name, self.source = address, name, source
        self.ctx = ssl.create_default_context(cafile=str(cafile))
        self.ok = 0
        self.pause = 0.1  # 10 requests a second: under the default rate limit of the roles
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def fetch(self) -> str:
        with (
            socket.create_connection((self.address, 443), timeout=10, source_address=(self.source, 0)) as sock,
            self.ctx.wrap_socket(sock, server_hostname=self.name) as tls,
        ):
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {self.name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        return data.split(b"\r\n", 1)[0].decode("ascii", "replace")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status = self.fetch()
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(repr(exc))
            else:
                if status.split()[1:2] == ["200"]:
                    self.ok += 1
                else:
                    self.errors.append(status)
            time.sleep(self.pause)

    def __enter__(self) -> HttpsLoop:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
