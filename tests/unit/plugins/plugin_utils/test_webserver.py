"""The shared core of the nginx and Apache roles: input checks, plan, headers, limits, HSTS, TLS profile."""

from __future__ import annotations

import copy
import typing as t

import pytest
from ansible_collections.portail.https.plugins.plugin_utils._webserver import (
    DEFAULT_SECURITY_HEADERS,
    TLS_CIPHERS,
    WebserverError,
    cert_paths,
    host_facts,
    openssl_version,
    os_family,
    plan,
    preload_apex,
    site_files,
    tls_profile,
)

SETTINGS: dict[str, t.Any] = {
    "listen_addresses": ["*", "[::]"],
    "acme_challenge_dir": "/var/www/portail/acme-challenge/",
    "certificate_dir": "/etc/ssl/portail",
    "acme_thumbprint": "",
    "redirect_code": 301,
    "hsts_max_age": 63072000,
    "hsts_include_subdomains": False,
    "hsts_preload": False,
    "security_headers": {},
    "limits": {},
    "request_timeouts": {},
    "service_enabled": True,
    "tls_alpn_route": False,
    "tls_alpn_responder": {"address": "127.0.0.1", "port": 10443},
    "tls_alpn_backend": {"address": "127.0.0.1", "port": 10444},
}
SITE = {"name": "main", "server_names": ["example.org", "www.example.org"], "root": "/srv/www"}


def settings(**kw: t.Any) -> dict[str, t.Any]:
    s = copy.deepcopy(SETTINGS)
    s.update(kw)
    return s


def one(role: str = "nginx", site: dict[str, t.Any] | None = None, **kw: t.Any) -> dict[str, t.Any]:
    return plan([site or SITE], role, settings(**kw))["present"][0]


@pytest.mark.parametrize("role", ["nginx", "apache"])
def test_plan_defaults_are_the_same_for_both_roles(role: str) -> None:
    p = one(role)
    assert p["server_name"] == "example.org"
    assert p["certificate"] == "/etc/ssl/portail/main/fullchain.pem"
    assert p["certificate_key"] == "/etc/ssl/portail/main/privkey.pem"
    assert p["hsts"] == "max-age=63072000"
    assert dict(p["headers"]) == DEFAULT_SECURITY_HEADERS
    assert p["limits"] == {"requests_per_second": 20, "burst": 40, "connections": 64, "status": 429}
    assert p["timeouts"] == {"header": 10, "body": 20, "min_rate": 500}
    assert p["redirect_code"] == 301


def test_settings_are_normalised_and_strings_from_templating_accepted() -> None:
    out = plan([], "nginx", settings(redirect_code="308", hsts_max_age="100", hsts_include_subdomains="True"))
    assert out["settings"]["redirect_code"] == 308
    assert out["settings"]["acme_challenge_dir"] == "/var/www/portail/acme-challenge"
    assert out["settings"]["hsts_include_subdomains"] is True
    assert out["present"] == [] and out["absent"] == []


def test_present_and_absent() -> None:
    out = plan([SITE, {"name": "old", "state": "absent"}], "apache", settings())
    assert [p["name"] for p in out["present"]] == ["main"]
    assert out["absent"] == ["old"]


def test_wildcard_only_site_gets_an_invalid_server_name() -> None:
    assert one(site={"name": "w", "server_names": ["*.example.org"], "root": "/srv"})["server_name"] == "w.invalid"


BAD_SITES = [
    ({"name": "a b"}, "name"),
    ({"name": "../etc"}, "name"),
    ({"server_names": []}, "server_names"),
    ({"server_names": ["a;b.example.org"]}, "is invalid"),
    ({"server_names": ["x" * 64 + ".org"]}, "is invalid"),
    ({"server_names": ["ok.example.org\n"]}, "is invalid"),
    ({"root": "relative"}, "root"),
    ({"root": "/srv/x; root /etc"}, "root"),
    ({"upstream": "http://x"}, "exactly one of root"),
    ({"redirect_code": 302}, "redirect_code"),
    ({"certificate": "/etc/x.pem\n"}, "certificate"),
    ({"state": "gone"}, "state"),
    ({"locations": [{"path": "/a b"}]}, "locations[0].path"),
    ({"directives": "add_header X y;"}, "directives"),
    ({"hsts_max_age": -1}, "hsts_max_age"),
    ({"hsts_max_age": True}, "hsts_max_age"),
]


@pytest.mark.parametrize(("change", "message"), BAD_SITES, ids=range(len(BAD_SITES)))
def test_bad_sites_are_refused_with_a_named_reason(change: dict[str, t.Any], message: str) -> None:
    site = dict(SITE, **change)
    with pytest.raises(WebserverError, match=None) as err:
        plan([site], "nginx", settings())
    assert message in str(err.value)


