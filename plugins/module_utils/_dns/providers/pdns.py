# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PowerDNS Authoritative through its HTTP API (``/api/v1``, X-API-Key).

The API replaces a whole RRset at once (``changetype: REPLACE``), so adding or removing one
value reads the RRset, merges, and writes it back: other values of the name survive.
HTTP goes through ``ansible.module_utils.urls.open_url``, which honours ``http_proxy``,
``https_proxy`` and ``no_proxy`` like every other Ansible HTTP client.
"""

from __future__ import annotations

import json
import threading
import typing as t
import urllib.error
import urllib.parse
from dataclasses import dataclass, field

from ansible.module_utils.urls import open_url
from ansible_collections.portail.https.plugins.module_utils._dns.base import (
    DnsProvider,
    RecordSpec,
    TxtRecord,
    as_tuple,
    option_kwargs,
)
from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsAuthError,
    DnsConfigError,
    DnsError,
    DnsRefusedError,
    DnsUnreachableError,
    DnsUpdateError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.lookup import DnsLookup, parse_server, system_resolvers
from ansible_collections.portail.https.plugins.module_utils._dns.names import require_dnspython, to_name, to_text

if t.TYPE_CHECKING:  # pragma: no cover
    from dns.name import Name

#: acme_certificate's ``dns`` options this provider reads (see providers/__init__.py: options_spec)
OPTIONS: dict[str, dict[str, t.Any]] = {
    "api_url": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "server_id": {"type": "str"},
    "api_validate_certs": {"type": "bool"},
    "api_ca_path": {"type": "path"},
    "timeout": {"type": "float"},
    "ttl": {"type": "int"},
    "resolvers": {"type": "list", "elements": "str"},
    "nameserver_port": {"type": "int"},
}


@dataclass(frozen=True)
class PdnsConfig:
    """Settings of the PowerDNS provider. ``repr``/``str`` never show the API key."""

    api_url: str
    api_key: str = field(repr=False)
    server_id: str = "localhost"
    api_validate_certs: bool = True
    api_ca_path: t.Optional[str] = None
    timeout: float = 10.0
    ttl: int = 60
    resolvers: tuple[str, ...] = ()
    nameserver_port: int = 53

    def __post_init__(self) -> None:
        if not isinstance(self.api_url, str) or not self.api_url.strip():
            raise DnsConfigError("pdns: api_url is required (for example http://192.0.2.10:8081)")
        parsed = urllib.parse.urlsplit(self.api_url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise DnsConfigError(f"pdns: api_url {self.api_url!r} must be an http:// or https:// URL")
        if parsed.username or parsed.password or parsed.query or parsed.fragment:
            raise DnsConfigError("pdns: api_url must not hold credentials, a query or a fragment")
        if not isinstance(self.api_key, str) or not self.api_key:
            raise DnsConfigError("pdns: api_key is required")
        if any(c in self.api_key for c in "\r\n"):
            raise DnsConfigError("pdns: api_key contains a line break")
        if not self.server_id or "/" in self.server_id:
            raise DnsConfigError(f"pdns: server_id {self.server_id!r} is not a PowerDNS server id")
        if not 0 < float(self.timeout) <= 300:
            raise DnsConfigError("pdns: timeout must be more than 0 and at most 300 seconds")
        if not 0 <= int(self.ttl) <= 86400:
            raise DnsConfigError("pdns: ttl must be between 0 and 86400")
        if not 0 < int(self.nameserver_port) < 65536:
            raise DnsConfigError("pdns: nameserver_port must be between 1 and 65535")
        if isinstance(self.resolvers, (list, str)):
            object.__setattr__(self, "resolvers", as_tuple(self.resolvers))

    def __str__(self) -> str:
        return repr(self)

    @classmethod
    def from_options(cls, options: t.Mapping[str, t.Any]) -> PdnsConfig:
        kwargs = option_kwargs("pdns", options, {k: k for k in OPTIONS})
        for required in ("api_url", "api_key"):
            if required not in kwargs:
                raise DnsConfigError(f"pdns: {required} is required")
        return cls(**kwargs)


def txt_content(value: str) -> str:
    """A TXT value in presentation form, as the API wants it: quoted, with escapes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_txt_content(content: str) -> str:
    """The value of a TXT record as the API returns it (one or more quoted strings, joined)."""
    out: list[str] = []
    i, n = 0, len(content)
    while i < n:
        if content[i] != '"':
            i += 1
            continue
        i += 1
        while i < n and content[i] != '"':
            if content[i] == "\\" and i + 1 < n:
                if content[i + 1 : i + 4].isdigit() and len(content[i + 1 : i + 4]) == 3:
                    out.append(chr(int(content[i + 1 : i + 4])))
                    i += 4
                    continue
                out.append(content[i + 1])
                i += 2
                continue
            out.append(content[i])
            i += 1
        i += 1
    return "".join(out)


