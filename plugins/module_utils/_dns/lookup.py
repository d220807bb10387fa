# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provider-independent DNS lookups: zone discovery, CNAME following, nameserver
addresses, and the wait until every authoritative server serves the TXT values.
"""

from __future__ import annotations

import socket
import threading
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsCnameLoopError,
    DnsLookupError,
    DnsPropagationTimeout,
    DnsUnreachableError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.names import require_dnspython, to_text

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype
except ImportError:  # pragma: no cover - names.HAS_DNSPYTHON records the error
    pass

if t.TYPE_CHECKING:  # pragma: no cover
    from dns.message import Message
    from dns.name import Name

Server = tuple[str, int]

POLL_FIRST = 0.05
POLL_MAX = 1.0
MAX_WORKERS = 16


def describe(server: Server) -> str:
    host, port = server
    return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"


def parse_server(text: str, default_port: int = 53) -> Server:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (address, port)."""
    text = text.strip()
    port = default_port
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _sep, p = text.partition(":")
        port = int(p)
    else:
        host = text
    return resolve_host(host), port


def resolve_host(host: str) -> str:
    """dnspython wants an address: resolve a host name once with the system resolver."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        infos = socket.getaddrinfo(host, 53, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise DnsUnreachableError(f"cannot resolve DNS server name {host!r}: {exc}", server=host) from None
    return str(infos[0][4][0])


def system_resolvers() -> list[Server]:
    """The controller's resolvers (``/etc/resolv.conf``), for providers given no ``resolvers``."""
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver()
    except dns.exception.DNSException as exc:
        raise DnsLookupError(f"no resolvers given and the system has none usable: {exc}") from None
    servers = [(str(ns), int(resolver.port)) for ns in resolver.nameservers if isinstance(ns, str)]
    if not servers:
        raise DnsLookupError("no resolvers given and /etc/resolv.conf lists none")
    return servers


def txt_strings(rrset: t.Any) -> set[str]:
    """The values of a TXT RRset, each value's character-strings joined."""
    return {b"".join(rd.strings).decode("utf-8", errors="replace") for rd in rrset}


