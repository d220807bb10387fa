"""Proxy selection for the ACME client: environment rules (urllib's), NO_PROXY, the explicit option, bad URLs,
and the connection the client makes (CONNECT tunnel with TLS to the CA, absolute URI for http://)."""

from __future__ import annotations

import base64

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme import AccountKey, AcmeClient
from ansible_collections.portail.https.plugins.module_utils._acme.errors import AcmeError
from ansible_collections.portail.https.plugins.module_utils._acme.proxy import parse_proxy, proxy_for

CA = "https://acme.example.org/directory"


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    for name in ("https_proxy", "http_proxy", "no_proxy", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_no_environment_means_direct():
    assert proxy_for(CA) is None


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy"])
def test_https_proxy_from_the_environment(monkeypatch, name):
    monkeypatch.setenv(name, "http://proxy.example.net:3128")
    p = proxy_for(CA)
    assert p is not None and (p.host, p.port, p.authorization) == ("proxy.example.net", 3128, None)
    assert proxy_for("http://acme.example.org/dir") is None  # HTTP_PROXY is for http:// URLs


def test_http_proxy_for_http_urls(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "proxy.example.net:8080")
    p = proxy_for("http://127.0.0.1:14080/directory")
    assert p is not None and (p.host, p.port) == ("proxy.example.net", 8080)
    assert proxy_for(CA) is None


@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [("example.org", True), (".example.org", True), ("acme.example.org", True), ("*", True), ("other.org", False)],
)
def test_no_proxy(monkeypatch, no_proxy, direct):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.net:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert (proxy_for(CA) is None) is direct


def test_explicit_proxy_replaces_the_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://env.example.net:3128")
    monkeypatch.setenv("NO_PROXY", "example.org")
    p = proxy_for(CA, explicit="http://explicit.example.net:8000")
    assert p is not None and p.host == "explicit.example.net"
    assert proxy_for(CA, use_proxy=False) is None
    assert proxy_for(CA, explicit="http://explicit.example.net:8000", use_proxy=False) is not None


def test_credentials_become_a_header_and_never_show():
    p = parse_proxy("http://user%40corp:s3cr%3At@proxy.example.net:3128")
    assert p.headers() == {"Proxy-Authorization": "Basic " + base64.b64encode(b"user@corp:s3cr:t").decode()}
    assert "s3cr" not in repr(p) and "s3cr" not in p.display
    assert p.display == "http://proxy.example.net:3128"
    assert parse_proxy("http://[2001:db8::1]:3128").display == "http://[2001:db8::1]:3128"


@pytest.mark.parametrize(
    "url", ["https://proxy.example.net:3128", "socks5://proxy:1080", "http://proxy:notaport", "http:///", "http://p/x"]
)
def test_bad_proxy_urls_fail_clearly(url):
    with pytest.raises(AcmeError, match="proxy"):
        parse_proxy(url)


def test_client_rejects_a_bad_proxy_before_any_request():
    with pytest.raises(AcmeError, match="proxy"):
        AcmeClient(CA, AccountKey.generate("ec256"), proxy="ftp://proxy:21")


def test_client_tunnels_https_and_sends_absolute_uris_for_http(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://u:p@proxy.example.net:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.net:3128")
    client = AcmeClient(CA, AccountKey.generate("ec256"))
    conn = client._connection("https", "acme.example.org:8443", fresh=False, proxy=proxy_for(CA))
    assert (conn.host, conn.port) == ("proxy.example.net", 3128)
    assert (conn._tunnel_host, conn._tunnel_port) == ("acme.example.org", 8443)
    assert conn._tunnel_headers["Proxy-Authorization"].startswith("Basic ")
    assert conn._context is client._ssl  # the CA's certificate is checked inside the tunnel

    sent = {}

    class Fake:
        sock = None
        will_close = True

        def request(self, method, path, body=None, headers=None):
            sent.update(method=method, path=path, headers=headers)

        def getresponse(self):
            raise ConnectionRefusedError(111, "Connection refused")

        def close(self):
            pass

    monkeypatch.setattr(client, "_connection", lambda *a, **k: Fake())
    with pytest.raises(AcmeError, match=r"through the proxy http://proxy\.example\.net:3128"):
        client.http("GET", "http://ca.test:14080/directory?x=1")
    assert sent["path"] == "http://ca.test:14080/directory?x=1"
