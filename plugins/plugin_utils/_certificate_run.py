# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side orchestration of portail.https.acme_certificate: one certificate from nothing to deployed.

``CertificateRun.process(spec)`` asks the host (``host_call``) for its state, decides, orders through an
``AcmeSession``, places the challenges (http-01 and tls-alpn-01 on the host, dns-01 from here), finalizes
with the host's CSR and deploys on the host. Challenge files, DNS records and responders are removed on
every path; a failure also removes the pending key this run created.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import threading
import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.portail.https.plugins.plugin_utils._certificate_request import (
    ARI_WINDOW,
    MISSING,
    NAMES_CHANGED,
    VALID,
    CertSpec,
    ari_cert_id,
    ari_says_renew,
    decide_local,
)


class CertificateError(Exception):
    """A failure to report for one certificate (message names identifier, challenge and CA detail)."""


class HostError(Exception):
    """The host module failed; ``msg`` is its message."""


HostCall = t.Callable[[str, dict[str, t.Any]], dict[str, t.Any]]


@dataclass
class Challenge:
    """One challenge to fulfil: what the session needs back, plus what placement needs."""

    identifier: str
    id_type: str
    wildcard: bool
    type: str
    token: str
    url: str
    authz_url: str
    key_authorization: str
    handle: t.Any = None


class AcmeSession(t.Protocol):
    """What the orchestration needs from an ACME client (see _acme_session.py for the engine adapter)."""

    directory_url: str

    def request_count(self) -> int: ...

    def retry_count(self) -> int: ...

    def has_ari(self) -> bool: ...

    def renewal_info(self, cert_id: str) -> dict[str, t.Any]: ...

    def ensure_account(self) -> None: ...

    def new_order(
        self, identifiers: list[dict[str, str]], profile: t.Optional[str], replaces: t.Optional[str]
    ) -> t.Any: ...

    def challenges(self, order: t.Any, challenge_type: str) -> list[Challenge]: ...

    def alpn_certificate(self, challenge: Challenge) -> tuple[str, str]: ...

    def respond(self, challenge: Challenge) -> None: ...

    def wait_valid(self, challenge: Challenge, deadline: float) -> None: ...

    def finalize(self, order: t.Any, csr_pem: str, deadline: float) -> t.Any: ...

    def download(self, order: t.Any, preferred_chain: t.Optional[str]) -> tuple[str, str]: ...