def test_duplicate_names_refused() -> None:
    with pytest.raises(WebserverError, match="used twice"):
        plan([SITE, SITE], "nginx", settings())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"listen_addresses": []}, "listen_addresses"),
        ({"listen_addresses": ["0.0.0.0; evil"]}, "listen_addresses"),
        ({"acme_thumbprint": "short"}, "acme_thumbprint"),
        ({"certificate_dir": "/etc/ssl portail"}, "certificate_dir"),
        ({"service_enabled": "maybe"}, "service_enabled"),
        ({"limits": {"rate": 5}}, "limits"),
        ({"limits": {"status": 500}}, "limits.status"),
        ({"request_timeouts": {"header": 0}}, "request_timeouts.header"),
        ({"security_headers": ["X"]}, "security_headers"),
    ],
)
def test_bad_settings_are_refused(change: dict[str, t.Any], message: str) -> None:
    with pytest.raises(WebserverError) as err:
        plan([], "nginx", settings(**change))
    assert message in str(err.value)


def test_security_headers_merge_override_and_remove() -> None:
    p = one(
        site=dict(SITE, security_headers={"x-frame-options": "DENY", "Referrer-Policy": None, "X-New": "1"}),
        security_headers={"Permissions-Policy": "camera=()"},
    )
    headers = dict(p["headers"])
    assert headers["X-Frame-Options"] == "DENY"  # the name keeps its first spelling, the value is the site's
    assert "Referrer-Policy" not in headers
    assert headers["X-New"] == "1" and headers["Permissions-Policy"] == "camera=()"
    assert headers["Content-Security-Policy"] == "frame-ancestors 'self'"


@pytest.mark.parametrize(
    "bad",
    [
        {"X-A": 'a"b'},
        {"X-A": "a\\b"},
        {"X-A": "$host"},
        {"X-A": "%{X}e"},
        {"X-A": "a\nb"},
        {"X-A": "`x`"},
        {"X-A": ""},
        {"X-A": 5},
        {"X A": "v"},
        {"X-A;": "v"},
        {"Strict-Transport-Security": "max-age=0"},
    ],
)
def test_header_values_that_could_escape_are_refused(bad: dict[str, t.Any]) -> None:
    with pytest.raises(WebserverError, match="security_headers"):
        one(site=dict(SITE, security_headers=bad))


def test_limits_merge_and_off() -> None:
    p = one(site=dict(SITE, limits={"burst": 0}), limits={"requests_per_second": 5, "status": 503})
    assert p["limits"] == {"requests_per_second": 5, "burst": 0, "connections": 64, "status": 503}
    assert one(site=dict(SITE, limits={"enabled": False}))["limits"] is None
    assert one(limits={"enabled": False})["limits"] is None
    assert one(site=dict(SITE, limits={"enabled": True}), limits={"enabled": False})["limits"] is not None


def test_hsts_values() -> None:
    assert one(hsts_include_subdomains=True)["hsts"] == "max-age=63072000; includeSubDomains"
    site = dict(SITE, hsts_preload=True, hsts_include_subdomains=True, hsts_max_age=31536000)
    assert one(site=site)["hsts"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hsts_max_age": 31535999}, "at least 31536000"),
        ({"hsts_include_subdomains": False}, "hsts_include_subdomains must be true"),
        ({"server_names": ["www.example.org"]}, "list the apex"),
        ({"server_names": ["example.org", "example.net"]}, "list the apex"),
        ({"server_names": ["*.example.org"]}, "list the apex"),
        # the Public Suffix List (community.dns) says which domain can be preloaded
        ({"server_names": ["www.example.org"]}, "(example.org)"),
        ({"server_names": ["shop.example.co.uk"]}, "(example.co.uk)"),
    ],
)
def test_hsts_preload_refused_when_not_eligible(change: dict[str, t.Any], message: str) -> None:
    site = dict(SITE, hsts_preload=True, hsts_include_subdomains=True)
    site.update(change)
    with pytest.raises(WebserverError, match="not eligible") as err:
        one(site=site)
    assert message in str(err.value)


def test_preload_accepts_registrable_domains() -> None:
    site = dict(
        SITE, hsts_preload=True, hsts_include_subdomains=True, server_names=["example.co.uk", "*.example.co.uk"]
    )
    assert one(site=site)["hsts"].endswith("; preload")


def test_preload_apex() -> None:
    assert preload_apex(["www.example.org", "example.org", "*.example.org"]) == "example.org"
    assert preload_apex(["Example.org.", "a.example.org"]) == "example.org"
    assert preload_apex(["a.example.org", "b.example.org"]) is None
    assert preload_apex(["notexample.org", "example.org"]) is None


def test_alpn_route_nginx() -> None:
    out = plan([], "nginx", settings(tls_alpn_route=True, listen_addresses=["192.0.2.1"]))
    assert out["settings"]["tls_alpn_responder"] == {"address": "127.0.0.1", "port": 10443}
    assert out["settings"]["tls_alpn_backend"] == {"address": "127.0.0.1", "port": 10444}
    assert "tls_alpn_responder" not in plan([], "nginx", settings())["settings"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tls_alpn_responder": {"address": "127.0.0.1", "port": 10444}}, "must differ"),
        ({"tls_alpn_backend": {"address": "localhost", "port": 1}}, "tls_alpn_backend.address"),
        ({"tls_alpn_backend": {"address": "127.0.0.1", "port": 70000}}, "tls_alpn_backend.port"),
        ({"tls_alpn_backend": {"address": "127.0.0.1", "port": 443}}, "port 443"),
        ({"tls_alpn_responder": "127.0.0.1:10443"}, "tls_alpn_responder"),
    ],
)
def test_alpn_route_bad_endpoints(change: dict[str, t.Any], message: str) -> None:
    with pytest.raises(WebserverError) as err:
        plan([], "nginx", settings(tls_alpn_route=True, **change))
    assert message in str(err.value)


