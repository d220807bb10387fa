# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record API every DNS-01 provider implements."""

from __future__ import annotations

import abc
import re
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsAuthError,
    DnsConfigError,
    DnsError,
    DnsLookupError,
    DnsUnreachableError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.lookup import MAX_WORKERS, DnsLookup
from ansible_collections.portail.https.plugins.module_utils._dns.names import check_txt_value, record_name, to_text

try:
    import dns.exception
    import dns.name
except ImportError:  # pragma: no cover - names.HAS_DNSPYTHON records the error
    pass

if t.TYPE_CHECKING:  # pragma: no cover
    from dns.name import Name

#: what a DNS-01 value looks like (base64url of a SHA-256 digest, RFC 8555 section 8.4): only
#: values of this shape are ever purged as stale, never other TXT data a name may carry.
ACME_VALUE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class TxtRecord:
    """One TXT value placed (or to place) for a name.

    ``name`` is the name as asked (absolute, lower case); ``target`` is where the value is
    written after following CNAMEs, ``zone`` the zone holding ``target``.
    """

    name: str
    value: str
    target: str = ""
    zone: str = ""
    cname_chain: tuple[str, ...] = ()


RecordSpec = t.Union[TxtRecord, tuple[str, str]]


def deadline_after(seconds: float) -> float:
    """A deadline for ``wait_visible*``: ``time.monotonic()`` plus ``seconds``."""
    return time.monotonic() + seconds


def normalize_records(records: t.Iterable[RecordSpec]) -> list[tuple[str, str]]:
    """(absolute lower-case name, value) pairs, validated and de-duplicated, order kept."""
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    for spec in records:
        if isinstance(spec, TxtRecord):
            name, value = spec.name, spec.value
        else:
            name, value = spec
        key = (to_text(record_name(name)), check_txt_value(value, name))
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


@dataclass(frozen=True)
class Placement:
    """Where the TXT values of ``name`` go: ``target`` (after CNAMEs) in ``zone``."""

    name: Name
    chain: tuple[Name, ...]
    target: Name
    zone: Name