class DnsLookup:
    """Asks a list of servers (the update server by default, or resolvers) about names.

    ``_ask`` is the only method that touches the network; unit tests replace it.
    """

    def __init__(
        self,
        servers: t.Sequence[Server],
        *,
        timeout: float = 5.0,
        max_cname_depth: int = 8,
        nameserver_port: int = 53,
    ) -> None:
        require_dnspython()
        if not servers:
            raise DnsLookupError("no DNS server to ask")
        self.servers = list(servers)
        self.timeout = timeout
        self.max_cname_depth = max_cname_depth
        self.nameserver_port = nameserver_port
        self._lock = threading.Lock()
        self._zone_ns: dict[Name, list[tuple[str, str]]] = {}

    # --- transport -------------------------------------------------------------------------

    def _ask(self, qname: Name, rdtype: int, server: Server, *, recursion: bool, timeout: float) -> Message:
        """One query to one server: UDP, TCP on truncation, TCP once more when UDP times out."""
        query = dns.message.make_query(qname, dns.rdatatype.RdataType.make(rdtype), want_dnssec=False)
        if not recursion:
            query.flags &= ~dns.flags.RD
        host, port = server
        try:
            response, _tcp = dns.query.udp_with_fallback(query, host, timeout=timeout, port=port)
        except dns.exception.Timeout:
            # UDP may be filtered; TCP also tells a closed port (refused at once) from a dead host.
            response = dns.query.tcp(query, host, timeout=min(timeout, 2.0), port=port)
        return response

    def query(self, qname: Name, rdtype: int) -> Message:
        """Ask the lookup servers in turn; the first NOERROR/NXDOMAIN answer wins."""
        problems: list[str] = []
        network_only = True
        for server in self.servers:
            try:
                response = self._ask(qname, rdtype, server, recursion=True, timeout=self.timeout)
            except dns.exception.Timeout:
                problems.append(f"{describe(server)}: timed out after {self.timeout:g}s")
                continue
            except OSError as exc:
                problems.append(f"{describe(server)}: {exc.strerror or exc}")
                continue
            except dns.exception.DNSException as exc:
                network_only = False
                problems.append(f"{describe(server)}: {type(exc).__name__}: {exc}")
                continue
            rcode = response.rcode()
            if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return response
            network_only = False
            problems.append(f"{describe(server)}: {dns.rcode.to_text(rcode)}")
        what = f"{dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))} {to_text(qname)}"
        detail = "; ".join(problems)
        server_text = ", ".join(describe(s) for s in self.servers)
        if network_only:
            raise DnsUnreachableError(
                f"DNS server unreachable while looking up {what}: {detail}", record=to_text(qname), server=server_text
            )
        raise DnsLookupError(
            f"no DNS server answered the lookup of {what}: {detail}",
            record=to_text(qname),
            server=server_text,
            rcode=problems[-1].rsplit(": ", 1)[-1] if problems else None,
        )

    # --- CNAME and zone --------------------------------------------------------------------

    def follow_cname(self, name: Name) -> list[Name]:
        """The CNAME chain starting at ``name``; the last element is where the record lives."""
        chain = [name]
        current = name
        while True:
            response = self.query(current, dns.rdatatype.CNAME)
            rrset = response.get_rrset(response.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
            if rrset is None or len(rrset) == 0:
                return chain
            target = rrset[0].target.canonicalize()
            if target in chain:
                loop = " -> ".join(to_text(n) for n in [*chain, target])
                raise DnsCnameLoopError(f"CNAME loop: {loop}", record=to_text(name))
            chain.append(target)
            if len(chain) - 1 > self.max_cname_depth:
                path = " -> ".join(to_text(n) for n in chain)
                raise DnsCnameLoopError(f"CNAME chain longer than {self.max_cname_depth}: {path}", record=to_text(name))
            current = target

    def find_zone(self, name: Name) -> Name:
        """The zone holding ``name``: SOA at the name, or the SOA (or referral NS) in the
        authority section of a NXDOMAIN/NODATA answer, else walk one label up."""
        current = name
        while True:
            response = self.query(current, dns.rdatatype.SOA)
            soa = response.get_rrset(response.answer, current, dns.rdataclass.IN, dns.rdatatype.SOA)
            if soa is not None:
                return current.canonicalize()
            aliased = any(r.rdtype == dns.rdatatype.CNAME and r.name == current for r in response.answer)
            if not aliased:
                for rrset in response.authority:
                    if rrset.rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS) and current.is_subdomain(rrset.name):
                        if rrset.name != dns.name.root:
                            return rrset.name.canonicalize()
            if current == dns.name.root or len(current.labels) <= 1:
                raise DnsLookupError(
                    f"no zone found for {to_text(name)} (no SOA up to the root)",
                    record=to_text(name),
                    server=", ".join(describe(s) for s in self.servers),
                )
            current = current.parent()

    # --- authoritative servers -------------------------------------------------------------

    def nameservers(self, zone: Name) -> list[tuple[str, str]]:
        """(nameserver name, address) for every address of every NS of the zone (cached)."""
        with self._lock:
            cached = self._zone_ns.get(zone)
        if cached is not None:
            return cached
        response = self.query(zone, dns.rdatatype.NS)
        rrset = response.get_rrset(response.answer, zone, dns.rdataclass.IN, dns.rdatatype.NS)
        if rrset is None or len(rrset) == 0:
            raise DnsLookupError(f"zone {to_text(zone)} has no NS records", zone=to_text(zone))
        found: list[tuple[str, str]] = []
        for ns in sorted({rd.target.canonicalize() for rd in rrset}):
            addresses: set[str] = set()
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = response.get_rrset(response.additional, ns, dns.rdataclass.IN, rdtype)
                if glue is None:
                    try:
                        answer = self.query(ns, rdtype)
                    except DnsLookupError:
                        continue
                    glue = answer.get_rrset(answer.answer, ns, dns.rdataclass.IN, rdtype)
                if glue is not None:
                    addresses.update(rd.address for rd in glue)
            if not addresses:
                raise DnsLookupError(
                    f"nameserver {to_text(ns)} of zone {to_text(zone)} has no address", zone=to_text(zone)
                )
            found.extend((to_text(ns), addr) for addr in sorted(addresses))
        with self._lock:
            self._zone_ns[zone] = found
        return found

    def served_txt(self, name: Name, address: str, timeout: float, port: t.Optional[int] = None) -> set[str]:
        """TXT values that one authoritative server serves for ``name`` (no recursion)."""
        server = (address, self.nameserver_port if port is None else port)
        response = self._ask(name, dns.rdatatype.TXT, server, recursion=False, timeout=timeout)
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DnsLookupError(f"answered {dns.rcode.to_text(rcode)}", rcode=dns.rcode.to_text(rcode))
        if not response.flags & dns.flags.AA:
            raise DnsLookupError("answer is not authoritative (no AA flag)")
        rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.TXT)
        return txt_strings(rrset) if rrset is not None else set()

    def wait_all(self, expected: t.Mapping[Name, tuple[Name, set[str]]], deadline: float) -> dict[str, t.Any]:
        """Poll every authoritative server of each name's zone until it serves all values.

        ``expected`` maps a record name to (its zone, the values it must serve). ``deadline`` is a
        ``time.monotonic()`` value. Polls in parallel, backing off from 50 ms to 1 s.
        Raises DnsPropagationTimeout naming the servers that lagged.
        """
        started = time.monotonic()
        pending: dict[tuple[Name, str], str] = {}  # (name, address) -> nameserver name
        for name, (zone, _values) in expected.items():
            for ns_name, address in self.nameservers(zone):
                pending[(name, address)] = ns_name
        status: dict[tuple[Name, str], str] = {}
        asked: dict[tuple[Name, str], int] = {}
        rounds = 0
        delay = POLL_FIRST

        def check(key: tuple[Name, str]) -> tuple[tuple[Name, str], bool, str]:
            name, address = key
            want = expected[name][1]
            remaining = deadline - time.monotonic()
            try:
                got = self.served_txt(name, address, timeout=max(0.05, min(self.timeout, remaining)))
            except dns.exception.Timeout:
                return key, False, "timed out"
            except OSError as exc:
                return key, False, str(exc.strerror or exc)
            except (DnsLookupError, dns.exception.DNSException) as exc:
                return key, False, str(exc)
            missing = sorted(want - got)
            if missing:
                return key, False, f"missing {len(missing)} of {len(want)} values"
            return key, True, "ok"

        with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(pending)))) as pool:
            while pending:
                rounds += 1
                for key, ok, text in pool.map(check, list(pending)):
                    asked[key] = asked.get(key, 0) + 1
                    if ok:
                        del pending[key]
                    else:
                        status[key] = text
                if not pending:
                    break
                now = time.monotonic()
                if now + delay >= deadline:
                    waited = now - started
                    lagging = [
                        f"{to_text(name)} at {pending[(name, address)]} ({address}): {status[(name, address)]}, "
                        f"asked {asked[(name, address)]} times over {waited:.1f}s"
                        for name, address in sorted(pending, key=lambda k: (to_text(k[0]), k[1]))
                    ]
                    raise DnsPropagationTimeout(
                        f"TXT records not served by every authoritative server after {now - started:.1f}s: "
                        + "; ".join(lagging),
                        lagging,
                    )
                time.sleep(delay)
                delay = min(delay * 2, POLL_MAX)
        return {"seconds": round(time.monotonic() - started, 3), "rounds": rounds}
