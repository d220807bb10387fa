"""CAA checked before ordering (plugin_utils/_caa.py) against CAA records put in the rig's BIND
zone with nsupdate, read back through the rig's recursive resolver."""

from __future__ import annotations

import secrets
import subprocess
import time
import typing as t

import dns.message
import dns.query
import dns.rdatatype
import pytest
from ansible_collections.portail.https.plugins.plugin_utils._caa import DnsCaaResolver, check

pytestmark = pytest.mark.rig

CA = "ca.portail.test"
ACCOUNT = "https://ca.portail.test/acme/acct/2"
OTHER_ACCOUNT = "https://ca.portail.test/acme/acct/1"


def nsupdate(rig: dict[str, str], lines: list[str]) -> None:
    script = f"server {rig['PORTAIL_DNS_PRIMARY']}\nzone {rig['PORTAIL_DNS_ZONE']}\n" + "\n".join(lines) + "\nsend\n"
    key = f"{rig['PORTAIL_TSIG_ALGORITHM']}:{rig['PORTAIL_TSIG_NAME']}:{rig['PORTAIL_TSIG_SECRET']}"
    subprocess.run(["nsupdate", "-y", key], input=script, text=True, check=True, capture_output=True, timeout=30)


def serial(server: str, zone: str) -> int:
    response = dns.query.udp(dns.message.make_query(zone, dns.rdatatype.SOA), server, timeout=3)
    return int(response.answer[0][0].serial)


@pytest.fixture(scope="module")
def base(rig: dict[str, str]) -> t.Iterator[str]:
    """A fresh subtree of portail.test holding one CAA situation per name."""
    b = f"caa-{secrets.token_hex(4)}.{rig['PORTAIL_DNS_ZONE']}"
    records = [
        f'{b}. 30 CAA 0 issue "other-ca.test"',  # the parent: inherited by names without their own set
        f'ok.{b}. 30 CAA 0 issue "{CA}"',
        f'ok.{b}. 30 CAA 0 iodef "mailto:hostmaster@{rig["PORTAIL_DNS_ZONE"]}"',
        f'deny.{b}. 30 CAA 0 issue "other-ca.test"',
        f'acct.{b}. 30 CAA 0 issue "{CA}; accounturi={OTHER_ACCOUNT}"',
        f'acctok.{b}. 30 CAA 0 issue "{CA}; accounturi={ACCOUNT}; validationmethods=dns-01,http-01"',
        f'meth.{b}. 30 CAA 0 issue "{CA}; validationmethods=http-01"',
        f'wild.{b}. 30 CAA 0 issue "{CA}"',
        f'wild.{b}. 30 CAA 0 issuewild ";"',
        f'crit.{b}. 30 CAA 128 tbs "unknown"',
        f"cn.{b}. 30 CNAME ok.{b}.",
    ]
    nsupdate(rig, [f"update add {r}" for r in records])
    zone = rig["PORTAIL_DNS_ZONE"]
    want = serial(rig["PORTAIL_DNS_PRIMARY"], zone)
    deadline = time.monotonic() + 30
    while serial(rig["PORTAIL_DNS_SECONDARY"], zone) < want:  # the resolver may ask either server
        assert time.monotonic() < deadline, "the secondary did not follow"
        time.sleep(0.1)
    yield b
    owners = sorted({r.split()[0] for r in records})
    nsupdate(rig, [f"update delete {o}" for o in owners])


@pytest.fixture(scope="module")
def resolver(rig: dict[str, str]) -> DnsCaaResolver:
    return DnsCaaResolver([rig["PORTAIL_DNS_RESOLVER"]], timeout=3)


def problems_of(names: list[str], resolver: DnsCaaResolver, method: str = "dns-01") -> dict[str, t.Any]:
    return {p.name: p for p in check(names, [CA], ACCOUNT, method, resolver)}


def test_allowed_names_pass(base: str, resolver: DnsCaaResolver) -> None:
    names = [f"ok.{base}", f"sub.ok.{base}", f"acctok.{base}", f"wild.{base}", f"cn.{base}"]
    assert problems_of(names, resolver) == {}


def test_no_caa_anywhere_up_to_the_tld_allows(rig: dict[str, str], resolver: DnsCaaResolver) -> None:
    assert problems_of([f"nocaa-{secrets.token_hex(4)}.{rig['PORTAIL_DNS_ZONE2']}"], resolver) == {}


def test_denied_names_the_record_and_what_to_add(base: str, resolver: DnsCaaResolver) -> None:
    name = f"deny.{base}"
    [problem] = problems_of([name], resolver).values()
    assert problem.owner == name + "."
    assert problem.records == ('0 issue "other-ca.test"',)
    assert "names other-ca.test, not this CA (ca.portail.test)" in problem.reason
    assert problem.fix == f'{name}. CAA 0 issue "{CA}"'
    assert name in problem.message() and problem.fix in problem.message()


def test_inherited_from_the_parent(base: str, resolver: DnsCaaResolver) -> None:
    name = f"host.{base}"
    [problem] = problems_of([name], resolver).values()
    assert problem.owner == base + "."  # found one level up (RFC 8659 tree climbing)
    assert problem.fix == f'{base}. CAA 0 issue "{CA}"'


def test_wrong_accounturi(base: str, resolver: DnsCaaResolver) -> None:
    [problem] = problems_of([f"acct.{base}"], resolver).values()
    assert f"allows only account {OTHER_ACCOUNT}, and this account is {ACCOUNT}" in problem.reason
    assert problem.fix == f'acct.{base}. CAA 0 issue "{CA}; accounturi={ACCOUNT}"'


def test_wrong_validation_method(base: str, resolver: DnsCaaResolver) -> None:
    [problem] = problems_of([f"meth.{base}"], resolver).values()
    assert "allows only validation methods http-01, and we use dns-01" in problem.reason
    assert problem.fix == f'meth.{base}. CAA 0 issue "{CA}; validationmethods=http-01,dns-01"'
    assert problems_of([f"meth.{base}"], resolver, method="http-01") == {}


def test_wildcard_uses_issuewild(base: str, resolver: DnsCaaResolver) -> None:
    problems = problems_of([f"wild.{base}", f"*.wild.{base}"], resolver)
    assert list(problems) == [f"*.wild.{base}"]
    assert problems[f"*.wild.{base}"].fix == f'wild.{base}. CAA 0 issuewild "{CA}"'


def test_unknown_critical_property_forbids(base: str, resolver: DnsCaaResolver) -> None:
    [problem] = problems_of([f"crit.{base}"], resolver).values()
    assert "critical property 'tbs' is unknown" in problem.reason


def test_lookup_failure_is_a_problem(rig: dict[str, str]) -> None:
    dead = DnsCaaResolver(["127.53.0.99"], timeout=0.5)
    [problem] = check([f"x.{rig['PORTAIL_DNS_ZONE']}"], [CA], ACCOUNT, "dns-01", dead)
    assert "CAA lookup failed" in problem.reason and "127.53.0.99" in problem.reason
