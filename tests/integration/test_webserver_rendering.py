"""Render the nginx and Apache role templates with each OS family's variables and check the result.

RHEL/Fedora layouts cannot run here (this machine is Debian), so their variables are loaded from the
roles' vars files, the templates are rendered by a real ansible-playbook run into a temp directory, and
the rendered files are checked as text and, where this machine's binaries can, with `nginx -t` and
`apache2 -t` against a minimal main configuration that includes them. Nothing under /etc is touched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .harness import REPO, run_playbook
from .webserver_support import ThrowawayCA, deploy_cert

pytestmark = pytest.mark.slow  # several seconds a test: nginx -t / apachectl configtest on rendered trees

CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
OPENSSL_30 = "OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)"
OPENSSL_35 = "nginx version: nginx/1.28.0\nbuilt with OpenSSL 3.5.1 1 Jul 2025\nTLS SNI support enabled"
HARDENED = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Content-Security-Policy", "frame-ancestors 'self'"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
]

RENDER = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Load the role's defaults, internal variables and family layout
      ansible.builtin.include_vars:
        file: "{{ item }}"
      loop: "{{ [role_dir ~ '/defaults/main.yml', role_dir ~ '/vars/main.yml']
        + ([] if role == 'nginx' else [role_dir ~ '/vars/' ~ family ~ '.yml']) }}"

    - name: Plan like the role does, with the given OpenSSL, and pretend the listed sites have certificates
      ansible.builtin.set_fact:
        "{{ '__' ~ role ~ '_plan' }}": "{{ lookup('ansible.builtin.vars', role ~ '_sites')
          | portail.https.webserver_plan(role, lookup('ansible.builtin.vars', '__' ~ role ~ '_settings')) }}"
        "{{ '__' ~ role ~ '_tls' }}": "{{ openssl_text | portail.https.webserver_tls }}"
        "{{ '__' ~ role ~ '_tls_sites' }}": "{{ tls_sites }}"
        __nginx_http2_directive: "{{ new_http2 | default(false) }}"

    - name: The nginx layout of the family (webserver_apply picks it on a host)
      ansible.builtin.set_fact:
        __nginx_layout: "{{ __nginx_layouts[family] }}"
      when: role == 'nginx'

    - name: Layout
      ansible.builtin.debug:
        msg: "{{ query('ansible.builtin.vars', *layout_vars) }}"

    - name: Render site files
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/site.conf.j2"
        dest: "{{ out }}/portail-{{ item.name }}.conf"
        mode: "0644"
      loop: "{{ lookup('ansible.builtin.vars', '__' ~ role ~ '_plan').present }}"

    - name: Render the ALPN router
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/stream.conf.j2"
        dest: "{{ out }}/stream.conf"
        mode: "0644"
      when: role == 'nginx' and __nginx_plan.settings.tls_alpn_route

    - name: Render the Listen file
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/ports.conf.j2"
        dest: "{{ out }}/ports.conf"
        mode: "0644"
      when: role == 'apache'
"""

LAYOUT_VARS = {
    "nginx": ["__nginx_service", "__nginx_binary", "__nginx_layout"],
    "apache": [
        "__apache_service",
        "__apache_ctl",
        "__apache_sites_dir",
        "__apache_sites_enabled_dir",
        "__apache_ports_file",
        "__apache_foreign_listen_files",
        "__apache_modules",
        "__apache_packages",
    ],
}


def sites(role: str, base: Path) -> list[dict[str, Any]]:
    own = "add_header X-Own yes always;" if role == "nginx" else "Header always set X-Own yes"
    return [
        {
            "name": "static",
            "server_names": ["web5.portail.test", "*.web5.portail.test"],
            "root": str(base / "www"),
            "certificate": str(base / "certs/static/fullchain.pem"),
            "certificate_key": str(base / "certs/static/privkey.pem"),
            "locations": [{"path": "/own", "directives": [own]}, {"path": "/two", "directives": []}],
        },
        {
            "name": "proxy",
            "server_names": ["portail.test", "www.portail.test"],
            "upstream": "http://127.0.0.1:8080",
            "redirect_code": 308,
            "hsts_include_subdomains": True,
            "hsts_preload": True,
            "certificate": str(base / "certs/proxy/fullchain.pem"),
            "certificate_key": str(base / "certs/proxy/privkey.pem"),
        },
        {"name": "nocert", "server_names": ["web7.portail.test"], "root": str(base / "www")},
    ]


