# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the nginx and Apache roles share: input checks, the per-site plan, HSTS, hardened headers,
DoS limits and the TLS profile.

The roles call this through the ``portail.https.webserver_plan`` and ``portail.https.webserver_tls``
filters (plugins/filter/webserver.py). Everything a site definition can put into a configuration file
is checked here against strict patterns, so that no value can close a directive, a quoted string or a
block, and so that both roles refuse exactly the same inputs with the same messages.
"""

from __future__ import annotations

import re
import typing as t

ROLES = ("nginx", "apache")

RE_SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
RE_SERVER_NAME = re.compile(r"(\*\.)?(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\Z")
RE_PATH = re.compile(r"/[A-Za-z0-9._/@%+=:,~-]*\Z")
RE_UPSTREAM = re.compile(r"https?://[A-Za-z0-9._~%:\[\]-]+(/[A-Za-z0-9._~%/:@!&()*+,=-]*)?\Z")
RE_LISTEN = re.compile(r"(\*|[0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\])\Z")
RE_IP = re.compile(r"([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\])\Z")
RE_THUMBPRINT = re.compile(r"([A-Za-z0-9_-]{43})?\Z")
RE_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}\Z")
# Printable ASCII without " \ $ % ` (quotes end the value, $ is an nginx variable, % an Apache format).
RE_HEADER_VALUE = re.compile(r"[ !#&-\[\]-_a-~]{1,1024}\Z")

# Headers every port 443 response carries unless a site overrides them (null removes one).
DEFAULT_SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": "frame-ancestors 'self'",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
DEFAULT_LIMITS: dict[str, t.Any] = {
    "enabled": True,
    "requests_per_second": 20,
    "burst": 40,
    "connections": 64,
    "status": 429,
}
DEFAULT_TIMEOUTS: dict[str, int] = {"header": 10, "body": 20, "min_rate": 500}
HSTS_PRELOAD_MIN_AGE = 31536000
LIMIT_STATUSES = (429, 503)

# Mozilla Server Side TLS guidelines 6.0, "intermediate": TLS 1.2 and 1.3, ECDHE + AEAD only, the
# hybrid post-quantum group first where the TLS library knows it (OpenSSL 3.5+), no OCSP stapling.
TLS_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
TLS_GROUPS = ("X25519", "prime256v1", "secp384r1")
TLS_PQ_GROUP = "X25519MLKEM768"
TLS_PQ_MIN_OPENSSL = (3, 5, 0)


class WebserverError(ValueError):
    """Bad role input; the message names the site and the rule."""


def _is_bool(value: t.Any) -> bool:
    return isinstance(value, bool)


def _int(value: t.Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise WebserverError(f"{what} must be a whole number, not {value!r}")
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise WebserverError(f"{what} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise WebserverError(f"{what} must be between {low} and {high}, not {number}")
    return number


def _bool(value: t.Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise WebserverError(f"{what} must be true or false, not {value!r}")


def _path(value: t.Any, what: str) -> str:
    if not isinstance(value, str) or not RE_PATH.match(value):
        raise WebserverError(
            f"{what} must be an absolute path of letters, digits and . _ / @ % + = : , ~ -"
            f" (no spaces, quotes, ; {{ }} or newlines), not {value!r}"
        )
    return value


def _string_list(value: t.Any, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise WebserverError(f"{what} must be a list of strings")
    return list(value)


def _endpoint(value: t.Any, what: str) -> dict[str, t.Any]:
    if not isinstance(value, dict) or set(value) - {"address", "port"}:
        raise WebserverError(f"{what} must be a dict with address and port")
    address = value.get("address")
    if not isinstance(address, str) or not RE_IP.match(address):
        raise WebserverError(f"{what}.address must be an IPv4 address or a bracketed IPv6 address, not {address!r}")
    return {"address": address, "port": _int(value.get("port"), what + ".port", 1, 65535)}


def security_headers(base: t.Any, override: t.Any, what: str) -> list[list[str]]:
    """Merge the built-in hardened headers, the role's and the site's; a null value removes a header."""
    merged: dict[str, str] = {k.lower(): k for k in DEFAULT_SECURITY_HEADERS}
    values: dict[str, t.Optional[str]] = {k.lower(): v for k, v in DEFAULT_SECURITY_HEADERS.items()}
    for layer, label in ((base, what + " (role-wide security_headers)"), (override, what + ".security_headers")):
        if layer is None:
            continue
        if not isinstance(layer, dict):
            raise WebserverError(f"{label} must be a dict of header name to value (null removes a header)")
        for name, value in layer.items():
            if not isinstance(name, str) or not RE_HEADER_NAME.match(name):
                raise WebserverError(f"{label}: {name!r} is not a header name (letters, digits, -)")
            if name.lower() == "strict-transport-security":
                raise WebserverError(f"{label}: set HSTS with the hsts_* options, not as a header")
            if value is not None and (not isinstance(value, str) or not RE_HEADER_VALUE.match(value)):
                raise WebserverError(
                    f"{label}: the value of {name} must be 1-1024 printable ASCII characters without"
                    f' " \\ $ % or `, not {value!r}'
                )
            merged.setdefault(name.lower(), name)
            values[name.lower()] = value
    return [[merged[k], v] for k, v in values.items() if v is not None]


def limits(base: t.Any, override: t.Any, what: str) -> t.Optional[dict[str, int]]:
    """Request-rate and connection limits of one site, or None when they are off."""
    merged = dict(DEFAULT_LIMITS)
    for layer, label in ((base, what + " (role-wide limits)"), (override, what + ".limits")):
        if layer is None:
            continue
        if not isinstance(layer, dict) or set(layer) - set(DEFAULT_LIMITS):
            raise WebserverError(f"{label} must be a dict with keys among {', '.join(DEFAULT_LIMITS)}")
        merged.update(layer)
    if not _bool(merged["enabled"], what + ".limits.enabled"):
        return None
    status = _int(merged["status"], what + ".limits.status", 429, 503)
    if status not in LIMIT_STATUSES:
        raise WebserverError(f"{what}.limits.status must be 429 or 503, not {status}")
    return {
        "requests_per_second": _int(merged["requests_per_second"], what + ".limits.requests_per_second", 1, 100000),
        "burst": _int(merged["burst"], what + ".limits.burst", 0, 100000),
        "connections": _int(merged["connections"], what + ".limits.connections", 1, 100000),
        "status": status,
    }


def timeouts(base: t.Any, override: t.Any, what: str) -> dict[str, int]:
    merged = dict(DEFAULT_TIMEOUTS)
    for layer, label in ((base, what + " (role-wide request_timeouts)"), (override, what + ".request_timeouts")):
        if layer is None:
            continue
        if not isinstance(layer, dict) or set(layer) - set(DEFAULT_TIMEOUTS):
            raise WebserverError(f"{label} must be a dict with keys among {', '.join(DEFAULT_TIMEOUTS)}")
        merged.update(layer)
    return {
        "header": _int(merged["header"], what + ".request_timeouts.header", 1, 3600),
        "body": _int(merged["body"], what + ".request_timeouts.body", 1, 3600),
        "min_rate": _int(merged["min_rate"], what + ".request_timeouts.min_rate", 1, 10**9),
    }


def preload_apex(names: list[str]) -> t.Optional[str]:
    """The name every other name of the site falls under, if the site serves it itself."""
    plain = [n.lower().rstrip(".") for n in names if not n.startswith("*.")]
    for candidate in sorted(plain, key=len):
        if all(n.lower().rstrip(".") == candidate or n.lower().rstrip(".").endswith("." + candidate) for n in names):
            return candidate
    return None


def registrable_domain(name: str) -> t.Optional[str]:
    """The registrable domain of name by the Public Suffix List that community.dns maintains, when installed."""
    try:
        from ansible_collections.community.dns.plugins.plugin_utils.public_suffix import (
            PUBLIC_SUFFIX_LIST,
        )
    except ImportError:
        return None
    return PUBLIC_SUFFIX_LIST.get_registrable_domain(name) or None


def hsts(site: dict[str, t.Any], settings: dict[str, t.Any], what: str) -> str:
    max_age = _int(site.get("hsts_max_age", settings["hsts_max_age"]), what + ".hsts_max_age", 0, 10**9)
    subdomains = _bool(
        site.get("hsts_include_subdomains", settings["hsts_include_subdomains"]), what + ".hsts_include_subdomains"
    )
    preload = _bool(site.get("hsts_preload", settings["hsts_preload"]), what + ".hsts_preload")
    value = f"max-age={max_age}"
    if subdomains:
        value += "; includeSubDomains"
    if preload:
        problems = []
        if max_age < HSTS_PRELOAD_MIN_AGE:
            problems.append(f"hsts_max_age must be at least {HSTS_PRELOAD_MIN_AGE} (one year), it is {max_age}")
        if not subdomains:
            problems.append("hsts_include_subdomains must be true")
        apex = preload_apex(site["server_names"])
        registrable = registrable_domain(apex) if apex else None
        if apex is None or (registrable is not None and registrable != apex):
            problems.append(
                "the site must serve the registrable domain it asks to preload"
                + (f" ({registrable})" if registrable else "")
                + ", so that its port 80 redirects that name to HTTPS on the same host first: list the apex"
                " (the name all the others end with) in server_names"
            )
        if problems:
            raise WebserverError(
                f"{what} asks for HSTS preload but is not eligible (hstspreload.org rules): " + "; ".join(problems)
            )
        value += "; preload"
    return value


def check_settings(role: str, settings: dict[str, t.Any]) -> dict[str, t.Any]:
    """Role-wide settings, checked and normalised."""
    if role not in ROLES:
        raise WebserverError(f"unknown web server role {role!r}")
    p = role + "_"
    addresses = settings.get("listen_addresses")
    if not isinstance(addresses, (list, tuple)) or not addresses:
        raise WebserverError(f"{p}listen_addresses must be a non-empty list")
    for a in addresses:
        if not isinstance(a, str) or not RE_LISTEN.match(a):
            raise WebserverError(
                f'{p}listen_addresses: {a!r} is not "*", "[::]", an IPv4 address or a bracketed IPv6 address'
            )
    thumbprint = settings.get("acme_thumbprint") or ""
    if not isinstance(thumbprint, str) or not RE_THUMBPRINT.match(thumbprint):
        raise WebserverError(f"{p}acme_thumbprint must be empty or 43 base64url characters")
    enabled = settings.get("service_enabled")
    if enabled is not None and not _is_bool(enabled):
        raise WebserverError(f"{p}service_enabled must be true, false or null")
    out: dict[str, t.Any] = {
        "listen_addresses": list(addresses),
        "acme_challenge_dir": _path(settings.get("acme_challenge_dir"), p + "acme_challenge_dir").rstrip("/") or "/",
        "certificate_dir": _path(settings.get("certificate_dir"), p + "certificate_dir"),
        "acme_thumbprint": thumbprint,
        "redirect_code": _int(settings.get("redirect_code", 301), p + "redirect_code", 301, 308),
        "hsts_max_age": _int(settings.get("hsts_max_age", 63072000), p + "hsts_max_age", 0, 10**9),
        "hsts_include_subdomains": _bool(settings.get("hsts_include_subdomains", False), p + "hsts_include_subdomains"),
        "hsts_preload": _bool(settings.get("hsts_preload", False), p + "hsts_preload"),
        "security_headers": settings.get("security_headers") or {},
        "limits": settings.get("limits") or {},
        "request_timeouts": settings.get("request_timeouts") or {},
        "tls_alpn_route": _bool(settings.get("tls_alpn_route", False), p + "tls_alpn_route"),
    }
    if out["redirect_code"] not in (301, 308):
        raise WebserverError(f"{p}redirect_code must be 301 or 308")
    if out["tls_alpn_route"]:
        if role == "apache":
            raise WebserverError(
                "apache_tls_alpn_route: Apache httpd cannot hand a TLS connection to another program by its ALPN"
                " protocol, so tls-alpn-01 cannot share port 443 with it. Use challenge http-01 (port 80, served"
                " by this role) or dns-01 for certificates of hosts that run Apache; to use tls-alpn-01, port 443"
                " must be free while the certificate is issued, or run nginx with nginx_tls_alpn_route."
            )
        responder = _endpoint(settings.get("tls_alpn_responder"), p + "tls_alpn_responder")
        backend = _endpoint(settings.get("tls_alpn_backend"), p + "tls_alpn_backend")
        if responder == backend:
            raise WebserverError(f"{p}tls_alpn_responder and {p}tls_alpn_backend must differ")
        for end, label in ((responder, "responder"), (backend, "backend")):
            if end["port"] == 443 and (end["address"] in addresses or "*" in addresses):
                raise WebserverError(f"{p}tls_alpn_{label} must not be a port 443 address nginx listens on")
        out["tls_alpn_responder"] = responder
        out["tls_alpn_backend"] = backend
    # Checked once here so that a bad role-wide value is reported even without sites.
    security_headers(out["security_headers"], None, p + "security_headers")
    limits(out["limits"], None, p + "limits")
    out["timeouts"] = timeouts(out["request_timeouts"], None, p + "request_timeouts")
    return out


def site_plan(site: t.Any, settings: dict[str, t.Any], role: str) -> dict[str, t.Any]:
    """One present site, checked and with everything the templates need computed."""
    name = site.get("name")
    what = f"{role}_sites[{name!r}]"
    names = site.get("server_names")
    if not isinstance(names, (list, tuple)) or not names:
        raise WebserverError(f"{what}: server_names must be a non-empty list of DNS names")
    for n in names:
        if not isinstance(n, str) or not RE_SERVER_NAME.match(n) or len(n) > 253:
            raise WebserverError(
                f"{what}: server name {n!r} is invalid: use a DNS name of letters, digits and - (optionally"
                ' starting with "*."), labels of at most 63 characters, no spaces, quotes, ; { } or newlines'
            )
    if ("root" in site) == ("upstream" in site):
        raise WebserverError(f"{what}: give exactly one of root (a document root) or upstream (a URL to proxy to)")
    plan: dict[str, t.Any] = {"name": name, "server_names": list(names)}
    plain = [n for n in names if not n.startswith("*.")]
    plan["server_name"] = plain[0] if plain else name + ".invalid"
    if "root" in site:
        plan["root"] = _path(site["root"], what + ".root")
    else:
        upstream = site["upstream"]
        if not isinstance(upstream, str) or not RE_UPSTREAM.match(upstream):
            raise WebserverError(f"{what}.upstream must be an http:// or https:// URL without spaces or quotes")
        plan["upstream"] = upstream
    code = _int(site.get("redirect_code", settings["redirect_code"]), what + ".redirect_code", 301, 308)
    if code not in (301, 308):
        raise WebserverError(f"{what}.redirect_code must be 301 or 308")
    plan["redirect_code"] = code
    cert_dir = settings["certificate_dir"].rstrip("/") + "/" + name
    plan["certificate"] = _path(site.get("certificate", cert_dir + "/fullchain.pem"), what + ".certificate")
    plan["certificate_key"] = _path(site.get("certificate_key", cert_dir + "/privkey.pem"), what + ".certificate_key")
    plan["hsts"] = hsts(site, settings, what)
    plan["headers"] = security_headers(settings["security_headers"], site.get("security_headers"), what)
    plan["limits"] = limits(settings["limits"], site.get("limits"), what)
    plan["timeouts"] = timeouts(settings["request_timeouts"], site.get("request_timeouts"), what)
    plan["directives"] = _string_list(site.get("directives") or [], what + ".directives")
    locations = []
    for i, loc in enumerate(site.get("locations") or []):
        if not isinstance(loc, dict):
            raise WebserverError(f"{what}.locations[{i}] must be a dict with path and directives")
        locations.append(
            {
                "path": _path(loc.get("path"), f"{what}.locations[{i}].path"),
                "directives": _string_list(loc.get("directives") or [], f"{what}.locations[{i}].directives"),
            }
        )
    plan["locations"] = locations
    return plan


def plan(sites: t.Any, role: str, settings: dict[str, t.Any]) -> dict[str, t.Any]:
    """Check every input of a web server role and compute what its templates render.

    Returns ``settings`` (normalised), ``present`` (one plan per site to write) and ``absent``
    (names of sites to remove).
    """
    checked = check_settings(role, settings)
    if not isinstance(sites, (list, tuple)):
        raise WebserverError(f"{role}_sites must be a list of sites")
    present: list[dict[str, t.Any]] = []
    absent: list[str] = []
    seen: set[str] = set()
    for i, site in enumerate(sites):
        if not isinstance(site, dict):
            raise WebserverError(f"{role}_sites[{i}] must be a dict")
        name = site.get("name")
        if not isinstance(name, str) or not RE_SITE_NAME.match(name):
            raise WebserverError(
                f"{role}_sites[{i}]: name {name!r} is invalid: it needs 1-64 letters, digits, . _ -"
                " (first a letter or digit)"
            )
        if name in seen:
            raise WebserverError(f"{role}_sites: the site name {name!r} is used twice")
        seen.add(name)
        state = site.get("state", "present")
        if state == "absent":
            absent.append(name)
        elif state == "present":
            present.append(site_plan(site, checked, role))
        else:
            raise WebserverError(f"{role}_sites[{name!r}].state must be present or absent")
    return {"settings": checked, "present": present, "absent": absent}


_OPENSSL = re.compile(r"OpenSSL ([0-9]+)\.([0-9]+)\.([0-9]+)")


def openssl_version(text: t.Any) -> t.Optional[tuple[int, int, int]]:
    """The OpenSSL version a server runs with, from ``openssl version`` or ``nginx -V`` output.

    nginx prints "built with OpenSSL X (running with OpenSSL Y)" when the library it loads differs from
    the one it was built with; Y is what matters. LibreSSL, BoringSSL or no output give None.
    """
    if not isinstance(text, str):
        return None
    running = re.search(r"running with " + _OPENSSL.pattern, text)
    found = running or _OPENSSL.search(text)
    if not found:
        return None
    return (int(found.group(1)), int(found.group(2)), int(found.group(3)))


def tls_profile(text: t.Any) -> dict[str, t.Any]:
    """Mozilla intermediate (guidelines 6.0) for the TLS library named in ``text``."""
    version = openssl_version(text)
    pq = version is not None and version >= TLS_PQ_MIN_OPENSSL
    groups = ([TLS_PQ_GROUP] if pq else []) + list(TLS_GROUPS)
    return {
        "openssl": ".".join(map(str, version)) if version else None,
        "post_quantum": pq,
        "protocols": ["TLSv1.2", "TLSv1.3"],
        "ciphers": TLS_CIPHERS,
        "groups": groups,
    }


def cert_paths(present: list[dict[str, t.Any]]) -> list[str]:
    """Every site's certificate and key path, in order (what the host probe checks)."""
    return [p for site in present for p in (site["certificate"], site["certificate_key"])]


