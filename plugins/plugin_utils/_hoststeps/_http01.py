# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""http-01 token files: placed and removed by walking into each directory, never through a link.

A webroot may belong to the web user; what we write under it may not: ``.well-known`` and
``acme-challenge`` (or a ``challenge_dir``) must be real directories of root that nobody else can write,
checked after stepping into each of them (``cd -P`` then ``pwd -P``, so a link swapped in meanwhile is
caught), and every file is written relative to ``.``.
"""

from __future__ import annotations

import posixpath
import re
import typing as t

from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _shell as sh

q = sh.q
CHALLENGE_SUBDIR = (".well-known", "acme-challenge")
TOKEN_RE = re.compile(r"\A[A-Za-z0-9_-]{1,256}\Z")
KEYAUTH_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,1024}\Z")

HTTP01_PRELUDE = r"""
# sdir IDX NAME MAKE: step into ./NAME, a real directory of root that nobody else can write
sdir() {
  [ -L "$2" ] && die tokdir "$1" link
  if [ ! -e "$2" ]; then
    [ "$3" = 1 ] || die tokdir "$1" missing
    mkdir -m 755 -- "$2" || die mkdir "$1"
    say mk "$1"
  fi
  [ -d "$2" ] || die tokdir "$1" notdir
  sh_base=$(pwd -P)
  cd -P -- "$2" || die tokdir "$1" notdir
  [ "$(pwd -P)" = "${sh_base%/}/$2" ] || die tokdir "$1" link
  set -- "$1" $(stat -c '%u %a' .)
  case $2 in 0 | "$ME") ;; *) die tokdir "$1" owner ;; esac
  [ $((0$3 & 022)) -eq 0 ] || die tokdir "$1" mode
}
# put IDX TOKEN CONTENT: ./TOKEN written whole (temporary name, rename)
put() {
  rm -f -- ".$2.portail" && printf '%s' "$3" >".$2.portail" && chmod 644 ".$2.portail" &&
    mv -Tf -- ".$2.portail" "$2" || { rm -f -- ".$2.portail"; die put "$1"; }
  say tok "$1"
}
"""


class Layout:
    """Targets, the directories that may be made for them and the token files, each by index."""

    def __init__(self, webroots: t.Sequence[str], challenge_dirs: t.Sequence[str], tokens: t.Sequence[str]) -> None:
        self.roots = [sh.check_path(w, "webroot") for w in webroots]
        self.challenge_dirs = [sh.check_path(c, "challenge_dir") for c in challenge_dirs]
        for token in tokens:
            if not TOKEN_RE.match(token):
                raise ValueError(f"refusing http-01 token {token!r}: not base64url")
        self.tokens = list(tokens)
        self.dirs: list[str] = []
        self.walks: list[tuple[str, list[tuple[int, str, bool]]]] = []  # (start, [(dir idx, name, may make)])
        for root in self.roots:
            steps = []
            path = root
            for name in CHALLENGE_SUBDIR:
                path = posixpath.join(path, name)
                self.dirs.append(path)
                steps.append((len(self.dirs) - 1, name, True))
            self.walks.append((root, steps))
        for c in self.challenge_dirs:
            self.dirs.append(c)
            self.walks.append((posixpath.dirname(c) or "/", [(len(self.dirs) - 1, posixpath.basename(c), False)]))
        self.files = [
            posixpath.join(self.dirs[steps[-1][0]], token) for _start, steps in self.walks for token in self.tokens
        ]


def place_script(args: t.Mapping[str, t.Any], run_id: str) -> tuple[str, Layout]:
    items = list(args.get("tokens") or [])
    for item in items:
        if not KEYAUTH_RE.match(str(item.get("content", ""))):
            raise ValueError(f"refusing the http-01 key authorization for token {item.get('token')!r}")
    layout = Layout(args.get("webroot") or [], args.get("challenge_dir") or [], [i.get("token", "") for i in items])
    out = [*sh.prelude(run_id), HTTP01_PRELUDE]
    n = 0
    for k, (start, steps) in enumerate(layout.walks):
        out.append(f"cd -P -- {q(start)} 2>/dev/null || die nowebroot {k}")
        for idx, name, make in steps:
            out.append(f"sdir {idx} {q(name)} {1 if make else 0}")
        for item in items:
            out.append(f"put {n} {q(item['token'])} {q(item['content'])}")
            n += 1
    out.append("say done")
    return "\n".join(out), layout


def cleanup_lines(files: t.Sequence[str], created_dirs: t.Sequence[str]) -> list[str]:
    """Remove the token files (from trusted directories only) and the directories made for them."""
    out = []
    for i, given in enumerate(files):
        path = sh.check_path(given, "files")
        name = posixpath.basename(path)
        if not TOKEN_RE.match(name):
            raise ValueError(f"refusing to remove {path!r}: not an http-01 token file")
        out.append(
            f"if cd -P -- {q(posixpath.dirname(path))} 2>/dev/null; then set -- $(stat -c '%u %a' .);"
            f' if {{ [ "$1" = 0 ] || [ "$1" = "$ME" ]; }} && [ $((0$2 & 022)) -eq 0 ]; then rm -f -- {q(name)};'
            f" fi; {{ [ -e {q(name)} ] || [ -L {q(name)} ]; }} && say left {i}; fi; cd /"
        )
    dirs = [sh.check_path(d, "created_dirs") for d in created_dirs]
    for i, d in sorted(enumerate(dirs), key=lambda x: -len(x[1])):
        parent, name = posixpath.dirname(d) or "/", posixpath.basename(d)
        out.append(
            f"cd -P -- {q(parent)} 2>/dev/null && [ -d {q(name)} ] && [ ! -L {q(name)} ] &&"
            f" rmdir -- {q(name)} 2>/dev/null && say rmd {i}; cd /"
        )
    return out


def cleanup_script(args: t.Mapping[str, t.Any], run_id: str) -> str:
    lines = cleanup_lines(args.get("files") or [], args.get("created_dirs") or [])
    return "\n".join([*sh.prelude(run_id), *lines, "say done"])
