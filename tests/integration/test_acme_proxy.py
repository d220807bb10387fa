"""The ACME client through an HTTP proxy (tinyproxy from Debian), with the CA out of the controller's reach.

The controller (ansible-playbook, its action plugins and its local modules) runs inside the network
namespace of fleet host 140: Pebble listens on the machine's loopback, which does not exist in there, so
a direct connection is refused and only the proxy (tinyproxy on the fleet bridge, in the machine's own
namespace) can reach the CA. A pass therefore proves every request went through the proxy, with CONNECT
(the CA's certificate is still checked against the rig's CA bundle, end to end). Negative controls: no
proxy, and the proxy named in HTTPS_PROXY but the CA listed in NO_PROXY, both fail.

Covered: acme_account with the explicit ``acme_proxy`` option and with HTTPS_PROXY from the environment,
acme_certificate (action plugin on the controller, token files on the host over SSH) with HTTPS_PROXY,
each run twice (the second run changes nothing).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fleet import fleet

from .harness import BIN, ansible_env

pytestmark = [pytest.mark.rig]

HOST = 140
PROXY_PORT = 18140

PLAYBOOK = """
- name: Account, from the controller
  hosts: localhost
  gather_facts: false
  tasks:
    - name: account
      portail.https.acme_account:
        acme_directory: "{{ directory }}"
        acme_ca_bundle: "{{ ca_bundle }}"
        account_key_src: "{{ key_path }}"
        acme_proxy: "{{ explicit_proxy | default(omit) }}"
        contact: [mailto:proxy@portail.test]
        terms_agreed: true
        request_timeout: 10

- name: Certificate, issued from the controller, files on the host
  hosts: fleet140
  gather_facts: false
  tasks:
    - name: certificate
      when: with_certificate | default(false) | bool
      portail.https.acme_certificate:
        acme_directory: "{{ directory }}"
        acme_ca_bundle: "{{ ca_bundle }}"
        account_key_src: "{{ key_path }}"
        terms_agreed: true
        names: [fleet140.portail.test]
        webroot: "{{ webroot }}"
        key_path: "{{ out }}/privkey.pem"
        cert_path: "{{ out }}/cert.pem"
        chain_path: "{{ out }}/chain.pem"
        fullchain_path: "{{ out }}/fullchain.pem"
"""


def _wait_port(host: str, port: int) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port}")


@pytest.fixture(scope="module")
def proxied(rig, fleet_factory, tmp_path_factory):
    """Fleet host 140 (the controller's network), tinyproxy on the bridge and a web server for HTTP-01."""
    if not shutil.which("tinyproxy"):
        pytest.fail("tinyproxy is missing: run tests/install-deps.sh")
    (host,) = fleet_factory([HOST])
    tmp = tmp_path_factory.mktemp("proxy")
    ca = urllib.parse.urlsplit(rig["PORTAIL_ACME_DIRECTORY"])
    conf = tmp / "tinyproxy.conf"
    conf.write_text(
        f"User nobody\nGroup nogroup\nPort {PROXY_PORT}\nListen {fleet.BRIDGE_V4}\nTimeout 60\n"
        f"LogLevel Connect\nMaxClients 50\nAllow {fleet.BRIDGE_V4.rsplit('.', 1)[0]}.0/24\n"
        f"ConnectPort {ca.port}\nDisableViaHeader Yes\n"
    )
    log = (tmp / "tinyproxy.log").open("w")
    proxy = subprocess.Popen(["tinyproxy", "-d", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    webroot = tmp / "www"
    webroot.mkdir()
    server = ["--bind", host.ipv4, "--directory", str(webroot)]
    web = subprocess.Popen(
        ["ip", "netns", "exec", host.ns, str(BIN / "python"), "-m", "http.server", "80", *server],
        stdout=(tmp / "web.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = tmp / "account.key"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    out = tmp / "cert"
    out.mkdir()
    inventory = tmp / "inventory.json"
    inv = fleet.inventory([host])
    inv["all"]["hosts"]["localhost"] = {  # type: ignore[index]
        "ansible_connection": "local",
        "ansible_python_interpreter": str(BIN / "python"),
    }
    inventory.write_text(json.dumps(inv))
    try:
        _wait_port(fleet.BRIDGE_V4, PROXY_PORT)
        _wait_port(host.ipv4, 80)
        yield {
            "host": host,
            "tmp": tmp,
            "inventory": inventory,
            "proxy": f"http://{fleet.BRIDGE_V4}:{PROXY_PORT}",
            "log": tmp / "tinyproxy.log",
            "vars": {
                "directory": rig["PORTAIL_ACME_DIRECTORY"],
                "ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
                "key_path": str(key_path),
                "webroot": str(webroot),
                "out": str(out),
            },
        }
    finally:
        for proc in (proxy, web):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def run_in_netns(proxied, extra_vars: dict, env: dict[str, str]) -> tuple[int, str]:
    """ansible-playbook inside fleet host 140's network namespace (no route to the machine's loopback)."""
    tmp: Path = proxied["tmp"]
    pb = tmp / "playbook.yml"
    pb.write_text(PLAYBOOK)
    ev = tmp / "vars.json"
    ev.write_text(json.dumps(dict(proxied["vars"], **extra_vars)))
    clean = {k: v for k, v in ansible_env().items() if k.lower() not in ("https_proxy", "http_proxy", "no_proxy")}
    clean.update(env)
    clean["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    cmd = ["ip", "netns", "exec", proxied["host"].ns, str(BIN / "ansible-playbook")]
    cmd += ["-i", str(proxied["inventory"]), "-e", f"@{ev}", str(pb)]
    proc = subprocess.run(cmd, env=clean, capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _recap(output: str, host: str) -> dict[str, int]:
    for line in output.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}
    raise AssertionError(f"no recap for {host} in:\n{output[-2000:]}")


def test_direct_connection_to_the_ca_is_refused(proxied):
    rc, out = run_in_netns(proxied, {}, {})
    assert rc != 0
    assert "Connection refused" in out or "unreachable" in out.lower(), out[-2000:]


def test_no_proxy_sends_the_ca_direct(proxied):
    host = urllib.parse.urlsplit(proxied["vars"]["directory"]).hostname
    rc, out = run_in_netns(proxied, {}, {"HTTPS_PROXY": proxied["proxy"], "NO_PROXY": f"example.org,{host}"})
    assert rc != 0
    assert "through the proxy" not in out


def test_explicit_proxy_option(proxied):
    for run in (1, 2):
        rc, out = run_in_netns(proxied, {"explicit_proxy": proxied["proxy"]}, {})
        assert rc == 0, out[-3000:]
        assert _recap(out, "localhost")["changed"] == (1 if run == 1 else 0), out[-3000:]
    assert "CONNECT" in proxied["log"].read_text()


def test_environment_proxy_for_account_and_certificate(proxied):
    before = proxied["log"].read_text().count("CONNECT")
    env = {"HTTPS_PROXY": proxied["proxy"], "NO_PROXY": "localhost,example.org"}
    for run in (1, 2):
        rc, out = run_in_netns(proxied, {"with_certificate": True}, env)
        assert rc == 0, out[-3000:]
        assert _recap(out, "fleet140")["changed"] == (1 if run == 1 else 0), out[-3000:]
        assert _recap(out, "localhost")["changed"] in ((0, 1) if run == 1 else (0,)), out[-3000:]
    assert proxied["log"].read_text().count("CONNECT") > before
    pem = Path(proxied["vars"]["out"], "cert.pem").read_text()
    assert "BEGIN CERTIFICATE" in pem
