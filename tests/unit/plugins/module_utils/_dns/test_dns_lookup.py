"""CNAME following (loops, limits), zone discovery from SOA answers, and lag reporting: the
network is replaced by a table of canned answers (DnsLookup._ask is the only network call)."""

from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsCnameLoopError,
    DnsLookupError,
    DnsPropagationTimeout,
    DnsUnreachableError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.lookup import DnsLookup, parse_server

N = dns.name.from_text


def put(response: dns.message.Message, section: list, rrset: dns.rrset.RRset) -> None:
    """Add an RRset so that Message.get_rrset finds it (the message keeps an index)."""
    response.find_rrset(section, rrset.name, rrset.rdclass, rrset.rdtype, create=True).update(rrset)


class FakeLookup(DnsLookup):
    """CNAMEs and zones from dicts; everything else NXDOMAIN with the zone's SOA in authority."""

    def __init__(self, cnames: dict[str, str], zones: list[str], **kw: object) -> None:
        super().__init__([("192.0.2.53", 53)], timeout=0.5, **kw)  # type: ignore[arg-type]
        self.cnames = {N(k): N(v) for k, v in cnames.items()}
        self.zones = [N(z) for z in zones]
        self.asked: list[tuple[str, str]] = []

    def _zone_of(self, qname: dns.name.Name) -> dns.name.Name | None:
        best = None
        for zone in self.zones:
            if qname.is_subdomain(zone) and (best is None or len(zone) > len(best)):
                best = zone
        return best

    def _ask(self, qname, rdtype, server, *, recursion, timeout):  # type: ignore[override]
        self.asked.append((qname.to_text(), dns.rdatatype.to_text(rdtype)))
        query = dns.message.make_query(qname, rdtype)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        zone = self._zone_of(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        soa = dns.rrset.from_text(zone, 5, "IN", "SOA", "ns1.x. host.x. 1 2 3 4 5")
        if rdtype == dns.rdatatype.CNAME and qname in self.cnames:
            put(response, response.answer, dns.rrset.from_text(qname, 5, "IN", "CNAME", self.cnames[qname].to_text()))
        elif rdtype == dns.rdatatype.SOA and qname == zone:
            put(response, response.answer, soa)
        else:
            put(response, response.authority, soa)
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response


def test_no_cname_gives_the_name_itself() -> None:
    lk = FakeLookup({}, ["example.com."])
    assert lk.follow_cname(N("_acme-challenge.example.com.")) == [N("_acme-challenge.example.com.")]


def test_cname_chain_is_followed() -> None:
    lk = FakeLookup(
        {"_acme-challenge.example.com.": "a.validation.test.", "a.validation.test.": "b.validation.test."},
        ["example.com.", "validation.test."],
    )
    chain = lk.follow_cname(N("_acme-challenge.example.com."))
    assert chain[-1] == N("b.validation.test.")
    assert len(chain) == 3
    assert lk.find_zone(chain[-1]) == N("validation.test.")


def test_cname_loop_is_detected() -> None:
    lk = FakeLookup({"a.example.com.": "b.example.com.", "b.example.com.": "a.example.com."}, ["example.com."])
    with pytest.raises(DnsCnameLoopError, match=r"loop: a\.example\.com\. -> b\.example\.com\. -> a\.example\.com\."):
        lk.follow_cname(N("a.example.com."))


def test_cname_self_loop_is_detected() -> None:
    lk = FakeLookup({"a.example.com.": "A.Example.com."}, ["example.com."])
    with pytest.raises(DnsCnameLoopError):
        lk.follow_cname(N("a.example.com."))


def test_cname_chain_is_bounded() -> None:
    cnames = {f"n{i}.example.com.": f"n{i + 1}.example.com." for i in range(20)}
    lk = FakeLookup(cnames, ["example.com."], max_cname_depth=4)
    with pytest.raises(DnsCnameLoopError, match="longer than 4"):
        lk.follow_cname(N("n0.example.com."))
    assert len(lk.asked) == 5


def test_zone_from_soa_in_authority_of_nxdomain() -> None:
    lk = FakeLookup({}, ["example.com.", "sub.example.com."])
    assert lk.find_zone(N("_acme-challenge.www.sub.example.com.")) == N("sub.example.com.")
    assert len(lk.asked) == 1  # the SOA in the authority section answers at once


def test_zone_at_the_apex() -> None:
    lk = FakeLookup({}, ["example.com."])
    assert lk.find_zone(N("example.com.")) == N("example.com.")


class WalkingLookup(FakeLookup):
    """A server that gives NODATA without any authority section: the walk must go up."""

    def _ask(self, qname, rdtype, server, *, recursion, timeout):  # type: ignore[override]
        response = super()._ask(qname, rdtype, server, recursion=recursion, timeout=timeout)
        response.authority = []
        response.set_rcode(dns.rcode.NOERROR)
        return response


def test_zone_walks_up_labels_when_no_authority() -> None:
    lk = WalkingLookup({}, ["example.com."])
    assert lk.find_zone(N("a.b.example.com.")) == N("example.com.")
    assert [q for q, _type in lk.asked] == ["a.b.example.com.", "b.example.com.", "example.com."]


def test_no_zone_is_a_clear_error() -> None:
    lk = WalkingLookup({}, ["example.com."])
    lk.zones = []
    with pytest.raises(DnsLookupError):
        lk.find_zone(N("a.example.org."))


def test_all_servers_timing_out_is_unreachable() -> None:
    class Dead(DnsLookup):
        def _ask(self, qname, rdtype, server, *, recursion, timeout):  # type: ignore[override]
            raise dns.exception.Timeout

    lk = Dead([("192.0.2.1", 53), ("192.0.2.2", 53)], timeout=0.1)
    with pytest.raises(DnsUnreachableError, match=r"192\.0\.2\.1:53: timed out.*192\.0\.2\.2:53: timed out"):
        lk.query(N("example.com."), dns.rdatatype.SOA)


def test_refused_by_every_server_names_the_rcode() -> None:
    lk = FakeLookup({}, [])
    with pytest.raises(DnsLookupError, match="REFUSED") as info:
        lk.query(N("x.example.org."), dns.rdatatype.SOA)
    assert not isinstance(info.value, DnsUnreachableError)


def test_wait_reports_which_server_lagged() -> None:
    class Lagging(DnsLookup):
        def nameservers(self, zone):  # type: ignore[override]
            return [("ns1.example.com.", "192.0.2.1"), ("ns2.example.com.", "192.0.2.2")]

        def served_txt(self, name, address, timeout):  # type: ignore[override]
            return {"v1", "v2"} if address == "192.0.2.1" else {"v1"}

    lk = Lagging([("192.0.2.53", 53)], timeout=0.1)
    name = N("_acme-challenge.example.com.")
    started = time.monotonic()
    with pytest.raises(DnsPropagationTimeout) as info:
        lk.wait_all({name: (N("example.com."), {"v1", "v2"})}, time.monotonic() + 0.3)
    assert time.monotonic() - started < 5
    assert len(info.value.lagging) == 1
    assert "ns2.example.com. (192.0.2.2)" in info.value.lagging[0]
    assert "missing 1 of 2" in str(info.value)


def test_wait_returns_once_everyone_serves() -> None:
    calls: list[str] = []

    class Catching(DnsLookup):
        def nameservers(self, zone):  # type: ignore[override]
            return [("ns1.example.com.", "192.0.2.1"), ("ns2.example.com.", "192.0.2.2")]

        def served_txt(self, name, address, timeout):  # type: ignore[override]
            calls.append(address)
            return {"v"} if len(calls) > 3 else set()

    lk = Catching([("192.0.2.53", 53)], timeout=0.1)
    out = lk.wait_all({N("x.example.com."): (N("example.com."), {"v"})}, time.monotonic() + 30)
    assert out["rounds"] >= 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected
