"""plugin_utils/_caa.py: RFC 8659 tree climbing and RFC 8657 parameters, with a fake resolver
(the real BIND is exercised in tests/integration/test_dns_caa.py)."""

from __future__ import annotations

import typing as t

import pytest
from ansible_collections.portail.https.plugins.plugin_utils._caa import (
    CaaLookupError,
    CaaRecord,
    check,
    parse_issue_value,
    relevant_rrset,
)

CA = "letsencrypt.org"
ACCT = "https://acme.example/acct/1"


def resolver(
    zone: dict[str, list[CaaRecord]], asked: t.Optional[list[str]] = None
) -> t.Callable[[str], list[CaaRecord]]:
    def ask(name: str) -> list[CaaRecord]:
        if asked is not None:
            asked.append(name)
        if name == "broken.example.":
            raise CaaLookupError("SERVFAIL")
        return zone.get(name, [])

    return ask


def issue(value: str, tag: str = "issue", flags: int = 0) -> CaaRecord:
    return CaaRecord(flags, tag, value)


def test_parse_issue_value() -> None:
    v = parse_issue_value(" LetsEncrypt.org. ; accounturi=https://a/1 ;validationmethods= dns-01,http-01 ")
    assert v.issuer == "letsencrypt.org"
    assert v.get("accounturi") == "https://a/1"
    assert v.get("validationmethods") == "dns-01,http-01"
    assert v.get("nope") is None
    assert parse_issue_value(";").issuer == ""


def test_climbs_to_the_first_non_empty_set_and_stops_before_the_root() -> None:
    asked: list[str] = []
    zone = {"example.com.": [issue(CA)]}
    assert relevant_rrset("a.b.example.com", resolver(zone, asked)) == ("example.com.", [issue(CA)])
    assert asked == ["a.b.example.com.", "b.example.com.", "example.com."]
    asked.clear()
    assert relevant_rrset("*.x.example.org", resolver({}, asked)) == ("", [])
    assert asked == ["x.example.org.", "example.org.", "org."]


@pytest.mark.parametrize(
    ("records", "name", "method", "ok"),
    [
        ([issue(CA)], "www.example.com", "dns-01", True),
        ([issue("LetsEncrypt.org.")], "www.example.com", "dns-01", True),
        ([issue("other.ca")], "www.example.com", "dns-01", False),
        ([issue("other.ca"), issue(CA)], "www.example.com", "dns-01", True),
        ([issue(";")], "www.example.com", "dns-01", False),
        ([issue("mailto:x@example.com", tag="iodef")], "www.example.com", "dns-01", True),
        ([issue("x", tag="future", flags=0)], "www.example.com", "dns-01", True),
        ([issue("x", tag="future", flags=128)], "www.example.com", "dns-01", False),
        ([issue(f"{CA}; accounturi={ACCT}")], "www.example.com", "dns-01", True),
        ([issue(f"{CA}; accounturi=https://acme.example/acct/2")], "www.example.com", "dns-01", False),
        ([issue(f"{CA}; validationmethods=http-01")], "www.example.com", "dns-01", False),
        ([issue(f"{CA}; validationmethods=http-01, dns-01")], "www.example.com", "dns-01", True),
        # wildcard: issuewild when there is one, else issue
        ([issue(CA), issue(";", tag="issuewild")], "*.example.com", "dns-01", False),
        ([issue(CA), issue(";", tag="issuewild")], "example.com", "dns-01", True),
        ([issue(CA)], "*.example.com", "dns-01", True),
        ([issue(";"), issue(CA, tag="issuewild")], "*.example.com", "dns-01", True),
        ([issue(CA, tag="issuewild")], "www.example.com", "dns-01", True),  # issuewild never restricts non-wildcards
    ],
)
def test_verdicts(records: list[CaaRecord], name: str, method: str, ok: bool) -> None:
    problems = check([name], [CA], ACCT, method, resolver({"example.com.": records}))
    assert (problems == []) is ok, problems


def test_problem_names_the_record_and_the_fix() -> None:
    zone = {"example.com.": [issue(f"{CA}; accounturi=https://acme.example/acct/9; validationmethods=http-01")]}
    [problem] = check(["www.example.com"], [CA], ACCT, "dns-01", resolver(zone))
    assert problem.name == "www.example.com"
    assert problem.owner == "example.com."
    assert problem.records == (f'0 issue "{CA}; accounturi=https://acme.example/acct/9; validationmethods=http-01"',)
    assert problem.fix == f'example.com. CAA 0 issue "{CA}; accounturi={ACCT}; validationmethods=http-01,dns-01"'
    assert "CAA forbids www.example.com" in problem.message() and problem.fix in problem.message()


def test_lookup_failure_forbids() -> None:
    [problem] = check(["broken.example"], [CA], ACCT, "dns-01", resolver({}))
    assert "CAA lookup failed" in problem.reason and "SERVFAIL" in problem.reason


def test_identities_are_required() -> None:
    with pytest.raises(ValueError, match="caaIdentities"):
        check(["example.com"], [], ACCT, "dns-01", resolver({}))
