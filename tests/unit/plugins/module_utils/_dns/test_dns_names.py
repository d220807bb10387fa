"""Name handling: IDNA, trailing dots, case, wildcards, malformed names, TXT values."""

from __future__ import annotations

import pytest
from ansible_collections.portail.https.plugins.module_utils._dns.base import normalize_records
from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsNameError
from ansible_collections.portail.https.plugins.module_utils._dns.names import (
    challenge_name,
    check_txt_value,
    record_name,
    to_name,
    to_text,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("example.com", "example.com."),
        ("example.com.", "example.com."),
        ("WWW.Example.COM", "www.example.com."),
        ("  www.example.com  ", "www.example.com."),
        ("bücher.example", "xn--bcher-kva.example."),
        ("BÜCHER.example.", "xn--bcher-kva.example."),
        ("_acme-challenge.example.com", "_acme-challenge.example.com."),
        ("*.example.com", "*.example.com."),
    ],
)
def test_to_name_normalizes(given: str, expected: str) -> None:
    assert to_text(to_name(given)) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "a..b",
        "exa mple.com",
        "192.0.2.1",
        "2001:db8::1",
        "foo*.example.com",
        "www.*.example.com",
        "-leading.example.com",
        "trailing-.example.com",
        "bad!char.example.com",
        "a" * 64 + ".example.com",
        ".".join(["abcdefghij"] * 30),
    ],
)
def test_malformed_names_are_refused(bad: str) -> None:
    with pytest.raises(DnsNameError):
        to_name(bad)


def test_non_string_is_refused() -> None:
    with pytest.raises(DnsNameError, match="must be a string"):
        to_name(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ("example.com", "_acme-challenge.example.com."),
        ("*.example.com", "_acme-challenge.example.com."),
        ("Example.COM.", "_acme-challenge.example.com."),
        ("*.bücher.example", "_acme-challenge.xn--bcher-kva.example."),
    ],
)
def test_challenge_name_apex_and_wildcard_share_the_name(identifier: str, expected: str) -> None:
    assert challenge_name(identifier) == expected


def test_record_name_refuses_wildcards() -> None:
    with pytest.raises(DnsNameError, match=r"\*"):
        record_name("*.example.com")


@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9", "tab\there", 5])
def test_bad_txt_values(bad: object) -> None:
    with pytest.raises(DnsNameError):
        check_txt_value(bad, "_acme-challenge.example.com.")  # type: ignore[arg-type]


def test_txt_value_ok() -> None:
    value = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
    assert check_txt_value(value) == value


def test_normalize_records_dedupes_case_and_dots() -> None:
    pairs = normalize_records(
        [
            ("_acme-challenge.Example.com", "v1"),
            ("_acme-challenge.example.com.", "v1"),
            ("_acme-challenge.example.com", "v2"),
        ]
    )
    assert pairs == [("_acme-challenge.example.com.", "v1"), ("_acme-challenge.example.com.", "v2")]
