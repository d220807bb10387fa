# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ACME side of portail.https.acme_certificate (controller only).

``EngineSession`` implements the ``AcmeSession`` protocol of ``_certificate_run``: a lazily fetched
directory, a nonce pool fed by every response, one account lookup per task, orders, challenges, bounded
polling (Retry-After honoured, overall deadline), finalize, download with preferred chain, ARI
renewalInfo and a request counter. Thread-safe: the list form shares one session between threads.

It is a small self-contained client so that this plugin does not wait on the shared engine
(plugins/module_utils/_acme/); it can become an adapter over that engine without changing callers.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import ssl
import threading
import time
import typing as t
import urllib.error
from email.utils import parsedate_to_datetime

from ansible.module_utils.urls import open_url
from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import Challenge

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.x509.oid import NameOID, ObjectIdentifier
except ImportError as exc:  # pragma: no cover - reported when a session is made
    CRYPTOGRAPHY_IMPORT_ERROR: t.Optional[ImportError] = exc
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31"
USER_AGENT = "portail.https-acme/0.1"


class AcmeError(Exception):
    """A CA problem document (RFC 7807) or a transport error, printed with type, detail and subproblems."""

    def __init__(self, message: str, problem: t.Optional[dict[str, t.Any]] = None, status: int = 0) -> None:
        super().__init__(message)
        self.problem = problem or {}
        self.status = status

    @property
    def type(self) -> str:
        return str(self.problem.get("type", ""))


def describe_problem(problem: t.Mapping[str, t.Any]) -> str:
    text = f"{problem.get('type', 'error')}: {problem.get('detail', '')}".strip()
    for sub in problem.get("subproblems") or []:
        ident = (sub.get("identifier") or {}).get("value", "?")
        text += f"; {ident}: {sub.get('type', '')}: {sub.get('detail', '')}"
    return text


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Key:
    """Account key: JWK, thumbprint and JWS signature (ES256/ES384/ES512/RS256)."""

    def __init__(self, pem: str) -> None:
        try:
            key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        except (ValueError, TypeError):
            # never include the key material in the message
            raise AcmeError("the account key is not an unencrypted PEM private key") from None
        self._key = key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            size = {"secp256r1": 32, "secp384r1": 48, "secp521r1": 66}.get(key.curve.name)
            if size is None:
                raise AcmeError(f"unsupported account key curve {key.curve.name}")
            self._size = size
            self.alg = {32: "ES256", 48: "ES384", 66: "ES512"}[size]
            self._hash: t.Any = {32: hashes.SHA256, 48: hashes.SHA384, 66: hashes.SHA512}[size]()
            nums = key.public_key().public_numbers()
            self.jwk = {
                "crv": {32: "P-256", 48: "P-384", 66: "P-521"}[size],
                "kty": "EC",
                "x": b64u(nums.x.to_bytes(size, "big")),
                "y": b64u(nums.y.to_bytes(size, "big")),
            }
        elif isinstance(key, rsa.RSAPrivateKey):
            self.alg = "RS256"
            self._hash = hashes.SHA256()
            nums = key.public_key().public_numbers()
            self.jwk = {
                "e": b64u(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")),
                "kty": "RSA",
                "n": b64u(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
            }
        else:
            raise AcmeError("the account key must be an EC (P-256/P-384/P-521) or RSA key")
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode("ascii")
        self.thumbprint = b64u(hashlib.sha256(canonical).digest())

    def __repr__(self) -> str:
        return f"_Key({self.alg}, {self.thumbprint})"

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(self._hash)))
            return r.to_bytes(self._size, "big") + s.to_bytes(self._size, "big")
        return t.cast(bytes, self._key.sign(data, padding.PKCS1v15(), self._hash))


