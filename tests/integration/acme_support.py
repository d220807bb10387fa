"""Helpers for the ACME engine tests and bench: an http-01 responder on 127.0.10.N:80, CSRs, clients."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PREFIX = "/.well-known/acme-challenge/"


class Http01Responder:
    """Threaded HTTP servers on port 80 of the given addresses answering the tokens in self.tokens."""

    def __init__(self, addresses: Iterable[str]) -> None:
        self.tokens: dict[str, str] = {}
        self.hits = 0
        self._lock = threading.Lock()
        self.servers: list[ThreadingHTTPServer] = []
        self.threads: list[threading.Thread] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path[len(PREFIX) :] if self.path.startswith(PREFIX) else None
                with outer._lock:
                    outer.hits += 1
                    body = outer.tokens.get(token or "")
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        for addr in addresses:
            ThreadingHTTPServer.allow_reuse_address = True
            srv = ThreadingHTTPServer((addr, 80), Handler)
            srv.daemon_threads = True
            self.servers.append(srv)
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            t.start()
            self.threads.append(t)

    def publish(self, challenge: Any) -> None:
        with self._lock:
            self.tokens[challenge.token] = challenge.key_authorization

    def cleanup(self, challenge: Any) -> None:
        with self._lock:
            self.tokens.pop(challenge.token, None)

    def close(self) -> None:
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()

    def __enter__(self) -> Http01Responder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_csr(names: list[str], key: ec.EllipticCurvePrivateKey | None = None) -> tuple[bytes, Any]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]) if len(names[0]) < 64 else x509.Name([])
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER), key


def acme_name(n: int) -> str:
    return f"acme{n}.portail.test"


def acme_addr(n: int) -> str:
    return f"127.0.10.{n}"
