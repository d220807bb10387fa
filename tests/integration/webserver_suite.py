"""Behaviour tests shared by the nginx and Apache roles, run against the real servers of this machine.

test_nginx_role.py and test_apache_role.py import these tests and provide the `server` fixture
(which role, which address, how to stop the server). Each test module gets a fresh `env`: the
server's configuration tree is saved first and restored at the end, and the server is stopped.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .harness import PlaybookResult, run_playbook
from .webserver_support import (
    ConfigSnapshot,
    ThrowawayCA,
    curl,
    deploy_cert,
    public_tmpdir,
    run,
    served_cert_der,
    tls_handshake,
    tree_digest,
    wait_listening,
)

TOKEN = "tok_en-123"
THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@dataclass
class Server:
    role: str  # nginx or apache
    address: str  # 127.0.20.N
    name: str  # webN.portail.test, redirect 301, HSTS defaults
    name_308: str  # second site on the same address: redirect 308, HSTS with includeSubDomains + preload
    conf_root: Path
    stop: list[list[str]]
    own_header: str  # a directive adding a header inside a location
    error_500: str  # a location directive that answers 500
    server_header: str  # the Server header with ServerTokens Prod / server_tokens off
    bad_directive: str
    bad_message: str

    @property
    def prefix(self) -> str:
        return self.role + "_"


@dataclass
class Env:
    server: Server
    base: Path
    ca: ThrowawayCA
    leaf_der: dict[str, bytes] = field(default_factory=dict)

    @property
    def certs(self) -> Path:
        return self.base / "certs"

    @property
    def challenge(self) -> Path:
        return self.base / "challenge"

    def sites(self) -> list[dict[str, Any]]:
        s = self.server
        return [
            {
                "name": "main",
                "server_names": [s.name],
                "root": str(self.base / "www-main"),
                "locations": [
                    {"path": "/own", "directives": [s.own_header]},
                    {"path": "/boom", "directives": [s.error_500]},
                ],
            },
            {
                "name": "second",
                "server_names": [s.name_308, "www." + s.name_308],
                "root": str(self.base / "www-second"),
                "redirect_code": 308,
                "hsts_include_subdomains": True,
                "security_headers": {"X-Frame-Options": "DENY", "Referrer-Policy": None, "X-Site": "second"},
            },
        ]

    def role_vars(self, sites: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
        p = self.server.prefix
        v: dict[str, Any] = {
            p + "listen_addresses": [self.server.address],
            p + "service_enabled": None,
            p + "certificate_dir": str(self.certs),
            p + "acme_challenge_dir": str(self.challenge),
            p + "sites": self.sites() if sites is None else sites,
        }
        v.update({p + k: val for k, val in extra.items()})
        return v


def run_input(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input="", capture_output=True, text=True, timeout=20, check=False)


def openssl_has_mlkem() -> bool:
    """Whether this machine's OpenSSL (the one the servers load) is 3.5 or newer, asked independently."""
    out = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(x) for x in out.split()[1].split(".")[:2])
    return (major, minor) >= (3, 5)


def playbook(role: str) -> str:
    return f"""
- hosts: localhost
  gather_facts: false
  roles:
    - role: portail.https.{role}
"""


def apply(env: Env, tmp: Path, *, check: bool = False, **role_vars: Any) -> PlaybookResult:
    return run_playbook(playbook(env.server.role), tmp, extra_vars=env.role_vars(**role_vars), check=check, diff=check)


def ensure_certs(env: Env) -> None:
    s = env.server
    if "main" not in env.leaf_der:
        env.leaf_der["main"] = deploy_cert(env.ca, env.certs, "main", [s.name])
        env.leaf_der["second"] = deploy_cert(env.ca, env.certs, "second", [s.name_308, "www." + s.name_308])


def changed_tasks(res: PlaybookResult) -> list[str]:
    """Names of the tasks that reported a change, for assertion messages."""
    return [
        task["task"]["name"]
        for play in res.data.get("plays", [])
        for task in play.get("tasks", [])
        if any(h.get("changed") for h in task["hosts"].values())
    ]


def converge(env: Env, tmp: Path) -> None:
    ensure_certs(env)
    res = apply(env, tmp)
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert wait_listening(env.server.address, 443)


