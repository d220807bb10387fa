"""portail.https.nginx against this machine's nginx, on 127.0.20.1 (web1 / web3 .portail.test).

The behaviour tests live in webserver_suite.py and are shared with the Apache role; this module
says which server they run against. /etc/nginx is saved before and restored after; nginx is stopped.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .harness import rig_facts, run_playbook
from .webserver_suite import (
    Env,
    Server,
    apply,
    changed_tasks,
    converge,
    ensure_certs,
    env,
    test_bad_security_headers_are_rejected,
    test_bootstrap_from_empty_server_in_one_play,
    test_challenge_file_on_port_80,
    test_check_mode_changes_nothing,
    test_hardened_headers_on_every_response,
    test_hsts_on_443_everywhere,
    test_hsts_preload_only_when_eligible,
    test_http2,
    test_injection_in_other_fields_is_rejected,
    test_injection_in_server_names_is_rejected,
    test_invalid_directive_leaves_running_server_untouched,
    test_port_80_redirects_same_host_and_uri,
    test_second_run_changes_nothing,
    test_served_certificate_is_the_deployed_one,
    test_site_removal,
    test_slow_clients_are_cut_off_while_others_are_served,
    test_stateless_http01_responder,
    test_tls_profile_mozilla_intermediate,
    test_tls_versions,
)
from .webserver_support import HttpsLoop, listening, served_cert_der, tls_handshake, wait_listening

# Re-exported so that pytest collects the shared tests and the env fixture in this module.
__all__ = [
    "Server",
    "env",
    "server",
    "test_bad_security_headers_are_rejected",
    "test_bootstrap_from_empty_server_in_one_play",
    "test_challenge_file_on_port_80",
    "test_check_mode_changes_nothing",
    "test_hardened_headers_on_every_response",
    "test_hsts_on_443_everywhere",
    "test_hsts_preload_only_when_eligible",
    "test_http2",
    "test_injection_in_other_fields_is_rejected",
    "test_injection_in_server_names_is_rejected",
    "test_invalid_directive_leaves_running_server_untouched",
    "test_port_80_redirects_same_host_and_uri",
    "test_second_run_changes_nothing",
    "test_served_certificate_is_the_deployed_one",
    "test_site_removal",
    "test_slow_clients_are_cut_off_while_others_are_served",
    "test_stateless_http01_responder",
    "test_tls_profile_mozilla_intermediate",
    "test_tls_versions",
]

pytestmark = [
    pytest.mark.skipif(not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists(), reason="no nginx"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def server() -> Server:
    return Server(
        role="nginx",
        address="127.0.20.1",
        name="web1.portail.test",
        name_308="web3.portail.test",
        conf_root=Path("/etc/nginx"),
        stop=[["service", "nginx", "stop"], ["/usr/sbin/nginx", "-s", "stop"]],
        own_header="add_header X-Own yes always;",
        error_500="return 500;",
        server_header="nginx",
        bad_directive="bogus_directive on;",
        bad_message="unknown directive",
    )


# --- TLS-ALPN-01 beside the running sites (nginx_tls_alpn_route) -------------------------------------

ROUTE = {
    "tls_alpn_route": True,
    # on this test's own addresses: other tests may use acme_certificate's 127.0.0.1:10443
    "tls_alpn_responder": {"address": "127.0.20.250", "port": 10443},
    "tls_alpn_backend": {"address": "127.0.20.250", "port": 10444},
}
VISITOR = "127.0.20.99"  # the client loop's source address, to find in the access log


def route_playbook() -> str:
    return """
- hosts: localhost
  gather_facts: false
  roles:
    - role: portail.https.nginx
  tasks:
    - name: Published responder address
      ansible.builtin.debug:
        var: nginx_tls_alpn_route_responder
