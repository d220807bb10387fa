# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orders, authorizations and challenges (RFC 8555 sections 7.4, 7.5, 8; RFC 8738 IP identifiers)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from .chain import Chain, choose_chain
from .challenges import (
    HTTP01_PATH,
    dns01_name,
    dns01_value,
    key_authorization,
    tls_alpn01_certificate,
    tls_alpn01_sni,
)
from .errors import (
    AcmeError,
    OrderNotReady,
    ProblemError,
    RateLimited,
    UnsupportedError,
    ValidationFailed,
    problem_error,
)
from .utils import Backoff, Deadline, b64u

PEM_CHAIN = "application/pem-certificate-chain"
DEFAULT_WAIT = 120.0


def normalize_identifier(ident: Union[str, dict[str, str]]) -> dict[str, str]:
    """'example.com' -> dns, '192.0.2.1' / '2001:db8::1' -> ip (canonical form), dicts are checked."""
    if isinstance(ident, dict):
        typ, value = str(ident.get("type", "")), str(ident.get("value", ""))
        if typ not in ("dns", "ip") or not value:
            raise AcmeError(f"invalid ACME identifier {ident!r}")
        if typ == "ip":
            value = str(ipaddress.ip_address(value))
        return {"type": typ, "value": value.lower() if typ == "dns" else value}
    text = str(ident).strip()
    if not text:
        raise AcmeError("empty identifier")
    try:
        return {"type": "ip", "value": str(ipaddress.ip_address(text.strip("[]")))}
    except ValueError:
        pass
    return {"type": "dns", "value": text.lower().rstrip(".")}


