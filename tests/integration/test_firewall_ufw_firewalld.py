"""Firewall role with ufw and firewalld, both really running inside fleet hosts (issue 13, defects 3 and 7):
every change is armed, applied, reconnected and confirmed, or undone by the host; what the role owns is
exact (a port removed from the inputs is closed again) and what it does not own stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet import fleet

from .firewall_support import (
    ROLE_PLAY,
    assert_ok,
    cut_new_ssh,
    fresh_ping,
    inventory,
    listeners,
    rolled_back,
    sh_in,
    task_result,
    tcp_state,
    uncut,
    wait_for,
)
from .harness import PlaybookResult, run_playbook

PING = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
UFW_FILES = ["/etc/ufw/user.rules", "/etc/ufw/user6.rules", "/etc/ufw/ufw.conf", "/etc/default/ufw"]
INFO = "Open the ports atomically, confirm over a new connection, probe them from the controller"


@pytest.fixture(scope="module")
def ufw_host(fleet_factory):
    host = fleet.Host(6)
    fleet.down([host])
    fleet_factory([host.index])
    sh_in(host, "ufw", "allow", "8081/tcp")  # the admin's own rule, made before any role run
    yield host
    fleet.down([host])


@pytest.fixture(scope="module")
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
    for scope in ([], ["--permanent"]):  # the admin's own port, runtime and permanent
        sh_in(host, "firewall-cmd", *scope, "--add-port=8081/tcp")
    yield host
    fleet.down([host])  # kills dbus-daemon and firewalld with every other process of the namespace


def _role(tmp: Path, host: fleet.Host, extra_vars: dict[str, object], **kw: object) -> PlaybookResult:
    # the system's python3, as on a real host (earlier versions of the role needed its firewalld bindings)
    inv = inventory(tmp, host, ansible_timeout=5, ansible_python_interpreter="/usr/bin/python3")
    return run_playbook(ROLE_PLAY, tmp, inventory=inv, extra_vars=extra_vars, **kw)  # type: ignore[arg-type]


def _cut_off_run(tmp: Path, host: fleet.Host, extra_vars: dict[str, object]) -> PlaybookResult:
    """A role run whose confirmation never arrives: the controller holds one multiplexed connection, then
    every new connection is dropped, so the reconnect after the change fails."""
    assert_ok(run_playbook(PING, tmp, inventory=inventory(tmp, host, ansible_timeout=5)))
    cut_new_ssh(host)
    try:
        res = _role(tmp, host, {**extra_vars, "firewall_rollback_timeout": 8})
        assert res.rc != 0
        wait_for(lambda: rolled_back(host), 60, "the rollback job to restore")
    finally:
        uncut(host)
    return res


def _ufw_skeleton(line: str) -> bool:
    words = line.split()
    return words[0] == "-N" or (words[0] == "-A" and len(words) == 4 and words[3].startswith("ufw-"))


def _ufw_state(host: fleet.Host) -> dict[str, str]:
    state = {path: sh_in(host, "cat", path) for path in UFW_FILES}
    state["status"] = sh_in(host, "ufw", "status", "verbose")
    # what filters packets: the built-in policies and every rule except ufw's own chains and the bare jumps
    # into them, which "ufw disable" leaves in place (empty), as on any host where ufw was enabled once
    state["filter"] = "\n".join(line for line in sh_in(host, "iptables", "-S").splitlines() if not _ufw_skeleton(line))
    return state


def test_ufw_rollback_when_the_controller_is_cut_off(ufw_host, tmp_path: Path) -> None:
    """Defect 3: default deny on an inactive ufw (enable + incoming deny) is armed first; cut off before the
    confirmation, the host puts ufw's files and its inactive state back by itself, and SSH is reachable."""
    host = ufw_host
    before = _ufw_state(host)
    assert "Status: inactive" in before["status"]
    _cut_off_run(tmp_path, host, {"firewall_backend": "ufw", "firewall_default_deny": True})
    assert _ufw_state(host) == before
    assert "-P INPUT ACCEPT" in before["filter"] and "-A " not in before["filter"]
    assert tcp_state(host.ipv4, 22) == "open"
    assert_ok(fresh_ping(tmp_path, [host]))