"""


def alpn_playbook(args: dict[str, Any]) -> str:
    return (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: issue\n"
        "      portail.https.acme_certificate: " + json.dumps(args) + "\n"
    )


@pytest.mark.rig
def test_tls_alpn01_beside_running_nginx(env: Env, tmp_path: Path) -> None:
    s = env.server
    ensure_certs(env)
    log = env.base / "access-main.log"
    sites = env.sites()
    sites[0]["directives"] = [f"access_log {log};"]
    # libnginx-mod-stream comes with tests/install-deps.sh: no package manager run (and lock) here
    extra = env.role_vars(sites=sites, install_packages=False, **ROUTE)
    first = run_playbook(route_playbook(), tmp_path, extra_vars=extra)
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert first.result("Published responder address")["nginx_tls_alpn_route_responder"] == ROUTE["tls_alpn_responder"]
    again = run_playbook(route_playbook(), tmp_path, extra_vars=extra)
    assert again.rc == 0 and again.changed() == 0, again.stdout[-3000:]
    assert wait_listening(s.address, 443)
    # the sites' TLS server only takes connections that start with a PROXY protocol header
    assert tls_handshake(s.address, s.name, "tls1_3")[0]

    rig = rig_facts()
    key = tmp_path / "account.key"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    out = tmp_path / "issued"
    args = {
        "names": [s.name],
        "challenge": "tls-alpn-01",
        "alpn_address": ROUTE["tls_alpn_responder"]["address"],
        "alpn_port": ROUTE["tls_alpn_responder"]["port"],
        "acme_directory": rig["PORTAIL_ACME_DIRECTORY"],
        "acme_ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "account_key_src": str(key),
        "terms_agreed": True,
        "key_path": str(out / "privkey.pem"),
        "cert_path": str(out / "cert.pem"),
        "chain_path": str(out / "chain.pem"),
        "fullchain_path": str(out / "fullchain.pem"),
    }
    with HttpsLoop(s.address, s.name, env.ca.pem_path, VISITOR) as loop:
        time.sleep(0.5)
        issued = run_playbook(alpn_playbook(args), tmp_path)
        seen_during = loop.ok
        time.sleep(0.5)
    assert issued.rc == 0, issued.stdout[-3000:] + issued.stderr[-2000:]
    assert issued.result("issue")["changed"] is True
    leaf = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [s.name]
    assert loop.errors == []
    assert seen_during > 0 and loop.ok > seen_during
    # the sites saw the visitor, not the router: PROXY protocol + real_ip
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith(VISITOR + " ") for line in lines), lines[:5]
    # the ALPN router leaves nothing listening for acme-tls/1 once the responder is gone
    assert not listening(ROUTE["tls_alpn_responder"]["address"], ROUTE["tls_alpn_responder"]["port"])
    # route off again: the sites take port 443 back and the stream file is gone
    converge(env, tmp_path)
    assert served_cert_der(s.address, s.name, env.ca.pem_path) == env.leaf_der["main"]


# --- request-rate limits ----------------------------------------------------------------------------


def burst(address: str, host: str, cafile: Path, count: int) -> list[int]:
    """count requests on one keep-alive HTTPS connection, as fast as they go; their statuses.

    On port 443: port 80 answers with a redirect (`return`), which nginx sends before any limit applies.
    """
    ctx = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection(host, 443, timeout=10, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection((address, 443), timeout=10), server_hostname=host)
    statuses = []
    try:
        for _request in range(count):
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
    finally:
        conn.close()
    return statuses


def test_burst_above_the_rate_is_refused_with_the_configured_status(env: Env, tmp_path: Path) -> None:
    s = env.server
    ensure_certs(env)
    sites = env.sites()
    sites[1]["limits"] = {"status": 503}
    res = apply(env, tmp_path, sites=sites, limits={"requests_per_second": 1, "burst": 3})
    assert res.rc == 0, res.stdout[-3000:]
    again = apply(env, tmp_path, sites=sites, limits={"requests_per_second": 1, "burst": 3})
    assert again.changed() == 0, changed_tasks(again)
    first = burst(s.address, s.name, env.ca.pem_path, 20)
    # 1 request a second with 3 in reserve: the first few pass at once, most of the rest are refused
    assert first[:4] == [200] * 4, first
    assert set(first) == {200, 429} and first.count(429) >= 10, first
    second = burst(s.address, s.name_308, env.ca.pem_path, 20)
    assert set(second) == {200, 503} and second.count(503) >= 10, second
    # limits off for a site: no refusal at all
    sites[1]["limits"] = {"enabled": False}
    res = apply(env, tmp_path, sites=sites, limits={"requests_per_second": 1, "burst": 3})
    assert res.rc == 0, res.stdout[-3000:]
    assert set(burst(s.address, s.name_308, env.ca.pem_path, 20)) == {200}
    converge(env, tmp_path)
