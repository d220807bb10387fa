# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RFC 2136 dynamic updates signed with TSIG (RFC 8945), sent to a primary server."""

from __future__ import annotations

import base64
import binascii
import typing as t
from dataclasses import dataclass, field

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
    DnsNameError,
    DnsRefusedError,
    DnsUnreachableError,
    DnsUpdateError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.lookup import (
    DnsLookup,
    Server,
    describe,
    parse_server,
)
from ansible_collections.portail.https.plugins.module_utils._dns.names import require_dnspython, to_name, to_text

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    import dns.rdtypes.ANY.TXT
    import dns.tsig
    import dns.update
except ImportError:  # pragma: no cover - names.HAS_DNSPYTHON records the error
    pass

if t.TYPE_CHECKING:  # pragma: no cover
    from dns.message import Message
    from dns.name import Name

ALGORITHMS = (
    "hmac-md5",
    "hmac-sha1",
    "hmac-sha224",
    "hmac-sha256",
    "hmac-sha256-128",
    "hmac-sha384",
    "hmac-sha384-192",
    "hmac-sha512",
    "hmac-sha512-256",
)

#: acme_certificate's ``dns`` options this provider reads (see providers/__init__.py: options_spec)
OPTIONS: dict[str, dict[str, t.Any]] = {
    "server": {"type": "str"},
    "port": {"type": "int"},
    "key_name": {"type": "str"},
    "key_secret": {"type": "str", "no_log": True},
    "key_algorithm": {"type": "str"},
    "timeout": {"type": "float"},
    "ttl": {"type": "int"},
    "resolvers": {"type": "list", "elements": "str"},
    "nameserver_port": {"type": "int"},
}

_OPTION_ALIASES = {
    "server": "server",
    "port": "port",
    "key_name": "key_name",
    "key_secret": "secret",
    "secret": "secret",
    "key_algorithm": "algorithm",
    "algorithm": "algorithm",
    "timeout": "timeout",
    "ttl": "ttl",
    "resolvers": "resolvers",
    "nameserver_port": "nameserver_port",
    "max_cname_depth": "max_cname_depth",
}


