"""Rule matching of the fault-injecting proxy (tests/integration/faultproxy.py); no network."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.faultproxy import Rule, Rules, jws_payload


def jws(payload: dict) -> bytes:
    raw = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return json.dumps({"protected": "e30", "payload": raw, "signature": "AA"}).encode()


def fired(rule: Rule, requests: list[tuple[str, str, bytes]]) -> list[bool]:
    return [rule.take(m, p, b) for m, p, b in requests]


def test_method_and_path_must_both_match():
    rule = Rule("drop", "POST", r"^/order-plz$")
    assert fired(rule, [("GET", "/order-plz", b""), ("POST", "/order-plz/x", b""), ("post", "/order-plz", b"")]) == [
        False,
        False,
        True,
    ]
    assert rule.seen == 1


def test_nth_fires_from_the_nth_match_and_limit_caps_it():
    only_second = Rule("drop", "POST", "^/authZ/", nth=2, limit=1)
    reqs = [("POST", "/authZ/a", b"")] * 4
    assert fired(only_second, reqs) == [False, True, False, False]
    from_second = Rule("drop", "POST", "^/authZ/", nth=2)
    assert fired(from_second, reqs) == [False, True, True, True]
    first_two = Rule("drop", "POST", "^/authZ/", limit=2)
    assert fired(first_two, reqs) == [True, True, False, False]
    # a request that does not match is not counted
    rule = Rule("drop", "POST", "^/authZ/", nth=2, limit=1)
    assert fired(rule, [("POST", "/authZ/a", b""), ("POST", "/chalZ/a", b""), ("POST", "/authZ/b", b"")]) == [
        False,
        False,
        True,
    ]


def test_payload_matches_the_decoded_jws_payload():
    body = jws({"identifiers": [{"type": "dns", "value": "cert201.portail.test"}]})
    assert "cert201.portail.test" in jws_payload(body)
    assert jws_payload(b"not json") == "" and jws_payload(b"") == "" and jws_payload(b"[1]") == ""
    rule = Rule("respond", "POST", "^/order-plz", payload=r"cert201\.portail\.test")
    other = jws({"identifiers": [{"type": "dns", "value": "cert202.portail.test"}]})
    assert fired(rule, [("POST", "/order-plz", other), ("POST", "/order-plz", body)]) == [False, True]


def test_first_rule_in_order_wins_and_reset_forgets_rules_not_the_log():
    rules = Rules()
    first = rules.add(Rule("drop", "GET", "^/dir", limit=1))
    rules.add(Rule("respond", "GET", "^/dir", status=503, problem={"type": "x"}))
    assert rules.decide("GET", "/dir", b"") is first
    assert rules.decide("GET", "/dir", b"").action == "respond"  # the first is spent
    assert rules.decide("POST", "/dir", b"") is None
    rules.record("GET", "/dir", "drop")
    rules.record("GET", "/dir", "forward")
    rules.record("POST", "/order-plz", "forward")
    rules.refusing = True
    rules.reset()
    assert rules.decide("GET", "/dir", b"") is None and not rules.refusing
    assert rules.count("GET", "^/dir") == 1 and rules.count(action="drop") == 1 and rules.count() == 2


@pytest.mark.parametrize("kw", [{"nth": 0}, {"limit": 0}])
def test_bad_rules_are_refused(kw):
    with pytest.raises(ValueError, match="count from 1"):
        Rule("drop", **kw)
    with pytest.raises(ValueError, match="unknown action"):
        Rule("delay")
