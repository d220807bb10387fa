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
    assert res.rc == 0 and res.failed() == 0, res.stdout[-4000:] + res.stderr[-2000:]


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
