# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CAA checked on the controller before an order is created (RFC 8659, RFC 8657).

For each name, the relevant CAA RRset is found by climbing the tree (the name itself, then each
parent, stopping before the root; the first non-empty CAA RRset wins; a CNAME at a name is followed
by the resolver). That set must authorize one of the CA's identities (the directory's
``meta.caaIdentities``) with ``issue`` (or ``issuewild`` for a wildcard, when the set has any),
and the record that does must not restrict ``accounturi`` to another account or
``validationmethods`` to methods other than the one we use. A critical property we do not know
forbids issuance. Every refusal comes back as a ``CaaProblem`` naming the name, the records
found, and the record to add.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError
from ansible_collections.portail.https.plugins.module_utils._dns.lookup import DnsLookup, parse_server
from ansible_collections.portail.https.plugins.module_utils._dns.names import to_name, to_text

try:
    import dns.name
    import dns.rcode
    import dns.rdatatype
except ImportError:  # pragma: no cover - names.HAS_DNSPYTHON records the error
    pass

#: property tags RFC 8659 defines; a critical property with another tag forbids issuance
KNOWN_TAGS = frozenset({"issue", "issuewild", "iodef"})
CRITICAL = 0x80


@dataclass(frozen=True)
class CaaRecord:
    """One CAA resource record."""

    flags: int
    tag: str
    value: str

    def text(self) -> str:
        return f'{self.flags} {self.tag} "{self.value}"'


@dataclass(frozen=True)
class CaaProblem:
    """Why the CA would refuse ``name``, and the record that would fix it."""

    name: str  # the identifier as given (``*.example.com`` for a wildcard)
    owner: str  # where the relevant CAA RRset was found ("" when the lookup failed)
    records: tuple[str, ...]  # the relevant RRset in presentation form
    reason: str
    fix: str  # a record to add, in zone-file form ("" when no record can fix it)

    def message(self) -> str:
        found = f" (CAA at {self.owner}: {'; '.join(self.records)})" if self.owner else ""
        todo = f"; add: {self.fix}" if self.fix else ""
        return f"CAA forbids {self.name}: {self.reason}{found}{todo}"


class CaaLookupError(Exception):
    """The CAA records of a name could not be read (RFC 8659: the CA must not issue then)."""


#: ``resolver(name)`` -> the CAA records at ``name`` (after any CNAME), ``[]`` when there are none
#: (no CAA, NODATA or NXDOMAIN); raises CaaLookupError when the answer is a failure.
CaaResolver = t.Callable[[str], t.Sequence[CaaRecord]]


@dataclass(frozen=True)
class IssueValue:
    """A parsed ``issue`` / ``issuewild`` value: ``issuer; key=value; ...``."""

    issuer: str  # lower case, no trailing dot; "" means "no CA"
    parameters: tuple[tuple[str, str], ...]

    def get(self, key: str) -> t.Optional[str]:
        for k, v in self.parameters:
            if k == key:
                return v
        return None


def parse_issue_value(value: str) -> IssueValue:
    """RFC 8659 section 4.2: issuer-domain-name, then ``;``-separated ``tag=value`` parameters."""
    head, _sep, rest = value.partition(";")
    issuer = head.strip().lower().rstrip(".")
    params: list[tuple[str, str]] = []
    for raw in rest.split(";"):
        part = raw.strip()
        if not part:
            continue
        key, _eq, val = part.partition("=")
        params.append((key.strip().lower(), val.strip()))
    return IssueValue(issuer, tuple(params))


def _climb(name: str) -> list[str]:
    """``a.b.example.com`` -> [a.b.example.com., b.example.com., example.com., com.]."""
    parsed = to_name(name, what="name")
    if parsed.labels and parsed.labels[0] == b"*":
        parsed = parsed.parent()
    out = []
    while len(parsed.labels) > 1:
        out.append(to_text(parsed))
        parsed = parsed.parent()
    return out


def relevant_rrset(name: str, resolver: CaaResolver) -> tuple[str, list[CaaRecord]]:
    """(owner, records) of the relevant CAA RRset of ``name``; ("", []) when none up to the TLD."""
    for candidate in _climb(name):
        records = list(resolver(candidate))
        if records:
            return candidate, records
    return "", []


def _fix(owner: str, tag: str, identity: str, account_uri: str, method: str, restricted: list[IssueValue]) -> str:
    params = []
    if any(v.get("accounturi") is not None for v in restricted) and account_uri:
        params.append(f"accounturi={account_uri}")
    methods = [v.get("validationmethods") for v in restricted if v.get("validationmethods") is not None]
    if methods:
        allowed = [m.strip() for m in (methods[0] or "").split(",") if m.strip()]
        params.append("validationmethods=" + ",".join([*allowed, method] if method not in allowed else allowed))
    value = "; ".join([identity, *params])
    return f'{owner} CAA 0 {tag} "{value}"'


