"""Firewall role with ufw and firewalld, both really running inside fleet hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fleet import fleet

from .firewall_support import ROLE_PLAY, assert_ok, listeners, sh_in, task_result, tcp_state
from .harness import run_playbook


@pytest.fixture
def ufw_host(fleet_factory):
    host = fleet.Host(6)
    fleet.down([host])
    fleet_factory([host.index])
    yield host
    fleet.down([host])


@pytest.fixture
def firewalld_host(fleet_factory):
    """firewalld needs a D-Bus system bus: each host has its own /run, so it gets its own bus."""
    host = fleet.Host(7)
    fleet.down([host])
    fleet_factory([host.index])
    sh_in(host, "sh", "-c", "mkdir -p /run/dbus && dbus-daemon --system --fork && firewalld")
    for _attempt in range(60):
        if fleet.exec_in(host, ["firewall-cmd", "--state"]).returncode == 0:
            break
        sh_in(host, "sleep", "0.5")
    yield host
    fleet.down([host])  # kills dbus-daemon and firewalld with every other process of the namespace


def _inventory(tmp: Path, host: fleet.Host, **extra: object) -> Path:
    inv = fleet.inventory([host])
    inv["all"]["hosts"][host.name].update(extra)  # type: ignore[index]
    path = tmp / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def test_ufw(ufw_host, tmp_path: Path) -> None:
    host = ufw_host
    inv = _inventory(tmp_path, host)
    res = run_playbook(ROLE_PLAY, tmp_path, inventory=inv, extra_vars={"firewall_backend": "ufw"}, check=True)
    assert_ok(res)
    assert "Status: inactive" in sh_in(host, "ufw", "status")

    # default deny on an inactive ufw: a change without a rollback, refused before anything changes
    ev = {"firewall_backend": "ufw", "firewall_default_deny": True}
    res = run_playbook(ROLE_PLAY, tmp_path, inventory=inv, extra_vars=ev)
    assert res.rc != 0 and "cannot undo by itself" in res.stdout
    assert "Status: inactive" in sh_in(host, "ufw", "status")

    # issue 13, defect 3: without default deny, enabling ufw must not bring its own default DROP
    ev = {"firewall_backend": "ufw", "firewall_http3": True}
    res = run_playbook(ROLE_PLAY, tmp_path, inventory=inv, extra_vars=ev)
    assert_ok(res)
    status = sh_in(host, "ufw", "status", "verbose")
    assert "Status: active" in status and "allow (incoming)" in status
    for rule in ("22/tcp", "80/tcp", "443/tcp", "443/udp", "80/tcp (v6)", "443/tcp (v6)"):
        assert rule in status
    with listeners(host, [80, 443, 8080]):
        for address in (host.ipv4, host.ipv6):
            assert tcp_state(address, 80) == "open"
            assert tcp_state(address, 8080) == "open"  # nothing closed that was open before

    # the admin turns ufw's default to deny; then default deny is accepted (allow rules only)
    sh_in(host, "ufw", "default", "deny", "incoming")
    ev = {"firewall_default_deny": True, "firewall_http3": True}
    res = run_playbook(ROLE_PLAY, tmp_path, inventory=inv, extra_vars=ev)
    assert_ok(res)
    info = task_result(res, "Find out which firewall the host runs and the port of this SSH connection", host.name)
    assert info["backend"] == "ufw"
    assert res.changed() == 0
    with listeners(host, [80, 443, 8080]):
        for address in (host.ipv4, host.ipv6):
            assert tcp_state(address, 443) == "open"
            assert tcp_state(address, 8080) == "filtered"


def test_firewalld(firewalld_host, tmp_path: Path) -> None:
    host = firewalld_host
    # ansible.posix.firewalld needs the firewall Python bindings: Debian's python3 has them
    inv = _inventory(tmp_path, host, ansible_python_interpreter="/usr/bin/python3")
    res = run_playbook(ROLE_PLAY, tmp_path, inventory=inv, check=True)
    assert_ok(res)
    assert "80/tcp" not in sh_in(host, "firewall-cmd", "--list-ports")

    res = run_playbook(ROLE_PLAY, tmp_path, inventory=inv)
    assert_ok(res)
    info = task_result(res, "Find out which firewall the host runs and the port of this SSH connection", host.name)
    assert info["backend"] == "firewalld"
    for args in (["--list-ports"], ["--permanent", "--list-ports"]):
        ports = sh_in(host, "firewall-cmd", *args).split()
        assert {"22/tcp", "80/tcp", "443/tcp"} <= set(ports)
    with listeners(host, [80, 443, 8080]):
        for address in (host.ipv4, host.ipv6):
            assert tcp_state(address, 80) == "open"
            assert tcp_state(address, 443) == "open"
            assert tcp_state(address, 8080) != "open"  # the zone rejects what it does not allow

    res = run_playbook(ROLE_PLAY, tmp_path, inventory=inv)
    assert_ok(res)
    assert res.changed() == 0