class DnsProvider(abc.ABC):
    """Abstract TXT record API used by DNS-01.

    The single-record methods are conveniences over the batch methods, which providers
    implement: one change per zone for all records, and one parallel propagation check.
    Adding never replaces other values of the same name; removing deletes only the given
    value. Record names are the full owner names (see ``names.challenge_name``); a CNAME on
    them is followed and the value written at the target.
    """

    #: short provider name, e.g. ``rfc2136``
    kind: t.ClassVar[str] = ""
    #: CNAME following, zone discovery, authoritative servers; set by every provider's __init__
    lookup: DnsLookup

    # --- placement: CNAME + zone (shared by every provider) -----------------------------------

    def _find_zone(self, target: Name) -> Name:
        """The zone holding ``target``; providers with an API may ask it instead of the DNS."""
        return self.lookup.find_zone(target)

    def _place(self, name: Name) -> Placement:
        cache: dict[Name, Placement] = self.__dict__.setdefault("_placements", {})
        cached = cache.get(name)
        if cached is not None:
            return cached
        chain = self.lookup.follow_cname(name)
        target = chain[-1]
        zone = self._find_zone(target)
        placement = Placement(name, tuple(chain), target, zone)
        cache[name] = placement
        return placement

    def _place_all(self, names: t.Iterable[Name]) -> dict[Name, Placement]:
        todo = sorted(set(names))
        if len(todo) <= 1:
            return {n: self._place(n) for n in todo}
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(todo))) as pool:
            results = list(pool.map(self._place, todo))
        return {p.name: p for p in results}

    def _records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        """Validate, de-duplicate and place records (CNAME followed, zone found)."""
        pairs = normalize_records(records)
        placements = self._place_all(dns.name.from_text(n) for n, _v in pairs)
        out = []
        for name, value in pairs:
            p = placements[dns.name.from_text(name)]
            out.append(TxtRecord(name, value, to_text(p.target), to_text(p.zone), tuple(to_text(n) for n in p.chain)))
        return out

    @staticmethod
    def _by_zone(records: t.Sequence[TxtRecord]) -> dict[str, list[TxtRecord]]:
        grouped: dict[str, list[TxtRecord]] = {}
        for rec in records:
            grouped.setdefault(rec.zone, []).append(rec)
        return grouped

    # --- checks before the order --------------------------------------------------------------

    def preflight(self, names: t.Iterable[str]) -> list[TxtRecord]:
        """Check, before any ACME order exists, that records for ``names`` (challenge names such as
        ``_acme-challenge.example.com``) can be written: CNAMEs followed, zones found, and the
        provider's credentials and access to each zone verified without changing anything.
        Returns the placements (``value`` empty). Raises a DnsError subclass otherwise."""
        placed = self._records((n, "x") for n in names)
        for zone, recs in self._by_zone(placed).items():
            self._check_access(zone, recs)
        return [TxtRecord(r.name, "", r.target, r.zone, r.cname_chain) for r in placed]

    @abc.abstractmethod
    def _check_access(self, zone: str, records: t.Sequence[TxtRecord]) -> None:
        """Verify credentials and write access for ``zone`` without changing it."""

    # --- stale values -------------------------------------------------------------------------

    def current_values(self, record: TxtRecord) -> set[str]:
        """TXT values the zone serves now at ``record.target``: the union over every authoritative
        server of the zone (a value only a lagging secondary still has is harmless to remove).
        Providers with an API override this to read the provider's own data."""
        target = dns.name.from_text(record.target)
        values: set[str] = set()
        answered = False
        problems: list[str] = []
        for ns_name, address in self.lookup.nameservers(dns.name.from_text(record.zone)):
            try:
                values |= self.lookup.served_txt(target, address, timeout=self.lookup.timeout)
                answered = True
            except (OSError, DnsLookupError, dns.exception.DNSException) as exc:
                problems.append(f"{ns_name} ({address}): {exc}")
        if not answered:
            raise DnsLookupError(
                f"cannot read the TXT values of {record.target}: " + "; ".join(problems), record=record.target
            )
        return values

    def purge_stale(self, names: t.Iterable[str], keep_values: t.Iterable[str]) -> list[TxtRecord]:
        """Remove DNS-01 values left at ``names`` by an earlier run that failed before its cleanup.

        Only values shaped like a DNS-01 value (43 base64url characters) and not in ``keep_values``
        are removed, so other TXT data on the name survives. Call it before ``add_txt_records``
        with the values of this order in ``keep_values``. Returns the records removed."""
        keep = set(keep_values)
        placed = self._records((n, "x") for n in names)
        stale: list[TxtRecord] = []
        seen: set[str] = set()
        for rec in placed:
            if rec.target in seen:
                continue
            seen.add(rec.target)
            for value in sorted(self.current_values(rec)):
                if value not in keep and ACME_VALUE_RE.match(value):
                    stale.append(TxtRecord(rec.name, value, rec.target, rec.zone, rec.cname_chain))
        if stale:
            self.remove_txt_records(stale)
        return stale

    def add_txt(self, name: str, value: str) -> TxtRecord:
        return self.add_txt_records([(name, value)])[0]

    def remove_txt(self, name: str, value: str) -> TxtRecord:
        return self.remove_txt_records([(name, value)])[0]

    def wait_visible(self, name: str, values: t.Iterable[str], deadline: float) -> dict[str, t.Any]:
        return self.wait_visible_records([(name, v) for v in values], deadline)

    @abc.abstractmethod
    def add_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        """Add every value (one change per zone); checks credentials and zones first."""

    @abc.abstractmethod
    def remove_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        """Remove exactly these values; removing a value that is not there is not an error."""

    # --- providers that write zone by zone (one change per zone) -----------------------------------

    def _zone_change(self, zone: str, adds: t.Sequence[TxtRecord], deletes: t.Sequence[TxtRecord]) -> None:
        """One atomic change of one zone; providers that write zone by zone implement it."""
        raise NotImplementedError

    def _add_by_zone(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        """add_txt_records through ``_zone_change``: zones checked first, and nothing left half-done."""
        placed = self._records(records)
        grouped = self._by_zone(placed)
        for zone, recs in grouped.items():
            self._check_access(zone, recs)
        done: list[str] = []
        try:
            for zone, recs in grouped.items():
                self._zone_change(zone, recs, ())
                done.append(zone)
        except DnsError:
            for zone in done:  # leave nothing half-done across zones
                try:
                    self._zone_change(zone, (), grouped[zone])
                except DnsError:
                    pass
            raise
        return placed

    def _remove_by_zone(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        placed = self._records(records)
        for zone, recs in self._by_zone(placed).items():
            self._zone_change(zone, (), recs)
        return placed

    def wait_visible_records(self, records: t.Iterable[RecordSpec], deadline: float) -> dict[str, t.Any]:
        """Return once every authoritative server of each target zone serves every value; else
        DnsPropagationTimeout naming each server that lacked a value and how long it was asked."""
        placed = self._records(records)
        expected: dict[Name, tuple[Name, set[str]]] = {}
        for rec in placed:
            target = dns.name.from_text(rec.target)
            entry = expected.setdefault(target, (dns.name.from_text(rec.zone), set()))
            entry[1].add(rec.value)
        if not expected:
            return {"seconds": 0.0, "rounds": 0}
        return self.lookup.wait_all(expected, deadline)

    def cleanup(self, records: t.Iterable[RecordSpec]) -> list[str]:
        """Best-effort removal, safe after any failure and when called twice: never raises,
        returns the error messages (one per record that could not be removed)."""
        specs = list(records)
        if not specs:
            return []
        try:
            self.remove_txt_records(specs)
            return []
        except (DnsUnreachableError, DnsAuthError) as exc:
            return [str(exc)]  # would fail the same way record by record
        except DnsError:
            pass
        errors: list[str] = []
        for spec in specs:
            try:
                self.remove_txt_records([spec])
            except DnsError as exc:
                errors.append(str(exc))
        return errors


# --- provider configuration (shared by the providers' config classes) --------------------------------


def as_tuple(value: t.Any) -> tuple[str, ...]:
    """A list (or a single string) of servers as a tuple."""
    return (value,) if isinstance(value, str) else tuple(value)


def option_kwargs(kind: str, options: t.Mapping[str, t.Any], fields: t.Mapping[str, str]) -> dict[str, t.Any]:
    """A provider config's keyword arguments from acme_certificate's ``dns`` options (``fields``: option name
    -> config field). None values are left out; an option the provider does not know is an error naming it."""
    kwargs: dict[str, t.Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in fields:
            raise DnsConfigError(f"{kind}: unknown option {key!r}; known: {', '.join(sorted(fields))}")
        kwargs[fields[key]] = value
    if "resolvers" in kwargs:
        kwargs["resolvers"] = as_tuple(kwargs["resolvers"])
    return kwargs
