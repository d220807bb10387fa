# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side orchestration of portail.https.acme_certificate: one certificate from nothing to deployed.

``CertificateRun.process(spec)`` asks the host (``host_call``, see _hoststeps) for its state, decides once
(_renewal: the local rule, then the CA's ARI window), and when due orders through the ACME engine's own
objects (AcmeClient -> Order -> Authorization -> Challenge), places the challenges through one placer per
type (http-01 and tls-alpn-01 on the host, dns-01 from here), finalizes with the host's CSR and deploys on
the host. Challenge files, DNS records and responders are removed on every path; a failure also gives
back the host's per-certificate lock and the pending key. Every failure is a :class:`Failure` naming the
step, the identifier, the CA's problem document (kept whole for the result) and what to do.
"""

from __future__ import annotations

import datetime
import threading
import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.portail.https.plugins.module_utils._acme.errors import (
    AcmeError,
    AcmeTimeout,
    ProblemError,
    RateLimited,
    TransportError,
    ValidationFailed,
)
from ansible_collections.portail.https.plugins.module_utils._acme.utils import Deadline
from ansible_collections.portail.https.plugins.plugin_utils import _renewal
from ansible_collections.portail.https.plugins.plugin_utils._certificate_request import CertSpec


class HostError(Exception):
    """A host step failed; the message says what the host reported."""


class Failure(Exception):
    """The failure of one certificate, typed up to the task result.

    ``step`` is one of: inspect, lock, account, order, authorization, challenge, preflight, validation,
    finalize, download, deploy, cleanup.
    """

    def __init__(
        self,
        step: str,
        detail: str,
        *,
        identifier: t.Optional[str] = None,
        problem: t.Optional[dict[str, t.Any]] = None,
        hint: t.Optional[str] = None,
    ) -> None:
        self.step, self.detail, self.identifier, self.problem, self.hint = step, detail, identifier, problem, hint
        super().__init__(detail)

    @classmethod
    def of(
        cls, step: str, exc: BaseException, identifier: t.Optional[str] = None, hint: t.Optional[str] = None
    ) -> Failure:
        """From an engine error: the CA's problem type and detail, or the network error."""
        if isinstance(exc, ProblemError):
            detail = f"the CA answered {exc.short_type}" + (f" (HTTP {exc.status})" if exc.status else "")
            detail += f": {exc.detail}" if exc.detail else ""
            if exc.subproblems:
                detail += " [" + "; ".join(str(s) for s in exc.subproblems) + "]"
            return cls(
                step, detail, identifier=identifier or exc.identifier, problem=exc.to_dict(), hint=hint or _hint(exc)
            )
        if isinstance(exc, TransportError):
            return cls(step, str(exc), identifier=identifier, hint=hint or NETWORK_HINT)
        return cls(step, str(exc), identifier=identifier, hint=hint)

    def message(self, label: str) -> str:
        where = f" of {self.identifier}" if self.identifier else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"certificate {label}: {self.step}{where}: {self.detail}{hint}"


NETWORK_HINT = "the CA could not be reached from the controller: check the network, proxy settings and acme_directory"
_HINTS = {
    "rateLimited": "the CA's rate limit: wait for the time it gives before trying again; do not force renewals",
    "rejectedIdentifier": "the CA will not issue for this name: check the name and the CA's policy",
    "caa": "a CAA record forbids this CA: add one that authorizes it (issue / issuewild)",
    "unauthorized": "the CA refused this account or name: check the account, EAB and the CA's policy",
    "externalAccountRequired": "this CA needs external account binding: set eab_kid and eab_hmac_key",
    "userActionRequired": "the CA needs the account holder to act: follow the instance URL in the CA's message",
    "badCSR": "the CA refused the CSR made on the host: check key_type against the CA's policy",
}
_VALIDATION_HINTS = {
    "http-01": "the CA must fetch http://NAME/.well-known/acme-challenge/ on port 80 of every address NAME resolves to",
    "dns-01": "the CA must see the TXT record _acme-challenge.NAME through the public DNS",
    "tls-alpn-01": "the CA must reach port 443 of NAME's addresses with ALPN acme-tls/1",
}


def _hint(exc: ProblemError) -> t.Optional[str]:
    hint = _HINTS.get(exc.short_type)
    if isinstance(exc, RateLimited) and exc.retry_after:
        hint = f"the CA's rate limit: retry in {exc.retry_after:.0f} s at the earliest; do not force renewals"
    return hint


HostCall = t.Callable[[str, dict[str, t.Any]], dict[str, t.Any]]
Cleanup = t.Callable[[], t.Optional[str]]


@dataclass
class Options:
    directory_url: str = ""
    use_ari: bool = True
    timeout: float = 300.0
    check_mode: bool = False
    alpn_lifetime: int = 600
    contact: list[str] = field(default_factory=list)
    terms_agreed: bool = False
    eab: t.Optional[tuple[str, str, str]] = None
    preflight: bool = True
    preflight_resolvers: list[str] = field(default_factory=list)
    caa_check: bool = True


@dataclass
class Outcome:
    spec: CertSpec
    changed: bool = False
    reason: str = _renewal.VALID
    msg: str = ""
    before: t.Optional[dict[str, t.Any]] = None
    cert: t.Optional[dict[str, t.Any]] = None
    replaces: t.Optional[str] = None
    renewal_window: t.Optional[dict[str, str]] = None
    renew_at: t.Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    failure: t.Optional[Failure] = None
    dns_records: list[dict[str, str]] = field(default_factory=list)
    dns_provider: t.Any = None
    dns_leftovers: list[dict[str, str]] = field(default_factory=list)
    resume: t.Optional[dict[str, t.Any]] = None

    @property
    def error(self) -> t.Optional[str]:
        return self.failure.message(self.spec.label) if self.failure else None

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
            "profile": self.spec.profile,
            "renew_at": self.renew_at,
            "cert_path": self.spec.cert_path,
            "key_path": self.spec.key_path,
            "chain_path": self.spec.chain_path,
            "fullchain_path": self.spec.fullchain_path,
        }
        if self.renewal_window:
            out["renewal_window"] = self.renewal_window
        if self.replaces:
            out["replaces"] = self.replaces
        if self.dns_records:
            out["dns_records"] = self.dns_records
        if self.resume:
            out["resume"] = self.resume
        if self.failure:
            out.update(failed=True, msg=self.error, step=self.failure.step)
            if self.failure.problem:
                out["problem"] = self.failure.problem
        return out

    def diff(self) -> dict[str, t.Any]:
        before = self.before or {}
        after = self.cert or {}
        return {
            "before_header": self.spec.cert_path,
            "after_header": self.spec.cert_path,
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


def _iso(value: t.Optional[datetime.datetime]) -> t.Optional[str]:
    return value.isoformat() if value else None


def csr_der(csr_pem: str, names: t.Sequence[str]) -> bytes:
    """The host's CSR in DER, checked: well signed and asking for exactly the names of the order."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, UnicodeError, x509.ExtensionNotFound) as exc:
        raise Failure("finalize", f"the host's CSR is not usable: {exc}") from None
    asked = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    asked |= {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    if not csr.is_signature_valid or asked != set(names):
        raise Failure("finalize", "the host's CSR does not ask for the names of this certificate; nothing was ordered")
    return csr.public_bytes(serialization.Encoding.DER)


def changed_beyond_prepare(state: t.Mapping[str, t.Any]) -> bool:
    """Whether inspect changed the host beyond preparing (taken back on failure): repairs, a stale lease."""
    if not state.get("prepared"):
        return bool(state.get("changed"))
    return bool(state.get("fixed") or state.get("stale_lease_removed"))


class _LockBusy(Exception):
    """prepare found the certificate locked by another run: wait, then inspect and decide again."""

    def __init__(self, locked: t.Mapping[str, t.Any]) -> None:
        super().__init__("locked")
        self.locked = locked


class CertificateRun:
    """Processes CertSpecs for one host; ``process`` is safe to call from several threads."""

    def __init__(
        self,
        host_call: HostCall,
        client_factory: t.Callable[[], t.Any],
        options: Options,
        dns_factory: t.Optional[t.Callable[[dict[str, t.Any]], t.Any]] = None,
        now: t.Optional[t.Callable[[], datetime.datetime]] = None,
        sleep: t.Callable[[float], None] = time.sleep,
        preflight: t.Optional[t.Callable[..., tuple[list[str], list[str]]]] = None,
    ) -> None:
        self._host_lock = threading.Lock()
        self._host_call = host_call
        self._client_factory = client_factory
        self._client: t.Any = None
        self._client_lock = threading.Lock()
        self._account_lock = threading.Lock()
        self._alpn_locks: dict[tuple[str, int], threading.Lock] = {}
        self._alpn_guard = threading.Lock()
        self.options = options
        self.dns_factory = dns_factory
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.sleep = sleep
        if preflight is None:
            from ansible_collections.portail.https.plugins.plugin_utils._preflight import check

            preflight = check
        self.preflight: t.Callable[..., tuple[list[str], list[str]]] = preflight
        self.placers: dict[str, t.Callable[[CertSpec, list[t.Any], Deadline, Outcome], Cleanup]] = {
            "http-01": self._place_http01,
            "dns-01": self._place_dns01,
            "tls-alpn-01": self._place_alpn01,
        }

    # -- plumbing ---------------------------------------------------------------------------------------

    def host(self, step: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
        with self._host_lock:
            return self._host_call(step, args)

    @property
    def client(self) -> t.Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def client_if_made(self) -> t.Any:
        return self._client

    def _ensure_account(self) -> None:
        from ansible_collections.portail.https.plugins.module_utils._acme.account import Account

        with self._account_lock:
            client = self.client
            if client.account_url:
                return
            account = Account(client)
            if not account.find():
                kid, hmac_key, alg = self.options.eab or (None, None, "HS256")
                contact = [c if ":" in c else f"mailto:{c}" for c in self.options.contact]
                account.create(contact or None, self.options.terms_agreed, kid, hmac_key, alg)

    @staticmethod
    def _paths(spec: CertSpec) -> dict[str, t.Any]:
        return {
            "key_path": spec.key_path,
            "cert_path": spec.cert_path,
            "chain_path": spec.chain_path,
            "fullchain_path": spec.fullchain_path,
        }

    def _step(self, step: str, spec: CertSpec, args: dict[str, t.Any]) -> dict[str, t.Any]:
        try:
            return self.host(step, args)
        except HostError as exc:
            raise Failure("lock" if step == "prepare" else step, str(exc)) from None

    # -- one certificate --------------------------------------------------------------------------------

    def process(self, spec: CertSpec) -> Outcome:
        outcome = Outcome(spec)
        deadline = Deadline(self.options.timeout, f"certificate {spec.label}")
        try:
            while True:
                try:
                    self._process(spec, outcome, deadline)
                    break
                except _LockBusy as busy:
                    # the other run may renew this certificate: wait, then look again from the start
                    self._wait_for_lock(busy.locked, deadline)
                    outcome = Outcome(spec)
        except Failure as exc:
            outcome.failure = exc
        except HostError as exc:
            outcome.failure = Failure("inspect", str(exc))
        return outcome

    def prefetch(self, specs: t.Sequence[CertSpec]) -> None:
        """Inspect every certificate in one host round trip when the host steps can (ShellHost.prefetch)."""
        prefetch = getattr(self._host_call, "prefetch", None)
        if callable(prefetch) and len(specs) > 1:
            try:
                with self._host_lock:
                    prefetch([self._inspect_args(s) for s in specs])
            except (HostError, ValueError):
                pass  # each certificate then inspects on its own and reports its own problem

    def _inspect_args(self, spec: CertSpec) -> dict[str, t.Any]:
        return dict(
            self._paths(spec),
            webroot=spec.webroot if spec.challenge == "http-01" else [],
            challenge_dir=[spec.challenge_dir] if spec.challenge == "http-01" and spec.challenge_dir else [],
            owner=spec.owner,
            group=spec.group,
            mode=spec.mode,
            key_mode=spec.key_mode,
            # a missing file or force is due by the rule below whatever the clock: prepare in this round trip
            prepare_if_due=not self.options.check_mode,
            names=spec.names,
            key_type=spec.key_type,
            force=spec.force,
        )

    def _wait_for_lock(self, locked: t.Mapping[str, t.Any], deadline: Deadline) -> None:
        """Another run holds this certificate's lock on the host: wait a little (bounded by the timeout)."""
        left = float(locked.get("expires_in") or 1)
        if deadline.remaining() < 1:
            raise Failure(
                "lock",
                f"another run holds the lock of this certificate on the host ({left:.0f} s left on its lease)",
                hint="a second run on the same certificate; this one waited until its timeout. A killed run's lease "
                "expires by itself and is then removed with its pending key",
            )
        self.sleep(max(0.2, min(left, 2.0, deadline.remaining())))

    def _process(self, spec: CertSpec, out: Outcome, deadline: Deadline) -> None:
        args = self._inspect_args(spec)
        while True:
            state = self._step("inspect", spec, args)
            decision = self._decide(spec, state)
            # a certificate that is not due needs no lock: a run holding it (or killed holding it) is no reason
            # to wait; a due one waits for the other run, which may well renew it
            if not (state.get("locked") and decision.due):
                break
            self._wait_for_lock(state["locked"], deadline)
        if state.get("missing_webroots"):
            raise Failure(
                "inspect",
                "http-01 webroot does not exist on the host: " + ", ".join(state["missing_webroots"]),
                hint="create it and serve it as /.well-known/acme-challenge/ on port 80; no order was created",
            )
        out.before = out.cert = state.get("cert")
        out.changed = bool(state.get("changed"))
        out.warnings.extend(f"certificate {spec.label}: {w}" for w in state.get("warnings") or [])
        now = self.now()
        cid = _renewal.cert_id(out.before) if out.before else None
        if not decision.due and cid and self.options.use_ari:
            decision = self._ari(spec, state, decision, cid, now, out)
        out.reason, out.msg, out.renew_at = decision.reason, decision.msg, _iso(decision.renew_at)
        prepared = state.get("prepared")
        if not decision.due:
            if prepared:
                self._discard(spec, prepared, out)
            self._remove_dns_leftovers(spec, state, out)
            return
        if self.options.check_mode:
            out.changed = True
            out.msg = f"would issue: {decision.msg}"
            return
        self._issue(spec, out, decision, cid, state, deadline)

    def _remove_dns_leftovers(self, spec: CertSpec, state: t.Mapping[str, t.Any], out: Outcome) -> None:
        """TXT values an earlier run could not remove (DNS down at its cleanup), recorded with its deploy."""
        from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError

        leftovers = (state.get("meta") or {}).get("dns_leftovers") or []
        records = [(str(r["name"]), str(r["value"])) for r in leftovers if isinstance(r, dict) and "name" in r]
        if not records or spec.challenge != "dns-01" or self.dns_factory is None or self.options.check_mode:
            return
        options = {k: v for k, v in spec.dns.items() if k != "propagation_timeout"}
        try:
            errors = self.dns_factory(options).cleanup(records)
        except DnsError as exc:
            errors = [str(exc)]
        if errors:
            out.warnings.append(f"certificate {spec.label}: dns-01 values left by an earlier run: {'; '.join(errors)}")
        else:
            out.warnings.append(
                f"certificate {spec.label}: removed {len(records)} dns-01 value(s) an earlier run could not remove"
            )

    def _decide(self, spec: CertSpec, state: t.Mapping[str, t.Any]) -> _renewal.Decision:
        return _renewal.decide(
            state,
            names=spec.names,
            key_type=spec.key_type,
            fraction=spec.renew_remaining_fraction,
            force=spec.force,
            cert_path=spec.cert_path,
            key_path=spec.key_path,
            now=self.now(),
        )

    def _ari(
        self,
        spec: CertSpec,
        state: t.Mapping[str, t.Any],
        decision: _renewal.Decision,
        cid: str,
        now: datetime.datetime,
        out: Outcome,
    ) -> _renewal.Decision:
        """The CA's opinion on a certificate the local rule finds valid; a CA outage only warns."""
        meta = state.get("meta") or {}
        if meta.get("directory") == self.options.directory_url and not meta.get("ari"):
            return decision  # the CA that issued it has no ARI (recorded at deploy): no request at all
        try:
            client = self.client
            if not client.directory.renewal_info:
                return decision
            info = client.ari.fetch(cid)
        except AcmeError as exc:
            out.warnings.append(
                f"certificate {spec.label}: the CA's renewal information could not be read ({exc}); "
                f"not due by the local rule ({decision.msg}), so nothing was changed"
            )
            return decision
        out.renewal_window = {"start": info.start.isoformat(), "end": info.end.isoformat()}
        return _renewal.ari(decision, info, now)

    def _discard(self, spec: CertSpec, prep: t.Mapping[str, t.Any], out: Outcome) -> None:
        try:
            self.host("discard", dict(self._paths(spec), **{k: v for k, v in prep.items() if k != "csr"}))
        except HostError as exc:
            out.warnings.append(f"certificate {spec.label}: cleanup: removing the pending key: {exc}")

    def _issue(
        self,
        spec: CertSpec,
        out: Outcome,
        decision: _renewal.Decision,
        cid: t.Optional[str],
        state: t.Mapping[str, t.Any],
        deadline: Deadline,
    ) -> None:
        # what the inspect round trip changed, apart from the key and CSR it made (taken back on failure)
        host_changed = changed_beyond_prepare(state)
        prep: t.Optional[t.Mapping[str, t.Any]] = state.get("prepared")
        cleanups: list[Cleanup] = []
        http01: dict[str, t.Any] = {}
        ok = keep = False
        try:
            try:
                self._ensure_account()
            except AcmeError as exc:
                raise Failure.of("account", exc) from None
            if prep is None:
                prep = self._step(
                    "prepare", spec, dict(self._paths(spec), key_type=spec.key_type, names=spec.names, owner=spec.owner)
                )
                if prep.get("locked"):
                    locked, prep = prep["locked"], None
                    raise _LockBusy(locked)
            csr = csr_der(prep["csr"], spec.names)
            replaces = None
            if cid and decision.reason != _renewal.MISSING and self.client.directory.renewal_info:
                old = set((out.before or {}).get("names") or [])
                if decision.reason != _renewal.NAMES_CHANGED or old & set(spec.names):
                    replaces = cid
            self._profile_warning(spec, out)
            self._before_order(spec, out)
            try:
                order = self.client.new_order(spec.identifiers, profile=spec.profile, replaces=replaces)
            except AcmeError as exc:
                raise Failure.of("order", exc, ", ".join(spec.names)) from None
            out.replaces = None if order.replaces_dropped else replaces
            try:
                challenges = order.pending_challenges(spec.challenge)
            except AcmeError as exc:
                raise Failure.of("authorization", exc) from None
            if challenges and spec.dns.get("provider") == "external":
                # phase 1 of two: hand out the records; the playbook writes them and resumes (the lock is kept)
                self._hand_out(spec, order, challenges, prep, out)
                ok = keep = True
                return
            if challenges:
                placer = self.placers[spec.challenge]
                cleanups.append(placer(spec, challenges, deadline, out))
                if spec.challenge == "http-01":
                    http01 = getattr(cleanups[-1], "placed", {})
                self._preflight(spec, challenges, out)
                self._answer(spec, challenges, deadline)
            chain = self._certificate(spec, order, csr, deadline)
            client = self.client
            for undo in cleanups:
                # DNS records go before the deploy, so that values a DNS outage keeps are recorded with it
                if getattr(undo, "before_deploy", False):
                    problem = undo()
                    if problem:
                        out.warnings.append(f"certificate {spec.label}: cleanup: {problem}")
            meta: dict[str, t.Any] = {"directory": client.directory_url, "ari": bool(client.directory.renewal_info)}
            if out.dns_leftovers:
                meta["dns_leftovers"] = out.dns_leftovers
            deployed = self._deploy(spec, chain, meta, http01.get("files", []), http01.get("created_dirs", []))
            if http01:
                http01["removed_by_deploy"] = True
            if deployed.get("http01_problem"):
                out.warnings.append(f"certificate {spec.label}: cleanup: {deployed['http01_problem']}")
            out.cert = deployed.get("cert")
            new = _renewal.local_renew_at(out.cert, spec.renew_remaining_fraction) if out.cert else None
            out.renew_at = _iso(new)
            self._window_of_new(out)
            ok = True
        finally:
            if keep:
                out.changed = True  # phase 1 keeps the pending key and lock for the resume
                cleanups, prep = [], None
            for undo in reversed(cleanups):
                problem = undo()
                if problem:
                    out.warnings.append(f"certificate {spec.label}: cleanup: {problem}")
            if not ok and prep is not None:
                self._discard(spec, prep, out)
            out.changed = ok or host_changed

    def _window_of_new(self, out: Outcome) -> None:
        """The CA's renewal window of the certificate just issued, so the first run reports what the next
        runs will (a window that appears only at the second run would make it look like a change)."""
        cid = _renewal.cert_id(out.cert) if out.cert else None
        if not cid or not self.options.use_ari or not self.client.directory.renewal_info:
            return
        try:
            info = self.client.ari.fetch(cid)
        except AcmeError:
            return  # the CA may not know it yet: the next run asks again
        out.renewal_window = {"start": info.start.isoformat(), "end": info.end.isoformat()}
        renew_at = min(info.selected, _renewal._time(out.renew_at)) if out.renew_at else info.selected
        out.renew_at = _iso(renew_at)

    def _deploy(
        self, spec: CertSpec, chain: t.Any, meta: dict[str, t.Any], files: list[str], dirs: list[str]
    ) -> dict[str, t.Any]:
        """The host's switch to the new certificate (under this run's lock); the http-01 files go with it."""
        return self._step(
            "deploy",
            spec,
            dict(
                self._paths(spec),
                cert_pem=chain.cert_pem.decode("ascii"),
                chain_pem=chain.chain_pem.decode("ascii"),
                owner=spec.owner,
                group=spec.group,
                mode=spec.mode,
                key_mode=spec.key_mode,
                backup=spec.backup,
                meta=meta,
                files=files,
                created_dirs=dirs,
            ),
        )

    def _certificate(self, spec: CertSpec, order: t.Any, csr: bytes, deadline: Deadline) -> t.Any:
        try:
            order.finalize(csr, deadline)
        except AcmeError as exc:
            raise Failure.of("finalize", exc, ", ".join(spec.names)) from None
        try:
            return order.download(spec.preferred_chain)
        except AcmeError as exc:
            raise Failure.of("download", exc) from None

    def _hand_out(
        self, spec: CertSpec, order: t.Any, challenges: list[t.Any], prep: t.Mapping[str, t.Any], out: Outcome
    ) -> None:
        """dns-01 with provider external, phase 1: the records to create (CNAME followed) and how to resume."""
        from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError

        records = [(c.dns_name, c.dns_value) for c in challenges]
        try:
            placed = out.dns_provider.add_txt_records(records)
        except DnsError as exc:
            raise Failure("challenge", f"finding where the dns-01 records go: {exc}") from None
        out.dns_records = [
            {"name": r.name, "target": r.target or r.name, "zone": r.zone, "value": r.value} for r in placed
        ]
        out.resume = {
            "name": spec.label,
            "order": order.url,
            "csr": prep["csr"],
            "prepared": {k: v for k, v in prep.items() if k != "csr"},
            "replaces": out.replaces,
            "reason": out.reason,
        }
        out.msg = f"{out.msg}; dns-01 records to create: {', '.join(sorted({r['target'] for r in out.dns_records}))}"

    def resume(self, spec: CertSpec, entry: t.Mapping[str, t.Any], abort: bool = False) -> Outcome:
        """dns-01 with provider external, phase 2: records are in place; answer, finalize, deploy (or abort)."""
        out = Outcome(spec, reason=str(entry.get("reason") or _renewal.MISSING))
        deadline = Deadline(self.options.timeout, f"certificate {spec.label}")
        prep = dict(entry.get("prepared") or {})
        ok = False
        try:
            if abort:
                out.msg = "aborted: the pending key and lock were given back"
                return out
            try:
                self._ensure_account()
                order = self.client.order(str(entry["order"]))
                challenges = order.pending_challenges("dns-01")
            except AcmeError as exc:
                raise Failure.of("authorization", exc) from None
            if challenges:
                self._before_order(spec, out)  # makes the provider (no order is created here)
                records = [(c.dns_name, c.dns_value) for c in challenges]
                propagation = float(spec.dns.get("propagation_timeout") or 120)
                self._wait_records(spec, out.dns_provider, records, deadline, propagation)
                self._answer(spec, challenges, deadline)
            chain = self._certificate(spec, order, csr_der(str(entry["csr"]), spec.names), deadline)
            client = self.client
            meta = {"directory": client.directory_url, "ari": bool(client.directory.renewal_info)}
            deployed = self._deploy(spec, chain, meta, [], [])
            out.cert = deployed.get("cert")
            new = _renewal.local_renew_at(out.cert, spec.renew_remaining_fraction) if out.cert else None
            out.renew_at, out.replaces = _iso(new), entry.get("replaces")
            out.msg = "issued after the playbook created the dns-01 records"
            ok = out.changed = True
        except Failure as exc:
            out.failure = exc
        except HostError as exc:
            out.failure = Failure("deploy", str(exc))
        finally:
            if not ok:
                self._discard(spec, dict(prep, csr=None), out)
                out.changed = bool(prep.get("pending_created"))
        return out

    def _wait_records(
        self, spec: CertSpec, provider: t.Any, records: list[tuple[str, str]], deadline: Deadline, propagation: float
    ) -> None:
        from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError

        wait_until = time.monotonic() + min(deadline.remaining(), propagation)
        try:
            provider.wait_visible_records(records, wait_until)
        except DnsError as exc:
            lagging = getattr(exc, "lagging", None)
            extra = f" ({'; '.join(lagging)})" if lagging else ""
            raise Failure(
                "challenge",
                f"waiting for the dns-01 TXT records: {exc}{extra}",
                identifier=", ".join(n for n, _v in records),
            ) from None

    def _before_order(self, spec: CertSpec, out: Outcome) -> None:
        """What would make the CA refuse, found before any order exists: DNS access, then CAA."""
        from ansible_collections.portail.https.plugins.module_utils._acme.challenges import dns01_name
        from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError

        if spec.challenge == "dns-01":
            if self.dns_factory is None:
                raise Failure("preflight", "dns-01 needs the DNS backend (dnspython on the controller)")
            options = {k: v for k, v in spec.dns.items() if k != "propagation_timeout"}
            try:
                out.dns_provider = self.dns_factory(options)
                out.dns_provider.preflight(sorted({dns01_name(n) for n in spec.names}))
            except DnsError as exc:
                raise Failure(
                    "preflight", f"the DNS provider cannot write the dns-01 records: {exc}", hint="no order was created"
                ) from None
        if not self.options.caa_check:
            return
        identities = list((getattr(self.client.directory, "meta", None) or {}).get("caaIdentities") or [])
        if not identities:
            return  # the CA does not say which CAA identities it uses: no verdict is possible
        from ansible_collections.portail.https.plugins.plugin_utils import _caa

        servers = list(spec.dns.get("resolvers") or self.options.preflight_resolvers)
        try:
            if not servers:
                from ansible_collections.portail.https.plugins.module_utils._dns.lookup import system_resolvers

                servers = [f"{h}:{p}" for h, p in system_resolvers()]
            problems = _caa.check(
                spec.names, identities, self.client.account_url or "", spec.challenge, _caa.DnsCaaResolver(servers)
            )
        except (DnsError, ValueError) as exc:
            out.warnings.append(f"certificate {spec.label}: CAA could not be checked before ordering: {exc}")
            return
        if problems:
            raise Failure(
                "preflight",
                "; ".join(p.message() for p in problems),
                identifier=", ".join(p.name for p in problems),
                hint="no order was created",
            )

    def _profile_warning(self, spec: CertSpec, out: Outcome) -> None:
        """IP identifiers at a CA with profiles: Let's Encrypt issues them only under its short-lived profile."""
        if spec.profile or not any(i["type"] == "ip" for i in spec.identifiers):
            return
        offered = getattr(self.client.directory, "profiles", None) or {}
        if offered:
            out.warnings.append(
                f"certificate {spec.label}: IP identifiers without a profile, at a CA that offers profiles "
                f"({', '.join(sorted(offered))}); CAs such as Let's Encrypt issue IP certificates only under a "
                "short-lived profile (shortlived): set profile if the order is refused"
            )

    def _preflight(self, spec: CertSpec, challenges: list[t.Any], out: Outcome) -> None:
        """What the CA will check, checked first from every address: a failure never reaches the CA."""
        if not self.options.preflight or spec.challenge not in ("http-01", "tls-alpn-01"):
            return
        problems, warnings = self.preflight(spec.challenge, challenges, self.options.preflight_resolvers)
        out.warnings.extend(f"certificate {spec.label}: {w}" for w in warnings)
        if problems:
            raise Failure(
                "preflight",
                f"{spec.challenge} is not served correctly: " + "; ".join(problems),
                identifier=", ".join(c.identifier for c in challenges),
                hint="the CA was not asked to validate, so no failed authorization is recorded; fix the address named "
                "(web server, firewall, DNS) or set preflight: false if the controller cannot reach the hosts",
            )

    def _answer(self, spec: CertSpec, challenges: list[t.Any], deadline: Deadline) -> None:
        for ch in challenges:
            try:
                ch.respond()
            except AcmeError as exc:
                raise Failure.of("challenge", exc, ch.identifier) from None
        hint = _VALIDATION_HINTS.get(spec.challenge, "")
        for ch in challenges:
            try:
                ch.authz.wait_valid(deadline)
            except ValidationFailed as exc:
                raise Failure.of("validation", exc, ch.identifier, hint.replace("NAME", ch.identifier)) from None
            except AcmeTimeout as exc:
                raise Failure(
                    "validation", f"the CA did not finish validating in time: {exc}", identifier=ch.identifier
                ) from None
            except AcmeError as exc:
                failure = Failure.of("validation", exc, ch.identifier)
                failure.detail = f"polling the authorization status: {failure.detail}"
                raise failure from None

    # -- challenges: one placer per type, each returns its cleanup ----------------------------------------

    def _place_http01(self, spec: CertSpec, challenges: list[t.Any], deadline: Deadline, out: Outcome) -> Cleanup:
        tokens = [{"token": c.token, "content": c.key_authorization} for c in challenges]
        args = {
            "webroot": spec.webroot,
            "challenge_dir": [spec.challenge_dir] if spec.challenge_dir else [],
            "tokens": tokens,
        }
        try:
            placed = self.host("http01_place", args)
        except HostError as exc:
            raise Failure("challenge", f"placing the http-01 token files: {exc}", identifier=spec.names[0]) from None
        state = {"files": placed.get("files", []), "created_dirs": placed.get("created_dirs", [])}

        def undo() -> t.Optional[str]:
            if state.get("removed_by_deploy"):
                return None
            try:
                self.host("http01_cleanup", dict(args, files=state["files"], created_dirs=state["created_dirs"]))
            except HostError as exc:
                return f"removing http-01 token files: {exc}"
            return None

        undo.placed = state  # type: ignore[attr-defined]
        return undo

    def _place_dns01(self, spec: CertSpec, challenges: list[t.Any], deadline: Deadline, out: Outcome) -> Cleanup:
        from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError

        options = dict(spec.dns)
        propagation = float(options.pop("propagation_timeout", None) or 120)
        idents = ", ".join(c.identifier for c in challenges)
        records = [(c.dns_name, c.dns_value) for c in challenges]
        provider = out.dns_provider
        if provider is None:
            raise Failure("challenge", "dns-01 needs the DNS backend (dnspython on the controller)")
        try:
            # values left by an earlier run whose cleanup failed: oversized TXT answers get rejected
            purged = provider.purge_stale(sorted({n for n, _v in records}), [v for _n, v in records])
            if purged:
                out.warnings.append(
                    f"certificate {spec.label}: removed {len(purged)} stale dns-01 value(s) left by an earlier run"
                )
            placed = provider.add_txt_records(records)
        except DnsError as exc:
            provider.cleanup(records)  # a batch may have been applied in part, in another zone
            raise Failure("challenge", f"placing the dns-01 TXT records: {exc}", identifier=idents) from None
        out.dns_records = [{"name": r.name, "target": r.target or r.name, "zone": r.zone} for r in placed]

        def undo() -> t.Optional[str]:
            if getattr(undo, "done", False):
                return None
            undo.done = True  # type: ignore[attr-defined]
            errors = provider.cleanup(records)
            if errors:
                out.dns_leftovers = [{"name": n, "value": v} for n, v in records]
                return "; ".join(errors) + " (recorded on the host: the next run removes them)"
            return None

        undo.before_deploy = True  # type: ignore[attr-defined]

        wait_until = time.monotonic() + min(deadline.remaining(), propagation)
        try:
            provider.wait_visible_records(records, wait_until)
        except DnsError as exc:
            problem = undo()
            lagging = getattr(exc, "lagging", None)
            extra = f" ({'; '.join(lagging)})" if lagging else ""
            if problem:
                out.warnings.append(f"certificate {spec.label}: cleanup: {problem}")
            raise Failure("challenge", f"waiting for the dns-01 TXT records: {exc}{extra}", identifier=idents) from None
        return undo

    def _place_alpn01(self, spec: CertSpec, challenges: list[t.Any], deadline: Deadline, out: Outcome) -> Cleanup:
        with self._alpn_guard:
            lock = self._alpn_locks.setdefault((spec.alpn_address, spec.alpn_port), threading.Lock())
        certs = []
        for c in challenges:
            cert_pem, key_pem = c.tls_alpn_certificate()
            certs.append({"sni": c.tls_alpn_sni, "cert": cert_pem.decode("ascii"), "key": key_pem.decode("ascii")})
        lock.acquire()
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
            lock.release()
            idents = ", ".join(c.identifier for c in challenges)
            raise Failure("challenge", f"starting the tls-alpn-01 responder: {exc}", identifier=idents) from None

        def undo() -> t.Optional[str]:
            try:
                self.host("alpn_stop", {"responder": started["responder"]})
            except HostError as exc:
                return f"stopping the tls-alpn-01 responder: {exc}"
            finally:
                lock.release()
            return None

        return undo