@pytest.fixture(scope="module")
def env(server: Server) -> Iterator[Env]:
    snapshot = ConfigSnapshot(server.conf_root)
    for cmd in server.stop:
        run(cmd)
    base = public_tmpdir(f"portail-{server.role}-test-")
    (base / "challenge").mkdir(mode=0o755)
    for d in ("www-main", "www-second"):
        (base / d).mkdir(mode=0o755)
        (base / d / "index.html").write_text(f"{d}\n")
    ca = ThrowawayCA.create(base)
    try:
        yield Env(server, base, ca)
    finally:
        for cmd in server.stop:
            run(cmd)
        snapshot.restore()
        shutil.rmtree(base, ignore_errors=True)


def test_bootstrap_from_empty_server_in_one_play(env: Env, tmp_path: Path) -> None:
    """No certificate: port 80 only. The certificate lands: the same play adds port 443."""
    s = env.server
    (env.challenge / TOKEN).write_text("boot-proof\n")
    staging = tmp_path / "incoming"
    env.leaf_der["main"] = deploy_cert(env.ca, staging, "main", [s.name])
    env.leaf_der["second"] = deploy_cert(env.ca, staging, "second", [s.name_308, "www." + s.name_308])
    pb = f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: First pass, before any certificate
      ansible.builtin.include_role:
        name: portail.https.{s.role}
    - name: Apply the handlers
      ansible.builtin.meta: flush_handlers
    - name: Port 80 answers the challenge
      ansible.builtin.uri:
        url: http://{s.address}/.well-known/acme-challenge/{TOKEN}
        headers: {{Host: {s.name}}}
        return_content: true
      register: challenge
    - name: Nothing listens on 443 yet
      ansible.builtin.uri:
        url: https://{s.address}/
        validate_certs: false
        timeout: 5
      register: no_https
      failed_when: false
    - name: The certificates land
      ansible.builtin.copy:
        src: {staging}/
        dest: {env.certs}/
        mode: preserve
    - name: Second pass, with the certificates
      ansible.builtin.include_role:
        name: portail.https.{s.role}
    - name: Apply the handlers again
      ansible.builtin.meta: flush_handlers
    - name: Port 443 answers
      ansible.builtin.uri:
        url: https://{s.address}/
        headers: {{Host: {s.name}}}
        validate_certs: false
        return_content: true
      register: https
