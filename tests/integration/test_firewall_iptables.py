"""Firewall role on iptables hosts of the fleet, for both Debian variants (legacy and nf_tables)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fleet import fleet

from .firewall_support import (
    assert_ok,
    dhcpv6_reply_arrives,
    listeners,
    neighbour_discovery_works,
    run_role,
    sh_in,
    task_result,
    tcp_state,
)

INDEX = {"legacy": 3, "nft": 4}


def save(host: fleet.Host, variant: str) -> str:
    out = sh_in(host, f"iptables-{variant}-save") + sh_in(host, f"ip6tables-{variant}-save")
    return "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in out.splitlines() if not line.startswith("#"))


@pytest.fixture(params=["legacy", "nft"])
def variant_host(request, fleet_factory):
    variant = request.param
    host = fleet.Host(INDEX[variant])
    fleet.down([host])
    fleet_factory([host.index])
    for cmd in ("iptables", "ip6tables"):
        # the host's /etc and /var are its own overlays: this switches the variant for that host only
        sh_in(host, "update-alternatives", "--set", cmd, f"/usr/sbin/{cmd}-{variant}")
    for cmd in (f"iptables-{variant}", f"ip6tables-{variant}"):
        # a fail2ban-like chain with a ban, and a Docker-like nat chain: both must survive
        sh_in(host, cmd, "-N", "f2b-sshd")
        source = "198.18.0.99" if cmd.startswith("iptables") else "2001:2:0:9::99"
        sh_in(host, cmd, "-A", "f2b-sshd", "-s", source, "-j", "REJECT")
        sh_in(host, cmd, "-A", "f2b-sshd", "-j", "RETURN")
        sh_in(host, cmd, "-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "f2b-sshd")
        sh_in(host, cmd, "-t", "nat", "-N", "DOCKER")
    yield variant, host
    fleet.down([host])


def test_iptables_variant(variant_host, tmp_path: Path) -> None:
    variant, host = variant_host
    other = "nft" if variant == "legacy" else "legacy"
    before = save(host, variant)

    res = run_role(tmp_path, host, {"firewall_default_deny": True}, check=True, diff=True)
    assert_ok(res)
    assert res.changed() > 0
    assert save(host, variant) == before

    res = run_role(tmp_path, host, {"firewall_default_deny": True}, diff=True)
    assert_ok(res)
    assert res.changed() > 0
    info = task_result(
        res, "Open the ports atomically, confirm over a new connection, probe them from the controller", host.name
    )
    assert info["backend"] == "iptables" and info["iptables_variant"] == variant, info

    # what keeps the host's addresses stays accepted (issue 13, defect 5)
    assert dhcpv6_reply_arrives(host).startswith("got reply fe80:")
    assert neighbour_discovery_works(host)
    after = save(host, variant)
    for line in before.splitlines():  # every foreign chain and rule is still there
        if line.startswith("-A") or line.startswith(":f2b") or line.startswith(":DOCKER"):
            assert line in after
    assert '-A INPUT -m comment --comment "portail.https" -j PORTAIL-HTTPS' in after
    assert "-A PORTAIL-HTTPS -p tcp -m tcp --dport 22 -j ACCEPT" in after  # SSH kept, never named in the inputs
    assert ":INPUT DROP" in after
    assert save(host, other).count("-A ") == 0  # the other variant was not touched

    rules_v4 = sh_in(host, "cat", "/etc/iptables/rules.v4")
    rules_v6 = sh_in(host, "cat", "/etc/iptables/rules.v6")
    assert "PORTAIL-HTTPS" in rules_v4 and "f2b-sshd" in rules_v4 and "DOCKER" in rules_v4
    assert "PORTAIL-HTTPS" in rules_v6 and "2001:2:0:9::99" in rules_v6

    with listeners(host, [80, 443, 8080]):
        for address in (host.ipv4, host.ipv6):
            assert tcp_state(address, 80) == "open"
            assert tcp_state(address, 443) == "open"
            assert tcp_state(address, 8080) == "filtered"
        assert tcp_state(host.ipv4, 22) == "open"

    res = run_role(tmp_path, host, {"firewall_default_deny": True})
    assert_ok(res)
    assert res.changed() == 0


def test_iptables_exact_for_what_it_owns(variant_host, tmp_path: Path) -> None:
    """Issue 13, defect 7: a port dropped from the inputs is closed again, and turning default deny off puts
    the INPUT policy back; fail2ban's and Docker's chains and rules stay as they are."""
    variant, host = variant_host
    foreign = [
        line for line in save(host, variant).splitlines() if line.startswith(("-A INPUT", "-A f2b", ":f2b", ":DOCKER"))
    ]
    ev = {"firewall_default_deny": True, "firewall_extra_ports": [{"port": 8080}]}
    assert_ok(run_role(tmp_path, host, ev))
    assert "--dport 8080 -j ACCEPT" in save(host, variant)
    with listeners(host, [8080]):
        assert tcp_state(host.ipv4, 8080) == "open"

    res = run_role(tmp_path, host, {"firewall_default_deny": False}, diff=True)
    assert_ok(res)
    after = save(host, variant)
    assert "--dport 8080" not in after
    assert ":INPUT ACCEPT" in after
    assert after.count("-j PORTAIL-HTTPS") == 2  # one jump per family, nothing duplicated
    for line in foreign:
        assert line in after, line
    with listeners(host, [8081]):
        assert tcp_state(host.ipv4, 8081) == "open"  # no default deny any more
    res = run_role(tmp_path, host, {"firewall_default_deny": False})
    assert_ok(res)
    assert res.changed() == 0
