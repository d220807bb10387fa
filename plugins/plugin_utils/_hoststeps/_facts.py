# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the controller reads out of a certificate, a public key and the acme.json record from the host.

cryptography is imported where used (controller only; the import sanity test runs without it).
"""

from __future__ import annotations

import datetime
import json
import typing as t


def key_type_of(public_key: t.Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ec256", "secp384r1": "ec384"}.get(public_key.curve.name, f"ec-{public_key.curve.name}")
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa{public_key.key_size}"
    return type(public_key).__name__


def public_der(public_key: t.Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return t.cast(
        bytes, public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _utc(cert: t.Any, which: str) -> datetime.datetime:
    value = getattr(cert, f"not_valid_{which}_utc", None)
    if value is None:
        value = getattr(cert, f"not_valid_{which}").replace(tzinfo=datetime.timezone.utc)
    return t.cast(datetime.datetime, value)


def describe_cert(cert: t.Any) -> dict[str, t.Any]:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    try:
        aki = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
        names += [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return {
        "names": names,
        "not_before": _utc(cert, "before").isoformat(),
        "not_after": _utc(cert, "after").isoformat(),
        "serial": format(cert.serial_number, "x"),
        "aki": aki.hex() if aki else None,
        "issuer": cert.issuer.rfc4514_string(),
        "key_type": key_type_of(cert.public_key()),
    }


def describe_pem(pem: bytes, key_der: t.Optional[bytes]) -> dict[str, t.Any]:
    """The first certificate of a PEM file, with matches_key; ValueError when there is none."""
    from cryptography import x509

    certs = x509.load_pem_x509_certificates(pem)
    if not certs:
        raise ValueError("no certificate")
    info = describe_cert(certs[0])
    info["matches_key"] = key_der is not None and public_der(certs[0].public_key()) == key_der
    return info


def public_key_der(pem: bytes) -> t.Optional[tuple[str, bytes]]:
    """(key type, SubjectPublicKeyInfo DER) of a PEM public key, or None."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        return None
    return key_type_of(key), public_der(key)


def parse_meta(data: bytes) -> t.Optional[dict[str, t.Any]]:
    try:
        meta = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeError):
        return None
    return meta if isinstance(meta, dict) else None
