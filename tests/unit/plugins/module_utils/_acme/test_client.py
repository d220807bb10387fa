"""The transport's nonce pool, badNonce retry and Retry-After handling, against a scripted fake CA."""

from __future__ import annotations

import email.message
import json

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme import AccountKey, AcmeClient, errors
from ansible_collections.portail.https.plugins.module_utils._acme.client import Response

DIRECTORY = {
    "newNonce": "https://ca/nonce",
    "newAccount": "https://ca/acct",
    "newOrder": "https://ca/order",
    "revokeCert": "https://ca/revoke",
    "keyChange": "https://ca/kc",
    "meta": {"profiles": {"classic": "x"}},
}


def _resp(status: int, body: object = b"", headers: dict[str, str] | None = None, url: str = "") -> Response:
    msg = email.message.Message()
    for k, v in (headers or {}).items():
        msg[k] = v
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, msg, data, url)  # type: ignore[arg-type]


class FakeCA:
    def __init__(self, script: list[Response]) -> None:
        self.script = script
        self.calls: list[tuple[str, str, bytes | None]] = []
        self.n = 0

    def __call__(self, method, url, body=None, headers=None, kind=""):
        self.calls.append((method, url, body))
        if url == "https://ca/dir":
            return _resp(200, DIRECTORY, url=url)
        if method == "HEAD":
            self.n += 1
            return _resp(200, headers={"Replay-Nonce": f"fresh{self.n}"}, url=url)
        return self.script.pop(0)


@pytest.fixture
def client(monkeypatch):
    c = AcmeClient("https://ca/dir", AccountKey.generate(), account_url="https://ca/acct/1")
    return c


def _nonce_of(body: bytes) -> str:
    from ansible_collections.portail.https.plugins.module_utils._acme.utils import b64u_decode

    return json.loads(b64u_decode(json.loads(body)["protected"]))["nonce"]


def test_nonce_reuse_and_bad_nonce_retry(client, monkeypatch):
    bad = {"type": "urn:ietf:params:acme:error:badNonce", "detail": "JWS has an invalid anti-replay nonce"}
    fake = FakeCA(
        [
            _resp(400, bad, {"Replay-Nonce": "n-from-error"}),
            _resp(200, {"ok": 1}, {"Replay-Nonce": "n-after"}),
            _resp(200, {"ok": 2}, {"Replay-Nonce": "n-3"}),
        ]
    )
    monkeypatch.setattr(client, "http", fake)
    client.post("https://ca/x", {})
    client.post("https://ca/y", {})
    heads = [c for c in fake.calls if c[0] == "HEAD"]
    posts = [c for c in fake.calls if c[0] == "POST"]
    assert len(heads) == 1
    assert [_nonce_of(p[2]) for p in posts] == ["fresh1", "n-from-error", "n-after"]


def test_bad_nonce_gives_up(client, monkeypatch):
    bad = {"type": "urn:ietf:params:acme:error:badNonce", "detail": "no"}
    client.bad_nonce_retries = 2
    fake = FakeCA([_resp(400, bad, {"Replay-Nonce": f"x{i}"}) for i in range(3)])
    monkeypatch.setattr(client, "http", fake)
    with pytest.raises(errors.BadNonce):
        client.post("https://ca/x", {})


def test_rate_limit_retry_after(client, monkeypatch):
    slept = []
    rl = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "slow down"}
    fake = FakeCA([_resp(429, rl, {"Retry-After": "2", "Replay-Nonce": "a"}), _resp(200, {}, {"Replay-Nonce": "b"})])
    monkeypatch.setattr(client, "http", fake)
    monkeypatch.setattr("time.sleep", slept.append)
    client.post("https://ca/x", {})
    assert slept and abs(slept[0] - 2) < 0.01


def test_rate_limit_beyond_deadline_raises(client, monkeypatch):
    rl = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "come back tomorrow"}
    fake = FakeCA([_resp(429, rl, {"Retry-After": "86400", "Replay-Nonce": "a"})])
    monkeypatch.setattr(client, "http", fake)
    with pytest.raises(errors.RateLimited, match="come back tomorrow"):
        client.post("https://ca/x", {})


def test_profile_checked_against_directory(client, monkeypatch):
    monkeypatch.setattr(client, "http", FakeCA([]))
    with pytest.raises(errors.UnsupportedError, match="shortlived"):
        client.new_order(["a.example"], profile="shortlived")


def test_identifier_normalisation():
    from ansible_collections.portail.https.plugins.module_utils._acme.order import normalize_identifier

    assert normalize_identifier("WWW.Example.org.") == {"type": "dns", "value": "www.example.org"}
    assert normalize_identifier("2001:DB8::1") == {"type": "ip", "value": "2001:db8::1"}
    assert normalize_identifier("*.example.org") == {"type": "dns", "value": "*.example.org"}
    with pytest.raises(errors.AcmeError):
        normalize_identifier({"type": "email", "value": "x"})


def test_http_directory_allowed():
    AcmeClient("http://127.0.0.1:1/directory", AccountKey.generate())
    with pytest.raises(errors.AcmeError):
        AcmeClient("ftp://x/dir", AccountKey.generate())
