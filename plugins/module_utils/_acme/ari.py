# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACME Renewal Information (RFC 9773)."""

from __future__ import annotations

import datetime
import hashlib
import random
from typing import Any, Optional, Union

try:
    from cryptography import x509
except ImportError:  # reported by require_cryptography() (keys.py)
    pass

from .errors import AcmeError, UnsupportedError
from .utils import b64u, parse_timestamp, utcnow


def _load(cert: Union[x509.Certificate, bytes, str]) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    data = cert.encode("ascii") if isinstance(cert, str) else cert
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def serial_der_bytes(serial: int) -> bytes:
    """Content octets of the DER INTEGER encoding of a (positive) serial number."""
    return serial.to_bytes((serial.bit_length() + 8) // 8, "big")


def cert_id_from(aki: bytes, serial: int) -> str:
    return f"{b64u(aki)}.{b64u(serial_der_bytes(serial))}"


def cert_id(cert: Union[x509.Certificate, bytes, str]) -> str:
    """RFC 9773 section 4.1 certificate identifier: base64url(AKI keyIdentifier) '.' base64url(serial)."""
    c = _load(cert)
    try:
        aki = c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise AcmeError("the certificate has no Authority Key Identifier: no ARI certificate ID") from None
    if not aki.key_identifier:
        raise AcmeError("the certificate's Authority Key Identifier has no keyIdentifier")
    return cert_id_from(aki.key_identifier, c.serial_number)


class RenewalInfo:
    """A suggested renewal window and the point this client picked in it (RFC 9773 section 4.2).

    The point is uniformly distributed over the window, so a fleet's renewals spread over it instead of
    bunching on its first day, and it is stable: it is drawn from a generator seeded with the certificate
    ID and the window, so every run of a scheduled renewal (every few hours) picks the same point for the
    same window, and a new window (the CA moved it) gives a new point.
    """

    def __init__(
        self,
        cert_id: str,
        start: datetime.datetime,
        end: datetime.datetime,
        explanation_url: Optional[str] = None,
        retry_after: Optional[float] = None,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.cert_id = cert_id
        self.start = start
        self.end = end
        self.explanation_url = explanation_url
        self.retry_after = retry_after
        if rng is None:
            seed = hashlib.sha256(f"{cert_id}|{start.isoformat()}|{end.isoformat()}".encode()).digest()
            rng = random.Random(int.from_bytes(seed[:8], "big"))  # noqa: S311 - spreading, not secrecy
        span = max(0.0, (end - start).total_seconds())
        self.selected = start + datetime.timedelta(seconds=rng.uniform(0, span))

    @classmethod
    def from_document(cls, cert_id: str, data: Any, retry_after: Optional[float] = None) -> RenewalInfo:
        window = data.get("suggestedWindow") if isinstance(data, dict) else None
        start = parse_timestamp((window or {}).get("start"))
        end = parse_timestamp((window or {}).get("end"))
        if start is None or end is None or end < start:
            raise AcmeError(f"the CA's renewal information for {cert_id} has no valid suggestedWindow")
        return cls(cert_id, start, end, data.get("explanationURL"), retry_after)

    def should_renew(self, now: Optional[datetime.datetime] = None) -> bool:
        """True when the picked point in the window has passed (always true once the window is past)."""
        return (now or utcnow()) >= self.selected

    def to_dict(self) -> dict[str, Any]:
        return {
            "cert_id": self.cert_id,
            "window_start": self.start.isoformat(),
            "window_end": self.end.isoformat(),
            "selected": self.selected.isoformat(),
            "explanation_url": self.explanation_url,
            "retry_after": self.retry_after,
        }


class Ari:
    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def supported(self) -> bool:
        return bool(self.client.directory.renewal_info)

    def renewal_info(
        self, cert: Union[x509.Certificate, bytes, str], rng: Optional[random.Random] = None
    ) -> RenewalInfo:
        info = self.fetch(cert_id(cert))
        if rng is not None:
            info = RenewalInfo(info.cert_id, info.start, info.end, info.explanation_url, info.retry_after, rng)
        return info

    def fetch(self, cid: str) -> RenewalInfo:
        """The renewalInfo of a certificate ID (section 4.1), with the CA's Retry-After."""
        base = self.client.directory.renewal_info
        if not base:
            raise UnsupportedError(f"the CA {self.client.directory_url} does not offer renewal information (ARI)")
        resp = self.client.http("GET", base.rstrip("/") + "/" + cid, kind="renewalInfo")
        if resp.status != 200:
            raise self.client._error(resp, context="fetching renewal information")
        return RenewalInfo.from_document(cid, resp.json(), resp.retry_after)
