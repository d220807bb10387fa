"""Helpers for the firewall role tests: listeners inside a fleet host, probes from outside, SSH sessions."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fleet import fleet

from .harness import PlaybookResult, run_playbook

ROLE_PLAY = """
- hosts: all
  gather_facts: false
  roles:
    - role: portail.https.firewall
"""

LISTENER = r"""
import socket, sys, selectors
sel = selectors.DefaultSelector()
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    for port in map(int, sys.argv[1:]):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port)); s.listen(16); sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept(); conn.close()
"""


def tcp_state(address: str, port: int, timeout: float = 2.0) -> str:
    """open / refused / filtered / unreachable, seen from the root namespace (outside the host)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "filtered"
    except OSError:
        return "unreachable"
    finally:
        sock.close()
    return "open"


@contextmanager
def listeners(host: fleet.Host, ports: list[int]) -> Iterator[None]:
    """Tiny TCP listeners on IPv4 and IPv6 inside the host's namespaces."""
    pid = fleet.sshd_pid(host)
    proc = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-n", "-m", "-u", "--", fleet.PYTHON, "-c", LISTENER, *map(str, ports)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


def sh_in(host: fleet.Host, *argv: str) -> str:
    res = fleet.exec_in(host, list(argv))
    assert res.returncode == 0, f"{argv}: {res.stderr}"
    return res.stdout


def inventory(tmp: Path, host: fleet.Host, **extra: Any) -> Path:
    inv = fleet.inventory([host])
    inv["all"]["hosts"][host.name].update(extra)  # type: ignore[index]
    path = tmp / f"inventory-{host.name}.json"
    path.write_text(json.dumps(inv))
    return path


def run_role(tmp: Path, host: fleet.Host, extra_vars: dict[str, Any] | None = None, **kw: Any) -> PlaybookResult:
    return run_playbook(ROLE_PLAY, tmp, inventory=inventory(tmp, host), extra_vars=extra_vars, **kw)


def assert_ok(res: PlaybookResult) -> None:
    assert res.rc == 0 and res.failed() == 0, "\n".join(res.failures()) + "\n" + res.stderr[-2000:]


