# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that a module reads and replaces on a managed host (runs on Python >= 3.9, stdlib only).

Every host file is treated as hostile: a symlink is never followed, only regular files are read, and a
file is replaced atomically (temporary file in the same directory, then rename) only in a directory
that belongs to the module's user and that nobody else may write.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import typing as t


class HostFileError(OSError):
    """A host file or directory that the module refuses to read or write in."""


def open_regular(path: str) -> t.Optional[t.BinaryIO]:
    """A regular file opened for reading, in binary (None if absent); refuses symlinks and other file types
    (a FIFO put in its place does not block: O_NONBLOCK, which means nothing for a regular file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HostFileError(f"{path} is a symlink: refusing to read or replace it") from exc
        raise
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise HostFileError(f"{path} is not a regular file")
    return handle


def read_file(path: str) -> t.Optional[str]:
    """Contents of a regular file, as text (None if absent); see open_regular."""
    handle = open_regular(path)
    if handle is None:
        return None
    with handle:
        return handle.read().decode("utf-8")


def write_file(path: str, content: str, mode: int) -> None:
    """Atomic replace of `path` (mode kept when it exists), in a directory only root may write."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o022 or st.st_uid != os.geteuid():
        raise HostFileError(f"{directory} is a symlink, not ours or writable by others: refusing to write in it")
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".portail-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
