# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Challenge material: http-01 / dns-01 (RFC 8555 section 8) and tls-alpn-01 (RFC 8737)."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from typing import Optional

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier (RFC 8737)
except ImportError:  # reported by require_cryptography() (keys.py)
    pass

from .utils import b64u

ALPN_PROTOCOL = "acme-tls/1"
HTTP01_PATH = "/.well-known/acme-challenge/"


def key_authorization(token: str, thumbprint: str) -> str:
    return f"{token}.{thumbprint}"


def dns01_value(key_auth: str) -> str:
    """The TXT record value: base64url(SHA-256(key authorization))."""
    return b64u(hashlib.sha256(key_auth.encode("ascii")).digest())


def dns01_name(identifier: str) -> str:
    """_acme-challenge.<name> (a wildcard's '*.' is dropped)."""
    if identifier.startswith("*."):
        identifier = identifier[2:]
    return f"_acme-challenge.{identifier.rstrip('.')}"


def acme_identifier_extension_value(key_auth: str) -> bytes:
    """DER of the acmeIdentifier extension value: OCTET STRING (32 bytes) of SHA-256(key authorization)."""
    return b"\x04\x20" + hashlib.sha256(key_auth.encode("ascii")).digest()


def tls_alpn01_certificate(
    identifier: str,
    key_auth: str,
    key: Optional[ec.EllipticCurvePrivateKey] = None,
    now: Optional[datetime.datetime] = None,
) -> tuple[bytes, bytes]:
    """A self-signed tls-alpn-01 certificate for identifier (DNS name or IP address).

    Returns (certificate PEM, private key PEM); serve it for SNI = identifier (or the reverse DNS name of
    an IP address, RFC 8738) when the client offers ALPN ``acme-tls/1``.
    """
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(identifier))
    except ValueError:
        san = x509.DNSName(identifier)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME tls-alpn-01 challenge")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, acme_identifier_extension_value(key_auth)), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def tls_alpn01_sni(identifier: str) -> str:
    """The SNI the CA sends for identifier (reverse-DNS name for IP addresses, RFC 8738 section 6)."""
    try:
        return ipaddress.ip_address(identifier).reverse_pointer
    except ValueError:
        return identifier
