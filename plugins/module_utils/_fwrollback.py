# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dead man's switch for firewall changes (runs on Python >= 3.9, stdlib only).

``arm`` writes, into a fresh directory under /run, the commands that undo a firewall change (each with
the file it reads on stdin) and copies of the files the change may touch, then starts a detached job
(own session, no open descriptors, so the SSH session that started it can go) that sleeps ``timeout``
seconds and then restores everything unless the ``confirmed`` marker exists.

``confirm`` - run over a *new* connection after the change - and the restore are mutually exclusive:
both hold the job's ``lock`` (flock) while they decide and act. A confirmation that arrives while the
restore runs waits for it to finish and then reports that the change was undone; a restore that wakes
up after a confirmation sees the marker and does nothing.

Only one job may be pending per host: a second change is refused until the first is confirmed or
undone, so two runs never snapshot each other's unconfirmed state.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import time
import typing as t
import uuid

from ansible_collections.portail.https.plugins.module_utils._hostfiles import open_regular

ID_RE = re.compile(r"^[0-9a-f]{32}$")
BASE_DIR = "/run/portail-https/rollback"
CONFIRM_WAIT = 120.0


class RollbackError(Exception):
    pass


class Step(t.NamedTuple):
    """One restore command: argv, and the bytes it reads on stdin (None: nothing)."""

    argv: t.Sequence[str]
    stdin: t.Optional[str] = None


def _q(value: str) -> str:
    return shlex.quote(value)


def safe_dir(path: str, mode: int = 0o700) -> None:
    """Create `path` (and parents) owned by us, refusing symlinks and directories others can write."""
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path and not os.path.isdir(parent):
        safe_dir(parent, 0o755)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RollbackError(f"{path} is not a directory (symlink?): refusing to use it")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RollbackError(f"{path} is writable by others or not ours: refusing to use it")


def _copy_in(path: str, saved: str) -> bool:
    """Copy `path` (a regular file, not followed if a symlink) to `saved`; False when it does not exist."""
    src = open_regular(path)
    if src is None:
        return False
    with src:
        st = os.fstat(src.fileno())
        out = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.chmod(saved, stat.S_IMODE(st.st_mode))
    return True


def _step_line(job_dir: str, index: int, step: Step) -> str:
    cmd = " ".join(_q(a) for a in step.argv)
    if step.stdin is not None:
        cmd += f" < {_q(os.path.join(job_dir, f'step-{index}.in'))}"
    return cmd


def restore_script(job_dir: str, steps: t.Sequence[Step], files: t.Sequence[str], after: t.Sequence[Step] = ()) -> str:
    """The shell script the job runs: every step in order, then every file put back (or removed), then
    the `after` steps (a tool that must re-read the restored files: ``ufw reload``, ``firewall-cmd --reload``)."""
    lines = ["set -x"]
    lines += [_step_line(job_dir, index, step) for index, step in enumerate(steps)]
    for index, path in enumerate(files):
        saved = os.path.join(job_dir, f"file-{index}")
        tmp = f"{path}.portail-restore"
        lines.append(
            f"if [ -e {_q(saved)} ]; then cp -p {_q(saved)} {_q(tmp)} && mv -f {_q(tmp)} {_q(path)}; "
            f"else rm -f {_q(path)}; fi"
        )
    lines += [_step_line(job_dir, len(steps) + index, step) for index, step in enumerate(after)]
    return "\n".join(lines) + "\n"


def _job_script(job_dir: str, timeout: int) -> str:
    d = _q(job_dir)
    return (
        f"exec 9>>{d}/lock\n"
        f"sleep {int(timeout)}\n"
        "flock 9\n"
        f"[ -e {d}/confirmed ] && exit 0\n"
        f"sh {d}/restore.sh > {d}/restore.log 2>&1\n"
        f"date +%s > {d}/rolled-back\n"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pending(base_dir: str = BASE_DIR) -> list[str]:
    """Ids of jobs that are neither confirmed nor rolled back and whose process still runs."""
    found = []
    try:
        names = os.listdir(base_dir)
    except FileNotFoundError:
        return []
    for name in names:
        if not ID_RE.match(name):
            continue
        if status(name, base_dir) != "pending":
            continue
        try:
            with open(os.path.join(base_dir, name, "pid"), encoding="utf-8") as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError):
            continue
        if _alive(pid):
            found.append(name)
    return found


