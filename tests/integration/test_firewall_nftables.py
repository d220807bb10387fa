"""Firewall role on nftables hosts of the fleet (real SSH, own network/mount namespaces)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.fleet import fleet

from .firewall_support import (
    ROLE_PLAY,
    assert_ok,
    cut_new_ssh,
    dhcpv6_reply_arrives,
    echo,
    inventory,
    listeners,
    neighbour_discovery_works,
    no_mux,
    rolled_back,
    run_role,
    sh_in,
    ssh_session,
    task_result,
    tcp_state,
    uncut,
    wait_for,
)
from .harness import run_playbook

FOREIGN = "table inet f2b-table"


def add_foreign_table(host: fleet.Host) -> None:
    """A fake fail2ban table with its own input chain and a ban, as fail2ban's nftables action makes."""
    sh_in(host, "nft", "add", "table", "inet", "f2b-table")
    sh_in(host, "nft", "add", "chain", "inet", "f2b-table", "f2b-chain", "{ type filter hook input priority -1; }")
    sh_in(host, "nft", "add", "rule", "inet", "f2b-table", "f2b-chain", "ip", "saddr", "198.18.0.99", "drop")


@pytest.fixture(scope="module")
def hosts(fleet_factory):
    fleet.down([fleet.Host(1), fleet.Host(2)])  # start from pristine hosts
    return fleet_factory([1, 2])


def test_nftables_opens_80_443_keeps_foreign_and_ssh(hosts, tmp_path: Path) -> None:
    host = hosts[0]
    add_foreign_table(host)
    before_foreign = sh_in(host, "nft", "list", "table", "inet", "f2b-table")

    # check mode first: nothing may change
    res = run_role(tmp_path, host, check=True, diff=True)
    assert_ok(res)
    assert res.changed() > 0
    assert "portail_https" not in sh_in(host, "nft", "list", "tables")

    res = run_role(tmp_path, host, {"firewall_default_deny": True}, diff=True)
    assert_ok(res)
    assert res.changed() > 0
    info = task_result(
        res, "Open the ports atomically, confirm over a new connection, probe them from the controller", host.name
    )
    assert info["backend"] == "nftables" and 22 in info["ssh_ports"]
    assert info["probe"]["80"]["state"] in ("open", "refused")

    # what keeps the host's addresses stays accepted (issue 13, defect 5)
    assert dhcpv6_reply_arrives(host).startswith("got reply fe80:")
    assert neighbour_discovery_works(host)
    ruleset = sh_in(host, "nft", "list", "ruleset")
    assert "table inet portail_https" in ruleset
    assert "tcp dport { 22, 80, 443 } accept" in ruleset  # SSH kept although the inputs never named it
    assert sh_in(host, "nft", "list", "table", "inet", "f2b-table") == before_foreign
    assert 'include "/etc/nftables.d/portail_https.nf[t]"' in sh_in(host, "cat", "/etc/nftables.conf")
    assert sh_in(host, "nft", "-c", "-f", "/etc/nftables.d/portail_https.nft") == ""

    with listeners(host, [80, 443, 8080]):
        for address in (host.ipv4, host.ipv6):
            assert tcp_state(address, 80) == "open"
            assert tcp_state(address, 443) == "open"
            assert tcp_state(address, 8080) == "filtered"  # default deny drops, no RST
        assert tcp_state(host.ipv4, 22) == "open"

    # second run: nothing to do
    res = run_role(tmp_path, host, {"firewall_default_deny": True})
    assert_ok(res)
    assert res.changed() == 0

    # a missing include target never breaks the boot configuration (issue 13, defect 4)
    saved = sh_in(host, "cat", "/etc/nftables.d/portail_https.nft")
    sh_in(host, "rm", "/etc/nftables.d/portail_https.nft")
    assert fleet.exec_in(host, ["nft", "-c", "-f", "/etc/nftables.conf"]).returncode == 0
    sh_in(host, "sh", "-c", f"cat > /etc/nftables.d/portail_https.nft <<'EOF'\n{saved}EOF")

    # check mode on the converged host reports nothing either
    res = run_role(tmp_path, host, {"firewall_default_deny": True}, check=True)
    assert_ok(res)
    assert res.changed() == 0


def test_nftables_ssh_session_survives_default_deny(hosts, tmp_path: Path) -> None:
    host = hosts[1]
    with ssh_session(host) as session:
        assert echo(session, "before") == "echo:before"
        res = run_role(tmp_path, host, {"firewall_default_deny": True, "firewall_http3": True})
        assert_ok(res)
        assert echo(session, "after") == "echo:after"
    assert "udp dport 443 accept" in sh_in(host, "nft", "list", "table", "inet", "portail_https")
    # a new SSH connection works too (the role itself confirmed its rollback over one)
    res = run_playbook(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n",
        tmp_path,
        inventory=inventory(tmp_path, host),
    )
    assert_ok(res)
    # back to no default deny: policy accept, the table stays ours
    res = run_role(tmp_path, host, {"firewall_default_deny": False})
    assert_ok(res)
    assert "policy accept" in sh_in(host, "nft", "list", "table", "inet", "portail_https")


