"""Cut a server off for the processes of one test only: a cgroup v2 plus a rule in the test's own nft table.

The rig's DNS servers are shared by every test running at the same time, so a cut must not be global:
the run under test is started inside a fresh cgroup (``preexec_fn=cut.enter``) and the table
``inet portail_test_faults_<pid>_<n>`` drops, in the output hook, only the packets whose socket belongs
to that cgroup (``socket cgroupv2``). The rig's processes, other tests and the test process itself (which
checks what the servers hold) are untouched. The table and the cgroup are removed on close.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from pathlib import Path

NFT_CGROUP_BASE = Path("/sys/fs/cgroup")  # nft resolves `socket cgroupv2` paths under this directory
_counter = itertools.count(1)


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
        except RuntimeError:
            self.close()
            raise

    def enter(self) -> None:
        """For ``preexec_fn``: move the starting child (and so all it starts) into the cgroup."""
        (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def cut(self, address: str, port: int = 53) -> None:
        """Drop UDP and TCP from this cgroup to address:port (no answer, as with a dead server or link)."""
        for proto in ("udp", "tcp"):
            nft(
                "add",
                "rule",
                "inet",
                self.table,
                "out",
                "socket",
                "cgroupv2",
                "level",
                "1",
                f'"{self.nft_path}"',
                "ip",
                "daddr",
                address,
                proto,
                "dport",
                str(port),
                "drop",
            )

    def restore(self) -> None:
        """Remove every cut (the cgroup stays usable)."""
        nft("flush", "chain", "inet", self.table, "out")

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
