# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate revocation (RFC 8555 section 7.6) by account key or by the certificate's own key."""

from __future__ import annotations

from typing import Any, Optional, Union

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:  # reported by require_cryptography() (keys.py)
    pass

from .errors import AcmeError
from .keys import AccountKey
from .utils import b64u

REASONS = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}


def certificate_der(cert: Union[bytes, str]) -> bytes:
    data = cert.encode("ascii") if isinstance(cert, str) else cert
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data


def revoke(
    client: Any, cert: Union[bytes, str], reason: Optional[int] = None, cert_key: Optional[AccountKey] = None
) -> None:
    """Revoke cert. With cert_key the request is signed with the certificate's key (JWK), else the account."""
    if reason is not None and (reason not in REASONS.values()):
        raise AcmeError(f"invalid revocation reason code {reason}")
    payload: dict[str, Any] = {"certificate": b64u(certificate_der(cert))}
    if reason is not None:
        payload["reason"] = reason
    url = client.directory["revokeCert"]
    if cert_key is not None:
        client.post(url, payload, kind="revokeCert", use_jwk=True, key=cert_key, context="revoking the certificate")
    else:
        client.post(url, payload, kind="revokeCert", context="revoking the certificate")
