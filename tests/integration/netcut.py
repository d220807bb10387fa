"""Cut a server off for the processes of one test only: a cgroup v2 plus a rule in the test's own nft table.

The same cgroup lets a test kill a whole run, whatever sessions its processes made (``kill``).

The rig's DNS servers are shared by every test running at the same time, so a cut must not be global:
the run under test is started inside a fresh cgroup (``preexec_fn=cut.enter``) and the table
``inet portail_test_faults_<pid>_<n>`` diverts or drops, in the output hooks, only the packets whose socket
belongs to that cgroup (``socket cgroupv2``), so that they get no answer. The rig's processes, other
tests and the test process itself (which checks what the servers hold) are untouched.
The table and the cgroup are removed on close.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from pathlib import Path

NFT_CGROUP_BASE = Path("/sys/fs/cgroup")  # nft resolves `socket cgroupv2` paths under this directory
_counter = itertools.count(1)
BLACKHOLE_PORT = 9  # discard: nothing of the rig listens there


def cgroup2_mount() -> Path:
    """Where the unified (v2) hierarchy is mounted; RuntimeError if nowhere."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    raise RuntimeError("no cgroup2 hierarchy is mounted: cannot cut a server for one run only")


def nft(*args: str) -> None:
    proc = subprocess.run(["nft", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"nft {' '.join(args)}: {proc.stderr.strip()}")


class NetCut:
    """A cgroup and an nft table; ``cut(address, port)`` drops its processes' traffic to that server."""

    def __init__(self) -> None:
        n = next(_counter)
        self.name = f"portail-test-faults-{os.getpid()}-{n}"
        self.table = f"portail_test_faults_{os.getpid()}_{n}"
        self.cgroup = cgroup2_mount() / self.name
        try:
            self.nft_path = str(self.cgroup.relative_to(NFT_CGROUP_BASE))
        except ValueError:
            raise RuntimeError(f"the cgroup2 hierarchy ({self.cgroup.parent}) is not under {NFT_CGROUP_BASE}") from None
        self.cgroup.mkdir()
        try:
            nft("add", "table", "inet", self.table)
            nft("add", "chain", "inet", self.table, "out", "{ type filter hook output priority 0; policy accept; }")
            nft("add", "chain", "inet", self.table, "nat", "{ type nat hook output priority -100; policy accept; }")
        except RuntimeError:
            self.close()
            raise

    def enter(self) -> None:
        """For ``preexec_fn``: move the starting child (and so all it starts) into the cgroup."""
        (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def cut(self, address: str, port: int = 53) -> None:
        """This cgroup's packets to address:port get no answer, as with a dead server or link.

        A plain drop in the output hook would fail the sender's sendto() at once with EPERM, which no
        real network does; so UDP is sent on to a closed port of the same address (the ICMP error it
        causes never reaches an unconnected socket: the query times out) and TCP SYNs are dropped
        (connect() times out after its retransmissions).
        """
        match = ["socket", "cgroupv2", "level", "1", f'"{self.nft_path}"', "ip", "daddr", address]
        nft(
            "add",
            "rule",
            "inet",
            self.table,
            "nat",
            *match,
            "udp",
            "dport",
            str(port),
            "dnat",
            "ip",
            "to",
            f"{address}:{BLACKHOLE_PORT}",
        )
        nft("add", "rule", "inet", self.table, "out", *match, "tcp", "dport", str(port), "drop")

    def restore(self) -> None:
        """Remove every cut (the cgroup stays usable)."""
        nft("flush", "chain", "inet", self.table, "out")
        nft("flush", "chain", "inet", self.table, "nat")

    def pids(self) -> list[int]:
        return [int(x) for x in (self.cgroup / "cgroup.procs").read_text().split()]

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL every process of the cgroup, also those that left the run's process group.

        (Ansible's workers call setsid(), so killing the run's process group leaves them running.)
        """
        deadline = time.monotonic() + timeout
        while self.pids():
            try:
                (self.cgroup / "cgroup.kill").write_text("1")
            except OSError:  # a kernel before 5.14: one by one
                for pid in self.pids():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {self.pids()} of {self.cgroup} survive SIGKILL")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True, check=False)
        deadline = time.monotonic() + 30
        while self.cgroup.exists():
            try:
                self.cgroup.rmdir()
            except OSError:
                # processes of a killed run may still be exiting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def __enter__(self) -> NetCut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