class Challenge:
    """One challenge of an authorization, with what it takes to answer it."""

    def __init__(self, authz: Authorization, data: dict[str, Any]) -> None:
        self.authz = authz
        self.client = authz.client
        self.data = data

    @property
    def type(self) -> str:
        return str(self.data.get("type", ""))

    @property
    def url(self) -> str:
        return str(self.data.get("url", ""))

    @property
    def token(self) -> str:
        return str(self.data.get("token", ""))

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))

    @property
    def error(self) -> Optional[dict[str, Any]]:
        return self.data.get("error")

    @property
    def identifier(self) -> str:
        return self.authz.identifier

    @property
    def key_authorization(self) -> str:
        return key_authorization(self.token, self.client.key.thumbprint)

    # http-01
    @property
    def http_path(self) -> str:
        return HTTP01_PATH + self.token

    @property
    def http_url(self) -> str:
        host = self.identifier
        if self.authz.identifier_type == "ip" and ":" in host:
            host = f"[{host}]"
        return f"http://{host}{self.http_path}"

    # dns-01
    @property
    def dns_name(self) -> str:
        return dns01_name(self.identifier)

    @property
    def dns_value(self) -> str:
        return dns01_value(self.key_authorization)

    # tls-alpn-01
    @property
    def tls_alpn_sni(self) -> str:
        return tls_alpn01_sni(self.identifier)

    def tls_alpn_certificate(self) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) to serve for ALPN acme-tls/1."""
        return tls_alpn01_certificate(self.identifier, self.key_authorization)

    def respond(self) -> None:
        resp = self.client.post(self.url, {}, kind="challenge", context=f"answering {self.type} for {self.identifier}")
        data = resp.json()
        if isinstance(data, dict):
            self.data = data

    def failure(self) -> Optional[ProblemError]:
        if self.error:
            # whatever the problem type (Pebble says unauthorized for a 404), this is a failed validation
            return ValidationFailed(
                self.error, identifier=self.authz.name, challenge_type=self.type, context="validation failed"
            )
        return None


class Authorization:
    def __init__(self, client: Any, url: str, data: dict[str, Any]) -> None:
        self.client = client
        self.url = url
        self.data = data

    @classmethod
    def load(cls, client: Any, url: str) -> Authorization:
        data, _resp = client.get_json(url, kind="authz")
        return cls(client, url, data)

    @property
    def identifier(self) -> str:
        return str((self.data.get("identifier") or {}).get("value", ""))

    @property
    def identifier_type(self) -> str:
        return str((self.data.get("identifier") or {}).get("type", "dns"))

    @property
    def wildcard(self) -> bool:
        return bool(self.data.get("wildcard"))

    @property
    def name(self) -> str:
        """The identifier as ordered (with '*.' for wildcards)."""
        return ("*." if self.wildcard else "") + self.identifier

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))

    @property
    def challenges(self) -> list[Challenge]:
        return [Challenge(self, c) for c in self.data.get("challenges") or [] if isinstance(c, dict)]

    def challenge(self, typ: str) -> Optional[Challenge]:
        for ch in self.challenges:
            if ch.type == typ:
                return ch
        return None

    def refresh(self) -> None:
        self.data, _resp = self.client.get_json(self.url, kind="authz")

    def failure(self) -> ProblemError:
        for ch in self.challenges:
            err = ch.failure()
            if err is not None:
                return err
        return ValidationFailed(
            {"type": "about:blank", "detail": f"authorization is {self.status}"},
            identifier=self.name,
            context="validation failed",
        )

    def wait_valid(self, deadline: Union[Deadline, float, None] = None) -> None:
        dl = Deadline.of(deadline, DEFAULT_WAIT, f"validation of {self.name}")
        backoff = Backoff()
        retry_after = None
        while self.status in ("pending", "processing"):
            dl.sleep(backoff.next_delay(retry_after), f"authorization is still {self.status}")
            data, resp = self.client.get_json(self.url, kind="authz")
            self.data = data
            retry_after = resp.retry_after
        if self.status != "valid":
            raise self.failure()

    def deactivate(self) -> None:
        resp = self.client.post(self.url, {"status": "deactivated"}, kind="authz")
        self.data = resp.json()


class Order:
    """An ACME order. Typical use::

    order = client.new_order(["www.example.com"])
    for authz in order.authorizations():
        if authz.status == "pending":
            ch = authz.challenge("http-01")
            publish(ch.http_path, ch.key_authorization)
            client.answer(ch)
    order.finalize(csr_der, deadline)   # waits for ready itself when needed
    chain = order.download(preferred_chain="ISRG Root X1")
    """

    first_poll = 0.05

    def __init__(self, client: Any, url: str, data: dict[str, Any]) -> None:
        self.client = client
        self.url = url
        self.data = data
        self.replaces_dropped = False
        self._authzs: Optional[list[Authorization]] = None
        self.chains: list[Chain] = []

    @classmethod
    def create(
        cls,
        client: Any,
        identifiers: Sequence[Union[str, dict[str, str]]],
        profile: Optional[str] = None,
        replaces: Optional[str] = None,
        not_after: Optional[str] = None,
    ) -> Order:
        idents = [normalize_identifier(i) for i in identifiers]
        if not idents:
            raise AcmeError("an order needs at least one identifier")
        directory = client.directory
        payload: dict[str, Any] = {"identifiers": idents}
        if profile:
            offered = directory.profiles
            if profile not in offered:
                names = ", ".join(sorted(offered)) or "none"
                raise UnsupportedError(f"the CA does not offer the certificate profile {profile!r} (offered: {names})")
            payload["profile"] = profile
        if not_after:
            payload["notAfter"] = not_after
        url = directory["newOrder"]
        names = ", ".join(i["value"] for i in idents)
        dropped = False
        if replaces and directory.renewal_info:
            try:
                resp = client.post(url, dict(payload, replaces=replaces), kind="newOrder", context=f"ordering {names}")
            except RateLimited:
                raise
            except ProblemError as exc:
                if exc.status is None or exc.status >= 500:
                    raise
                dropped = True
                resp = client.post(url, payload, kind="newOrder", context=f"ordering {names}")
        else:
            dropped = bool(replaces)
            resp = client.post(url, payload, kind="newOrder", context=f"ordering {names}")
        if not resp.location:
            raise AcmeError("the CA did not return the order URL (Location)")
        order = cls(client, resp.location, resp.json())
        order.replaces_dropped = dropped
        return order

    @classmethod
    def load(cls, client: Any, url: str) -> Order:
        data, _resp = client.get_json(url, kind="order")
        return cls(client, url, data)

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))

    @property
    def identifiers(self) -> list[dict[str, str]]:
        return list(self.data.get("identifiers") or [])

    @property
    def certificate_url(self) -> Optional[str]:
        return self.data.get("certificate")

    @property
    def profile(self) -> Optional[str]:
        return self.data.get("profile")

    @property
    def error(self) -> Optional[dict[str, Any]]:
        return self.data.get("error")

    def refresh(self) -> Any:
        self.data, resp = self.client.get_json(self.url, kind="order")
        return resp

    def authorizations(self) -> list[Authorization]:
        if self._authzs is None:
            self._authzs = [Authorization.load(self.client, u) for u in self.data.get("authorizations") or []]
        return self._authzs

    def pending_challenges(self, typ: str) -> list[Challenge]:
        """The challenges of type typ to answer (authorizations already valid are skipped)."""
        result = []
        for authz in self.authorizations():
            if authz.status == "valid":
                continue
            if authz.status != "pending":
                raise authz.failure()
            ch = authz.challenge(typ)
            if ch is None:
                offered = ", ".join(c.type for c in authz.challenges)
                raise UnsupportedError(f"the CA offers no {typ} challenge for {authz.name} (offered: {offered})")
            result.append(ch)
        return result

    def _raise_invalid(self) -> None:
        for url in self.data.get("authorizations") or []:
            authz = Authorization.load(self.client, url)
            if authz.status not in ("valid", "pending"):
                raise authz.failure()
        if self.error:
            raise problem_error(self.error, context=f"order {self.url} is invalid")
        raise ValidationFailed({"type": "about:blank", "detail": f"order {self.url} is {self.status}"})

    def wait_ready(self, deadline: Union[Deadline, float, None] = None) -> None:
        """Poll the order until it is ready (or beyond); raise the validation error if it turned invalid."""
        dl = Deadline.of(deadline, DEFAULT_WAIT, "waiting for the order to be ready")
        backoff = Backoff(first=self.first_poll)
        retry_after = None
        while self.status == "pending":
            dl.sleep(backoff.next_delay(retry_after), "the order is still pending")
            retry_after = self.refresh().retry_after
        if self.status == "invalid":
            self._raise_invalid()

    def finalize(self, csr_der: bytes, deadline: Union[Deadline, float, None] = None) -> None:
        """Send the CSR and wait (bounded) until the certificate is issued.

        Called right after answering the challenges, it sends the CSR after a short pause and only polls
        the order if the CA says it is not ready yet: one request instead of one poll plus one finalize.
        """
        dl = Deadline.of(deadline, DEFAULT_WAIT, "waiting for the certificate")
        if self.status == "pending":
            dl.sleep(self.first_poll)
        for attempt in range(20):
            if self.status in ("valid", "processing"):
                break
            if self.status == "invalid":
                self._raise_invalid()
            try:
                resp = self.client.post(
                    self.data["finalize"],
                    {"csr": b64u(csr_der)},
                    kind="finalize",
                    deadline=dl,
                    context="finalizing the order",
                )
            except OrderNotReady:
                if attempt >= 19:
                    raise
                self.wait_ready(dl)
                continue
            self.data = resp.json()
            break
        backoff = Backoff(first=self.first_poll)
        retry_after = None
        while self.status == "processing":
            dl.sleep(backoff.next_delay(retry_after), "the order is still processing")
            retry_after = self.refresh().retry_after
        if self.status != "valid":
            self._raise_invalid()

    def _fetch_chain(self, url: str, kind: str) -> tuple[Chain, Any]:
        resp = self.client.post(url, None, kind=kind, accept=PEM_CHAIN, context="downloading the certificate")
        return Chain(resp.body, url), resp

    def download(self, preferred_chain: Optional[str] = None, all_chains: bool = False) -> Chain:
        """Download the certificate chain; with preferred_chain, pick the alternate whose root/issuer CN matches.

        Alternates (Link rel="alternate") are only fetched when the default chain does not match (or
        all_chains is true); every fetched chain is kept in ``order.chains``.
        """
        url = self.certificate_url
        if self.status != "valid" or not url:
            raise AcmeError(f"the order is {self.status}, no certificate to download")
        default, resp = self._fetch_chain(url, "certificate")
        self.chains = [default]
        self.alternate_urls = resp.links("alternate")
        if (preferred_chain and not default.matches(preferred_chain)) or all_chains:
            for alt in self.alternate_urls:
                chain, _resp = self._fetch_chain(alt, "certificate-alternate")
                self.chains.append(chain)
                if not all_chains and chain.matches(preferred_chain or ""):
                    break
        return choose_chain(self.chains, preferred_chain)


def issue(
    client: Any,
    identifiers: Sequence[Union[str, dict[str, str]]],
    csr_der: bytes,
    publish: Callable[[Challenge], None],
    *,
    challenge_type: str = "http-01",
    cleanup: Optional[Callable[[Challenge], None]] = None,
    preferred_chain: Optional[str] = None,
    profile: Optional[str] = None,
    replaces: Optional[str] = None,
    deadline: Union[Deadline, float, None] = None,
) -> tuple[Order, Chain]:
    """The whole flow for one certificate: order, publish + answer, finalize, download, clean up."""
    dl = Deadline.of(deadline, DEFAULT_WAIT * 2, "issuing the certificate")
    order = client.new_order(identifiers, profile=profile, replaces=replaces)
    published: list[Challenge] = []
    try:
        challenges = order.pending_challenges(challenge_type)
        # publish everything first: a resolver in front of the CA then never caches a partial answer
        for ch in challenges:
            publish(ch)
            published.append(ch)
        for ch in challenges:
            client.answer(ch)
        order.finalize(csr_der, dl)
        chain = order.download(preferred_chain)
    finally:
        if cleanup is not None:
            for ch in published:
                cleanup(ch)
    return order, chain
