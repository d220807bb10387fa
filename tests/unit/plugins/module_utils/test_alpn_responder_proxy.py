"""The tls-alpn-01 responder behind nginx's ALPN router: a PROXY protocol header (v1 or v2) may come
before the ClientHello, and the handshake still completes with acme-tls/1. Real processes on loopback."""

from __future__ import annotations

import datetime
import socket
import ssl
import struct
from collections.abc import Iterator

import pytest
from ansible_collections.portail.https.plugins.module_utils._certhost import alpn_start, alpn_stop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAME = "alpn-proxy.portail.test"
ADDRESS = "127.0.0.1"


def challenge_cert() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


@pytest.fixture(scope="module")
def responder() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind((ADDRESS, 0))
        port = probe.getsockname()[1]
    cert, key = challenge_cert()
    started = alpn_start(address=ADDRESS, port=port, certs=[{"sni": NAME, "cert": cert, "key": key}], lifetime=60)
    try:
        yield port
    finally:
        alpn_stop(responder=started["responder"])


def handshake(port: int, preamble: bytes) -> str | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    with socket.create_connection((ADDRESS, port), timeout=10) as sock:
        sock.sendall(preamble)
        with ctx.wrap_socket(sock, server_hostname=NAME) as tls:
            return tls.selected_alpn_protocol()


def proxy_v2(src: str, dst: str, sport: int, dport: int) -> bytes:
    addresses = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


@pytest.mark.parametrize(
    "preamble",
    [
        b"",
        b"PROXY TCP4 198.51.100.7 127.0.0.1 51234 443\r\n",
        b"PROXY TCP6 2001:db8::7 ::1 51234 443\r\n",
        b"PROXY UNKNOWN\r\n",
        proxy_v2("198.51.100.7", "127.0.0.1", 51234, 443),
    ],
    ids=["none", "v1-tcp4", "v1-tcp6", "v1-unknown", "v2"],
)
def test_handshake_with_or_without_proxy_header(responder: int, preamble: bytes) -> None:
    assert handshake(responder, preamble) == "acme-tls/1"


@pytest.mark.parametrize(
    "preamble",
    [b"PROXY " + b"9" * 120 + b"\r\n", b"PRXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00"],
    ids=["v1-too-long", "v1-bad-word", "v2-bad-signature"],
)
def test_garbage_before_the_handshake_is_dropped(responder: int, preamble: bytes) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        handshake(responder, preamble)
    # and the responder still answers the next validation
    assert handshake(responder, b"") == "acme-tls/1"
