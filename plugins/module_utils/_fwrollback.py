# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dead man's switch for firewall changes (runs on Python >= 3.9, stdlib only).

``arm`` snapshots what a firewall change may break (our nftables table, or the whole iptables/ip6tables
rulesets, plus the persistence files) into a directory under /run, writes a restore script and starts a
detached job (own session, no open descriptors, so the SSH session that started it can go) that sleeps
``timeout`` seconds and then runs the restore script unless the ``confirmed`` marker exists.
``confirm`` - run over a *new* connection after the change - writes the marker and kills the job.
If the change cut the controller off, nobody confirms, and the host restores the previous state by
itself; the job leaves a ``rolled-back`` marker and a log next to the snapshot.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import typing as t
import uuid

Runner = t.Callable[[list[str]], tuple[int, str, str]]
ID_RE = re.compile(r"^[0-9a-f]{32}$")


class RollbackError(Exception):
    pass


def _q(value: str) -> str:
    return shlex.quote(value)


def _snapshot_files(job_dir: str, files: t.Sequence[str]) -> list[str]:
    lines = []
    for index, path in enumerate(files):
        saved = os.path.join(job_dir, f"file-{index}")
        if os.path.exists(path):
            with open(path, "rb") as src, open(saved, "wb") as dst:
                dst.write(src.read())
            lines.append(f"cp -p {_q(saved)} {_q(path)}")
        else:
            lines.append(f"rm -f {_q(path)}")
    return lines


def _snapshot_nftables(job_dir: str, run: Runner, nft: str, family: str, table: str) -> list[str]:
    rc, out, err = run([nft, "list", "table", family, table])
    if rc == 0:
        saved = os.path.join(job_dir, "table.nft")
        with open(saved, "w", encoding="utf-8") as handle:
            handle.write(f"table {family} {table} {{\n}}\ndelete table {family} {table}\n{out}")
        return [f"{_q(nft)} -f {_q(saved)}"]
    if "No such file or directory" not in err and "does not exist" not in err:
        raise RollbackError(f"cannot snapshot table {family} {table}: {err.strip()}")
    return [f"{_q(nft)} delete table {family} {table} || true"]


def _snapshot_iptables(job_dir: str, run: Runner, commands: t.Sequence[str]) -> list[str]:
    lines = []
    for command in commands:
        rc, out, err = run([f"{command}-save"])
        if rc != 0:
            raise RollbackError(f"{command}-save failed: {err.strip()}")
        saved = os.path.join(job_dir, f"{os.path.basename(command)}.rules")
        with open(saved, "w", encoding="utf-8") as handle:
            handle.write(out)
        lines.append(f"{_q(command + '-restore')} < {_q(saved)}")
    return lines


def arm(
    run: Runner,
    backend: str,
    timeout: int,
    base_dir: str = "/run/portail-https/rollback",
    nft: str = "nft",
    family: str = "inet",
    table: str = "portail_https",
    iptables_commands: t.Sequence[str] = ("iptables", "ip6tables"),
    files: t.Sequence[str] = (),
) -> dict[str, t.Any]:
    if timeout < 5:
        raise RollbackError("timeout must be at least 5 seconds")
    job_id = uuid.uuid4().hex
    job_dir = os.path.join(base_dir, job_id)
    os.makedirs(job_dir, mode=0o700)
    if backend == "nftables":
        restore = _snapshot_nftables(job_dir, run, nft, family, table)
    elif backend == "iptables":
        restore = _snapshot_iptables(job_dir, run, iptables_commands)
    else:
        raise RollbackError(f"no rollback for backend {backend}")
    restore += _snapshot_files(job_dir, files)
    with open(os.path.join(job_dir, "restore.sh"), "w", encoding="utf-8") as handle:
        handle.write("set -x\n" + "\n".join(restore) + "\n")
    d = _q(job_dir)
    job = (
        f"sleep {int(timeout)}\n"
        f"[ -e {d}/confirmed ] && exit 0\n"
        f"sh {d}/restore.sh > {d}/restore.log 2>&1\n"
        f"date +%s > {d}/rolled-back\n"
    )
    with open(os.path.join(job_dir, "job.sh"), "w", encoding="utf-8") as handle:
        handle.write(job)
    proc = subprocess.Popen(
        ["/bin/sh", os.path.join(job_dir, "job.sh")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,
        cwd="/",
    )
    with open(os.path.join(job_dir, "pid"), "w", encoding="utf-8") as handle:
        handle.write(f"{proc.pid}\n")
    return {"id": job_id, "path": job_dir, "pid": proc.pid, "deadline": int(time.time()) + int(timeout)}


def status(job_id: str, base_dir: str = "/run/portail-https/rollback") -> str:
    """pending, confirmed, rolled-back or unknown."""
    if not ID_RE.match(job_id):
        raise RollbackError(f"invalid rollback id {job_id!r}")
    job_dir = os.path.join(base_dir, job_id)
    if not os.path.isdir(job_dir):
        return "unknown"
    if os.path.exists(os.path.join(job_dir, "rolled-back")):
        return "rolled-back"
    if os.path.exists(os.path.join(job_dir, "confirmed")):
        return "confirmed"
    return "pending"


def confirm(job_id: str, base_dir: str = "/run/portail-https/rollback") -> dict[str, t.Any]:
    """Cancel the pending restore. Fails if the restore already ran (the change was undone)."""
    current = status(job_id, base_dir)
    job_dir = os.path.join(base_dir, job_id)
    if current == "unknown":
        raise RollbackError(f"no rollback job {job_id} on this host (rebooted?)")
    if current == "rolled-back":
        raise RollbackError(f"the rollback job {job_id} already restored the previous firewall state")
    if current == "confirmed":
        return {"changed": False, "status": "confirmed"}
    with open(os.path.join(job_dir, "confirmed"), "w", encoding="utf-8") as handle:
        handle.write(f"{int(time.time())}\n")
    try:
        with open(os.path.join(job_dir, "pid"), encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.killpg(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass
    if status(job_id, base_dir) == "rolled-back":
        raise RollbackError(f"the rollback job {job_id} restored the previous state before the confirmation")
    shutil.rmtree(job_dir, ignore_errors=True)  # the snapshot is of no use any more
    return {"changed": True, "status": "confirmed"}