def render(role: str, family: str, tmp: Path, **extra: Any) -> tuple[dict[str, Any], dict[str, str]]:
    out = tmp / f"{role}-{family}"
    out.mkdir()
    ev: dict[str, Any] = {
        "role": role,
        "family": family,
        "role_dir": str(REPO / "roles" / role),
        "out": str(out),
        "layout_vars": LAYOUT_VARS[role],
        "tls_sites": ["static", "proxy"],
        f"{role}_sites": sites(role, tmp),
        f"{role}_listen_addresses": ["127.0.20.9"],
        "openssl_text": OPENSSL_30,
    }
    ev.update(extra)
    res = run_playbook(RENDER, tmp, extra_vars=ev)
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-2000:]
    layout = dict(zip(LAYOUT_VARS[role], res.result("Layout")["msg"], strict=True))
    files = {p.name: p.read_text() for p in out.iterdir()}
    return layout, files


def blocks(text: str, opener: str) -> list[str]:
    """Top-level blocks starting with opener (`server {` or `<VirtualHost`)."""
    parts = re.split(rf"(?m)^(?={re.escape(opener)})", text)
    return [p for p in parts if p.startswith(opener)]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("render-certs")
    ca = ThrowawayCA.create(base)
    deploy_cert(ca, base / "certs", "static", ["web5.portail.test"])
    deploy_cert(ca, base / "certs", "proxy", ["portail.test", "www.portail.test"])
    return base


@pytest.mark.parametrize("family", ["Debian", "RedHat"])
def test_nginx_layout_and_profile(family: str, tmp_path: Path) -> None:
    layout, files = render("nginx", family, tmp_path)
    own = layout["__nginx_layout"]
    if family == "RedHat":
        assert own["sites_dir"] == "/etc/nginx/conf.d"
        assert own["sites_enabled_dir"] == ""
        assert own["absent"] == ["/usr/share/nginx/modules/zz-portail-stream.conf"]
        assert own["packages"] == ["nginx"]
    else:
        assert own["sites_dir"] == "/etc/nginx/sites-available"
        assert own["sites_enabled_dir"] == "/etc/nginx/sites-enabled"
        stream = "/etc/nginx/modules-enabled/90-portail-stream.conf"
        assert own["absent"] == [stream, "/etc/nginx/sites-enabled/default"]
    assert layout["__nginx_service"] == "nginx"
    assert layout["__nginx_binary"] == "/usr/sbin/nginx"

    static = files["portail-static.conf"]
    http, https = blocks(static, "server {")
    assert "listen 127.0.20.9:80;" in http
    assert "return 301 https://$host$request_uri;" in http
    assert "Strict-Transport-Security" not in http
    assert "alias /var/www/portail/acme-challenge/;" in http
    assert "default_type text/plain;" in http and "autoindex off;" in http
    assert "add_header X-Content-Type-Options nosniff always;" in http
    assert "listen 127.0.20.9:443 ssl http2;" in https
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in https
    assert f"ssl_ciphers {CIPHERS};" in https
    assert "ssl_ecdh_curve X25519:prime256v1:secp384r1;" in https
    assert "ssl_session_tickets off;" in https
    assert "ssl_prefer_server_ciphers off;" in https
    # server level + location / + two extra locations: add_header is never inherited into a block with its own
    assert https.count('add_header Strict-Transport-Security "max-age=63072000" always;') == 4
    for name, value in HARDENED:
        assert https.count(f'add_header {name} "{value}" always;') == 4, name
    assert "stapling" not in static
    # DoS limits: zones in http context, applied on both servers, header/body timeouts
    assert "limit_req_zone $binary_remote_addr zone=portail_req_static:10m rate=20r/s;" in static
    assert "limit_conn_zone $binary_remote_addr zone=portail_conn_static:10m;" in static
    for block in (http, https):
        assert "server_tokens off;" in block
        assert "limit_req zone=portail_req_static burst=40 nodelay;" in block
        assert "limit_req_status 429;" in block
        assert "limit_conn portail_conn_static 64;" in block
        assert "client_header_timeout 10s;" in block and "client_body_timeout 20s;" in block
    assert "server_name web5.portail.test *.web5.portail.test;" in https

    proxy = files["portail-proxy.conf"]
    assert "return 308 https://$host$request_uri;" in proxy
    assert "stream.conf" not in files
    assert "max-age=63072000; includeSubDomains; preload" in proxy
    assert "proxy_pass http://127.0.0.1:8080;" in proxy

    nocert = files["portail-nocert.conf"]
    assert len(blocks(nocert, "server {")) == 1
    assert ":443" not in nocert


@pytest.mark.parametrize("role", ["nginx", "apache"])
def test_post_quantum_group_first_only_with_openssl_35(role: str, tmp_path: Path) -> None:
    files = render(role, "Debian", tmp_path, openssl_text=OPENSSL_35)[1]
    static = files["portail-static.conf"]
    groups = "X25519MLKEM768:X25519:prime256v1:secp384r1"
    assert (f"ssl_ecdh_curve {groups};" if role == "nginx" else f"SSLOpenSSLConfCmd Groups {groups}") in static
    assert "OpenSSL 3.5.1" in static  # the comment says why
    assert "stapling" not in static.lower()


