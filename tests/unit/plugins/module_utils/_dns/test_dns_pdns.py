"""PowerDNS provider: settings, TXT presentation form, HTTP error mapping and secret hiding.
open_url is replaced by fakes; the real server is exercised in tests/integration."""

from __future__ import annotations

import io
import json
import typing as t
import urllib.error

import dns.name
import pytest
from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsAuthError,
    DnsConfigError,
    DnsRefusedError,
    DnsUnreachableError,
    DnsUpdateError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider, pdns

KEY = "pdns-key-do-not-print-0123"
OPTIONS = {"api_url": "http://192.0.2.10:8081", "api_key": KEY, "resolvers": ["192.0.2.53"]}


class FakeApi:
    """Answers like PowerDNS for one zone, example.com., and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, t.Any, dict[str, str]]] = []
        self.rrsets: dict[str, list[str]] = {}
        self.fail: t.Optional[Exception] = None

    def __call__(self, url: str, data: t.Any = None, headers: t.Any = None, method: str = "GET", **kw: t.Any) -> t.Any:
        body = json.loads(data) if data else None
        self.calls.append((method, url, body, dict(headers or {})))
        if self.fail is not None:
            raise self.fail
        if url.endswith("/zones"):
            return io.BytesIO(json.dumps([{"name": "example.com."}, {"name": "sub.example.com."}]).encode())
        if method == "GET":
            doc = {
                "name": "example.com.",
                "rrsets": [
                    {"name": n, "type": "TXT", "ttl": 60, "records": [{"content": c, "disabled": False} for c in v]}
                    for n, v in self.rrsets.items()
                ],
            }
            return io.BytesIO(json.dumps(doc).encode())
        for rrset in body["rrsets"]:
            if rrset["changetype"] == "DELETE":
                self.rrsets.pop(rrset["name"], None)
            else:
                self.rrsets[rrset["name"]] = [r["content"] for r in rrset["records"]]
        return io.BytesIO(b"")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(pdns, "open_url", fake)
    return fake


def provider() -> pdns.PdnsProvider:
    p = make_provider("pdns", OPTIONS)
    assert isinstance(p, pdns.PdnsProvider)
    p.lookup.follow_cname = lambda name: [name]  # type: ignore[method-assign]
    return p


def http_error(code: int, body: bytes) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://x", code, "x", {}, io.BytesIO(body))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api_key": KEY}, "api_url is required"),
        ({"api_url": "http://192.0.2.10"}, "api_key is required"),
        ({"api_url": "ftp://192.0.2.10", "api_key": KEY}, "must be an http:// or https:// URL"),
        ({"api_url": "http://u:p@192.0.2.10", "api_key": KEY}, "must not hold credentials"),
        ({"api_url": "http://192.0.2.10", "api_key": "a\nb"}, "line break"),
        ({"api_url": "http://192.0.2.10", "api_key": KEY, "server_id": "a/b"}, "not a PowerDNS server id"),
        ({"api_url": "http://192.0.2.10", "api_key": KEY, "ttl": -1}, "ttl must be"),
    ],
)
def test_bad_settings_are_refused_without_the_key(options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(DnsConfigError, match=message) as info:
        make_provider("pdns", {**options, "resolvers": ["192.0.2.53"]})
    assert KEY not in str(info.value)


def test_repr_hides_the_key() -> None:
    p = provider()
    assert KEY not in repr(p) and KEY not in str(p.config)


@pytest.mark.parametrize("value", ["plain", 'with "quotes"', "back\\slash", "a;b c"])
def test_txt_content_round_trip(value: str) -> None:
    assert pdns.parse_txt_content(pdns.txt_content(value)) == value


def test_parse_txt_content_joins_strings_and_decimal_escapes() -> None:
    assert pdns.parse_txt_content('"abc" "def"') == "abcdef"
    assert pdns.parse_txt_content('"a\\065b"') == "aAb"


def test_add_merges_with_other_values_and_remove_keeps_them(api: FakeApi) -> None:
    p = provider()
    name = "_acme-challenge.www.sub.example.com."
    api.rrsets[name] = ['"foreign"']
    placed = p.add_txt_records([(name, "v1"), (name, "v2")])
    assert {r.zone for r in placed} == {"sub.example.com."}  # the longest zone wins
    assert api.rrsets[name] == ['"foreign"', '"v1"', '"v2"']
    patch = [c for c in api.calls if c[0] == "PATCH"]
    assert len(patch) == 1 and patch[0][1].endswith("/servers/localhost/zones/sub.example.com.")
    assert patch[0][3]["X-API-Key"] == KEY
    p.remove_txt_records([(name, "v1"), (name, "v2")])
    assert api.rrsets[name] == ['"foreign"']
    p.remove_txt_records([(name, "foreign")])
    assert name not in api.rrsets  # last value: the RRset is deleted
    before = len(api.calls)
    p.remove_txt_records([(name, "absent")])
    assert [c[0] for c in api.calls[before:]] == ["GET"]  # nothing to change: no PATCH


def test_name_outside_every_zone_is_refused(api: FakeApi) -> None:
    p = provider()
    with pytest.raises(DnsRefusedError, match=r"no zone on PowerDNS server 'localhost'.*example\.org"):
        p.add_txt("_acme-challenge.example.org", "v")
    assert not [c for c in api.calls if c[0] == "PATCH"]


@pytest.mark.parametrize(
    ("code", "body", "error", "text"),
    [
        (401, b"Unauthorized", DnsAuthError, "refused the API key (HTTP 401)"),
        (403, b"", DnsAuthError, "refused the API key (HTTP 403)"),
        (404, b'{"error": "Could not find domain"}', DnsRefusedError, "is not on PowerDNS server"),
        (500, b'{"error": "backend failed, key ' + KEY.encode() + b'"}', DnsUpdateError, "HTTP 500: backend failed"),
    ],
)
def test_http_errors_are_typed_and_never_show_the_key(
    api: FakeApi, code: int, body: bytes, error: type[Exception], text: str
) -> None:
    p = provider()
    p._zones = [dns.name.from_text("example.com.")]
    api.fail = http_error(code, body)
    with pytest.raises(error) as info:
        p.preflight(["_acme-challenge.www.example.com"])
    assert text in str(info.value)
    assert KEY not in str(info.value)


def test_unknown_server_id_is_a_settings_error(api: FakeApi) -> None:
    p = make_provider("pdns", {**OPTIONS, "server_id": "nope"})
    p.lookup.follow_cname = lambda name: [name]  # type: ignore[method-assign]
    api.fail = http_error(404, b'{"error": "Not Found"}')
    with pytest.raises(DnsConfigError, match=r"has no server 'nope'.*check api_url and server_id"):
        p.preflight(["_acme-challenge.www.example.com"])


def test_connection_errors_are_unreachable(api: FakeApi) -> None:
    p = provider()
    api.fail = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    with pytest.raises(DnsUnreachableError, match=r"cannot reach the API at http://192\.0\.2\.10:8081/api/v1"):
        p.preflight(["_acme-challenge.www.example.com"])


def test_purge_stale_reads_the_api_and_removes_only_acme_values(api: FakeApi) -> None:
    p = provider()
    name = "_acme-challenge.www.example.com."
    stale, keep = "S" * 43, "K" * 43
    api.rrsets[name] = [f'"{stale}"', f'"{keep}"', '"google-site-verification=x"']
    removed = p.purge_stale([name], [keep])
    assert [r.value for r in removed] == [stale]
    assert api.rrsets[name] == [f'"{keep}"', '"google-site-verification=x"']
