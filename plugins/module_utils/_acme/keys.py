# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Account keys, JWK (RFC 7517/7518), thumbprints (RFC 7638) and JWS signing (RFC 7515)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Optional, Union

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError as exc:  # the modules report it with missing_required_lib()
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: Optional[ImportError] = exc
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

from .errors import AcmeError
from .utils import b64u, b64u_decode, int_bytes

PrivateKey = Any  # ec.EllipticCurvePrivateKey or rsa.RSAPrivateKey

_CURVES = {
    "secp256r1": ("P-256", "ES256", "SHA256", 32),
    "secp384r1": ("P-384", "ES384", "SHA384", 48),
}


def require_cryptography() -> None:
    """Raise AcmeError when the cryptography library is missing (the engine cannot work without it)."""
    if not HAS_CRYPTOGRAPHY:
        raise AcmeError(f"the ACME engine needs the Python cryptography library: {CRYPTOGRAPHY_IMPORT_ERROR}")


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")


class AccountKey:
    """A private key able to sign ACME JWS: EC P-256 (ES256), P-384 (ES384) or RSA >= 2048 (RS256)."""

    def __init__(self, key: PrivateKey) -> None:
        require_cryptography()
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name not in _CURVES:
                raise AcmeError(f"unsupported EC curve {key.curve.name} for an ACME account key (use P-256 or P-384)")
            crv, alg, hash_cls, size = _CURVES[key.curve.name]
            nums = key.public_key().public_numbers()
            self.alg = alg
            self._hash = getattr(hashes, hash_cls)
            self._size = size
            self.jwk: dict[str, str] = {
                "crv": crv,
                "kty": "EC",
                "x": b64u(int_bytes(nums.x, size)),
                "y": b64u(int_bytes(nums.y, size)),
            }
        elif isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 2048:
                raise AcmeError("RSA account keys must have at least 2048 bits")
            rsa_nums = key.public_key().public_numbers()
            self.alg = "RS256"
            self._hash = hashes.SHA256
            self._size = 0
            self.jwk = {"e": b64u(int_bytes(rsa_nums.e)), "kty": "RSA", "n": b64u(int_bytes(rsa_nums.n))}
        else:
            raise AcmeError("unsupported account key type (use an EC P-256/P-384 or RSA key)")
        self.key = key
        self.thumbprint = jwk_thumbprint(self.jwk)

    @classmethod
    def from_pem(cls, data: Union[bytes, str], password: Optional[bytes] = None) -> AccountKey:
        require_cryptography()
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise AcmeError(f"cannot load the account key: {exc}") from None
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise AcmeError("unsupported account key type (use an EC P-256/P-384 or RSA key)")
        return cls(key)

    @classmethod
    def generate(cls, kind: str = "ec256") -> AccountKey:
        require_cryptography()
        if kind == "ec256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if kind == "ec384":
            return cls(ec.generate_private_key(ec.SECP384R1()))
        if kind.startswith("rsa"):
            bits = int(kind[3:] or 2048)
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits))
        raise AcmeError(f"unknown key type {kind!r}")

    def private_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            der = self.key.sign(data, ec.ECDSA(self._hash()))
            r, s = decode_dss_signature(der)
            return int_bytes(r, self._size) + int_bytes(s, self._size)
        return self.key.sign(data, padding.PKCS1v15(), self._hash())

    def jws(self, url: str, payload: Optional[Any], nonce: Optional[str], kid: Optional[str] = None) -> bytes:
        """Flattened JWS JSON serialization. payload None means POST-as-GET (empty payload)."""
        protected: dict[str, Any] = {"alg": self.alg, "url": url}
        if nonce is not None:
            protected["nonce"] = nonce
        if kid:
            protected["kid"] = kid
        else:
            protected["jwk"] = self.jwk
        return json_bytes(self.jws_object(protected, payload))

    def jws_object(self, protected: dict[str, Any], payload: Optional[Any]) -> dict[str, str]:
        p64 = b64u(json_bytes(protected))
        body64 = "" if payload is None else b64u(json_bytes(payload))
        sig = self.sign(f"{p64}.{body64}".encode("ascii"))
        return {"protected": p64, "payload": body64, "signature": b64u(sig)}


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url) of a public JWK."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "oct": ("k", "kty")}[jwk["kty"]]
    canon = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canon.encode("utf-8")).digest())


def eab_jws(jwk: dict[str, str], kid: str, hmac_key: str, url: str, alg: str = "HS256") -> dict[str, str]:
    """RFC 8555 section 7.3.4 externalAccountBinding: the account JWK MACed with the CA-issued key."""
    digests = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    if alg not in digests:
        raise AcmeError(f"unsupported EAB MAC algorithm {alg}")
    try:
        key = b64u_decode(hmac_key)
    except (ValueError, TypeError):
        raise AcmeError("the EAB HMAC key is not valid base64url") from None
    p64 = b64u(json_bytes({"alg": alg, "kid": kid, "url": url}))
    body64 = b64u(json_bytes(jwk))
    mac = hmac.new(key, f"{p64}.{body64}".encode("ascii"), digests[alg]).digest()
    return {"protected": p64, "payload": body64, "signature": b64u(mac)}


def public_jwk(public_key: Any) -> dict[str, str]:
    """The public JWK (RFC 7638 members only) of an EC P-256/P-384/P-521 or RSA public key."""
    require_cryptography()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        sizes = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48), "secp521r1": ("P-521", 66)}
        if public_key.curve.name not in sizes:
            raise AcmeError(f"unsupported EC curve {public_key.curve.name}")
        crv, size = sizes[public_key.curve.name]
        nums = public_key.public_numbers()
        return {"crv": crv, "kty": "EC", "x": b64u(int_bytes(nums.x, size)), "y": b64u(int_bytes(nums.y, size))}
    if isinstance(public_key, rsa.RSAPublicKey):
        rnums = public_key.public_numbers()
        return {"e": b64u(int_bytes(rnums.e)), "kty": "RSA", "n": b64u(int_bytes(rnums.n))}
    raise AcmeError("only EC and RSA keys have an ACME JWK")


def thumbprint_from_pem(data: Union[bytes, str], password: Optional[bytes] = None) -> str:
    """RFC 7638 thumbprint of a PEM private key, public key or certificate (the account key's, for
    stateless http-01 responders: key authorization = token '.' thumbprint)."""
    require_cryptography()
    from cryptography import x509

    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if b"PRIVATE KEY-----" in raw:
            public = serialization.load_pem_private_key(raw, password=password).public_key()
        elif b"CERTIFICATE-----" in raw:
            public = x509.load_pem_x509_certificate(raw).public_key()
        elif b"PUBLIC KEY-----" in raw:
            public = serialization.load_pem_public_key(raw)
        else:
            raise AcmeError("not a PEM private key, public key or certificate")
    except (ValueError, TypeError):
        # never echo key material
        raise AcmeError("cannot read the PEM data (unsupported format, or encrypted without the passphrase)") from None
    return jwk_thumbprint(public_jwk(public))