@dataclass(frozen=True)
class Rfc2136Config:
    """Settings of the RFC 2136 provider. ``repr``/``str`` never show the secret."""

    server: str
    key_name: t.Optional[str] = None
    secret: t.Optional[str] = field(default=None, repr=False)
    algorithm: str = "hmac-sha256"
    port: int = 53
    timeout: float = 5.0
    ttl: int = 60
    resolvers: tuple[str, ...] = ()
    nameserver_port: int = 53
    max_cname_depth: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.server, str) or not self.server.strip():
            raise DnsConfigError("rfc2136: server is required")
        if not 0 < int(self.port) < 65536 or not 0 < int(self.nameserver_port) < 65536:
            raise DnsConfigError("rfc2136: port must be between 1 and 65535")
        if not 0 < float(self.timeout) <= 300:
            raise DnsConfigError("rfc2136: timeout must be more than 0 and at most 300 seconds")
        if not 0 <= int(self.ttl) <= 86400:
            raise DnsConfigError("rfc2136: ttl must be between 0 and 86400")
        if bool(self.key_name) != bool(self.secret):
            raise DnsConfigError("rfc2136: key_name and secret go together (give both or neither)")
        if self.key_name:
            to_name(self.key_name, what="TSIG key name")
        if self.secret:
            try:
                raw = base64.b64decode(self.secret, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if not raw:
                # never echo the secret, not even a part of it
                raise DnsConfigError(f"rfc2136: the secret of TSIG key {self.key_name!r} is not valid base64")
        if self.algorithm.lower().rstrip(".") not in ALGORITHMS:
            raise DnsConfigError(
                f"rfc2136: unknown TSIG algorithm {self.algorithm!r}; use one of {', '.join(ALGORITHMS)}"
            )
        if isinstance(self.resolvers, (list, str)):
            object.__setattr__(self, "resolvers", as_tuple(self.resolvers))

    def __str__(self) -> str:
        return repr(self)

    @classmethod
    def from_options(cls, options: t.Mapping[str, t.Any]) -> Rfc2136Config:
        """Build from plugin options; accepts ``key_secret``/``key_algorithm`` as aliases."""
        kwargs = option_kwargs("rfc2136", options, _OPTION_ALIASES)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise DnsConfigError(f"rfc2136: {exc}") from None


def _summary(names: t.Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class Rfc2136Provider(DnsProvider):
    """TXT records through RFC 2136 UPDATE (TCP, UDP if TCP is refused) with TSIG."""

    kind = "rfc2136"

    def __init__(self, config: Rfc2136Config) -> None:
        require_dnspython()
        self.config = config
        self._server: Server = parse_server(config.server, int(config.port))
        lookups = [parse_server(r, 53) for r in config.resolvers] or [self._server]
        self.lookup = DnsLookup(
            lookups,
            timeout=float(config.timeout),
            max_cname_depth=int(config.max_cname_depth),
            nameserver_port=int(config.nameserver_port),
        )
        self.__key: t.Any = None
        if config.key_name and config.secret:
            algorithm = dns.name.from_text(config.algorithm.lower().rstrip(".") + ".")
            if algorithm == dns.name.from_text("hmac-md5."):
                algorithm = dns.tsig.HMAC_MD5
            # dns.tsig.Key's repr shows the secret: it stays in this name-mangled attribute.
            self.__key = dns.tsig.Key(config.key_name, config.secret, algorithm)
        self._checked_zones: set[Name] = set()

    def __repr__(self) -> str:
        return f"Rfc2136Provider({self.config!r})"

    @property
    def server(self) -> str:
        return describe(self._server)

    # --- transport ----------------------------------------------------------------------

    def _fail(self, exc_type: type[DnsError], what: str, zone: str, rcode: str, hint: str, record: str) -> DnsError:
        return exc_type(
            f"{what} in zone {zone} at {self.server}: {rcode} ({hint})",
            record=record,
            server=self.server,
            rcode=rcode,
            zone=zone,
        )

    def _send(self, message: Message, what: str, zone: str, record: str, *, tcp: bool) -> Message:
        host, port = self._server
        timeout = float(self.config.timeout)
        try:
            if tcp:
                try:
                    return dns.query.tcp(message, host, timeout=timeout, port=port)
                except (ConnectionRefusedError, ConnectionResetError):
                    # some servers only take UDP; a timeout is not retried (it would double the wait)
                    return dns.query.udp(message, host, timeout=timeout, port=port)
            return dns.query.udp_with_fallback(message, host, timeout=timeout, port=port)[0]
        except dns.exception.Timeout:
            raise self._fail(
                DnsUnreachableError, what, zone, "TIMEOUT", f"no answer within {timeout:g}s", record
            ) from None
        except OSError as exc:
            raise self._fail(DnsUnreachableError, what, zone, "UNREACHABLE", str(exc.strerror or exc), record) from None
        except dns.tsig.PeerBadKey:
            raise self._fail(
                DnsAuthError, what, zone, "BADKEY", f"the server does not know TSIG key {self.config.key_name}", record
            ) from None
        except dns.tsig.PeerBadSignature:
            raise self._fail(
                DnsAuthError,
                what,
                zone,
                "BADSIG",
                f"wrong secret or algorithm for TSIG key {self.config.key_name}",
                record,
            ) from None
        except dns.tsig.PeerBadTime:
            raise self._fail(
                DnsAuthError, what, zone, "BADTIME", "clocks of the controller and the server differ", record
            ) from None
        except dns.tsig.PeerError as exc:
            raise self._fail(DnsAuthError, what, zone, type(exc).__name__, "TSIG rejected", record) from None
        except (dns.message.UnknownTSIGKey, dns.tsig.BadSignature):
            raise self._fail(
                DnsAuthError, what, zone, "BADSIG", "the answer's TSIG signature does not verify", record
            ) from None
        except dns.exception.DNSException as exc:
            raise self._fail(DnsUpdateError, what, zone, type(exc).__name__, str(exc), record) from None

    def _check_access(self, zone: str, records: t.Sequence[TxtRecord]) -> None:
        """Before changing anything: the server answers, knows our key, and is authoritative."""
        zone_text = zone
        zone_name = dns.name.from_text(zone)
        if zone_name in self._checked_zones:
            return
        record = records[0].target
        what = f"checking zone {zone_text} for {record}"
        query = dns.message.make_query(zone_name, dns.rdatatype.SOA)
        query.flags &= ~dns.flags.RD
        if self.__key is not None:
            query.use_tsig(self.__key)
        response = self._send(query, what, zone_text, record, tcp=False)
        rcode = response.rcode()
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            raise self._fail(
                DnsRefusedError,
                what,
                zone_text,
                dns.rcode.to_text(rcode),
                "the server does not serve this zone for this key",
                record,
            )
        if rcode != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
            raise self._fail(
                DnsRefusedError,
                what,
                zone_text,
                dns.rcode.to_text(rcode) if rcode != dns.rcode.NOERROR else "NOAA",
                "the server is not authoritative for the zone",
                record,
            )
        self._checked_zones.add(zone_name)

    def update_rrsets(
        self,
        zone: str,
        *,
        add: t.Sequence[tuple[str, int, str, str]] = (),
        delete: t.Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """Low level: one signed UPDATE. ``add`` holds (name, ttl, type, rdata text), ``delete``
        holds (name, type, rdata text). Raises the typed errors of this package."""
        zone_name = to_name(zone, what="zone")
        message = dns.update.UpdateMessage(zone_name, keyring=self.__key)
        names = []
        for name, ttl, rdtype, text in add:
            rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
            message.add(to_name(name), int(ttl), rd)
            names.append(f"{rdtype.upper()} {to_text(to_name(name))}")
        for name, rdtype, text in delete:
            rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
            message.delete(to_name(name), rd)
            names.append(f"{rdtype.upper()} {to_text(to_name(name))}")
        self._update(message, "UPDATE of " + _summary(names), to_text(zone_name), names)

    def _update(self, message: Message, what: str, zone: str, names: t.Sequence[str]) -> None:
        record = _summary(list(names))
        response = self._send(message, what, zone, record, tcp=True)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            hint = (
                "the key may not change this record, or the server is not the primary for the zone"
                if self.__key is not None
                else "unsigned updates are not allowed; give a TSIG key"
            )
            raise self._fail(DnsRefusedError, what, zone, text, hint, record)
        raise self._fail(DnsUpdateError, what, zone, text, "the server rejected the update", record)

    def _zone_change(self, zone: str, adds: t.Sequence[TxtRecord], deletes: t.Sequence[TxtRecord]) -> None:
        message = dns.update.UpdateMessage(dns.name.from_text(zone), keyring=self.__key)
        for rec in adds:
            rd = _txt_rdata(rec.value)
            message.add(dns.name.from_text(rec.target), int(self.config.ttl), rd)
        for rec in deletes:
            rd = _txt_rdata(rec.value)
            message.delete(dns.name.from_text(rec.target), rd)
        op = "adding" if adds else "removing"
        targets = sorted({r.target for r in (adds or deletes)})
        self._update(message, f"UPDATE {op} TXT {_summary(targets)}", zone, targets)

    # --- record API ---------------------------------------------------------------------

    def add_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        return self._add_by_zone(records)

    def remove_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        return self._remove_by_zone(records)

    def current_values(self, record: TxtRecord) -> set[str]:
        """What the update server (the primary) holds now: it is where removals go."""
        host, port = self._server
        target = dns.name.from_text(record.target)
        try:
            return self.lookup.served_txt(target, host, timeout=float(self.config.timeout), port=port)
        except dns.exception.Timeout:
            raise self._fail(
                DnsUnreachableError, f"reading TXT {record.target}", record.zone, "TIMEOUT", "no answer", record.target
            ) from None
        except OSError as exc:
            raise self._fail(
                DnsUnreachableError,
                f"reading TXT {record.target}",
                record.zone,
                "UNREACHABLE",
                str(exc.strerror or exc),
                record.target,
            ) from None


def _txt_rdata(value: str) -> t.Any:
    data = value.encode("utf-8")
    if len(data) > 255:
        raise DnsNameError("TXT value longer than 255 bytes")
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [data])


def make(options: t.Mapping[str, t.Any]) -> Rfc2136Provider:
    """The registry's factory (providers/__init__.py)."""
    return Rfc2136Provider(Rfc2136Config.from_options(options))