def test_nginx_overrides_and_limits_off(tmp_path: Path) -> None:
    s = sites("nginx", tmp_path)
    s[0]["security_headers"] = {"X-Frame-Options": "DENY", "Referrer-Policy": None}
    s[0]["limits"] = {"enabled": False}
    s[0]["request_timeouts"] = {"header": 5}
    files = render("nginx", "Debian", tmp_path, nginx_sites=s, nginx_limits={"requests_per_second": 3, "status": 503})[
        1
    ]
    static = files["portail-static.conf"]
    assert 'add_header X-Frame-Options "DENY" always;' in static
    assert "Referrer-Policy" not in static
    assert "limit_req" not in static and "limit_conn" not in static
    assert "client_header_timeout 5s;" in static
    proxy = files["portail-proxy.conf"]
    assert "rate=3r/s;" in proxy and "limit_req_status 503;" in proxy and "limit_conn_status 503;" in proxy


def test_nginx_alpn_route(tmp_path: Path) -> None:
    route = {"address": "127.0.20.251", "port": 10443}
    backend = {"address": "127.0.20.251", "port": 10444}
    files = render(
        "nginx",
        "Debian",
        tmp_path,
        nginx_tls_alpn_route=True,
        nginx_tls_alpn_responder=route,
        nginx_tls_alpn_backend=backend,
    )[1]
    stream = files["stream.conf"]
    assert stream.count("stream {") == 1
    assert '"acme-tls/1" 127.0.20.251:10443;' in stream
    assert "default 127.0.20.251:10444;" in stream
    assert "listen 127.0.20.9:443;" in stream and "ssl_preread on;" in stream
    assert "proxy_protocol on;" in stream and "proxy_bind 127.0.20.251;" in stream
    https = blocks(files["portail-static.conf"], "server {")[1]
    assert "listen 127.0.20.251:10444 ssl http2 proxy_protocol;" in https
    assert ":443" not in https
    assert "set_real_ip_from 127.0.20.251;" in https and "real_ip_header proxy_protocol;" in https


def test_nginx_new_http2_syntax_and_stateless(tmp_path: Path) -> None:
    files = render("nginx", "RedHat", tmp_path, new_http2=True, nginx_acme_thumbprint=THUMBPRINT)[1]
    static = files["portail-static.conf"]
    assert "listen 127.0.20.9:443 ssl;" in static
    assert "http2 on;" in static
    assert 'location ~ "^/\\.well-known/acme-challenge/([A-Za-z0-9_-]+)$"' in static
    assert f'return 200 "$1.{THUMBPRINT}";' in static


STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