class PdnsProvider(DnsProvider):
    """TXT records through the PowerDNS Authoritative HTTP API."""

    kind = "pdns"

    def __init__(self, config: PdnsConfig) -> None:
        require_dnspython()
        self.config = config
        self.__key = config.api_key  # name-mangled: never in vars() dumps by accident
        self._base = config.api_url.strip().rstrip("/")
        if not self._base.endswith("/api/v1"):
            self._base += "/api/v1"
        self._server_path = f"{self._base}/servers/{urllib.parse.quote(config.server_id, safe='')}"
        lookups = [parse_server(r, 53) for r in config.resolvers] or system_resolvers()
        self.lookup = DnsLookup(
            lookups, timeout=min(float(config.timeout), 5.0), nameserver_port=config.nameserver_port
        )
        self._zones: t.Optional[list[Name]] = None
        self._zones_lock = threading.Lock()  # placements run in parallel: list the zones once
        self._checked_zones: set[str] = set()

    def __repr__(self) -> str:
        return f"PdnsProvider({self.config!r})"

    # --- HTTP -----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self.__key, "********") if self.__key else text

    def _call(self, method: str, path: str, what: str, body: t.Any = None, *, zone: str = "") -> t.Any:
        url = self._server_path + path
        headers = {"X-API-Key": self.__key, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        where = self._base
        try:
            resp = open_url(
                url,
                data=data,
                headers=headers,
                method=method,
                use_proxy=True,
                timeout=float(self.config.timeout),
                validate_certs=bool(self.config.api_validate_certs),
                ca_path=self.config.api_ca_path,
                follow_redirects="none",
                use_netrc=False,
            )
            raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, what, zone) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DnsUnreachableError(
                self._scrub(f"pdns: {what}: cannot reach the API at {where}: {reason}"), server=where, zone=zone or None
            ) from None
        except Exception as exc:  # open_url also raises its own SSL/connection errors
            raise DnsUnreachableError(
                self._scrub(f"pdns: {what}: cannot reach the API at {where}: {type(exc).__name__}: {exc}"),
                server=where,
                zone=zone or None,
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise DnsUpdateError(
                f"pdns: {what}: the API at {where} answered something that is not JSON", server=where
            ) from None

    def _http_error(self, exc: urllib.error.HTTPError, what: str, zone: str) -> DnsError:
        detail = ""
        try:
            body = exc.read(2048)
            doc = json.loads(body)
            if isinstance(doc, dict) and isinstance(doc.get("error"), str):
                detail = doc["error"]
        except Exception:  # noqa: S110 - the status code says enough
            pass
        detail = self._scrub(detail.replace("\n", " ")[:300])
        status = f"HTTP {exc.code}" + (f": {detail}" if detail else "")
        where = self._base
        if exc.code in (401, 403):
            return DnsAuthError(
                f"pdns: {what}: the API at {where} refused the API key ({status})",
                server=where,
                rcode=str(exc.code),
                zone=zone or None,
            )
        if exc.code in (404, 422) and zone:
            return DnsRefusedError(
                f"pdns: {what}: zone {zone} is not on PowerDNS server {self.config.server_id!r} at {where} ({status})",
                server=where,
                rcode=str(exc.code),
                zone=zone,
            )
        if exc.code == 404:
            return DnsConfigError(
                f"pdns: {what}: PowerDNS at {where} has no server {self.config.server_id!r} ({status}); "
                "check api_url and server_id",
                server=where,
                rcode="404",
            )
        return DnsUpdateError(
            f"pdns: {what}: {status} from {where}", server=where, rcode=str(exc.code), zone=zone or None
        )

    def _zone_path(self, zone: str) -> str:
        return "/zones/" + urllib.parse.quote(zone, safe="")

    # --- zones ----------------------------------------------------------------------------

    def zones(self) -> list[Name]:
        """Every zone the API serves (cached)."""
        with self._zones_lock:
            return self._list_zones()

    def _list_zones(self) -> list[Name]:
        if self._zones is None:
            listing = self._call("GET", "/zones", "listing zones")
            names = []
            for item in listing if isinstance(listing, list) else []:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    try:
                        names.append(to_name(item["name"], what="zone"))
                    except DnsError:
                        continue
            self._zones = names
        return self._zones

    def _find_zone(self, target: Name) -> Name:
        matches = [z for z in self.zones() if target.is_subdomain(z)]
        if not matches:
            raise DnsRefusedError(
                f"pdns: no zone on PowerDNS server {self.config.server_id!r} at {self._base} holds {to_text(target)}",
                record=to_text(target),
                server=self._base,
            )
        return max(matches, key=lambda z: len(z.labels))

    def _check_access(self, zone: str, records: t.Sequence[TxtRecord]) -> None:
        if zone in self._checked_zones:
            return
        self._call("GET", self._zone_path(zone) + "?rrsets=false", f"checking zone {zone}", zone=zone)
        self._checked_zones.add(zone)

    def _rrsets(self, zone: str) -> dict[str, tuple[int, list[str]]]:
        """TXT RRsets of the zone: owner -> (ttl, values)."""
        doc = self._call("GET", self._zone_path(zone), f"reading zone {zone}", zone=zone)
        out: dict[str, tuple[int, list[str]]] = {}
        for rrset in (doc or {}).get("rrsets", []) if isinstance(doc, dict) else []:
            if not isinstance(rrset, dict) or rrset.get("type") != "TXT":
                continue
            values = [
                parse_txt_content(str(r.get("content", "")))
                for r in rrset.get("records", [])
                if isinstance(r, dict) and not r.get("disabled")
            ]
            out[str(rrset.get("name", "")).lower()] = (int(rrset.get("ttl") or self.config.ttl), values)
        return out

    def _zone_change(self, zone: str, adds: t.Sequence[TxtRecord], deletes: t.Sequence[TxtRecord]) -> None:
        """Read the zone's TXT RRsets, merge, and write back every changed RRset in one PATCH."""
        current = self._rrsets(zone)
        wanted: dict[str, list[str]] = {}
        for rec in [*adds, *deletes]:
            wanted.setdefault(rec.target, list(current.get(rec.target, (0, []))[1]))
        for rec in adds:
            if rec.value not in wanted[rec.target]:
                wanted[rec.target].append(rec.value)
        for rec in deletes:
            wanted[rec.target] = [v for v in wanted[rec.target] if v != rec.value]
        rrsets = []
        for target, values in sorted(wanted.items()):
            before = current.get(target, (0, []))[1]
            if sorted(before) == sorted(values):
                continue
            if values:
                rrsets.append(
                    {
                        "name": target,
                        "type": "TXT",
                        "ttl": int(self.config.ttl),
                        "changetype": "REPLACE",
                        "records": [{"content": txt_content(v), "disabled": False} for v in values],
                    }
                )
            else:
                rrsets.append({"name": target, "type": "TXT", "changetype": "DELETE"})
        if not rrsets:
            return
        op = "adding" if adds else "removing"
        names = ", ".join(sorted({str(r["name"]) for r in rrsets}))
        self._call("PATCH", self._zone_path(zone), f"{op} TXT {names}", {"rrsets": rrsets}, zone=zone)

    # --- record API -----------------------------------------------------------------------

    def add_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        return self._add_by_zone(records)

    def remove_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        return self._remove_by_zone(records)

    def current_values(self, record: TxtRecord) -> set[str]:
        return set(self._rrsets(record.zone).get(record.target, (0, []))[1])


def make(options: t.Mapping[str, t.Any]) -> PdnsProvider:
    """The registry's factory (providers/__init__.py)."""
    return PdnsProvider(PdnsConfig.from_options(options))