@contextmanager
def ssh_session(host: fleet.Host) -> Iterator[subprocess.Popen[str]]:
    """An interactive SSH session (its own TCP connection, no multiplexing) echoing lines back."""
    proc = subprocess.Popen(
        [
            "ssh",
            "-i",
            str(fleet.STATE / "id_ed25519"),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            f"root@{host.ipv4}",
            'while read line; do echo "echo:$line"; done',
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def echo(proc: subprocess.Popen[str], line: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    ready, _w, _x = select.select([proc.stdout], [], [], 15)
    return proc.stdout.readline().strip() if ready else "<no answer>"


def wait_for(predicate: Any, deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def task_result(res: PlaybookResult, name: str, host: str) -> dict[str, Any]:
    """Result of the last task whose name is `name`, with or without the role prefix."""
    found: dict[str, Any] | None = None
    for play in res.data.get("plays", []):
        for task in play.get("tasks", []):
            full = task["task"]["name"]
            if (full == name or full.endswith(" : " + name)) and host in task["hosts"]:
                found = task["hosts"][host]
    if found is None:
        raise KeyError(f"no task named {name!r} ran on {host}")
    return found


SLOW_CALLBACK = '''
from __future__ import annotations
import os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    """A slow controller: every loop item result costs PORTAIL_SLOW seconds (as if each item took that long)."""
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "portail_slow"
    CALLBACK_NEEDS_ENABLED = True

    def _slow(self, *args, **kwargs):
        time.sleep(float(os.environ.get("PORTAIL_SLOW", "1")))

    v2_runner_item_on_ok = v2_runner_item_on_failed = v2_runner_item_on_skipped = _slow
'''


def slow_env(tmp: Path, seconds: float, forks: int) -> dict[str, str]:
    """Environment for run_playbook: a controller that is slow on every loop item, and `forks` forks."""
    plugins = tmp / "callback_plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "portail_slow.py").write_text(SLOW_CALLBACK)
    return {
        "ANSIBLE_CALLBACK_PLUGINS": str(plugins),
        "ANSIBLE_CALLBACKS_ENABLED": "portail_slow",
        "PORTAIL_SLOW": str(seconds),
        "ANSIBLE_FORKS": str(forks),
    }


def fleet_inventory(tmp: Path, hosts: list[fleet.Host], name: str = "inventory-fleet.json", **extra: Any) -> Path:
    inv = fleet.inventory(hosts)
    for host in hosts:
        inv["all"]["hosts"][host.name].update(extra)  # type: ignore[index]
    path = tmp / name
    path.write_text(json.dumps(inv))
    return path


def no_mux() -> str:
    """ssh options for one fresh TCP connection per command (proves SSH is reachable now)."""
    return (
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
        " -o ControlMaster=no -o ControlPath=none"
    )


def fresh_ping(tmp: Path, hosts: list[fleet.Host]) -> PlaybookResult:
    """A new SSH connection to every host (no multiplexing), as its inventory user (with become if set)."""
    play = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    inv = fleet_inventory(tmp, hosts, "inventory-ping.json", ansible_ssh_common_args=no_mux(), ansible_timeout=10)
    return run_playbook(play, tmp, inventory=inv, env={"ANSIBLE_FORKS": "10"})


def link_local(host_side: bool, host: fleet.Host) -> str:
    """The fe80:: address of the host's eth0 (host_side) or of the bridge in the root namespace."""
    argv = ["ip", "-6", "-o", "addr", "show", "scope", "link"]
    if host_side:
        out = sh_in(host, *argv, "dev", "eth0")
    else:
        out = subprocess.run([*argv, "dev", fleet.BRIDGE], capture_output=True, text=True, check=True).stdout
    return out.split("inet6 ", 1)[1].split("/", 1)[0]


UDP_LISTENER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 546))
s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
try:
    data, peer = s.recvfrom(512)
    print("got", data.decode(), peer[0], peer[1], flush=True)
except socket.timeout:
    print("nothing", flush=True)
"""


def dhcpv6_reply_arrives(host: fleet.Host) -> str:
    """Send what a DHCPv6 server's reply looks like (fe80:: udp 547 -> client's fe80:: udp 546) to the
    host and return what its client port saw ("got ..." or "nothing")."""
    wait_for(lambda: "tentative" not in sh_in(host, "ip", "-6", "addr", "show", "dev", "eth0"), 10, "DAD")
    target = link_local(True, host)
    source = link_local(False, host)
    pid = fleet.sshd_pid(host)
    proc = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-n", "-m", "-u", "--", fleet.PYTHON, "-c", UDP_LISTENER, "4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        index = socket.if_nametoindex(fleet.BRIDGE)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((source, 547, 0, index))
        for _attempt in range(3):
            sock.sendto(b"reply", (target, 546, 0, index))
            time.sleep(0.2)
        sock.close()
        return proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def neighbour_discovery_works(host: fleet.Host) -> bool:
    """Forget the neighbour entries on both sides, then reach the host over IPv6 (needs NS/NA both ways)."""
    subprocess.run(["ip", "-6", "neigh", "flush", "dev", fleet.BRIDGE], check=False, capture_output=True)
    fleet.exec_in(host, ["ip", "-6", "neigh", "flush", "dev", "eth0"])
    return tcp_state(host.ipv6, fleet.ssh_port(host), timeout=5) == "open"


def cut_new_ssh(host: fleet.Host) -> None:
    """From now on new SSH connections to the host are dropped (a table of the admin's, SYN only: a rule on
    "ct state new" would also drop the first packet conntrack sees of a running connection), while the
    multiplexed connection Ansible already holds keeps working: a change that "cut us off"."""
    port = fleet.ssh_port(host)
    sh_in(host, "nft", "add", "table", "inet", "cutoff")
    sh_in(host, "nft", "add", "chain", "inet", "cutoff", "in", "{ type filter hook input priority -10; }")
    sh_in(host, "nft", "add", "rule", "inet", "cutoff", "in", f"tcp dport {port} tcp flags & (syn | ack) == syn drop")


def uncut(host: fleet.Host) -> None:
    sh_in(host, "nft", "delete", "table", "inet", "cutoff")


def rolled_back(host: fleet.Host) -> bool:
    """Whether a rollback job on the host has restored the previous state."""
    out = sh_in(host, "sh", "-c", "ls /run/portail-https/rollback/*/rolled-back 2>/dev/null || true")
    return "rolled-back" in out
