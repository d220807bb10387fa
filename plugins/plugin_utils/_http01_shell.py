# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""http-01 token files written by one POSIX shell command instead of a module run.

Placing a token file is the only host step of an issuance that needs no Python: a module run costs a
Python start, the AnsiballZ payload and its imports (about 0.1 s of CPU per host on a small controller),
a shell command costs a fork. The script checks every target directory first, writes each file to a
temporary name and renames it (never a half-written token), and reports what it created on stdout
(``dir:<path>`` and ``file:<path>`` lines) so the caller can remove exactly that afterwards, also when
it stops half-way.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import typing as t

CHALLENGE_SUBDIR = ".well-known/acme-challenge"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_KEYAUTH_RE = re.compile(r"^[A-Za-z0-9_.-]{1,1024}$")
_PATH_RE = re.compile(r"^/[^\x00-\x1f\x7f]*$")

_PRELUDE = r"""umask 022
fail() { echo "error:$1"; exit 3; }
mk() {
  [ -d "$1" ] && return 0
  mk "$(dirname "$1")" || return 1
  mkdir "$1" 2>/dev/null || [ -d "$1" ] || return 1
  echo "dir:$1"
}
put() {
  printf '%s' "$3" > "$1/.$2.portail-tmp" && mv -f "$1/.$2.portail-tmp" "$1/$2" && echo "file:$1/$2" && return 0
  rm -f "$1/.$2.portail-tmp"
  return 1
}
"""


class PlacementError(Exception):
    """Bad input for the script (refused before anything runs on the host)."""


def targets(webroots: t.Sequence[str], challenge_dirs: t.Sequence[str]) -> list[str]:
    return [posixpath.join(w, CHALLENGE_SUBDIR) for w in webroots] + list(challenge_dirs)


def build_script(
    webroots: t.Sequence[str], challenge_dirs: t.Sequence[str], tokens: t.Sequence[t.Mapping[str, str]]
) -> str:
    """The shell command; every value is validated and quoted (tokens and key authorizations are base64url)."""
    for path in [*webroots, *challenge_dirs]:
        if not _PATH_RE.match(path):
            raise PlacementError(f"http-01 webroot must be an absolute path without control characters: {path!r}")
    for item in tokens:
        if not _TOKEN_RE.match(item.get("token", "")):
            raise PlacementError(f"refusing http-01 token {item.get('token')!r}: not base64url")
        if not _KEYAUTH_RE.match(item.get("content", "")):
            raise PlacementError(f"refusing http-01 key authorization for token {item['token']!r}")
    q = shlex.quote
    lines = [_PRELUDE]
    for root in [*webroots, *challenge_dirs]:
        lines.append(f"[ -d {q(root)} ] || fail {q('http-01 webroot does not exist: ' + root)}")
    for target in targets(webroots, challenge_dirs):
        lines.append(f"mk {q(target)} || fail {q('cannot create ' + target)}")
        for item in tokens:
            lines.append(
                f"put {q(target)} {q(item['token'])} {q(item['content'])} || "
                f"fail {q('cannot write ' + posixpath.join(target, item['token']))}"
            )
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def parse_output(stdout: str) -> dict[str, t.Any]:
    """Files and directories the script reported, and its error message if it stopped."""
    files: list[str] = []
    dirs: list[str] = []
    error = None
    for line in stdout.splitlines():
        kind, _sep, value = line.partition(":")
        if kind == "file" and value:
            files.append(value)
        elif kind == "dir" and value:
            dirs.append(value)
        elif kind == "error":
            error = value
    return {"files": files, "created_dirs": dirs, "error": error}
