"""The demo's hosts and its proof: a small fleet in network namespaces, nothing on the machine itself.

    demo.py up      hosts fleet240 (nginx), fleet241 (Apache), fleet242 + fleet243 (a pool sharing
                    demo-pool.portail.test); account key and inventory under build/demo/
    demo.py proof   what the live servers answer (redirect, HSTS, issuer and expiry, TLS 1.1, the pool's serial)
    demo.py down    the hosts, the pool's DNS records and build/demo/ go away

Each host is a network + mount namespace with its own /etc and /var (overlays, tests/fleet/fleet.py) and
its own sshd: the site playbook reaches it over SSH as it would a real server. The machine's own nginx,
Apache, firewall and /etc/ssl are never touched (tests/integration/test_demo.py checks it).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "demo"
os.environ.setdefault("PORTAIL_FLEET_DIR", str(OUT / "fleet"))
sys.path.insert(0, str(REPO))

import dns.query  # noqa: E402
import dns.tsigkeyring  # noqa: E402
import dns.update  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from tests.fleet import fleet  # noqa: E402

NGINX, APACHE, POOL = 240, 241, (242, 243)
INDICES = (NGINX, APACHE, *POOL)
POOL_NAME = "demo-pool.portail.test"


def rig() -> dict[str, str]:
    rig_dir = Path(os.environ.get("PORTAIL_RIG_DIR", REPO / "build" / "rig"))
    return json.loads((rig_dir / "rig.json").read_text())


def _pool_dns(facts: dict[str, str], addresses: list[str]) -> None:
    keyring = dns.tsigkeyring.from_text({facts["PORTAIL_TSIG_NAME"]: facts["PORTAIL_TSIG_SECRET"]})
    upd = dns.update.Update(facts["PORTAIL_DNS_ZONE"], keyring=keyring, keyalgorithm=facts["PORTAIL_TSIG_ALGORITHM"])
    upd.delete(POOL_NAME + ".", "A")
    for addr in addresses:
        upd.add(POOL_NAME + ".", 30, "A", addr)
    dns.query.tcp(upd, facts["PORTAIL_DNS_PRIMARY"], timeout=5)


def up() -> None:
    facts = rig()
    OUT.mkdir(parents=True, exist_ok=True)
    OUT.chmod(0o700)
    # the hosts' /etc starts as the fleet's private copy of this machine's, without this collection's state
    hosts = {h.index: h for h in fleet.up(INDICES)}
    for h in hosts.values():  # a page to serve (in the host's own /var)
        site = "shop" if h.index in POOL else "www"
        page = f"<h1>portail.https demo: {site} on {h.name}</h1>"
        script = f"mkdir -p /var/www/{site} && echo '{page}' > /var/www/{site}/index.html"
        fleet.exec_in(h, ["sh", "-c", script], check=True)
    _pool_dns(facts, [hosts[i].ipv4 for i in POOL])
    account = OUT / "account.key"
    if not account.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(account, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    inv = fleet.inventory(
        hosts.values(),
        {
            "nginx_hosts": [hosts[NGINX], *(hosts[i] for i in POOL)],
            "apache_hosts": [hosts[APACHE]],
            "pool": [hosts[i] for i in POOL],
        },
    )
    hv = inv["all"]["hosts"]  # type: ignore[index]
    for i in (NGINX, APACHE):
        hv[hosts[i].name]["portail_sites"] = [{"name": "www", "server_names": [hosts[i].fqdn], "root": "/var/www/www"}]
    for i in POOL:
        hv[hosts[i].name]["portail_sites"] = [
            {"name": "shop", "server_names": [POOL_NAME], "root": "/var/www/shop", "pool": "pool"}
        ]
    children = inv["all"]["children"]  # type: ignore[index]
    children["nginx_hosts"]["vars"] = {"portail_webserver": "nginx"}
    children["apache_hosts"]["vars"] = {"portail_webserver": "apache"}
    # every member of the pool answers any token (stateless HTTP-01): whichever member the CA reaches passes
    children["pool"]["vars"] = {
        "nginx_acme_thumbprint": "{{ lookup('ansible.builtin.file', certificate_account_key_src)"
        " | portail.https.acme_thumbprint }}"
    }
    inv["all"]["vars"] = {  # type: ignore[index]
        "portail_manage_firewall": True,
        "firewall_default_deny": True,
        "certificate_acme_directory": facts["PORTAIL_ACME_DIRECTORY"],
        "certificate_acme_ca_bundle": facts["PORTAIL_ACME_CA_BUNDLE"],
        "certificate_account_key_src": str(account),
        "certificate_contact": ["mailto:demo@portail.test"],
        "certificate_terms_agreed": True,
        "portail_verify_ca_file": facts["PORTAIL_PEBBLE_ROOTS"],
    }
    (OUT / "inventory.json").write_text(json.dumps(inv, indent=2))
    print(f"hosts     : {', '.join(f'{h.name} ({h.ipv4})' for h in hosts.values())}, default-deny nftables")


def _redirect(address: str, name: str) -> str:
    conn = http.client.HTTPConnection(address, 80, timeout=5)
    conn.request("GET", "/some/page?x=1", headers={"Host": name})
    resp = conn.getresponse()
    conn.close()
    return f"{resp.status} -> {resp.getheader('Location')}"


def _https(address: str, name: str, cafile: str) -> tuple[str, x509.Certificate]:
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((address, 443), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = [h.split(":", 1) for h in head[1:] if ":" in h]
    hsts = next((v.strip() for k, v in fields if k.strip().lower() == "strict-transport-security"), None)
    return f"{head[0].split(' ', 2)[1]}, verified against the CA, HSTS: {hsts}", x509.load_der_x509_certificate(der)


def _tls11(address: str, name: str) -> str:
    warnings.simplefilter("ignore", DeprecationWarning)  # asking for TLS 1.1 is the point here
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        with socket.create_connection((address, 443), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=name):
            return "ACCEPTED"
    except ssl.SSLError as exc:
        if "NO_PROTOCOLS_AVAILABLE" in str(exc).upper():
            return "not testable (this machine's OpenSSL cannot offer TLS 1.1)"
        return f"refused ({exc.reason})"


def _cert_line(cert: x509.Certificate) -> str:
    issuer = cert.issuer.rfc4514_string()
    return f"issuer {issuer}, expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, serial {cert.serial_number:x}"


def proof() -> None:
    facts = rig()
    cafile = facts["PORTAIL_PEBBLE_ROOTS"]
    for index, server in ((NGINX, "nginx"), (APACHE, "Apache")):
        host = fleet.Host(index)
        print(f"{host.fqdn} ({server} on {host.name}, {host.ipv4})")
        print(f"  port 80  : {_redirect(host.ipv4, host.fqdn)}")
        line, cert = _https(host.ipv4, host.fqdn, cafile)
        print(f"  port 443 : {line}")
        print(f"  cert     : {_cert_line(cert)}")
        print(f"  TLS 1.1  : {_tls11(host.ipv4, host.fqdn)}")
    members = [fleet.Host(i) for i in POOL]
    print(f"{POOL_NAME} (nginx pool: {', '.join(m.name for m in members)})")
    serials = {}
    for m in members:
        _line, cert = _https(m.ipv4, POOL_NAME, cafile)
        serials[m.name] = f"{cert.serial_number:x}"
    same = "one certificate on every member" if len(set(serials.values())) == 1 else "DIFFERENT certificates"
    print(f"  serials  : {', '.join(f'{n} {s}' for n, s in serials.items())} ({same})")


def down() -> None:
    fleet.down([fleet.Host(i) for i in INDICES])
    try:
        _pool_dns(rig(), [])
    except (OSError, KeyError, dns.exception.DNSException):
        pass  # the rig is not running: nothing to remove there
    shutil.rmtree(OUT, ignore_errors=True)


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    actions = {"up": up, "proof": proof, "down": down}
    if cmd not in actions:
        print(__doc__, file=sys.stderr)
        return 2
    actions[cmd]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
