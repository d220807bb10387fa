# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shell side shared by every host step: the prelude (framing, trust checks, ownership) and the parser.

Protocol: every line the controller reads is ``<run_id> <kind> <word>...`` where the words are digits,
fixed keywords or ``openssl base64 -A`` of bytes read on the host. The controller splits stdout on
``"\\n"`` only and ignores every line that does not start with the run id, so no byte of a host file can
start, end or forge a protocol line. Paths never come back from the host: results name the controller's
own paths by their index.
"""

from __future__ import annotations

import base64
import re
import shlex
import typing as t

RUN_ID_RE = re.compile(r"\A[A-Za-z0-9_-]{8,64}\Z")
NAME_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\Z")
PATH_RE = re.compile(r"\A/[^\x00-\x1f\x7f]*\Z")

q = shlex.quote

#: what to install when a command is missing (the step fails before changing anything)
PACKAGES = {"openssl": "openssl (1.1.1 or later)", "getent": "libc-bin (getent)"}

PRELUDE = r"""umask 077
LC_ALL=C
export LC_ALL
say() { printf '%s %s\n' "$N" "$*"; }
die() { say err "$@"; exit 3; }
b64() { printf '%s' "$1" | openssl base64 -A; }
blk() { printf '%s blk %s ' "$N" "$1"; head -c 1048576 | openssl base64 -A; printf '\n'; }
need() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die need "$c"; done; }
need openssl stat head id readlink
ME=$(id -u)
# trust DIR: DIR and every directory above it are directories of root (or of us) that nobody else can
# write (OpenSSH StrictModes; a root-owned sticky directory such as /tmp is accepted above DIR, as no one
# else can rename what root made in it). Sets R to DIR's physical path, or BAD to the offending one.
trust() {
  R=$(cd -P -- "$1" 2>/dev/null && pwd -P) || { BAD=$1; return 1; }
  set -- /
  tp=; tr=${R#/}
  while [ -n "$tr" ]; do
    tc=${tr%%/*}; tp=$tp/$tc; set -- "$@" "$tp"
    case $tr in */*) tr=${tr#*/} ;; *) tr= ;; esac
  done
  tn=$#; ti=0
  while read -r tu tm tf; do
    ti=$((ti + 1)); eval "BAD=\${$ti}"
    case $tu in 0 | "$ME") ;; *) return 1 ;; esac
    [ "$tf" = directory ] || return 1
    if [ $((0$tm & 022)) -ne 0 ]; then
      [ "$ti" -lt "$tn" ] && [ "$tu" = 0 ] && [ $((0$tm & 01000)) -ne 0 ] || return 1
    fi
  done <<TRUST_EOF
$(stat -c '%u %a %F' -- "$@" 2>/dev/null)
TRUST_EOF
  [ "$ti" = "$tn" ] || { BAD=$R; return 1; }
  BAD=
}
untrusted() { die untrusted "$1" "$(b64 "$BAD")"; }
# mk1 IDX DIR: make DIR (root, 0755) in its trusted parent, unless it exists
mk1() {
  { [ -e "$2" ] || [ -L "$2" ]; } && return 0
  tpar=${2%/*}
  trust "${tpar:-/}" || untrusted "$1"
  mkdir -m 755 -- "$2" || die mkdir "$1"
  say mk "$1"
}
# fix IDX FILE MODE: give a regular file (never a link: callers check, in trusted directories) its
# mode, owner and group, by number, never following links
fix() {
  set -- "$1" "$2" "$3" $(stat -c '%a %u %g %h' -- "$2")
  [ "$7" = 1 ] || { say links "$1"; return 0; }
  if [ "$4" != "$3" ]; then
    [ "$CHECK" = 1 ] || chmod -- "$3" "$2" || die chmod "$1"; say fixed "$1"
  fi
  if [ -n "$OU" ] && [ "$5" != "$OU" ]; then
    [ "$CHECK" = 1 ] || chown -h -- "$OU" "$2" || die chown "$1"; say fixed "$1"
  fi
  if [ -n "$OG" ] && [ "$6" != "$OG" ]; then
    [ "$CHECK" = 1 ] || chgrp -h -- "$OG" "$2" || die chown "$1"; say fixed "$1"
  fi
  return 0
}
# ids OWNER GROUP: numeric OU / OG (empty: leave as is); user.group is a user name like any other
ids() {
  OU=; OG=
  if [ -n "$1" ]; then
    case $1 in *[!0-9]*) OU=$(id -u -- "$1" 2>/dev/null) ;; *) OU=$1 ;; esac
    case $OU in '' | *[!0-9]*) die nouser ;; esac
  fi
  if [ -n "$2" ]; then
    case $2 in
      *[!0-9]*)
        if command -v getent >/dev/null 2>&1; then OG=$(getent group "$2" 2>/dev/null)
        else OG=$(grep -e "^$2:" /etc/group 2>/dev/null | head -n 1); fi
        OG=${OG#*:}; OG=${OG#*:}; OG=${OG%%:*} ;;
      *) OG=$2 ;;
    esac
    case $OG in '' | *[!0-9]*) die nogroup ;; esac
  fi
}
"""


def prelude(run_id: str) -> list[str]:
    if not RUN_ID_RE.match(run_id):
        raise ValueError("run_id must be 8 to 64 characters of [A-Za-z0-9_-]")
    return [f"N={run_id}", PRELUDE]


def parse(stdout: str, run_id: str) -> list[list[str]]:
    """Protocol lines as word lists; anything not starting with the run id is ignored.

    Split on "\n" only; one "\r" at the end of a line is the pty of an ssh session (``-tt``) and goes (no
    protocol word can hold one: they are digits, keywords or base64)."""
    prefix = run_id + " "
    lines = [line[:-1] if line.endswith("\r") else line for line in stdout.split("\n")]
    return [line[len(prefix) :].split(" ") for line in lines if line.startswith(prefix)]


def unb64(value: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeError):
        return b""


def first(lines: list[list[str]], kind: str) -> t.Optional[list[str]]:
    for words in lines:
        if words and words[0] == kind:
            return words[1:]
    return None


def indices(lines: list[list[str]], kind: str, limit: int) -> list[int]:
    """Indices reported on ``kind`` lines, kept only when they name one of the controller's own items."""
    found: list[int] = []
    for words in lines:
        if len(words) >= 2 and words[0] == kind and words[1].isdigit() and int(words[1]) < limit:
            if int(words[1]) not in found:
                found.append(int(words[1]))
    return found


def octal(value: t.Any, what: str) -> str:
    """A mode as the octal digits chmod and ``stat -c %a`` use (0o640 or "0640" -> "640")."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return format(value, "o")
    if isinstance(value, str) and re.match(r"\A0?[0-7]{3,4}\Z", value):
        return format(int(value, 8), "o")
    raise ValueError(f"{what} must be an octal mode such as '0644', got {value!r}")


def check_path(path: t.Any, what: str) -> str:
    if not isinstance(path, str) or not PATH_RE.match(path) or "/../" in path + "/" or path.endswith("/."):
        raise ValueError(f"{what} must be an absolute path without control characters or '..', got {path!r}")
    return path.rstrip("/") or "/"


def check_name(value: t.Any, what: str) -> str:
    if value is None or value == "":
        return ""
    text = str(value)
    if not NAME_RE.match(text):
        raise ValueError(f"{what} must be a user or group name or number, got {value!r}")
    return text


def prefixes(path: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b', '/a/b/c']."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