def evaluate(
    name: str,
    owner: str,
    records: t.Sequence[CaaRecord],
    ca_identities: t.Sequence[str],
    account_uri: str,
    method: str,
) -> t.Optional[CaaProblem]:
    """The verdict of one relevant RRset for one name: None when the CA may issue."""
    shown = tuple(r.text() for r in records)
    for rec in records:
        if rec.flags & CRITICAL and rec.tag.lower() not in KNOWN_TAGS:
            return CaaProblem(
                name,
                owner,
                shown,
                f"critical property {rec.tag!r} is unknown, which forbids issuance (RFC 8659 section 4.5)",
                f"remove {owner} CAA {rec.text()} or clear its critical flag",
            )
    wildcard = name.strip().startswith("*.")
    issue = [r for r in records if r.tag.lower() == "issue"]
    issuewild = [r for r in records if r.tag.lower() == "issuewild"]
    tag = "issuewild" if wildcard and issuewild else "issue"
    props = issuewild if tag == "issuewild" else issue
    if not props:
        return None  # the set restricts nothing for this kind of name (only iodef, unknown tags...)
    identities = {i.lower().rstrip(".") for i in ca_identities}
    reasons: list[str] = []
    ours: list[IssueValue] = []
    for rec in props:
        parsed = parse_issue_value(rec.value)
        if parsed.issuer not in identities:
            continue
        ours.append(parsed)
        acct = parsed.get("accounturi")
        if acct is not None and acct != account_uri:
            reasons.append(f"{tag} {rec.value!r} allows only account {acct}, and this account is {account_uri or '?'}")
            continue
        methods = parsed.get("validationmethods")
        if methods is not None and method not in [m.strip() for m in methods.split(",")]:
            reasons.append(f"{tag} {rec.value!r} allows only validation methods {methods}, and we use {method}")
            continue
        return None
    if not reasons:
        named = ", ".join(sorted({parse_issue_value(r.value).issuer or '";" (no CA)' for r in props}))
        reasons.append(f"{tag} names {named}, not this CA ({', '.join(sorted(identities))})")
    fix = _fix(owner, tag, sorted(identities)[0], account_uri, method, ours) if identities else ""
    return CaaProblem(name, owner, shown, "; ".join(reasons), fix)


def check(
    names: t.Iterable[str],
    ca_identities: t.Sequence[str],
    account_uri: str,
    method: str,
    resolver: CaaResolver,
) -> list[CaaProblem]:
    """Every name the CA would refuse because of CAA, with what to add. An empty list means go.

    ``ca_identities`` is the directory's ``meta.caaIdentities`` (or what the user says the CA
    uses); it must not be empty: without it no verdict is possible, and the caller skips the check.
    ``account_uri`` is this account's URL (RFC 8657 accounturi), ``method`` the challenge type
    (``dns-01``, ``http-01``, ``tls-alpn-01``).
    """
    if not ca_identities:
        raise ValueError("CAA check needs the CA's identities (the directory's meta.caaIdentities)")
    problems: list[CaaProblem] = []
    for name in names:
        try:
            owner, records = relevant_rrset(name, resolver)
        except (CaaLookupError, DnsError) as exc:
            problems.append(CaaProblem(name, "", (), f"CAA lookup failed, so the CA would refuse: {exc}", ""))
            continue
        if not records:
            continue
        problem = evaluate(name, owner, records, ca_identities, account_uri, method)
        if problem is not None:
            problems.append(problem)
    return problems


class DnsCaaResolver:
    """A ``CaaResolver`` asking recursive resolvers (``host``, ``host:port``) with dnspython."""

    def __init__(self, servers: t.Sequence[str], timeout: float = 5.0) -> None:
        if not servers:
            raise ValueError("DnsCaaResolver needs at least one resolver")
        self.lookup = DnsLookup([parse_server(s, 53) for s in servers], timeout=timeout)

    def __call__(self, name: str) -> list[CaaRecord]:
        qname = dns.name.from_text(name)
        response = self.lookup.query(qname, dns.rdatatype.CAA)  # NOERROR or NXDOMAIN, else raises
        if response.rcode() == dns.rcode.NXDOMAIN:
            return []
        out: list[CaaRecord] = []
        for rrset in response.answer:
            if rrset.rdtype != dns.rdatatype.CAA:
                continue
            for rd in rrset:
                out.append(
                    CaaRecord(
                        int(rd.flags),
                        rd.tag.decode("ascii", errors="replace"),
                        rd.value.decode("utf-8", errors="replace"),
                    )
                )
        return out