def test_ufw_exact_default_deny_check_mode(ufw_host, tmp_path: Path) -> None:
    """Defects 3 and 7 on ufw: enabling without default deny drops nothing; default deny is accepted (armed);
    a port removed from the inputs is closed again, the admin's own rule stays; turning default deny off
    puts the incoming default back; check mode and diff change nothing; second runs change nothing."""
    host = ufw_host
    extra = {"firewall_backend": "ufw", "firewall_extra_ports": [{"port": 8080}], "firewall_http3": True}
    before = _ufw_state(host)
    res = _role(tmp_path, host, extra, check=True, diff=True)
    assert_ok(res)
    assert res.changed() > 0
    assert _ufw_state(host) == before

    # without default deny, enabling ufw must not bring its own default DROP
    assert_ok(_role(tmp_path, host, extra))
    status = sh_in(host, "ufw", "status", "verbose")
    assert "Status: active" in status and "allow (incoming)" in status
    for rule in ("22/tcp", "80/tcp", "443/tcp", "443/udp", "8080/tcp", "80/tcp (v6)", "443/tcp (v6)"):
        assert rule in status
    with listeners(host, [8082]):
        assert tcp_state(host.ipv4, 8082) == "open"

    deny = {**extra, "firewall_default_deny": True}
    res = _role(tmp_path, host, deny, diff=True)
    assert_ok(res)
    assert task_result(res, INFO, host.name)["backend"] == "ufw"
    assert "deny (incoming)" in sh_in(host, "ufw", "status", "verbose")
    with listeners(host, [80, 443, 8080, 8081, 8082]):
        for address in (host.ipv4, host.ipv6):
            for port in (80, 443, 8080, 8081):
                assert tcp_state(address, port) == "open", (address, port)
        assert tcp_state(host.ipv4, 8082) == "filtered"
    res = _role(tmp_path, host, deny)
    assert_ok(res)
    assert res.changed() == 0

    # defect 7: 8080 leaves the inputs, so it is closed; the admin's 8081 stays
    deny.pop("firewall_extra_ports")
    before = _ufw_state(host)
    res = _role(tmp_path, host, deny, check=True, diff=True)
    assert_ok(res)
    assert res.changed() > 0 and _ufw_state(host) == before
    assert_ok(_role(tmp_path, host, deny))
    status = sh_in(host, "ufw", "status")
    assert "8080" not in status and "8081/tcp" in status and "8081/tcp (v6)" in status
    with listeners(host, [443, 8080, 8081]):
        for address in (host.ipv4, host.ipv6):
            assert tcp_state(address, 8080) == "filtered", address
            assert tcp_state(address, 8081) == "open", address
            assert tcp_state(address, 443) == "open", address
    res = _role(tmp_path, host, deny)
    assert_ok(res)
    assert res.changed() == 0

    # default deny off: the incoming default the role changed goes back to allow
    assert_ok(_role(tmp_path, host, extra))
    assert "allow (incoming)" in sh_in(host, "ufw", "status", "verbose")
    with listeners(host, [8082]):
        assert tcp_state(host.ipv4, 8082) == "open"
    res = _role(tmp_path, host, extra)
    assert_ok(res)
    assert res.changed() == 0


def _firewalld_state(host: fleet.Host) -> dict[str, str]:
    return {
        "runtime": sh_in(host, "firewall-cmd", "--list-all"),
        "permanent": sh_in(host, "firewall-cmd", "--permanent", "--list-all"),
        "zones": sh_in(host, "sh", "-c", "cd /etc/firewalld/zones && ls -a && cat *.xml"),
    }


def test_firewalld_rollback_when_the_controller_is_cut_off(firewalld_host, tmp_path: Path) -> None:
    """Defect 3 on firewalld: the change is armed first; cut off before the confirmation, the host puts the
    zone's permanent configuration back, reloads, and SSH is reachable."""
    host = firewalld_host
    before = _firewalld_state(host)
    ev = {"firewall_default_deny": True, "firewall_extra_ports": [{"port": 8080}]}
    _cut_off_run(tmp_path, host, ev)
    assert _firewalld_state(host) == before
    assert tcp_state(host.ipv4, 22) == "open"
    assert_ok(fresh_ping(tmp_path, [host]))


def test_firewalld_exact_check_mode(firewalld_host, tmp_path: Path) -> None:
    """Defect 7 on firewalld: a port removed from the inputs is closed again (runtime and permanent), the
    admin's own port stays; check mode and diff change nothing; second runs change nothing."""
    host = firewalld_host
    ev: dict[str, object] = {"firewall_extra_ports": [{"port": 8080}]}
    before = _firewalld_state(host)
    res = _role(tmp_path, host, ev, check=True, diff=True)
    assert_ok(res)
    assert res.changed() > 0
    assert _firewalld_state(host) == before

    res = _role(tmp_path, host, ev, diff=True)
    assert_ok(res)
    assert task_result(res, INFO, host.name)["backend"] == "firewalld"
    for args in (["--list-ports"], ["--permanent", "--list-ports"]):
        ports = set(sh_in(host, "firewall-cmd", *args).split())
        assert {"22/tcp", "80/tcp", "443/tcp", "8080/tcp", "8081/tcp"} <= ports, ports
    with listeners(host, [80, 443, 8080, 8081, 8082]):
        for address in (host.ipv4, host.ipv6):
            for port in (80, 443, 8080, 8081):
                assert tcp_state(address, port) == "open", (address, port)
            assert tcp_state(address, 8082) != "open"  # the zone rejects what it does not allow
    res = _role(tmp_path, host, ev)
    assert_ok(res)
    assert res.changed() == 0

    before = _firewalld_state(host)
    res = _role(tmp_path, host, {}, check=True, diff=True)
    assert_ok(res)
    assert res.changed() > 0 and _firewalld_state(host) == before
    assert_ok(_role(tmp_path, host, {}))
    for args in (["--list-ports"], ["--permanent", "--list-ports"]):
        ports = set(sh_in(host, "firewall-cmd", *args).split())
        assert "8080/tcp" not in ports and "8081/tcp" in ports, ports
    with listeners(host, [8080, 8081]):
        for address in (host.ipv4, host.ipv6):
            assert tcp_state(address, 8080) != "open", address
            assert tcp_state(address, 8081) == "open", address
    res = _role(tmp_path, host, {})
    assert_ok(res)
    assert res.changed() == 0