class Job:
    """A prepared (not yet started) rollback job."""

    def __init__(self, base_dir: str, timeout: int) -> None:
        if timeout < 5:
            raise RollbackError("timeout must be at least 5 seconds")
        safe_dir(base_dir)
        busy = pending(base_dir)
        if busy:
            raise RollbackError(
                f"another firewall change is waiting for its confirmation (rollback job {busy[0]}): "
                "wait for it to be confirmed or undone, then run again"
            )
        self.id = uuid.uuid4().hex
        self.timeout = int(timeout)
        self.dir = os.path.join(base_dir, self.id)
        os.mkdir(self.dir, 0o700)
        self.pid = 0

    def prepare(self, steps: t.Sequence[Step], files: t.Sequence[str], after: t.Sequence[Step] = ()) -> None:
        for index, step in enumerate([*steps, *after]):
            if step.stdin is not None:
                with open(os.path.join(self.dir, f"step-{index}.in"), "w", encoding="utf-8") as handle:
                    handle.write(step.stdin)
        for index, path in enumerate(files):
            _copy_in(path, os.path.join(self.dir, f"file-{index}"))
        with open(os.path.join(self.dir, "restore.sh"), "w", encoding="utf-8") as handle:
            handle.write(restore_script(self.dir, steps, files, after))
        with open(os.path.join(self.dir, "job.sh"), "w", encoding="utf-8") as handle:
            handle.write(_job_script(self.dir, self.timeout))

    def start(self) -> dict[str, t.Any]:
        proc = subprocess.Popen(
            ["/bin/sh", os.path.join(self.dir, "job.sh")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
            cwd="/",
        )
        self.pid = proc.pid
        with open(os.path.join(self.dir, "pid"), "w", encoding="utf-8") as handle:
            handle.write(f"{proc.pid}\n")
        return {"id": self.id, "path": self.dir, "pid": proc.pid, "deadline": int(time.time()) + self.timeout}

    def applying(self) -> _locked:
        """Held while the change is applied: a timer that fires meanwhile (a slow multi-command change,
        a short timeout) waits for the change to finish, then restores; it never restores half-way."""
        return _locked(self.dir, CONFIRM_WAIT)

    def restore_now(self) -> str:
        """Undo at once (the change failed half-way): take the lock, run the restore, stop the timer."""
        with _locked(self.dir, CONFIRM_WAIT):
            if not os.path.exists(os.path.join(self.dir, "rolled-back")):
                with open(os.path.join(self.dir, "restore.log"), "w", encoding="utf-8") as log:
                    subprocess.run(
                        ["/bin/sh", os.path.join(self.dir, "restore.sh")], stdout=log, stderr=log, check=False
                    )
                with open(os.path.join(self.dir, "rolled-back"), "w", encoding="utf-8") as handle:
                    handle.write(f"{int(time.time())}\n")
            _kill(self.dir)
        with open(os.path.join(self.dir, "restore.log"), encoding="utf-8") as handle:
            return handle.read()


class _locked:
    def __init__(self, job_dir: str, wait: float) -> None:
        self.path = os.path.join(job_dir, "lock")
        self.wait = wait
        self.fd = -1

    def __enter__(self) -> _locked:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        end = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > end:
                    os.close(self.fd)
                    raise RollbackError(
                        f"the rollback job in {os.path.dirname(self.path)} has been restoring for more than "
                        f"{int(self.wait)} s; see restore.log there"
                    ) from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _kill(job_dir: str) -> None:
    try:
        with open(os.path.join(job_dir, "pid"), encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.killpg(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def status(job_id: str, base_dir: str = BASE_DIR) -> str:
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


def confirm(job_id: str, base_dir: str = BASE_DIR, wait: float = CONFIRM_WAIT) -> dict[str, t.Any]:
    """Cancel the pending restore, or fail if the restore ran (or is running: then wait for it first)."""
    current = status(job_id, base_dir)
    job_dir = os.path.join(base_dir, job_id)
    if current == "unknown":
        raise RollbackError(f"no rollback job {job_id} on this host (rebooted?)")
    if current == "confirmed":
        return {"changed": False, "status": "confirmed"}
    with _locked(job_dir, wait):
        if status(job_id, base_dir) == "rolled-back":
            raise RollbackError(
                f"the rollback job {job_id} restored the previous firewall state before the confirmation "
                f"arrived (the rollback timeout is too short for this connection?); see {job_dir}/restore.log"
            )
        with open(os.path.join(job_dir, "confirmed"), "w", encoding="utf-8") as handle:
            handle.write(f"{int(time.time())}\n")
        _kill(job_dir)
    shutil.rmtree(job_dir, ignore_errors=True)  # the snapshot is of no use any more
    return {"changed": True, "status": "confirmed"}