class _Response:
    def __init__(self, status: int, headers: t.Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict[str, t.Any]:
        return t.cast(dict[str, t.Any], json.loads(self.body.decode("utf-8")))

    def links(self, rel: str) -> list[str]:
        out = []
        for value in self.headers.get_all("Link") or []:
            for part in value.split(","):
                if f'rel="{rel}"' in part or f"rel={rel}" in part:
                    out.append(part.split(";")[0].strip().strip("<>"))
        return out

    def retry_after(self, default: float) -> float:
        value = self.headers.get("Retry-After")
        if not value:
            return default
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return default


class EngineSession:
    def __init__(
        self,
        *,
        directory_url: str,
        account_key_pem: str,
        contact: t.Optional[list[str]] = None,
        terms_agreed: bool = False,
        eab_kid: t.Optional[str] = None,
        eab_hmac_key: t.Optional[str] = None,
        eab_alg: str = "HS256",
        ca_bundle: t.Optional[str] = None,
        validate_certs: bool = True,
        http_timeout: float = 20.0,
    ) -> None:
        if CRYPTOGRAPHY_IMPORT_ERROR is not None:
            raise AcmeError(f"acme_certificate needs cryptography on the controller: {CRYPTOGRAPHY_IMPORT_ERROR}")
        self.directory_url = directory_url
        self._key = _Key(account_key_pem)
        self._contact = [c if ":" in c else f"mailto:{c}" for c in (contact or [])]
        self._terms = terms_agreed
        self._eab_kid = eab_kid if eab_kid and eab_hmac_key else None
        self._eab_key = eab_hmac_key or ""
        self._eab_alg = eab_alg
        self._validate_certs = validate_certs
        self._ca_bundle = ca_bundle
        self._timeout = http_timeout
        self._lock = threading.Lock()
        self._count = 0
        self._nonces: list[str] = []
        self._directory: t.Optional[dict[str, t.Any]] = None
        self._kid: t.Optional[str] = None

    def __repr__(self) -> str:
        return f"EngineSession({self.directory_url!r})"

    # -- transport ------------------------------------------------------------------------------------

    def request_count(self) -> int:
        return self._count

    def _http(
        self, method: str, url: str, body: t.Optional[bytes] = None, headers: t.Optional[dict[str, str]] = None
    ) -> _Response:
        if not url.startswith(("https://", "http://")):
            raise AcmeError(f"refusing non-HTTP URL {url!r}")
        hdrs = {"User-Agent": USER_AGENT}
        hdrs.update(headers or {})
        with self._lock:
            self._count += 1
        try:
            with open_url(
                url,
                data=body,
                headers=hdrs,
                method=method,
                validate_certs=self._validate_certs,
                ca_path=self._ca_bundle,
                timeout=self._timeout,
                follow_redirects="none",
            ) as resp:
                r = _Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            r = _Response(exc.code, exc.headers, exc.read())
        except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AcmeError(f"cannot reach the ACME server {url}: {reason}") from None
        nonce = r.headers.get("Replay-Nonce")
        if nonce:
            with self._lock:
                self._nonces.append(nonce)
        return r

    @staticmethod
    def _raise_for(r: _Response, what: str) -> None:
        if r.status < 400:
            return
        try:
            problem = r.json()
        except ValueError:
            problem = {"type": "about:blank", "detail": r.body[:200].decode("utf-8", "replace")}
        raise AcmeError(f"{what}: HTTP {r.status} {describe_problem(problem)}", problem, r.status)

    def directory(self) -> dict[str, t.Any]:
        if self._directory is None:
            r = self._http("GET", self.directory_url)
            self._raise_for(r, f"fetching the ACME directory {self.directory_url}")
            try:
                directory = r.json()
            except ValueError:
                raise AcmeError(f"{self.directory_url} is not an ACME directory (no JSON)") from None
            if "newOrder" not in directory:
                raise AcmeError(f"{self.directory_url} is not an ACME directory (no newOrder)")
            self._directory = directory
        return self._directory

    def _nonce(self) -> str:
        with self._lock:
            if self._nonces:
                return self._nonces.pop()
        self._http("HEAD", self.directory()["newNonce"])
        with self._lock:
            if self._nonces:
                return self._nonces.pop()
        raise AcmeError("the CA sent no Replay-Nonce")

    def _jws(self, url: str, payload: t.Optional[dict[str, t.Any]], nonce: str, use_jwk: bool) -> bytes:
        protected: dict[str, t.Any] = {"alg": self._key.alg, "nonce": nonce, "url": url}
        if use_jwk:
            protected["jwk"] = self._key.jwk
        else:
            protected["kid"] = self._kid
        p64 = b64u(json.dumps(protected).encode("utf-8"))
        pl64 = "" if payload is None else b64u(json.dumps(payload).encode("utf-8"))
        sig = self._key.sign(f"{p64}.{pl64}".encode("ascii"))
        return json.dumps({"protected": p64, "payload": pl64, "signature": b64u(sig)}).encode("ascii")

    def _post(
        self,
        url: str,
        payload: t.Optional[dict[str, t.Any]],
        what: str,
        *,
        use_jwk: bool = False,
        accept: t.Optional[str] = None,
    ) -> _Response:
        headers = {"Content-Type": "application/jose+json"}
        if accept:
            headers["Accept"] = accept
        for _attempt in range(10):
            body = self._jws(url, payload, self._nonce(), use_jwk)
            r = self._http("POST", url, body, headers)
            if r.status == 400 and b"badNonce" in r.body:
                continue
            self._raise_for(r, what)
            return r
        raise AcmeError(f"{what}: the CA kept rejecting nonces (badNonce)")

    # -- account --------------------------------------------------------------------------------------

    def ensure_account(self) -> None:
        with self._lock:
            if self._kid:
                return
        directory = self.directory()
        payload: dict[str, t.Any] = {"termsOfServiceAgreed": bool(self._terms)}
        if self._contact:
            payload["contact"] = self._contact
        if self._eab_kid:
            kid, hmac_key, alg = self._eab_kid, self._eab_key, self._eab_alg
            url = directory["newAccount"]
            prot = b64u(json.dumps({"alg": alg, "kid": kid, "url": url}).encode("utf-8"))
            pl = b64u(json.dumps(self._key.jwk).encode("utf-8"))
            try:
                raw_key = _b64u_decode(hmac_key)
            except ValueError:
                raise AcmeError("eab_hmac_key is not base64url") from None
            digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
            mac = hmac.new(raw_key, f"{prot}.{pl}".encode("ascii"), digest).digest()
            payload["externalAccountBinding"] = {"protected": prot, "payload": pl, "signature": b64u(mac)}
        r = self._post(directory["newAccount"], payload, "creating/finding the ACME account", use_jwk=True)
        kid = r.headers.get("Location")
        if not kid:
            raise AcmeError("the CA returned no account URL")
        with self._lock:
            self._kid = kid

    # -- ARI ------------------------------------------------------------------------------------------

    def has_ari(self) -> bool:
        return bool(self.directory().get("renewalInfo"))

    def renewal_info(self, cert_id: str) -> dict[str, t.Any]:
        url = self.directory()["renewalInfo"].rstrip("/") + "/" + cert_id
        r = self._http("GET", url)
        self._raise_for(r, f"fetching renewalInfo {url}")
        return r.json()

    # -- orders ---------------------------------------------------------------------------------------

    def new_order(
        self, identifiers: list[dict[str, str]], profile: t.Optional[str], replaces: t.Optional[str]
    ) -> dict[str, t.Any]:
        directory = self.directory()
        payload: dict[str, t.Any] = {"identifiers": identifiers}
        if profile:
            profiles = (directory.get("meta") or {}).get("profiles")
            if profiles is not None and profile not in profiles:
                raise AcmeError(f"the CA offers no profile {profile!r} (offers: {', '.join(sorted(profiles))})")
            payload["profile"] = profile
        if replaces:
            payload["replaces"] = replaces
        r = self._post(directory["newOrder"], payload, "creating the order")
        order = r.json()
        order["_url"] = r.headers.get("Location")
        return order

    def _get(self, url: str, what: str) -> _Response:
        return self._post(url, None, what)

    def challenges(self, order: dict[str, t.Any], challenge_type: str) -> list[Challenge]:
        out: list[Challenge] = []
        for authz_url in order.get("authorizations") or []:
            authz = self._get(authz_url, "fetching an authorization").json()
            ident = authz.get("identifier") or {}
            if authz.get("status") == "valid":
                continue
            found = [c for c in authz.get("challenges") or [] if c.get("type") == challenge_type]
            if not found:
                offered = ", ".join(c.get("type", "?") for c in authz.get("challenges") or [])
                raise AcmeError(
                    f"the CA offers no {challenge_type} challenge for {ident.get('value')} (offers: {offered})"
                )
            ch = found[0]
            token = str(ch.get("token", ""))
            out.append(
                Challenge(
                    identifier=str(ident.get("value")),
                    id_type=str(ident.get("type", "dns")),
                    wildcard=bool(authz.get("wildcard")),
                    type=challenge_type,
                    token=token,
                    url=ch["url"],
                    authz_url=authz_url,
                    key_authorization=f"{token}.{self._key.thumbprint}",
                )
            )
        return out

    def respond(self, challenge: Challenge) -> None:
        self._post(challenge.url, {}, f"answering {challenge.type} for {challenge.identifier}")

    @staticmethod
    def _sleep(r: _Response, deadline: float, delay: float) -> float:
        wait = min(r.retry_after(delay), 10.0, max(0.0, deadline - time.monotonic()))
        time.sleep(wait)
        return min(delay * 2, 3.0)

    def wait_valid(self, challenge: Challenge, deadline: float) -> None:
        delay = 0.2
        while True:
            r = self._get(challenge.authz_url, f"polling the authorization of {challenge.identifier}")
            authz = r.json()
            status = authz.get("status")
            if status == "valid":
                return
            if status not in ("pending", "processing"):
                errors = [
                    describe_problem(c["error"])
                    for c in authz.get("challenges") or []
                    if c.get("type") == challenge.type and c.get("error")
                ]
                detail = "; ".join(errors) or f"authorization is {status}"
                raise AcmeError(detail)
            if time.monotonic() >= deadline:
                raise AcmeError(f"still {status} when the deadline passed")
            delay = self._sleep(r, deadline, delay)

    def _poll_order(self, order: dict[str, t.Any], deadline: float, until: tuple[str, ...]) -> dict[str, t.Any]:
        delay = 0.2
        url = order["_url"]
        while True:
            r = self._get(url, "polling the order")
            current = r.json()
            current["_url"] = url
            status = current.get("status")
            if status in until:
                return current
            if status == "invalid":
                problem = current.get("error")
                raise AcmeError("the order became invalid" + (f": {describe_problem(problem)}" if problem else ""))
            if time.monotonic() >= deadline:
                raise AcmeError(f"the order is still {status} at the deadline")
            delay = self._sleep(r, deadline, delay)

    def finalize(self, order: dict[str, t.Any], csr_pem: str, deadline: float) -> dict[str, t.Any]:
        if order.get("status") != "ready":
            order = self._poll_order(order, deadline, ("ready", "valid"))
        if order.get("status") == "ready":
            csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
            der = csr.public_bytes(serialization.Encoding.DER)
            r = self._post(order["finalize"], {"csr": b64u(der)}, "finalizing the order")
            updated = r.json()
            updated["_url"] = order["_url"]
            order = updated
        if order.get("status") != "valid":
            order = self._poll_order(order, deadline, ("valid",))
        return order

    def download(self, order: dict[str, t.Any], preferred_chain: t.Optional[str]) -> tuple[str, str]:
        what = "downloading the certificate"
        r = self._post(order["certificate"], None, what, accept="application/pem-certificate-chain")
        chains = [r.body.decode("ascii")]
        if preferred_chain and not _chain_matches(chains[0], preferred_chain):
            for alt in r.links("alternate"):
                alt_r = self._post(alt, None, what, accept="application/pem-certificate-chain")
                pem = alt_r.body.decode("ascii")
                if _chain_matches(pem, preferred_chain):
                    chains.insert(0, pem)
                    break
        certs = x509.load_pem_x509_certificates(chains[0].encode("ascii"))
        leaf = certs[0].public_bytes(serialization.Encoding.PEM).decode("ascii")
        chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs[1:])
        return leaf, chain

    # -- tls-alpn-01 ----------------------------------------------------------------------------------

    def alpn_certificate(self, challenge: Challenge) -> tuple[str, str]:
        """RFC 8737 section 3: self-signed, SAN = identifier, critical acmeIdentifier = SHA-256(key auth)."""
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        digest = hashlib.sha256(challenge.key_authorization.encode("ascii")).digest()
        ext_value = b"\x04\x20" + digest  # DER OCTET STRING of 32 bytes
        if challenge.id_type == "ip":
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(challenge.identifier))
        else:
            san = x509.DNSName(challenge.identifier)
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portail tls-alpn-01")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.UnrecognizedExtension(ObjectIdentifier(ACME_IDENTIFIER_OID), ext_value), critical=True)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), key_pem


def _chain_matches(pem: str, wanted: str) -> bool:
    """True when any issuer CN in the chain (the top one included) equals ``wanted``."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except ValueError:
        return False
    for cert in certs:
        for attr in cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME):
            if attr.value == wanted:
                return True
    return False
