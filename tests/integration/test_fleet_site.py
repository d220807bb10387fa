"""The site, renew and report playbooks on a fleet of namespaced hosts reached over real SSH.

Mixed nginx and Apache hosts, a pool of three hosts sharing one name (one certificate, issued once,
stateless HTTP-01 responder on every member), one host validated with DNS-01 (RFC 2136 on the rig's
BIND), Pebble as the CA. Site runs twice (the second run changes nothing), then renew.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

import dns.query
import dns.tsigkeyring
import dns.update
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fleet import fleet

from .harness import REPO, run_playbook

pytestmark = [pytest.mark.rig, pytest.mark.slow]

NGINX = [10, 11]
APACHE = [12]
POOL = [13, 14, 15]
DNS01 = 11
POOL_NAME = "pool.portail.test"


def _served_serial(address: str, name: str) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, 443), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=name) as s:
        der = s.getpeercert(binary_form=True)
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


def _thumbprint(key: ec.EllipticCurvePrivateKey) -> str:
    """RFC 7638 thumbprint of a P-256 key, computed independently of the collection's code."""
    nums = key.public_key().public_numbers()
    x, y = (base64.urlsafe_b64encode(n.to_bytes(32, "big")).decode().rstrip("=") for n in (nums.x, nums.y))
    jwk = json.dumps({"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).decode().rstrip("=")


def _dns_update(rig: dict[str, str], action: str, name: str, addresses: list[str]) -> None:
    keyring = dns.tsigkeyring.from_text({rig["PORTAIL_TSIG_NAME"]: rig["PORTAIL_TSIG_SECRET"]})
    upd = dns.update.Update(rig["PORTAIL_DNS_ZONE"], keyring=keyring, keyalgorithm=rig["PORTAIL_TSIG_ALGORITHM"])
    if action == "add":
        for addr in addresses:
            upd.add(name + ".", 30, "A", addr)
    else:
        upd.delete(name + ".", "A")
    dns.query.tcp(upd, rig["PORTAIL_DNS_PRIMARY"], timeout=5)


@pytest.fixture(scope="module")
def site_fleet(fleet_factory, rig, tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet-site")
    hosts = {h.index: h for h in fleet_factory(NGINX + APACHE + POOL)}
    _dns_update(rig, "add", POOL_NAME, [hosts[i].ipv4 for i in POOL])
    account = work / "account.key"
    key = ec.generate_private_key(ec.SECP256R1())
    account.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    account.chmod(0o600)

    groups = {
        "nginx_hosts": [hosts[i] for i in NGINX + POOL],
        "apache_hosts": [hosts[i] for i in APACHE],
        "pool": [hosts[i] for i in POOL],
    }
    inv = fleet.inventory(hosts.values(), groups)
    hv = inv["all"]["hosts"]
    for i in NGINX + APACHE:
        hv[f"fleet{i}"]["portail_sites"] = [
            {"name": "main", "server_names": [hosts[i].fqdn], "root": "/var/www/main"},
        ]
    hv[f"fleet{DNS01}"]["portail_sites"][0]["challenge"] = "dns-01"
    # Firewalls: nftables (detected) everywhere, iptables on the Apache host, default deny on one host.
    hv[f"fleet{APACHE[0]}"]["firewall_backend"] = "iptables"
    hv[f"fleet{NGINX[0]}"]["firewall_default_deny"] = True
    for i in POOL:
        hv[f"fleet{i}"]["portail_sites"] = [
            {"name": "pool", "server_names": [POOL_NAME], "root": "/var/www/pool", "pool": "pool"},
        ]
    children = inv["all"]["children"]
    children["nginx_hosts"]["vars"] = {"portail_webserver": "nginx"}
    children["apache_hosts"]["vars"] = {"portail_webserver": "apache"}
    children["pool"]["vars"] = {"nginx_acme_thumbprint": _thumbprint(key)}
    inv["all"]["vars"] = {
        "portail_manage_firewall": True,
        "certificate_acme_directory": rig["PORTAIL_ACME_DIRECTORY"],
        "certificate_acme_ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "certificate_account_key_src": str(account),
        "certificate_terms_agreed": True,
        "certificate_dns": {
            "server": rig["PORTAIL_DNS_PRIMARY"],
            "key_name": rig["PORTAIL_TSIG_ACME_NAME"],
            "key_secret": rig["PORTAIL_TSIG_ACME_SECRET"],
            "key_algorithm": rig["PORTAIL_TSIG_ALGORITHM"],
        },
        "portail_verify_ca_file": rig["PORTAIL_PEBBLE_ROOTS"],
    }
    inventory = work / "inventory.json"
    inventory.write_text(json.dumps(inv, indent=2))
    yield {"work": work, "inventory": inventory, "hosts": hosts}
    _dns_update(rig, "delete", POOL_NAME, [])


def _site(ctx, **kw):
    return run_playbook(REPO / "playbooks" / "site.yml", ctx["work"], inventory=ctx["inventory"], **kw)


def test_site_then_idempotent_then_renew(site_fleet):
    ctx = site_fleet
    hosts = ctx["hosts"]
    first = _site(ctx)
    assert first.rc == 0, first.failures()
    assert first.failed() == 0
    verify = first.results("Verify every name from the controller")
    assert set(verify) == {h.name for h in hosts.values()}
    for host, res in verify.items():
        assert res["results"], host
        for outcome in res["results"]:
            assert outcome["ok"], (host, outcome["item"][1], outcome["failed_checks"])
            assert outcome["checks"]["certificate"]["verified"] is True

    # One certificate for the pool, issued once (by the leader) and served by every member.
    issued = first.results("Issue or renew certificates")
    assert issued[f"fleet{POOL[0]}"]["changed"] is True
    for member in POOL[1:]:
        assert issued[f"fleet{member}"].get("skipped") is True
    serials = {_served_serial(hosts[i].ipv4, POOL_NAME) for i in POOL}
    assert len(serials) == 1

    # The DNS-01 host got its certificate without any challenge file.
    dns_result = issued[f"fleet{DNS01}"]["certificates"][0]
    assert dns_result["challenge"] == "dns-01"

    second = _site(ctx)
    assert second.rc == 0, second.failures()
    assert second.changed() == 0, {h: s for h, s in second.stats.items() if s.get("changed")}

    renew = run_playbook(REPO / "playbooks" / "renew.yml", ctx["work"], inventory=ctx["inventory"])
    assert renew.rc == 0, renew.failures()
    assert renew.changed() == 0


def test_forced_renewal_reloads_only_that_host(site_fleet):
    ctx = site_fleet
    hosts = ctx["hosts"]
    target = hosts[NGINX[0]]
    other = hosts[APACHE[0]]
    before_target = _served_serial(target.ipv4, target.fqdn)
    before_other = _served_serial(other.ipv4, other.fqdn)
    res = run_playbook(
        REPO / "playbooks" / "renew.yml",
        ctx["work"],
        inventory=ctx["inventory"],
        extra_vars={"certificate_force": True, "portail_target": target.name},
    )
    assert res.rc == 0, res.failures()
    assert res.changed(target.name) > 0
    after_target = _served_serial(target.ipv4, target.fqdn)
    assert after_target != before_target
    assert _served_serial(other.ipv4, other.fqdn) == before_other


def test_report_lists_every_certificate(site_fleet):
    ctx = site_fleet
    out = ctx["work"] / "report"
    res = run_playbook(
        REPO / "playbooks" / "report.yml",
        ctx["work"],
        inventory=ctx["inventory"],
        extra_vars={"report_dest_dir": str(out)},
    )
    assert res.rc == 0, res.failures()
    data = json.loads((out / "report.json").read_text())
    rows = {(r["host"], r["certificate"]): r for r in data["certificates"]}
    assert len(rows) == len(ctx["hosts"])
    for row in rows.values():
        assert row["issuer"].startswith("CN=Pebble Intermediate")
        assert 80 < row["days_left"] <= 90
        assert row["last_result"] in ("issued", "renewed")
    html = (out / "report.html").read_text()
    assert POOL_NAME in html
    assert "fleet12" in html


def test_firewalls_kept_ssh_and_opened_web_ports(site_fleet):
    hosts = site_fleet["hosts"]
    deny = hosts[NGINX[0]]
    ruleset = fleet.exec_in(deny, ["nft", "list", "ruleset"]).stdout
    assert "portail_https" in ruleset
    ipt = fleet.exec_in(hosts[APACHE[0]], ["iptables", "-S"]).stdout
    assert "PORTAIL-HTTPS" in ipt
    for h in hosts.values():
        for port in (22, 80, 443):
            with socket.create_connection((h.ipv4, port), timeout=3):
                pass
    # default deny on that host: a port nobody opened does not answer (filtered, not refused)
    fleet.exec_in(deny, ["sh", "-c", "nohup python3 -m http.server 8081 >/dev/null 2>&1 & sleep 0.5"])
    with pytest.raises(TimeoutError):
        socket.create_connection((deny.ipv4, 8081), timeout=2)


def test_fleet_hosts_have_their_own_config(site_fleet):
    """Sanity of the rig itself: each host sees its own /etc (nginx on one, Apache on another)."""
    hosts = site_fleet["hosts"]
    nginx_sites = fleet.exec_in(hosts[NGINX[0]], ["ls", "/etc/nginx/sites-enabled"]).stdout
    apache_nginx = fleet.exec_in(hosts[APACHE[0]], ["ls", "/etc/nginx/sites-enabled"]).stdout
    assert "portail-main" in nginx_sites
    assert "portail-main" not in apache_nginx
    assert Path("/etc/nginx/sites-enabled/portail-main.conf").exists() is False
    assert subprocess.run(["true"], check=False).returncode == 0


def test_revoke_playbook_revokes_and_reissues(site_fleet, rig):
    ctx = site_fleet
    host = ctx["hosts"][APACHE[0]]
    before = _served_serial(host.ipv4, host.fqdn)
    res = run_playbook(
        REPO / "playbooks" / "revoke.yml",
        ctx["work"],
        inventory=ctx["inventory"],
        extra_vars={"revoke_site": "main", "revoke_reason": 4, "portail_target": host.name},
    )
    assert res.rc == 0, res.failures()
    ctx_ssl = ssl.create_default_context(cafile=rig["PORTAIL_ACME_CA_BUNDLE"])
    url = f"{rig['PORTAIL_PEBBLE_MGMT']}/cert-status-by-serial/{before}"
    with urllib.request.urlopen(url, context=ctx_ssl, timeout=10) as resp:
        status = json.loads(resp.read())
    assert status["Status"] == "Revoked"
    # the replacement is served after the reload
    assert _served_serial(host.ipv4, host.fqdn) != before


NGINX_TASK = "Install nginx, write the configuration, test it as a whole and roll back if nginx rejects it"
APACHE_TASK = "Install Apache, enable its modules, write the configuration and test it"


def test_hand_edits_missing_files_and_removed_packages_are_repaired(site_fleet):
    """A no-op reads one hash per file: an edited file, a deleted one or a package dpkg no longer lists is
    still noticed (check mode reports it and writes nothing) and repaired by the next run."""
    ctx = site_fleet
    ngx, apa = ctx["hosts"][NGINX[0]], ctx["hosts"][APACHE[0]]
    ngx_file = "/etc/nginx/sites-available/portail-main.conf"
    apa_file = "/etc/apache2/sites-available/portail-main.conf"
    good_ngx = fleet.exec_in(ngx, ["cat", ngx_file]).stdout
    good_apa = fleet.exec_in(apa, ["cat", apa_file]).stdout
    fleet.exec_in(ngx, ["sh", "-c", f"echo '# edited by hand' >> {ngx_file}"], check=True)
    fleet.exec_in(apa, ["rm", "-f", apa_file], check=True)
    # nginx "removed" as dpkg sees it, in this host's own /var (the binary stays: /usr is the machine's)
    status = "/var/lib/dpkg/status"
    fleet.exec_in(ngx, ["cp", "-p", status, "/var/lib/dpkg/status.portail-test"], check=True)
    try:
        fleet.exec_in(
            ngx,
            [
                "sed",
                "-i",
                "/^Package: nginx$/,/^$/s/^Status: install ok installed$/Status: deinstall ok config-files/",
                status,
            ],
            check=True,
        )
        target = {"portail_target": f"{ngx.name},{apa.name}"}
        check = _site(ctx, extra_vars=target, check=True)
        assert check.rc == 0, check.failures()
        applied = {**check.results(NGINX_TASK), **check.results(APACHE_TASK)}
        assert applied[ngx.name]["changed"] and applied[apa.name]["changed"]
        assert applied[ngx.name]["packages_installed"] == ["nginx"]
        assert applied[ngx.name]["files_changed"] == [ngx_file]
        assert applied[apa.name]["files_changed"] == [apa_file]
        assert fleet.exec_in(ngx, ["cat", ngx_file]).stdout.endswith("# edited by hand\n")
        assert fleet.exec_in(apa, ["test", "-e", apa_file], check=False).returncode != 0
    finally:
        # the real package manager must not reinstall into the machine's /usr: put dpkg's view back
        fleet.exec_in(ngx, ["mv", "-f", "/var/lib/dpkg/status.portail-test", status], check=True)
    fixed = _site(ctx, extra_vars=target)
    assert fixed.rc == 0, fixed.failures()
    assert fixed.changed(ngx.name) > 0 and fixed.changed(apa.name) > 0
    assert fleet.exec_in(ngx, ["cat", ngx_file]).stdout == good_ngx
    assert fleet.exec_in(apa, ["cat", apa_file]).stdout == good_apa
    for h in (ngx, apa):
        assert _served_serial(h.ipv4, h.fqdn)