def same_public_key(cert_pem: str, csr_pem: str) -> bool:
    """Whether the leaf certificate certifies the key the host's CSR was made from."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    except ValueError:
        return False
    return leaf.public_key().public_bytes(der, spki) == csr.public_key().public_bytes(der, spki)


def dns01_value(key_authorization: str) -> str:
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def alpn_sni(identifier: str, id_type: str) -> str:
    """RFC 8738: an IP identifier is sent as its reverse-DNS name in SNI."""
    if id_type == "ip":
        return ipaddress.ip_address(identifier).reverse_pointer
    return identifier


@dataclass
class Options:
    directory_url: str = ""
    use_ari: bool = True
    timeout: float = 300.0
    check_mode: bool = False
    alpn_lifetime: int = 600


@dataclass
class Outcome:
    spec: CertSpec
    changed: bool = False
    reason: str = VALID
    msg: str = ""
    before: t.Optional[dict[str, t.Any]] = None
    cert: t.Optional[dict[str, t.Any]] = None
    replaces: t.Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    error: t.Optional[str] = None
    dns_records: list[dict[str, str]] = field(default_factory=list)

    def result(self) -> dict[str, t.Any]:
        cert = self.cert or {}
        out: dict[str, t.Any] = {
            "name": self.spec.label,
            "changed": self.changed,
            "reason": self.reason,
            "reason_msg": self.msg,
            "names": cert.get("names", self.spec.names),
            "serial": cert.get("serial"),
            "not_before": cert.get("not_before"),
            "not_after": cert.get("not_after"),
            "issuer": cert.get("issuer"),
            "key_type": cert.get("key_type"),
            "challenge": self.spec.challenge,
            "cert_path": self.spec.cert_path,
            "key_path": self.spec.key_path,
            "chain_path": self.spec.chain_path,
            "fullchain_path": self.spec.fullchain_path,
        }
        if self.replaces:
            out["replaces"] = self.replaces
        if self.dns_records:
            out["dns_records"] = self.dns_records
        if self.error:
            out["failed"] = True
            out["msg"] = self.error
        return out

    def diff(self) -> dict[str, t.Any]:
        before = self.before or {}
        after = self.cert or {}
        return {
            "before_header": f"{self.spec.cert_path}",
            "after_header": f"{self.spec.cert_path}",
            "before": _diff_text(before.get("names"), before.get("not_after")),
            "after": _diff_text(
                after.get("names", self.spec.names) if self.changed else before.get("names"),
                after.get("not_after") if after else ("(new certificate)" if self.changed else before.get("not_after")),
            ),
        }


def _diff_text(names: t.Optional[list[str]], not_after: t.Optional[str]) -> str:
    if not names and not not_after:
        return ""
    return f"names: {', '.join(sorted(names or []))}\nnot_after: {not_after}\n"


class CertificateRun:
    """Processes CertSpecs for one host; ``process`` is safe to call from several threads."""

    def __init__(
        self,
        host_call: HostCall,
        session_factory: t.Callable[[], AcmeSession],
        options: Options,
        dns_factory: t.Optional[t.Callable[[dict[str, t.Any]], t.Any]] = None,
        now: t.Optional[t.Callable[[], datetime.datetime]] = None,
    ) -> None:
        self._host_lock = threading.Lock()
        self._host_call = host_call
        self._session_factory = session_factory
        self._session: t.Optional[AcmeSession] = None
        self._session_lock = threading.Lock()
        self._alpn_locks: dict[tuple[str, int], threading.Lock] = {}
        self._alpn_guard = threading.Lock()
        self.options = options
        self.dns_factory = dns_factory
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))

    # -- plumbing ---------------------------------------------------------------------------------------

    def host(self, step: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
        with self._host_lock:
            return self._host_call(step, args)

    @property
    def session(self) -> AcmeSession:
        with self._session_lock:
            if self._session is None:
                self._session = self._session_factory()
            return self._session

    def session_if_made(self) -> t.Optional[AcmeSession]:
        return self._session

    def _alpn_lock(self, spec: CertSpec) -> threading.Lock:
        with self._alpn_guard:
            return self._alpn_locks.setdefault((spec.alpn_address, spec.alpn_port), threading.Lock())

    @staticmethod
    def _paths(spec: CertSpec) -> dict[str, t.Any]:
        return {
            "key_path": spec.key_path,
            "cert_path": spec.cert_path,
            "chain_path": spec.chain_path,
            "fullchain_path": spec.fullchain_path,
        }

    # -- one certificate --------------------------------------------------------------------------------

    def process(self, spec: CertSpec) -> Outcome:
        outcome = Outcome(spec)
        try:
            self._process(spec, outcome)
        except (CertificateError, HostError) as exc:
            outcome.error = f"certificate {spec.label}: {exc}"
        return outcome

    def _process(self, spec: CertSpec, out: Outcome) -> None:
        state = self.host(
            "inspect",
            dict(
                self._paths(spec),
                webroot=spec.webroot if spec.challenge == "http-01" else [],
                challenge_dir=[spec.challenge_dir] if spec.challenge == "http-01" and spec.challenge_dir else [],
                owner=spec.owner,
                group=spec.group,
                mode=spec.mode,
                key_mode=spec.key_mode,
                fix_attributes=True,
                # one round trip less per issuance: the host makes the key and CSR when its rules say due
                prepare_if_due=not self.options.check_mode,
                names=spec.names,
                key_type=spec.key_type,
                renew_remaining_fraction=spec.renew_remaining_fraction,
                force=spec.force,
            ),
        )
        if state.get("missing_webroots"):
            raise CertificateError(
                "http-01 webroot does not exist on the host: "
                + ", ".join(state["missing_webroots"])
                + " (create it and serve it as /.well-known/acme-challenge/ on port 80); no order was created"
            )
        out.before = state.get("cert")
        out.cert = state.get("cert")
        out.changed = bool(state.get("changed"))
        now = self.now()
        reason, msg = decide_local(spec, state, now)
        cert_id = None
        if out.before:
            cert_id = ari_cert_id(out.before.get("aki"), out.before["serial"])
        if reason == VALID and self.options.use_ari and cert_id:
            meta = state.get("meta") or {}
            known = meta.get("directory") == self.options.directory_url
            if not (known and not meta.get("ari")):
                session = self.session
                if session.has_ari():
                    renew, ari_msg = ari_says_renew(session.renewal_info(cert_id), now)
                    if renew:
                        reason, msg = ARI_WINDOW, ari_msg
                    else:
                        msg = f"{msg}; {ari_msg}"
        out.reason, out.msg = reason, msg
        prepared = state.get("prepared")
        if reason == VALID:
            if prepared:
                # the host's clock put it on the other side of the renewal threshold: undo its preparation
                self._discard(spec, prepared, out)
            return
        out.changed = True
        if self.options.check_mode:
            out.msg = f"would issue: {msg}"
            return
        self._issue(spec, out, reason, cert_id, prepared)

    def _discard(self, spec: CertSpec, prep: t.Mapping[str, t.Any], out: Outcome) -> None:
        try:
            self.host(
                "discard",
                {
                    "key_path": spec.key_path,
                    "pending_created": prep.get("pending_created", False),
                    "created_dirs": prep.get("created_dirs", []),
                },
            )
        except HostError as exc:
            out.warnings.append(f"certificate {spec.label}: removing the pending key: {exc}")

    def _issue(
        self,
        spec: CertSpec,
        out: Outcome,
        reason: str,
        cert_id: t.Optional[str],
        prepared: t.Optional[t.Mapping[str, t.Any]] = None,
    ) -> None:
        deadline = time.monotonic() + self.options.timeout
        try:
            session = self.session
            try:
                session.ensure_account()
            except Exception as exc:
                raise CertificateError(f"ACME account at {session.directory_url}: {exc}") from None
            replaces = None
            if cert_id and reason != MISSING and session.has_ari():
                old = set((out.before or {}).get("names") or [])
                if reason != NAMES_CHANGED or old & set(spec.names):
                    replaces = cert_id
        except BaseException:
            if prepared:
                # the host made the key and CSR in the inspect round trip: take them back
                self._discard(spec, prepared, out)
            raise
        prep = prepared or self.host(
            "prepare", dict(self._paths(spec), key_type=spec.key_type, names=spec.names, owner=spec.owner)
        )
        cleanups: list[t.Callable[[], t.Optional[str]]] = []
        http01: dict[str, t.Any] = {}
        ok = False
        try:
            order = self._new_order(session, spec, replaces)
            out.replaces = replaces
            challenges = session.challenges(order, spec.challenge)
            if challenges:
                self._place_and_validate(session, spec, challenges, cleanups, deadline, out, http01)
            try:
                order = session.finalize(order, prep["csr"], deadline)
                cert_pem, chain_pem = session.download(order, spec.preferred_chain)
            except Exception as exc:
                raise CertificateError(f"finalizing the order for {', '.join(spec.names)}: {exc}") from None
            if not same_public_key(cert_pem, prep["csr"]):
                raise CertificateError(
                    f"the certificate issued for {', '.join(spec.names)} does not carry the key of the CSR; "
                    "nothing was deployed"
                )
            meta = {"directory": session.directory_url, "ari": bool(session.has_ari())}
            deployed = self.host(
                "deploy",
                dict(
                    self._paths(spec),
                    cert_pem=cert_pem,
                    chain_pem=chain_pem,
                    owner=spec.owner,
                    group=spec.group,
                    mode=spec.mode,
                    key_mode=spec.key_mode,
                    backup=spec.backup,
                    meta=meta,
                    # the http-01 token files are removed in the same round trip
                    files=http01.get("files", []),
                    created_dirs=http01.get("created_dirs", []),
                ),
            )
            if http01:
                http01["removed_by_deploy"] = True
            if deployed.get("http01_problem"):
                out.warnings.append(f"certificate {spec.label}: cleanup: {deployed['http01_problem']}")
            out.cert = deployed.get("cert")
            ok = True
        finally:
            for undo in reversed(cleanups):
                problem = undo()
                if problem:
                    out.warnings.append(f"certificate {spec.label}: cleanup: {problem}")
            if not ok:
                self._discard(spec, prep, out)

    def _new_order(self, session: AcmeSession, spec: CertSpec, replaces: t.Optional[str]) -> t.Any:
        try:
            return session.new_order(spec.identifiers, spec.profile, replaces)
        except Exception:
            if replaces:
                # A CA may refuse `replaces` (already replaced, unknown); a plain order still renews.
                try:
                    return session.new_order(spec.identifiers, spec.profile, None)
                except Exception as exc2:
                    exc = exc2
            raise CertificateError(f"creating the order for {', '.join(spec.names)}: {exc}") from None

    # -- challenges -------------------------------------------------------------------------------------

    def _place_and_validate(
        self,
        session: AcmeSession,
        spec: CertSpec,
        challenges: list[Challenge],
        cleanups: list[t.Callable[[], t.Optional[str]]],
        deadline: float,
        out: Outcome,
        http01: dict[str, t.Any],
    ) -> None:
        lock = self._alpn_lock(spec) if spec.challenge == "tls-alpn-01" else None
        if lock is not None:
            lock.acquire()
            cleanups.append(lock.release)  # type: ignore[arg-type]
        if spec.challenge == "http-01":
            self._place_http01(spec, challenges, cleanups, http01)
        elif spec.challenge == "dns-01":
            self._place_dns01(spec, challenges, cleanups, deadline, out)
        else:
            self._place_alpn01(session, spec, challenges, cleanups)
        for ch in challenges:
            try:
                session.respond(ch)
            except Exception as exc:
                raise CertificateError(f"{ch.type} for {ch.identifier}: answering the challenge: {exc}") from None
        for ch in challenges:
            try:
                session.wait_valid(ch, deadline)
            except Exception as exc:
                raise CertificateError(f"{ch.type} validation of {ch.identifier} failed: {exc}") from None

    def _place_http01(
        self,
        spec: CertSpec,
        challenges: list[Challenge],
        cleanups: list[t.Callable[[], t.Optional[str]]],
        http01: dict[str, t.Any],
    ) -> None:
        tokens = [{"token": c.token, "content": c.key_authorization} for c in challenges]
        try:
            placed = self.host(
                "http01_place",
                {
                    "webroot": spec.webroot,
                    "challenge_dir": [spec.challenge_dir] if spec.challenge_dir else [],
                    "tokens": tokens,
                },
            )
        except HostError as exc:
            raise CertificateError(f"http-01 for {', '.join(c.identifier for c in challenges)}: {exc}") from None

        http01.update(files=placed["files"], created_dirs=placed["created_dirs"])

        def undo() -> t.Optional[str]:
            if http01.get("removed_by_deploy"):
                return None
            try:
                self.host("http01_cleanup", {"files": placed["files"], "created_dirs": placed["created_dirs"]})
            except HostError as exc:
                return f"removing http-01 token files: {exc}"
            return None

        cleanups.append(undo)

    def _place_dns01(
        self,
        spec: CertSpec,
        challenges: list[Challenge],
        cleanups: list[t.Callable[[], t.Optional[str]]],
        deadline: float,
        out: Outcome,
    ) -> None:
        if self.dns_factory is None:
            raise CertificateError("dns-01 needs the DNS backend, which is not available")
        from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError
        from ansible_collections.portail.https.plugins.module_utils._dns.names import challenge_name

        options = dict(spec.dns)
        propagation = float(options.pop("propagation_timeout", None) or 120)
        try:
            provider = self.dns_factory(options)
            records = [(challenge_name(c.identifier), dns01_value(c.key_authorization)) for c in challenges]
        except DnsError as exc:
            raise CertificateError(f"dns-01: {exc}") from None
        idents = ", ".join(c.identifier for c in challenges)

        def undo() -> t.Optional[str]:
            errors = provider.cleanup(records)
            return "; ".join(errors) if errors else None

        try:
            placed = provider.add_txt_records(records)
            out.dns_records = [{"name": r.name, "target": r.target or r.name, "zone": r.zone} for r in placed]
        except DnsError as exc:
            # a batch may have been partly applied in another zone: remove whatever is there
            provider.cleanup(records)
            raise CertificateError(f"dns-01 for {idents}: placing TXT records: {exc}") from None
        cleanups.append(undo)
        wait_until = min(deadline, time.monotonic() + propagation)
        try:
            provider.wait_visible_records(records, wait_until)
        except DnsError as exc:
            lagging = getattr(exc, "lagging", None)
            extra = f" ({'; '.join(lagging)})" if lagging else ""
            raise CertificateError(f"dns-01 for {idents}: waiting for the TXT records: {exc}{extra}") from None

    def _place_alpn01(
        self,
        session: AcmeSession,
        spec: CertSpec,
        challenges: list[Challenge],
        cleanups: list[t.Callable[[], t.Optional[str]]],
    ) -> None:
        certs = []
        for c in challenges:
            cert_pem, key_pem = session.alpn_certificate(c)
            certs.append({"sni": alpn_sni(c.identifier, c.id_type), "cert": cert_pem, "key": key_pem})
        try:
            started = self.host(
                "alpn_start",
                {
                    "alpn_address": spec.alpn_address,
                    "alpn_port": spec.alpn_port,
                    "alpn_certs": certs,
                    "alpn_lifetime": self.options.alpn_lifetime,
                },
            )
        except HostError as exc:
            raise CertificateError(f"tls-alpn-01 for {', '.join(c.identifier for c in challenges)}: {exc}") from None

        def undo() -> t.Optional[str]:
            try:
                self.host("alpn_stop", {"responder": started["responder"]})
            except HostError as exc:
                return f"stopping the tls-alpn-01 responder: {exc}"
            return None

        cleanups.append(undo)