def test_alpn_route_apache_points_to_other_challenges() -> None:
    with pytest.raises(WebserverError) as err:
        plan([], "apache", settings(tls_alpn_route=True))
    assert "http-01" in str(err.value) and "dns-01" in str(err.value)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)", (3, 0, 19)),
        ("OpenSSL 3.5.1 1 Jul 2025 (Library: OpenSSL 3.5.1 1 Jul 2025)", (3, 5, 1)),
        ("built with OpenSSL 3.0.22 25 Aug 2026 (running with OpenSSL 3.5.0 8 Apr 2025)", (3, 5, 0)),
        ("nginx version: nginx/1.26.0\nbuilt with OpenSSL 3.2.2 4 Jun 2024\nTLS SNI support enabled", (3, 2, 2)),
        ("LibreSSL 3.8.2", None),
        ("", None),
        (None, None),
    ],
)
def test_openssl_version(text: t.Any, version: t.Any) -> None:
    assert openssl_version(text) == version


def test_tls_profile_post_quantum_only_from_openssl_3_5() -> None:
    old = tls_profile("OpenSSL 3.4.9 1 Jan 2025")
    new = tls_profile("OpenSSL 3.5.0 8 Apr 2025")
    unknown = tls_profile("")
    assert old["groups"] == ["X25519", "prime256v1", "secp384r1"] and not old["post_quantum"]
    assert new["groups"] == ["X25519MLKEM768", "X25519", "prime256v1", "secp384r1"] and new["post_quantum"]
    assert unknown["groups"] == old["groups"] and unknown["openssl"] is None
    assert new["protocols"] == ["TLSv1.2", "TLSv1.3"]
    assert new["ciphers"] == TLS_CIPHERS
    assert all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in TLS_CIPHERS.split(":"))


def test_cert_paths_in_site_order() -> None:
    present = plan([SITE, dict(SITE, name="b", certificate="/c/x@y.pem")], "nginx", settings())["present"]
    assert cert_paths(present) == [
        "/etc/ssl/portail/main/fullchain.pem",
        "/etc/ssl/portail/main/privkey.pem",
        "/c/x@y.pem",
        "/etc/ssl/portail/b/privkey.pem",
    ]


def test_host_facts() -> None:
    present = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    nginx = "nginx version: nginx/1.26.3\nbuilt with OpenSSL 3.5.0 8 Apr 2025\n"
    facts = host_facts([True, True, True, False, False, True], nginx, present)
    assert facts["tls_sites"] == ["a"]
    assert facts["nginx_version"] == "1.26.3" and facts["http2_directive"] is True
    assert facts["tls"]["groups"][0] == "X25519MLKEM768"
    old = host_facts([], "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.22\n", [])
    assert old["http2_directive"] is False and old["tls_sites"] == []
    assert host_facts([], "", [])["tls"]["post_quantum"] is False


@pytest.mark.parametrize("exists", [[True], [True] * 7, []])
def test_host_facts_refuses_a_short_answer(exists: list[bool]) -> None:
    with pytest.raises(WebserverError, match="probe"):
        host_facts(exists, "", [{"name": "a"}, {"name": "b"}, {"name": "c"}])


def test_site_files() -> None:
    p = {"present": [{"name": "a"}, {"name": "b"}], "absent": ["old"]}
    debian = site_files(p, "/etc/nginx/sites-available/", "/etc/nginx/sites-enabled", "portail-")
    assert [d for d, _s in debian["sites"]] == [
        "/etc/nginx/sites-available/portail-a.conf",
        "/etc/nginx/sites-available/portail-b.conf",
    ]
    assert debian["links"][0] == (
        "/etc/nginx/sites-enabled/portail-a.conf",
        "/etc/nginx/sites-available/portail-a.conf",
    )
    assert debian["absent"] == [
        "/etc/nginx/sites-available/portail-old.conf",
        "/etc/nginx/sites-enabled/portail-old.conf",
    ]
    redhat = site_files(p, "/etc/nginx/conf.d", "", "portail-")
    assert redhat["links"] == [] and redhat["absent"] == ["/etc/nginx/conf.d/portail-old.conf"]


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', "Debian"),
        ("ID=ubuntu\nID_LIKE=debian\n", "Debian"),
        ("ID=linuxmint\nID_LIKE='ubuntu debian'\n", "Debian"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "RedHat"),
        ("ID=fedora\n", "RedHat"),
        ('ID="almalinux"\n', "RedHat"),
        ("ID=alpine\n", ""),
        ("", ""),
        ("# ID=debian\nNAME=x\n", ""),
    ],
)
def test_os_family_from_os_release(text: str, family: str) -> None:
    assert os_family(text) == family
