# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record API every DNS-01 provider implements."""

from __future__ import annotations

import abc
import time
import typing as t
from dataclasses import dataclass

from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsAuthError,
    DnsError,
    DnsUnreachableError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.names import check_txt_value, record_name, to_text


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

    @abc.abstractmethod
    def wait_visible_records(self, records: t.Iterable[RecordSpec], deadline: float) -> dict[str, t.Any]:
        """Return once every authoritative server serves every value; else DnsPropagationTimeout."""

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