"""
    first = run_playbook(pb, tmp_path, extra_vars=env.role_vars())
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert first.result("Port 80 answers the challenge")["content"] == "boot-proof\n"
    assert first.result("Nothing listens on 443 yet")["status"] == -1
    assert "refused" in first.result("Nothing listens on 443 yet")["msg"].lower()
    assert first.result("Port 443 answers")["content"] == "www-main\n"
    assert "max-age=63072000" in first.result("Port 443 answers")["strict_transport_security"]
    again = run_playbook(pb, tmp_path, extra_vars=env.role_vars())
    assert again.rc == 0, again.stdout[-4000:]
    assert again.changed() == 0, json.dumps(again.data.get("plays", []))[-4000:]


def test_second_run_changes_nothing(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    res = apply(env, tmp_path)
    assert res.rc == 0
    assert res.changed() == 0


@pytest.mark.parametrize(("which", "code"), [("name", 301), ("name_308", 308)])
def test_port_80_redirects_same_host_and_uri(env: Env, tmp_path: Path, which: str, code: int) -> None:
    converge(env, tmp_path)
    host = getattr(env.server, which)
    for uri in ("/x?y", "/a%20b/c?d=1&e", "/"):
        r = curl(f"http://{host}{uri}", env.server.address)
        assert r.status == code, (uri, r)
        assert r.headers["location"] == f"https://{host}{uri}"
        assert "strict-transport-security" not in r.headers


def test_challenge_file_on_port_80(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    (env.challenge / TOKEN).write_text("proof-of-control\n")
    for host in (env.server.name, env.server.name_308):
        r = curl(f"http://{host}/.well-known/acme-challenge/{TOKEN}", env.server.address)
        assert r.status == 200
        assert r.body == "proof-of-control\n"
        assert r.headers["content-type"].startswith("text/plain")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in r.headers
    listing = curl(f"http://{env.server.name}/.well-known/acme-challenge/", env.server.address)
    assert listing.status in (403, 404)
    assert TOKEN not in listing.body
    missing = curl(f"http://{env.server.name}/.well-known/acme-challenge/nope", env.server.address)
    assert missing.status == 404


def test_hsts_on_443_everywhere(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    s = env.server
    page = curl(f"https://{s.name}/", s.address, cafile=env.ca.pem_path)
    assert page.status == 200
    assert page.headers["strict-transport-security"] == "max-age=63072000"
    missing = curl(f"https://{s.name}/no/such/page", s.address, cafile=env.ca.pem_path)
    assert missing.status == 404
    assert missing.headers["strict-transport-security"] == "max-age=63072000"
    own = curl(f"https://{s.name}/own", s.address, cafile=env.ca.pem_path)
    assert own.headers["x-own"] == "yes"
    assert own.headers["strict-transport-security"] == "max-age=63072000"
    second = curl(f"https://{s.name_308}/", s.address, cafile=env.ca.pem_path)
    assert second.body == "www-second\n"
    assert second.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


def test_http2(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    r = curl(f"https://{env.server.name}/", env.server.address, cafile=env.ca.pem_path, http2=True)
    assert r.http_version == "2"
    assert "strict-transport-security" in r.headers


def test_tls_versions(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    for version, expected in (("tls1", False), ("tls1_1", False), ("tls1_2", True), ("tls1_3", True)):
        accepted, out = tls_handshake(env.server.address, env.server.name, version)
        assert accepted == expected, (version, out[-1500:])
        if not expected:
            # the client did offer the version: the refusal came from the server
            assert "no protocols available" not in out, out[-1500:]


def test_served_certificate_is_the_deployed_one(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    assert served_cert_der(env.server.address, env.server.name, env.ca.pem_path) == env.leaf_der["main"]
    assert served_cert_der(env.server.address, env.server.name_308, env.ca.pem_path) == env.leaf_der["second"]


def test_stateless_http01_responder(env: Env, tmp_path: Path) -> None:
    res = apply(env, tmp_path, acme_thumbprint=THUMBPRINT)
    assert res.rc == 0, res.stdout[-3000:]
    assert apply(env, tmp_path, acme_thumbprint=THUMBPRINT).changed() == 0
    r = curl(f"http://{env.server.name}/.well-known/acme-challenge/Any_Token-42", env.server.address)
    assert r.status == 200
    assert r.body == f"Any_Token-42.{THUMBPRINT}"
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-content-type-options"] == "nosniff"
    bad = curl(f"http://{env.server.name}/.well-known/acme-challenge/not.a.token", env.server.address)
    assert bad.status == 404
    converge(env, tmp_path)


def test_check_mode_changes_nothing(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    before = tree_digest(env.server.conf_root)
    sites = env.sites()
    sites[0]["redirect_code"] = 308
    sites.append({"name": "third", "server_names": ["third-" + env.server.name], "upstream": "http://127.0.0.1:9"})
    res = apply(env, tmp_path, check=True, sites=sites)
    assert res.rc == 0, res.stdout[-3000:]
    assert res.changed() > 0
    assert tree_digest(env.server.conf_root) == before
    r = curl(f"http://{env.server.name}/x?y", env.server.address)
    assert r.status == 301


def test_invalid_directive_leaves_running_server_untouched(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    before = tree_digest(env.server.conf_root)
    sites = env.sites()
    sites[0]["directives"] = [env.server.bad_directive]
    sites[1]["redirect_code"] = 301  # a valid change in the same run is rolled back too
    res = apply(env, tmp_path, sites=sites)
    assert res.rc != 0
    assert env.server.bad_message in res.stdout
    assert "previous files are back in place" in res.stdout
    assert tree_digest(env.server.conf_root) == before
    assert curl(f"http://{env.server.name_308}/x?y", env.server.address).status == 308
    assert curl(f"https://{env.server.name}/", env.server.address, cafile=env.ca.pem_path).status == 200
    assert apply(env, tmp_path).changed() == 0


BAD_NAMES = [
    "a b.portail.test",
    "a;b.portail.test",
    "evil.portail.test;return",
    "a{.portail.test",
    "a}.portail.test",
    'a"b.portail.test',
    "a'b.portail.test",
    "a\nb.portail.test",
    "web.portail.test\n",
    "-bad.portail.test",
    "bad-.portail.test",
    "bad..portail.test",
    "under_score.portail.test",
    "x" * 64 + ".portail.test",
    "",
]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=range(len(BAD_NAMES)))
def test_injection_in_server_names_is_rejected(env: Env, tmp_path: Path, bad: str) -> None:
    before = tree_digest(env.server.conf_root)
    sites = env.sites()
    sites[0]["server_names"] = [env.server.name, bad]
    res = apply(env, tmp_path, sites=sites)
    assert res.rc != 0
    assert "is invalid" in res.stdout
    assert res.changed() == 0
    assert tree_digest(env.server.conf_root) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("root", "/srv/x; root /etc"),
        ("root", "relative/path"),
        ("upstream", "http://127.0.0.1:8080; return 200"),
        ("certificate", "/etc/ssl/x.pem\n"),
        ("name", "../../etc/passwd"),
    ],
)
def test_injection_in_other_fields_is_rejected(env: Env, tmp_path: Path, field: str, value: str) -> None:
    before = tree_digest(env.server.conf_root)
    sites = env.sites()
    sites[0][field] = value
    if field == "upstream":
        del sites[0]["root"]
    res = apply(env, tmp_path, sites=sites)
    assert res.rc != 0
    assert res.changed() == 0
    assert tree_digest(env.server.conf_root) == before


def test_site_removal(env: Env, tmp_path: Path) -> None:
    converge(env, tmp_path)
    sites = env.sites()
    sites[1] = {"name": "second", "state": "absent"}
    res = apply(env, tmp_path, sites=sites)
    assert res.rc == 0, res.stdout[-3000:]
    assert res.changed() > 0
    assert apply(env, tmp_path, sites=sites).changed() == 0
    assert not any("second" in p for p in tree_digest(env.server.conf_root))
    converge(env, tmp_path)
    assert curl(f"http://{env.server.name_308}/x", env.server.address).status == 308


HARDENED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "content-security-policy": "frame-ancestors 'self'",
    "referrer-policy": "strict-origin-when-cross-origin",
}


def test_hardened_headers_on_every_response(env: Env, tmp_path: Path) -> None:
    """Each kind of port 443 response carries HSTS and the hardened headers, the server hides its version."""
    converge(env, tmp_path)
    s = env.server
    ca = env.ca.pem_path
    cases = {
        "/": 200,  # the site's own location (document root)
        "/no/such/page": 404,  # error page
        "/own": None,  # a location that adds its own header
        "/boom": 500,  # error page from a location
    }
    for uri, status in cases.items():
        r = curl(f"https://{s.name}{uri}", s.address, cafile=ca)
        if status is not None:
            assert r.status == status, (uri, r)
        for name, value in HARDENED.items():
            assert r.headers.get(name) == value, (uri, name, r.headers)
        assert r.headers["strict-transport-security"] == "max-age=63072000", uri
        assert r.headers["server"] == s.server_header, (uri, r.headers)
        assert not any(ch.isdigit() for ch in r.headers["server"])
        if status and status >= 400:
            assert "/" + s.role not in r.body.lower() and "debian" not in r.body.lower(), r.body
    own = curl(f"https://{s.name}/own", s.address, cafile=ca)
    assert own.headers["x-own"] == "yes"
    # a site's own values win, null removes a header, new ones are added
    second = curl(f"https://{s.name_308}/nothing-here", s.address, cafile=ca)
    assert second.status == 404
    assert second.headers["x-frame-options"] == "DENY"
    assert "referrer-policy" not in second.headers
    assert second.headers["x-site"] == "second"
    assert second.headers["content-security-policy"] == "frame-ancestors 'self'"


BAD_HEADERS = [
    {"X-Evil": 'a" always; return 200 "x'},
    {"X-Evil": "$host"},
    {"X-Evil": "%{HTTP_COOKIE}e"},
    {"X-Evil": "a\nb"},
    {"X Evil": "a"},
    {"Strict-Transport-Security": "max-age=1"},
]


@pytest.mark.parametrize("bad", BAD_HEADERS, ids=range(len(BAD_HEADERS)))
def test_bad_security_headers_are_rejected(env: Env, tmp_path: Path, bad: dict[str, str]) -> None:
    before = tree_digest(env.server.conf_root)
    sites = env.sites()
    sites[0]["security_headers"] = bad
    res = apply(env, tmp_path, sites=sites)
    assert res.rc != 0
    assert "security_headers" in res.stdout and "Nothing was changed" in res.stdout
    assert res.changed() == 0
    assert tree_digest(env.server.conf_root) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hsts_max_age": 86400}, "at least 31536000"),
        ({"hsts_include_subdomains": False}, "hsts_include_subdomains must be true"),
        ({"server_names": ["www.preload.portail.test", "shop.preload.portail.test"]}, "list the apex"),
        ({"server_names": ["www.portail.test"]}, "(portail.test)"),
    ],
)
def test_hsts_preload_only_when_eligible(env: Env, tmp_path: Path, change: dict[str, Any], message: str) -> None:
    before = tree_digest(env.server.conf_root)
    sites = env.sites()
    sites[1].update({"hsts_preload": True, **change})
    res = apply(env, tmp_path, sites=sites)
    assert res.rc != 0
    assert "not eligible" in res.stdout and message in res.stdout, res.stdout[-2000:]
    assert res.changed() == 0
    assert tree_digest(env.server.conf_root) == before


SLOW_CLIENTS = 40


def test_slow_clients_are_cut_off_while_others_are_served(env: Env, tmp_path: Path) -> None:
    """Many connections that never finish their request header: a normal client keeps getting answers,
    and the server closes the slow ones once the header timeout has passed (without it nginx waits 60 s
    and Apache without mod_reqtimeout forever)."""
    ensure_certs(env)
    res = apply(env, tmp_path, request_timeouts={"header": 2, "body": 2})
    assert res.rc == 0, res.stdout[-3000:]
    s = env.server
    assert wait_listening(s.address, 443)
    slow: list[socket.socket] = []
    try:
        for _client in range(SLOW_CLIENTS):
            sock = socket.create_connection((s.address, 80), timeout=5)
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {s.name}\r\nX-Slow: ".encode())
            slow.append(sock)
        for _round in range(5):
            assert curl(f"https://{s.name}/", s.address, cafile=env.ca.pem_path).status == 200
            assert curl(f"http://{s.name}/x", s.address).status == 301
        closed = 0
        for sock in slow:
            sock.settimeout(45)  # well above the 2 s (Apache: at most 4 s) the server grants
            try:
                while sock.recv(4096):
                    pass  # Apache answers 408 before closing
                closed += 1
            except (TimeoutError, socket.timeout):
                pass
            except ConnectionResetError:
                closed += 1
        assert closed == SLOW_CLIENTS
    finally:
        for sock in slow:
            sock.close()
    converge(env, tmp_path)


def test_tls_profile_mozilla_intermediate(env: Env, tmp_path: Path) -> None:
    """Mozilla 6.0 intermediate as the server negotiates it: ECDHE + AEAD on TLS 1.2, the listed groups
    only, the post-quantum group first only where this machine's OpenSSL has it, no OCSP stapling."""
    converge(env, tmp_path)
    s = env.server

    def s_client(*opts: str) -> tuple[bool, str]:
        cmd = ["openssl", "s_client", "-connect", f"{s.address}:443", "-servername", s.name, *opts]
        proc = run_input(cmd)
        out = proc.stdout + proc.stderr
        return proc.returncode == 0 and "Cipher is (NONE)" not in out and "New, " in out, out

    for cipher, expected in (
        ("ECDHE-ECDSA-AES128-GCM-SHA256", True),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
        ("ECDHE-ECDSA-AES128-SHA256", False),  # CBC: not in the profile
        ("ECDHE-ECDSA-AES256-SHA", False),
    ):
        ok, out = s_client("-tls1_2", "-cipher", cipher)
        assert ok == expected, (cipher, out[-800:])
    for group, expected in (("X25519", True), ("P-256", True), ("P-384", True), ("P-521", False), ("ffdhe2048", False)):
        ok, out = s_client("-tls1_3", "-groups", group)
        assert ok == expected, (group, out[-800:])
    ok, out = s_client("-tls1_3", "-status")
    assert ok and "OCSP response: no response sent" in out
    conf = "\n".join(p.read_text() for p in env.server.conf_root.rglob("portail-*.conf") if p.is_file())
    assert ("X25519MLKEM768" in conf) == openssl_has_mlkem(), conf[-1500:]
