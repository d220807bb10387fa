# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side of portail.https.webserver_apply: one read-only probe script and one switch script.

A web server role's no-op costs one SSH execution and no Python start: the probe reports in one
round trip whether the packages are installed, which certificates and keys exist, the server's
version text (the TLS profile depends on it), the state of every directory, module, link and file the
role manages (files by SHA-256, mode and owner, never read through a symlink) and, in diff mode, their
content. The controller renders the templates, compares, and only when something differs sends one
switch script: every new file is written next to its destination and renamed over it (the previous one
kept aside), then the server's own configuration test runs; if it fails, every destination gets its
previous state back and nothing is reloaded.

The framing (``<run_id> <kind> <word>...`` lines, trust checks) is the one of the certificate host
steps (``_hoststeps._shell``): no byte of a host file can forge a protocol line and paths never come
back from the host, results name the controller's items by index.
"""

from __future__ import annotations

import hashlib
import posixpath
import typing as t
from dataclasses import dataclass, field

from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _shell as sh

q = sh.q
#: what every managed file gets (configuration files are public, root's)
FILE_MODE = "644"
_NL = "\n"
DIR_MODE = "755"


@dataclass
class Layout:
    """What a role manages on a host; every path checked, every name checked."""

    packages: list[str] = field(default_factory=list)
    cert_paths: list[str] = field(default_factory=list)
    version_command: str = "true"
    #: (path, owner uid or "" for any) of directories that must exist with mode 0755
    dirs: list[tuple[str, str]] = field(default_factory=list)
    #: destination paths of the rendered files (content comes later)
    files: list[str] = field(default_factory=list)
    #: (link path, target) symlinks
    links: list[tuple[str, str]] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    mods_dir: str = ""
    enable_command: str = ""
    validate_command: list[str] = field(default_factory=list)
    #: the server's service, whose state the probe reads ("" = not asked)
    service: str = ""

    def check(self) -> Layout:
        for p in self.packages + self.modules + [self.service]:
            sh.check_name(p, "package, module or service name")
        self.cert_paths = [sh.check_path(p, "certificate path") for p in self.cert_paths]
        self.dirs = [(sh.check_path(p, "directory"), sh.check_name(u, "owner")) for p, u in self.dirs]
        self.files = [sh.check_path(p, "file") for p in self.files]
        self.links = [(sh.check_path(p, "link"), sh.check_path(s, "link target")) for p, s in self.links]
        self.absent = [sh.check_path(p, "path to remove") for p in self.absent]
        if self.modules:
            self.mods_dir = sh.check_path(self.mods_dir, "modules directory")
            sh.check_path(self.enable_command, "module enabling command")
        for path in self.files + [p for p, _s in self.links] + self.absent:
            if posixpath.dirname(path) in ("", "/"):
                raise ValueError(f"{path} must be inside a directory")
        if not self.validate_command:
            raise ValueError("the configuration test command is missing")
        return self

    def parents(self, change: t.Optional[Change] = None) -> list[str]:
        """Directories the switch script writes in (each checked to be root's and writable only by root):
        of every managed path, or only of those a change touches (a missing directory of a path to keep
        absent is nobody's concern)."""
        if change is None:
            paths = self.files + [p for p, _s in self.links] + self.absent
        else:
            paths = [self.files[i] for i, _c in change.files] + [self.links[i][0] for i in change.links]
            paths += [self.absent[i] for i in change.absent]
        out: list[str] = []
        for path in paths:
            d = posixpath.dirname(path)
            if d not in out:
                out.append(d)
        return out


# Reads a path without following it: "missing", "link", "other" (not a regular file: directory,
# FIFO, device...), or "reg HASH MODE UID GID NLINK".
_PROBE_FUNCS = r"""
hash() { openssl dgst -sha256 -r <"$1" 2>/dev/null | { read -r h _r; printf '%s' "$h"; }; }
node() {
  if [ -L "$3" ]; then say "$1" "$2" link
  elif [ ! -e "$3" ]; then say "$1" "$2" missing
  elif [ -f "$3" ]; then say "$1" "$2" reg "$(hash "$3")" $(stat -c '%a %u %g %h' -- "$3")
  elif [ -d "$3" ]; then say "$1" "$2" dir $(stat -c '%a %u %g' -- "$3")
  else say "$1" "$2" other; fi
}
pkg() {
  if command -v dpkg-query >/dev/null 2>&1; then
    case $(dpkg-query -W -f='${Status}' -- "$1" 2>/dev/null) in *" installed") return 0 ;; esac
  fi
  if command -v rpm >/dev/null 2>&1; then rpm -q --quiet -- "$1" 2>/dev/null && return 0; fi
  return 1
}
# The service state as the service module would find it, where it can be told without Python: systemd
# (is-active, is-enabled), or an init script (status; enabled = a start link in a multi-user runlevel).
# Anything else says "unknown" and the service module decides.
svc() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-active --quiet -- "$1" 2>/dev/null; then a=1; else a=0; fi
    if systemctl is-enabled --quiet -- "$1" 2>/dev/null; then e=1; else e=0; fi
  elif [ -f "/etc/init.d/$1" ] && command -v service >/dev/null 2>&1; then
    if service "$1" status >/dev/null 2>&1 </dev/null; then a=1; else a=0; fi
    e=0; for l in /etc/rc2.d/S??"$1" /etc/rc3.d/S??"$1" /etc/rc4.d/S??"$1" /etc/rc5.d/S??"$1"; do
      [ -e "$l" ] && e=1; done
  else say svc unknown; return 0; fi
  say svc "$a" "$e"
}
"""


def probe_script(layout: Layout, run_id: str, *, diff: bool, os_release: bool = False) -> str:
    """The read-only probe; with os_release, also the text of /etc/os-release (the OS family picks the layout)."""
    out = [*sh.prelude(run_id), _PROBE_FUNCS]
    if os_release:
        out.append('say osr $(b64 "$(head -c 16384 /etc/os-release 2>/dev/null)")')
    for i, p in enumerate(layout.packages):
        out.append(f"if pkg {q(p)}; then say pkg {i} 1; else say pkg {i} 0; fi")
    for i, p in enumerate(layout.cert_paths):
        out.append(f"if [ -e {q(p)} ]; then say cert {i} 1; else say cert {i} 0; fi")
    for i, (p, _u) in enumerate(layout.dirs):
        out.append(f"node dir {i} {q(p)}")
    for i, p in enumerate(layout.files):
        out.append(f"node file {i} {q(p)}")
        if diff:
            out.append(f"[ -f {q(p)} ] && [ ! -L {q(p)} ] && blk {i} <{q(p)}")
    for i, (p, target) in enumerate(layout.links):
        out.append(f'if [ -L {q(p)} ] && [ "$(readlink -- {q(p)})" = {q(target)} ]; then say link {i} ok; fi')
    for i, p in enumerate(layout.absent):
        out.append(f"if [ -e {q(p)} ] || [ -L {q(p)} ]; then say gone {i} 1; fi")
    for i, m in enumerate(layout.modules):
        out.append(f"[ -e {q(layout.mods_dir + '/' + m + '.load')} ] || say mod {i} 0")
    if layout.service:
        out.append(f"svc {q(layout.service)}")
    # the version text is read by the controller only (base64), it never frames a line
    out.append(f'say ver $(b64 "$( ({layout.version_command}) 2>&1 | head -c 65536)")')
    out.append("say done")
    # no newline at the end: Ansible appends " && sleep 0" to the command
    return "\n".join(out)


@dataclass
class Probe:
    packages_missing: list[str]
    cert_exists: list[bool]
    dirs_wrong: list[int]
    files: list[list[str]]
    contents: dict[int, bytes]
    links_ok: list[bool]
    present: list[bool]
    modules_missing: list[str]
    version: str
    #: (running, enabled at boot) of the service, None when not asked or not known without the service module
    service: t.Optional[tuple[bool, bool]] = None
    #: the text of /etc/os-release, when asked
    os_release: str = ""


def read_probe(lines: list[list[str]], layout: Layout) -> Probe:
    def words(kind: str, i: int) -> t.Optional[list[str]]:
        for w in lines:
            if len(w) >= 2 and w[0] == kind and w[1] == str(i):
                return w[2:]
        return None

    missing = [p for i, p in enumerate(layout.packages) if words("pkg", i) != ["1"]]
    certs = [words("cert", i) == ["1"] for i in range(len(layout.cert_paths))]
    wrong = []
    for i, (_p, owner) in enumerate(layout.dirs):
        w = words("dir", i) or ["missing"]
        if w[0] != "dir" or w[1:2] != [DIR_MODE] or (owner != "" and w[2:4] != [owner, owner]):
            wrong.append(i)
    files = [words("file", i) or ["missing"] for i in range(len(layout.files))]
    contents = {}
    for w in lines:
        if len(w) >= 3 and w[0] == "blk" and w[1].isdigit() and int(w[1]) < len(layout.files):
            contents[int(w[1])] = sh.unb64(w[2])
    links = [words("link", i) == ["ok"] for i in range(len(layout.links))]
    present = [words("gone", i) == ["1"] for i in range(len(layout.absent))]
    mods = [m for i, m in enumerate(layout.modules) if words("mod", i) == ["0"]]
    ver = sh.first(lines, "ver") or [""]
    svc = sh.first(lines, "svc") or []
    osr = sh.first(lines, "osr") or [""]
    service = (svc[0] == "1", svc[1] == "1") if len(svc) == 2 and set(svc) <= {"0", "1"} else None
    return Probe(
        missing,
        certs,
        wrong,
        files,
        contents,
        links,
        present,
        mods,
        sh.unb64(ver[0] if ver else "").decode("utf-8", "replace"),
        service,
        sh.unb64(osr[0] if osr else "").decode("utf-8", "replace"),
    )


#: the arguments a layout (one OS family's) may set
LAYOUT_KEYS = frozenset(
    {
        "packages",
        "version_command",
        "root_dirs",
        "sites_dir",
        "sites_enabled_dir",
        "templates",
        "absent",
        "modules",
        "mods_dir",
        "enable_command",
        "validate_command",
        "service",
    }
)


def pick_family(layouts: dict[str, t.Any], wanted: str) -> str:
    """The layout to use: the wanted family's, else the first one (the fallback)."""
    for name, values in layouts.items():
        if not isinstance(values, dict) or set(values) - LAYOUT_KEYS:
            raise ValueError(f"layouts.{name} must be a dict with keys among {', '.join(sorted(LAYOUT_KEYS))}")
    if wanted in layouts:
        return wanted
    return next(iter(layouts), "")


def service_ok(found: t.Optional[tuple[bool, bool]], state: str, enabled: t.Optional[bool]) -> bool:
    """Whether the probe saw the service as wanted (then the service module has nothing to do)."""
    if found is None:
        return False
    running, at_boot = found
    return running == (state == "started") and (enabled is None or at_boot == enabled)


def file_differs(state: list[str], content: bytes) -> bool:
    """Whether a managed file must be written: missing, a link, wrong bytes, mode or owner, other hard links."""
    if not state or state[0] != "reg" or len(state) < 6:
        return True
    digest, mode, uid, gid, nlink = state[1:6]
    return digest != hashlib.sha256(content).hexdigest() or (mode, uid, gid, nlink) != (FILE_MODE, "0", "0", "1")


@dataclass
class Change:
    files: list[tuple[int, bytes]]
    links: list[int]
    absent: list[int]
    modules: list[str]

    def __bool__(self) -> bool:
        return bool(self.files or self.links or self.absent or self.modules)


def switch_script(layout: Layout, change: Change, run_id: str) -> str:
    """Write, switch, test; on a failed test put every destination back as it was."""
    parents = layout.parents(change)
    out = [*sh.prelude(run_id), "umask 022", "BAKS=", "NEWS="]
    # refuse before any change: directories root's, not writable by group or others, up to /
    for i, d in enumerate(parents):
        out.append(f"trust {q(d)} || untrusted {i}")
    for i, (p, _s) in enumerate(layout.links):
        if i in change.links and layout.links[i][0] in layout.files:
            raise ValueError(f"{p} is both a file and a link")
    # A destination that is a directory (or a FIFO...) is never replaced.
    targets = [layout.files[i] for i, _c in change.files] + [layout.links[i][0] for i in change.links]
    for i, p in enumerate(targets):
        out.append(f"if [ -d {q(p)} ] && [ ! -L {q(p)} ]; then die isdir {i}; fi")
    out.append(
        r"""aside() { if [ -e "$1" ] || [ -L "$1" ]; then mv -fT -- "$1" "$2" || restore write; BAKS="$BAKS
$1"; else NEWS="$NEWS
$1"; fi; }
restore() {
  printf '%s\n' "$BAKS" | while IFS= read -r f; do [ -n "$f" ] || continue
    d=${f%/*}; b=${f##*/}; mv -fT -- "$d/.$b.portail-$N.bak" "$f"; done
  printf '%s\n' "$NEWS" | while IFS= read -r f; do [ -n "$f" ] && rm -f -- "$f"; done
  printf '%s\n' "$TMPS" | while IFS= read -r f; do [ -n "$f" ] && rm -f -- "$f"; done
  die "$@"
}
TMPS="""
    )
    for i, content in change.files:
        p = layout.files[i]
        d, b = posixpath.split(p)
        out.append(f'T="{_dq(d)}/.{_dq(b)}.portail-$N.new"; TMPS="$TMPS{_NL}$T"')
        out.append(f'rm -f -- "$T" && printf \'%s\' {q(content.decode("utf-8"))} >"$T" || restore write')
        out.append('chown 0:0 -- "$T" && chmod 644 -- "$T" || restore write')
    for i in change.links:
        p, target = layout.links[i]
        d, b = posixpath.split(p)
        out.append(f'T="{_dq(d)}/.{_dq(b)}.portail-$N.new"; TMPS="$TMPS{_NL}$T"')
        out.append(f'rm -f -- "$T" && ln -s -- {q(target)} "$T" || restore write')
    # the switch: each destination set aside (same directory), the new one renamed over it
    for i, _c in change.files:
        out.append(_switch_one(layout.files[i]))
    for i in change.links:
        out.append(_switch_one(layout.links[i][0]))
    for i in change.absent:
        p = layout.absent[i]
        d, b = posixpath.split(p)
        out.append(f'aside {q(p)} "{_dq(d)}/.{_dq(b)}.portail-$N.bak"')
    for m in change.modules:
        out.append(f"{q(layout.enable_command)} -q {q(m)} >/dev/null 2>&1 || restore module")
    test = " ".join(q(a) for a in layout.validate_command)
    out.append(f'OUT=$({test} 2>&1) || {{ say test "$(b64 "$(printf %s "$OUT" | head -c 8192)")"; restore test; }}')
    out.append('printf \'%s\\n\' "$BAKS" | while IFS= read -r f; do [ -n "$f" ] || continue')
    out.append('  d=${f%/*}; b=${f##*/}; rm -f -- "$d/.$b.portail-$N.bak"; done')
    out.append("say done")
    # no newline at the end: Ansible appends " && sleep 0" to the command
    return "\n".join(out)


def _dq(text: str) -> str:
    """text inside a double-quoted shell string (paths are checked: no control characters)."""
    return "".join("\\" + c if c in '\\"$`' else c for c in text)


def _switch_one(path: str) -> str:
    d, b = posixpath.split(path)
    new = f'"{_dq(d)}/.{_dq(b)}.portail-$N.new"'
    bak = f'"{_dq(d)}/.{_dq(b)}.portail-$N.bak"'
    return f"aside {q(path)} {bak}; mv -fT -- {new} {q(path)} || restore write"


def explain(err: list[str], layout: Layout, server: str, change: t.Optional[Change] = None) -> str:
    kind, rest = (err[0] if err else "?"), err[1:]
    idx = int(rest[0]) if rest and rest[0].isdigit() else -1
    if kind == "need":
        return f"the host has no {rest[0] if rest else '?'}: install it"
    if kind == "untrusted":
        parents = layout.parents(change)
        where = parents[idx] if 0 <= idx < len(parents) else "?"
        bad = sh.unb64(rest[1]).decode("utf-8", "replace") if len(rest) > 1 else "?"
        return (
            f"refusing to write in {where}: {bad or 'a directory above it'} is not a directory owned by root that"
            " only root can write; make it so (chown root, chmod go-w). Nothing was changed"
        )
    if kind == "isdir":
        return "a destination is a directory: remove it; nothing was changed"
    if kind == "test":
        return (
            f"{server} refused the new configuration, the previous files are back in place and {server} was not"
            " reloaded"
        )
    if kind == "module":
        return f"{layout.enable_command} failed; the previous files are back in place"
    return f"{server} configuration could not be written ({' '.join(err)[:200]}); the previous files are back in place"
