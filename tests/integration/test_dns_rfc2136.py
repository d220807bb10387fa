"""The RFC 2136 DNS-01 backend against the rig's real BIND primary and secondary.

Every test uses random record names, checks what both servers really serve with direct
queries, and removes what it added.
"""

from __future__ import annotations

import secrets

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest
from ansible_collections.portail.https.plugins.module_utils._dns.base import deadline_after
from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsAuthError,
    DnsPropagationTimeout,
    DnsRefusedError,
    DnsUnreachableError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.names import challenge_name
from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider

pytestmark = pytest.mark.rig
WAIT = 30.0


def served(server: str, name: str) -> set[str]:
    query = dns.message.make_query(name, dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, server, timeout=3)
    rrset = response.get_rrset(response.answer, dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.TXT)
    return {b"".join(rd.strings).decode() for rd in rrset} if rrset is not None else set()


def value() -> str:
    return secrets.token_urlsafe(32)[:43]


def label() -> str:
    return f"dns-{secrets.token_hex(4)}"


@pytest.fixture
def options(rig: dict[str, str]) -> dict[str, object]:
    return {
        "server": rig["PORTAIL_DNS_PRIMARY"],
        "key_name": rig["PORTAIL_TSIG_NAME"],
        "key_secret": rig["PORTAIL_TSIG_SECRET"],
        "key_algorithm": rig["PORTAIL_TSIG_ALGORITHM"],
        "timeout": 2,
    }


@pytest.fixture
def servers(rig: dict[str, str]) -> list[str]:
    return [rig["PORTAIL_DNS_PRIMARY"], rig["PORTAIL_DNS_SECONDARY"]]


def test_add_wait_remove_seen_by_both_servers(options, servers, rig) -> None:
    provider = make_provider("rfc2136", options)
    name = challenge_name(f"{label()}.{rig['PORTAIL_DNS_ZONE']}")
    val = value()
    try:
        record = provider.add_txt(name, val)
        assert record.zone == rig["PORTAIL_DNS_ZONE"] + "."
        assert record.target == name
        report = provider.wait_visible(name, [val], deadline_after(WAIT))
        assert report["rounds"] >= 1
        for server in servers:
            assert served(server, name) == {val}, server
        # adding again changes nothing (no duplicate value)
        provider.add_txt(name, val)
        assert served(servers[0], name) == {val}
    finally:
        provider.remove_txt(name, val)
    assert served(servers[0], name) == set()
    # removing again is not an error
    provider.remove_txt(name, val)


def test_apex_and_wildcard_values_coexist(options, servers, rig) -> None:
    provider = make_provider("rfc2136", options)
    base = f"{label()}.{rig['PORTAIL_DNS_ZONE']}"
    apex, wildcard = challenge_name(base), challenge_name(f"*.{base}")
    assert apex == wildcard
    v_apex, v_wild = value(), value()
    records = [(apex, v_apex), (wildcard, v_wild)]
    try:
        provider.add_txt_records(records)
        provider.wait_visible(apex, [v_apex, v_wild], deadline_after(WAIT))
        for server in servers:
            assert served(server, apex) == {v_apex, v_wild}, server
        provider.remove_txt(wildcard, v_wild)
        assert served(servers[0], apex) == {v_apex}
    finally:
        provider.cleanup(records)
    assert served(servers[0], apex) == set()


def test_cname_delegation_into_validation_zone(options, servers, rig) -> None:
    provider = make_provider("rfc2136", options)
    name = challenge_name(f"delegated.{rig['PORTAIL_DNS_ZONE']}")
    target = f"delegated.{rig['PORTAIL_DNS_ZONE2']}."
    val = value()
    try:
        record = provider.add_txt(name, val)
        assert record.target == target
        assert record.zone == rig["PORTAIL_DNS_ZONE2"] + "."
        assert record.cname_chain == (name, target)
        provider.wait_visible(name, [val], deadline_after(WAIT))
        for server in servers:
            assert val in served(server, target), server
    finally:
        provider.remove_txt(name, val)
    assert val not in served(servers[0], target)


def test_batch_over_two_zones_one_call(options, servers, rig) -> None:
    provider = make_provider("rfc2136", options)
    records = [(challenge_name(f"{label()}.{rig['PORTAIL_DNS_ZONE']}"), value()) for _i in range(5)]
    records.append((challenge_name(f"delegated.{rig['PORTAIL_DNS_ZONE']}"), value()))
    try:
        placed = provider.add_txt_records(records)
        assert {r.zone for r in placed} == {rig["PORTAIL_DNS_ZONE"] + ".", rig["PORTAIL_DNS_ZONE2"] + "."}
        provider.wait_visible_records(placed, deadline_after(WAIT))
        for rec in placed:
            for server in servers:
                assert rec.value in served(server, rec.target)
    finally:
        assert provider.cleanup(records) == []
    for rec in placed:
        assert rec.value not in served(servers[0], rec.target)


