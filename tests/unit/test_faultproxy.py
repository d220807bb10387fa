"""The fault-injecting proxy (tests/integration/faultproxy.py): its rule matching, then the proxy on loopback."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.faultproxy import FaultProxy, Rule, Rules, jws_payload


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


# --- the proxy itself, on loopback, in front of a tiny upstream (no rig) -----------------------------------


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        data = json.dumps({"host": self.headers["Host"], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, *args):
        return


@pytest.fixture
def proxy():
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}", hold_timeout=20) as p:
        yield p
    upstream.shutdown()
    upstream.server_close()


def get(p: FaultProxy, path: str, method: str = "GET") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=20)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_forwards_with_the_host_header_as_sent_and_logs(proxy):
    status, body = get(proxy, "/dir")
    assert status == 200 and body == {"host": f"127.0.0.1:{proxy.port}", "path": "/dir"}
    assert proxy.rules.count("GET", "^/dir") == 1


def test_drop_respond_and_refuse(proxy):
    proxy.drop("GET", "^/cut", limit=1)
    with pytest.raises(http.client.RemoteDisconnected):
        get(proxy, "/cut")
    assert get(proxy, "/cut")[0] == 200  # the limit is spent
    problem = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "slow down", "status": 429}
    proxy.respond("POST", "^/order", 429, problem, headers={"Retry-After": "60"})
    assert get(proxy, "/order", "POST") == (429, problem)
    proxy.refuse_all()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(proxy, "/dir")
    proxy.reset()
    assert get(proxy, "/dir")[0] == 200
    assert [s.action for s in proxy.rules.log] == ["drop", "forward", "respond", "refuse", "forward"]


@pytest.mark.parametrize("refuse", [False, True], ids=["forwarded", "cut"])
def test_hold_until_released(proxy, refuse):
    proxy.hold("GET", "^/finalize", limit=1)
    outcome: list = []

    def client():
        try:
            outcome.append(get(proxy, "/finalize")[0])
        except (http.client.RemoteDisconnected, ConnectionError) as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=client)
    thread.start()
    assert proxy.wait_held(1, timeout=20)
    assert outcome == []  # still held
    if refuse:
        proxy.refuse_all()
    proxy.release()
    proxy.reset()  # cannot race the held request: its fate was decided before release() returned
    thread.join(20)
    assert outcome == (["RemoteDisconnected"] if refuse else [200])