@pytest.mark.parametrize(("family", "route"), [("Debian", False), ("RedHat", False), ("Debian", True)])
def test_nginx_rendered_tree_passes_nginx_t(family: str, route: bool, tmp_path: Path, certs: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("no nginx binary")
    if route and not STREAM_MODULE.exists():
        pytest.skip("no nginx stream module (libnginx-mod-stream)")
    extra: dict[str, Any] = {"nginx_tls_alpn_route": True} if route else {}
    render("nginx", family, tmp_path, tls_sites=["static", "proxy"], nginx_acme_thumbprint=THUMBPRINT, **extra)
    # certificates are where the sites say (tmp_path/certs): copy the module's test certificates there
    shutil.copytree(certs / "certs", tmp_path / "certs")
    out = tmp_path / f"nginx-{family}"
    main = tmp_path / "nginx-test.conf"
    main.write_text(
        (f"load_module {STREAM_MODULE};\ninclude {out}/stream.conf;\n" if route else "")
        + f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        "http {\n  access_log off;\n  include /etc/nginx/mime.types;\n"
        f"  include {out}/portail-*.conf;\n}}\n"
    )
    proc = subprocess.run([nginx, "-t", "-c", str(main)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("family", ["Debian", "RedHat"])
def test_apache_layout_and_profile(family: str, tmp_path: Path) -> None:
    layout, files = render("apache", family, tmp_path, apache_acme_thumbprint=THUMBPRINT)
    if family == "RedHat":
        assert layout["__apache_service"] == "httpd"
        assert layout["__apache_ctl"] == "/usr/sbin/apachectl"
        assert layout["__apache_sites_dir"] == "/etc/httpd/conf.d"
        assert layout["__apache_ports_file"].startswith("/etc/httpd/conf.d/")
        assert "/etc/httpd/conf.d/ssl.conf" in layout["__apache_foreign_listen_files"]
        assert {"httpd", "mod_ssl", "mod_http2"} <= set(layout["__apache_packages"])
        assert layout["__apache_modules"] == []
    else:
        assert layout["__apache_service"] == "apache2"
        assert layout["__apache_ports_file"] == "/etc/apache2/ports.conf"
        assert {"ssl", "headers", "http2", "rewrite"} <= set(layout["__apache_modules"])

    ports = files["ports.conf"]
    assert "Listen 127.0.20.9:80" in ports
    assert "Listen 127.0.20.9:443 https" in ports

    static = files["portail-static.conf"]
    http, https = blocks(static, "<VirtualHost")
    assert http.startswith("<VirtualHost 127.0.20.9:80>")
    assert "ServerName web5.portail.test" in http
    assert "ServerAlias web5.portail.test *.web5.portail.test" in http
    assert "Strict-Transport-Security" not in http
    assert "ForceType text/plain" in http
    assert "Header always set X-Content-Type-Options nosniff" in http
    assert "Options None" in http
    assert "[R=301,END,NE]" in http
    assert f'ErrorDocument 200 "%{{ENV:MATCH_PORTAILTOKEN}}.{THUMBPRINT}"' in http
    assert https.startswith("<VirtualHost 127.0.20.9:443>")
    assert "SSLProtocol -all +TLSv1.2 +TLSv1.3" in https
    assert f"SSLCipherSuite {CIPHERS}" in https
    assert "SSLOpenSSLConfCmd Groups X25519:prime256v1:secp384r1" in https
    assert "stapling" not in static.lower()
    for name, value in HARDENED:
        assert f'Header always set {name} "{value}"' in https
    assert static.startswith("#") and "\nServerTokens Prod\nServerSignature Off\n" in static
    for block in (http, https):
        assert "RequestReadTimeout header=10-20,MinRate=500 body=20,MinRate=500" in block
    assert "SSLSessionTickets off" in https
    assert "SSLHonorCipherOrder off" in https
    assert "Protocols h2 http/1.1" in https
    assert 'Header always set Strict-Transport-Security "max-age=63072000"' in https

    proxy = files["portail-proxy.conf"]
    assert "[R=308,END,NE]" in proxy
    assert "max-age=63072000; includeSubDomains; preload" in proxy
    assert 'ProxyPass "/" "http://127.0.0.1:8080/"' in proxy

    nocert = files["portail-nocert.conf"]
    assert len(blocks(nocert, "<VirtualHost")) == 1


def test_apache_no_listen_443_before_any_certificate(tmp_path: Path) -> None:
    files = render("apache", "RedHat", tmp_path, tls_sites=[])[1]
    assert ":443" not in files["ports.conf"]
    assert all(len(blocks(t, "<VirtualHost")) == 1 for n, t in files.items() if n.startswith("portail-"))


@pytest.mark.parametrize("family", ["Debian", "RedHat"])
def test_apache_rendered_tree_passes_configtest(family: str, tmp_path: Path, certs: Path) -> None:
    apache = "/usr/sbin/apache2"
    mods = Path("/usr/lib/apache2/modules")
    if not Path(apache).exists() or not mods.is_dir():
        pytest.skip("no apache2 binary")
    render("apache", family, tmp_path, apache_acme_thumbprint=THUMBPRINT)
    shutil.copytree(certs / "certs", tmp_path / "certs")
    modules = [
        ("mpm_event", "mod_mpm_event.so"),
        ("authz_core", "mod_authz_core.so"),
        ("alias", "mod_alias.so"),
        ("mime", "mod_mime.so"),
        ("headers", "mod_headers.so"),
        ("reqtimeout", "mod_reqtimeout.so"),
        ("rewrite", "mod_rewrite.so"),
        ("socache_shmcb", "mod_socache_shmcb.so"),
        ("ssl", "mod_ssl.so"),
        ("http2", "mod_http2.so"),
        ("proxy", "mod_proxy.so"),
        ("proxy_http", "mod_proxy_http.so"),
    ]
    out = tmp_path / f"apache-{family}"
    main = tmp_path / "httpd-test.conf"
    main.write_text(
        "".join(f"LoadModule {n}_module {mods / f}\n" for n, f in modules)
        + f"ServerRoot {tmp_path}\nPidFile {tmp_path}/httpd.pid\nErrorLog {tmp_path}/error.log\n"
        + f"DefaultRuntimeDir {tmp_path}\nServerName localhost\n"
        + f"Include {out}/ports.conf\nInclude {out}/portail-*.conf\n"
    )
    proc = subprocess.run([apache, "-t", "-f", str(main)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