_NGINX_VERSION = re.compile(r"nginx/([0-9]+)\.([0-9]+)\.([0-9]+)")


def host_facts(exists: list[bool], version_text: str, present: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Which sites have both certificate and key, the TLS profile and, for nginx, the HTTP/2 syntax."""
    if len(exists) != 2 * len(present):
        raise WebserverError(f"the host's probe answered for {len(exists)} paths, expected {2 * len(present)}")
    tls_sites = [site["name"] for i, site in enumerate(present) if exists[2 * i] and exists[2 * i + 1]]
    found = _NGINX_VERSION.search(version_text)
    nginx = tuple(int(x) for x in found.groups()) if found else None
    return {
        "tls_sites": tls_sites,
        "tls": tls_profile(version_text),
        "nginx_version": ".".join(map(str, nginx)) if nginx else None,
        # "listen ... http2" became "http2 on;" in nginx 1.25.1
        "http2_directive": nginx is not None and nginx >= (1, 25, 1),
    }


def site_files(plan_: dict[str, t.Any], sites_dir: str, enabled_dir: str, prefix: str) -> dict[str, t.Any]:
    """Where a plan's sites go: ``sites`` (path, site) to render, ``links`` (link, target) to make in the
    directory of enabled sites (when the layout has one) and ``absent`` (files and links of removed sites)."""
    sites_dir = sites_dir.rstrip("/")
    enabled_dir = enabled_dir.rstrip("/")
    sites = [(f"{sites_dir}/{prefix}{s['name']}.conf", s) for s in plan_.get("present") or []]
    links = [(f"{enabled_dir}/{prefix}{s['name']}.conf", path) for path, s in sites] if enabled_dir else []
    absent = [f"{d}/{prefix}{name}.conf" for name in plan_.get("absent") or [] for d in (sites_dir, enabled_dir) if d]
    return {"sites": sites, "links": links, "absent": absent}


_FAMILIES = {
    "RedHat": ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn"),
    "Debian": ("debian", "ubuntu"),
}


def os_family(os_release: t.Any) -> str:
    """Ansible's os_family (Debian, RedHat) from the text of /etc/os-release (ID, then ID_LIKE); "" when
    neither. Only the families the roles have a layout for: the roles fall back to Debian's otherwise."""
    ids: list[str] = []
    for key in ("ID", "ID_LIKE"):
        for line in str(os_release or "").splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and name == key:
                ids += value.strip().strip("\"'").lower().split()
    for word in ids:
        for family, members in _FAMILIES.items():
            if word in members:
                return family
    return ""