def test_rollback_restores_when_the_controller_is_cut_off(hosts, tmp_path: Path) -> None:
    """Arm, apply a table that drops SSH, never confirm: the host puts the previous table back."""
    host = hosts[1]
    previous = sh_in(host, "nft", "list", "table", "inet", "portail_https")
    play = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Arm
      portail.https.firewall_rollback:
        state: armed
        timeout: 8
      register: rb
    - name: Lock ourselves out
      portail.https.nft_table:
        chains:
          - {name: input, type: filter, hook: input, policy: drop, rules: ['iifname "lo" accept']}
    - name: Reconnect
      ansible.builtin.meta: reset_connection
    - name: Confirm
      portail.https.firewall_rollback:
        state: confirmed
        id: "{{ rb.id }}"
"""
    res = run_playbook(
        play, tmp_path, inventory=inventory(tmp_path, host, ansible_ssh_common_args=_no_mux(), ansible_timeout=5)
    )
    assert res.rc != 0
    # the confirmation never got there (unreachable), or got there once the host had already undone the change
    assert res.failed(host.name) >= 1, res.failures()
    wait_for(
        lambda: sh_in(host, "nft", "list", "table", "inet", "portail_https") == previous,
        60,
        "the rollback job to restore the table",
    )
    assert tcp_state(host.ipv4, 22) == "open"
    assert "rolled-back" in sh_in(host, "sh", "-c", "ls /run/portail-https/rollback/*/")


def test_bad_input_changes_nothing(hosts, tmp_path: Path) -> None:
    host = hosts[0]
    before = sh_in(host, "nft", "list", "ruleset")
    for bad in (
        {"firewall_backend": "pf"},
        {"firewall_extra_ports": [{"port": 70000}]},
        {"firewall_rollback_timeout": 1},
        {"firewall_nftables_table": "bad;name"},
    ):
        res = run_role(tmp_path, host, bad)
        assert res.rc != 0 and res.failed(host.name) == 1
        # rejected by the role's argument spec or by firewall_apply's own checks, before any change
        assert any(
            m in res.stdout
            for m in (
                "Validation of arguments failed",
                "ports must be integers from 1 to 65535",
                "rollback_timeout must be at least 5 seconds",
                "nft_table must be a letter",
            )
        ), res.stdout[-2000:]
    assert sh_in(host, "nft", "list", "ruleset") == before


def _no_mux() -> str:
    return no_mux()


@pytest.fixture
def pristine(fleet_factory):
    host = fleet.Host(5)
    fleet.down([host])
    fleet_factory([host.index])
    yield host
    fleet.down([host])


def test_rollback_restores_every_file_it_touched(pristine, tmp_path: Path) -> None:
    """Issue 13, defect 4: the role's change is cut off before its confirmation; the host undoes it, and
    /etc/nftables.conf (include line included), our table file and the ruleset are as they were."""
    host = pristine
    conf_before = sh_in(host, "cat", "/etc/nftables.conf")
    inv = inventory(tmp_path, host, ansible_timeout=5)
    ping = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    assert_ok(run_playbook(ping, tmp_path, inventory=inv))  # the multiplexed connection now exists
    cut_new_ssh(host)  # from now on new SSH connections are dropped (the change "cut us off")
    res = run_playbook(
        ROLE_PLAY,
        tmp_path,
        inventory=inv,
        extra_vars={"firewall_default_deny": True, "firewall_rollback_timeout": 8},
    )
    assert res.rc != 0
    wait_for(lambda: rolled_back(host), 60, "the rollback job to restore")
    uncut(host)
    assert sh_in(host, "cat", "/etc/nftables.conf") == conf_before
    assert fleet.exec_in(host, ["test", "-e", "/etc/nftables.d/portail_https.nft"]).returncode != 0
    assert "portail_https" not in sh_in(host, "nft", "list", "tables")
    assert fleet.exec_in(host, ["nft", "-c", "-f", "/etc/nftables.conf"]).returncode == 0
    assert tcp_state(host.ipv4, 22) == "open"


def test_confirm_waits_for_a_running_restore(pristine, tmp_path: Path) -> None:
    """Issue 13, defect 6: a confirmation that lands while the restore runs must not kill it half-way and
    report success. The restore is held half-way by a named pipe in place of a saved file."""
    host = pristine
    sh_in(host, "sh", "-c", "echo original > /etc/portail-test-file")
    inv = inventory(tmp_path, host)
    arm = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Arm
      portail.https.firewall_rollback:
        state: armed
        timeout: 5
        files: [/etc/portail-test-file]
"""
    res = run_playbook(arm, tmp_path, inventory=inv)
    assert_ok(res)
    job = task_result(res, "Arm", host.name)["path"]
    sh_in(host, "sh", "-c", f"rm {job}/file-0 && mkfifo {job}/file-0")
    wait_for(lambda: fleet.exec_in(host, ["test", "-e", f"{job}/restore.log"]).returncode == 0, 30, "the restore")
    confirm = f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: Confirm
      portail.https.firewall_rollback:
        state: confirmed
        id: "{job.rsplit("/", 1)[1]}"
"""
    outcome: dict[str, object] = {}
    thread = threading.Thread(target=lambda: outcome.update(res=run_playbook(confirm, tmp_path, inventory=inv)))
    thread.start()
    time.sleep(3)  # the confirmation is now waiting (or, before the fix, has already "succeeded")
    fleet.exec_in(host, ["timeout", "5", "sh", "-c", f"echo restored > {job}/file-0"])
    thread.join(120)
    result = task_result(outcome["res"], "Confirm", host.name)  # type: ignore[arg-type]
    assert result.get("failed"), result
    assert "restored the previous firewall state" in result["msg"]
    assert sh_in(host, "cat", "/etc/portail-test-file") == "restored\n"
