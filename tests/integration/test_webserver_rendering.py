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

CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

RENDER = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Load the role's defaults, internal variables and family layout
      ansible.builtin.include_vars:
        file: "{{ item }}"
      loop:
        - "{{ role_dir }}/defaults/main.yml"
        - "{{ role_dir }}/vars/main.yml"
        - "{{ role_dir }}/vars/{{ family }}.yml"

    - name: Pretend the listed sites have their certificates
      ansible.builtin.set_fact:
        "{{ '__' ~ role ~ '_tls_sites' }}": "{{ tls_sites }}"
        __nginx_http2_directive: "{{ new_http2 | default(false) }}"

    - name: Layout
      ansible.builtin.debug:
        msg: "{{ query('ansible.builtin.vars', *layout_vars) }}"

    - name: Render site files
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/site.conf.j2"
        dest: "{{ out }}/portail-{{ item.name }}.conf"
        mode: "0644"
      loop: "{{ lookup('ansible.builtin.vars', '__' ~ role ~ '_present_sites') }}"

    - name: Render the Listen file
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/ports.conf.j2"
        dest: "{{ out }}/ports.conf"
        mode: "0644"
      when: role == 'apache'
"""

LAYOUT_VARS = {
    "nginx": ["__nginx_service", "__nginx_sites_dir", "__nginx_sites_enabled_dir", "__nginx_default_site_files"],
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
            "server_names": ["web6.portail.test"],
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
    deploy_cert(ca, base / "certs", "proxy", ["web6.portail.test"])
    return base


@pytest.mark.parametrize("family", ["Debian", "RedHat"])
def test_nginx_layout_and_profile(family: str, tmp_path: Path) -> None:
    layout, files = render("nginx", family, tmp_path)
    if family == "RedHat":
        assert layout["__nginx_sites_dir"] == "/etc/nginx/conf.d"
        assert layout["__nginx_sites_enabled_dir"] == ""
        assert layout["__nginx_default_site_files"] == []
    else:
        assert layout["__nginx_sites_dir"] == "/etc/nginx/sites-available"
        assert layout["__nginx_sites_enabled_dir"] == "/etc/nginx/sites-enabled"
    assert layout["__nginx_service"] == "nginx"

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
    assert "server_name web5.portail.test *.web5.portail.test;" in https

    proxy = files["portail-proxy.conf"]
    assert "return 308 https://$host$request_uri;" in proxy
    assert "max-age=63072000; includeSubDomains; preload" in proxy
    assert "proxy_pass http://127.0.0.1:8080;" in proxy

    nocert = files["portail-nocert.conf"]
    assert len(blocks(nocert, "server {")) == 1
    assert ":443" not in nocert


def test_nginx_new_http2_syntax_and_stateless(tmp_path: Path) -> None:
    files = render("nginx", "RedHat", tmp_path, new_http2=True, nginx_acme_thumbprint=THUMBPRINT)[1]
    static = files["portail-static.conf"]
    assert "listen 127.0.20.9:443 ssl;" in static
    assert "http2 on;" in static
    assert 'location ~ "^/\\.well-known/acme-challenge/([A-Za-z0-9_-]+)$"' in static
    assert f'return 200 "$1.{THUMBPRINT}";' in static


@pytest.mark.parametrize("family", ["Debian", "RedHat"])
def test_nginx_rendered_tree_passes_nginx_t(family: str, tmp_path: Path, certs: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("no nginx binary")
    render("nginx", family, tmp_path, tls_sites=["static", "proxy"], nginx_acme_thumbprint=THUMBPRINT)
    # certificates are where the sites say (tmp_path/certs): copy the module's test certificates there
    shutil.copytree(certs / "certs", tmp_path / "certs")
    main = tmp_path / "nginx-test.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        "http {\n  access_log off;\n  include /etc/nginx/mime.types;\n"
        f"  include {tmp_path}/nginx-{family}/*.conf;\n}}\n"
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
    assert "SSLOpenSSLConfCmd Curves X25519:prime256v1:secp384r1" in https
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