def test_wrong_secret_is_a_clear_error_and_changes_nothing(options, servers, rig) -> None:
    bad = dict(options, key_secret="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    provider = make_provider("rfc2136", bad)
    name = challenge_name(f"{label()}.{rig['PORTAIL_DNS_ZONE']}")
    with pytest.raises(DnsAuthError) as info:
        provider.add_txt(name, value())
    err = info.value
    assert err.rcode == "BADSIG"
    assert name in str(err)
    assert rig["PORTAIL_DNS_PRIMARY"] in str(err)
    assert rig["PORTAIL_TSIG_SECRET"] not in str(err)
    assert bad["key_secret"] not in str(err)
    assert served(servers[0], name) == set()


def test_unknown_key_name_is_badkey(options, servers, rig) -> None:
    provider = make_provider("rfc2136", dict(options, key_name="no-such-key"))
    name = challenge_name(f"{label()}.{rig['PORTAIL_DNS_ZONE']}")
    with pytest.raises(DnsAuthError, match="BADKEY"):
        provider.add_txt(name, value())
    assert served(servers[0], name) == set()


def test_unreachable_server_fails_fast_and_clearly(options, rig) -> None:
    provider = make_provider("rfc2136", dict(options, server="127.53.0.99", timeout=1))
    name = challenge_name(f"{label()}.{rig['PORTAIL_DNS_ZONE']}")
    with pytest.raises(DnsUnreachableError) as info:
        provider.add_txt(name, value())
    assert "127.53.0.99" in str(info.value)
    assert name in str(info.value)
    # cleanup after such a failure does not raise either
    assert provider.cleanup([(name, "x")])


def test_narrow_key_writes_txt_but_is_refused_outside_txt(rig, servers) -> None:
    provider = make_provider(
        "rfc2136",
        {
            "server": rig["PORTAIL_DNS_PRIMARY"],
            "key_name": rig["PORTAIL_TSIG_ACME_NAME"],
            "key_secret": rig["PORTAIL_TSIG_ACME_SECRET"],
            "timeout": 2,
        },
    )
    zone = rig["PORTAIL_DNS_ZONE"]
    name = challenge_name(f"{label()}.{zone}")
    val = value()
    try:
        provider.add_txt(name, val)
        provider.wait_visible(name, [val], deadline_after(WAIT))
    finally:
        provider.remove_txt(name, val)
    host = f"{label()}.{zone}."
    with pytest.raises(DnsRefusedError) as info:
        provider.update_rrsets(zone, add=[(host, 60, "A", "127.0.30.251")])  # type: ignore[attr-defined]
    assert info.value.rcode == "REFUSED"
    assert host in str(info.value)
    assert rig["PORTAIL_TSIG_ACME_SECRET"] not in str(info.value)
    query = dns.message.make_query(host, dns.rdatatype.A)
    assert dns.query.udp(query, servers[0], timeout=3).answer == []


def test_cleanup_leaves_foreign_values(options, servers, rig) -> None:
    provider = make_provider("rfc2136", options)
    name = challenge_name(f"{label()}.{rig['PORTAIL_DNS_ZONE']}")
    foreign, ours = value(), value()
    zone = rig["PORTAIL_DNS_ZONE"]
    provider.update_rrsets(zone, add=[(name, 60, "TXT", f'"{foreign}"')])  # type: ignore[attr-defined]
    try:
        provider.add_txt(name, ours)
        provider.wait_visible(name, [ours, foreign], deadline_after(WAIT))
        assert served(servers[0], name) == {foreign, ours}
        assert provider.cleanup([(name, ours)]) == []
        assert provider.cleanup([(name, ours)]) == []  # idempotent
        assert served(servers[0], name) == {foreign}
    finally:
        provider.update_rrsets(zone, delete=[(name, "TXT", f'"{foreign}"')])  # type: ignore[attr-defined]
    assert served(servers[0], name) == set()


def test_wait_names_the_lagging_servers(options, rig) -> None:
    provider = make_provider("rfc2136", options)
    name = challenge_name(f"{label()}.{rig['PORTAIL_DNS_ZONE']}")
    with pytest.raises(DnsPropagationTimeout) as info:
        provider.wait_visible(name, [value()], deadline_after(0.5))
    lagging = " ".join(info.value.lagging)
    assert rig["PORTAIL_DNS_PRIMARY"] in lagging
    assert rig["PORTAIL_DNS_SECONDARY"] in lagging
    assert "ns1." in lagging
    assert "ns2." in lagging
