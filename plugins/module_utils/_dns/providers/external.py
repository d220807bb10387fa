# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Records written by the playbook: any Ansible DNS module, with any credential (AWX cloud credentials too).

acme_certificate cannot call another module itself, so with this provider it works in two phases: the
first run orders and hands out the records to create, the CNAME of ``_acme-challenge`` already followed
(``target`` and ``zone``); the playbook (the certificate role runs the task file the user names) creates
them; the second run (``resume``) waits until every authoritative server of the target zone serves them,
answers the CA and deploys. Removing the records is the playbook's job as well (the role always does it,
after a failure too). So this provider only places (CNAME and zone) and waits; it never writes.
"""

from __future__ import annotations

import typing as t

from ansible_collections.portail.https.plugins.module_utils._dns.base import (
    DnsProvider,
    RecordSpec,
    TxtRecord,
    option_kwargs,
)
from ansible_collections.portail.https.plugins.module_utils._dns.lookup import DnsLookup, parse_server, system_resolvers
from ansible_collections.portail.https.plugins.module_utils._dns.names import require_dnspython

#: acme_certificate's ``dns`` options this provider reads (see providers/__init__.py: options_spec)
OPTIONS: dict[str, dict[str, t.Any]] = {
    "resolvers": {"type": "list", "elements": "str"},
    "nameserver_port": {"type": "int"},
}


class ExternalProvider(DnsProvider):
    """Places and waits; the playbook writes and removes."""

    kind = "external"
    writes = False

    def __init__(self, resolvers: t.Sequence[str], nameserver_port: int = 53) -> None:
        require_dnspython()
        servers = [parse_server(r, 53) for r in resolvers] or system_resolvers()
        self.lookup = DnsLookup(servers, timeout=5.0, nameserver_port=nameserver_port)

    def _check_access(self, zone: str, records: t.Sequence[TxtRecord]) -> None:
        return None  # the playbook's credentials, not ours

    def add_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        return self._records(records)

    def remove_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        return self._records(records)

    def purge_stale(self, names: t.Iterable[str], keep_values: t.Iterable[str]) -> list[TxtRecord]:
        return []


def make(options: t.Mapping[str, t.Any]) -> ExternalProvider:
    """The registry's factory (providers/__init__.py)."""
    kwargs = option_kwargs("external", options, {k: k for k in OPTIONS})
    return ExternalProvider(kwargs.get("resolvers") or (), int(kwargs.get("nameserver_port") or 53))
