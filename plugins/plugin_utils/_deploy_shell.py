# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deploying an issued certificate with one POSIX shell command instead of a module run.

The deploy step only moves bytes the controller already holds (the CA's PEM) and renames the pending key
the host made earlier, so it needs no Python on the host. The script does what the module's deploy step
does, in the same order: every new file is written to a temporary file in its own directory (mktemp),
given its owner, group and mode, and flushed; the current files are kept as ``.bak`` (hard link, or copy);
then the renames run back to back with the key last, and a failing rename puts the previous files back
from the backups. It reports ``written:``, ``backup:`` and ``error:`` lines on stdout.

Only numeric modes and plain user/group names are handled here; anything else goes through the module.
The caller checks beforehand that the certificate matches the CSR the pending key produced.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import typing as t

from ansible_collections.portail.https.plugins.module_utils._certhost import BACKUP_SUFFIX, META_SUFFIX, PENDING_SUFFIX

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
_PATH_RE = re.compile(r"^/[^\x00-\x1f\x7f]*$")
_PEM_RE = re.compile(r"^[A-Za-z0-9+/=\n -]*$")


def numeric_mode(value: t.Any) -> t.Optional[int]:
    """0o644 from 420, "0644" or "644"; None for symbolic modes (left to the module)."""
    if isinstance(value, int) and 0 <= value <= 0o7777:
        return value
    if isinstance(value, str) and re.match(r"^0?[0-7]{3,4}$", value):
        return int(value, 8)
    return None


def eligible(args: t.Mapping[str, t.Any]) -> bool:
    """Whether the shell path can do exactly what the module would."""
    if numeric_mode(args.get("mode", "0644")) is None or numeric_mode(args.get("key_mode", "0600")) is None:
        return False
    for who in (args.get("owner"), args.get("group")):
        if who is not None and not _NAME_RE.match(str(who)):
            return False
    paths = [args.get(k) for k in ("key_path", "cert_path", "chain_path", "fullchain_path")]
    paths += list(args.get("files") or []) + list(args.get("created_dirs") or [])
    return all(p is None or _PATH_RE.match(p) for p in paths)


def contents(cert_pem: str, chain_pem: str) -> tuple[str, str]:
    """(leaf PEM, chain PEM ending with a newline) the way the module writes them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certs = x509.load_pem_x509_certificates(cert_pem.encode("ascii"))
    if not certs:
        raise ValueError("the CA returned no certificate")
    leaf = certs[0].public_bytes(serialization.Encoding.PEM).decode("ascii")
    chain = chain_pem
    if chain and not chain.endswith("\n"):
        chain += "\n"
    return leaf, chain


def build_script(args: t.Mapping[str, t.Any]) -> str:
    q = shlex.quote
    key_path: str = args["key_path"]
    pending = key_path + PENDING_SUFFIX
    leaf, chain = contents(args["cert_pem"], args.get("chain_pem") or "")
    if not (_PEM_RE.match(leaf) and _PEM_RE.match(chain)):
        raise ValueError("unexpected characters in the PEM from the CA")
    mode = numeric_mode(args.get("mode", "0644"))
    key_mode = numeric_mode(args.get("key_mode", "0600"))
    files: list[tuple[str, str]] = [(args["cert_path"], leaf)]
    if args.get("chain_path"):
        files.append((args["chain_path"], chain))
    if args.get("fullchain_path"):
        files.append((args["fullchain_path"], leaf + chain))
    if args.get("meta") is not None:
        files.append((args["cert_path"] + META_SUFFIX, json.dumps(args["meta"], sort_keys=True) + "\n"))

    def attrs(target: str, file_mode: int) -> str:
        cmds = [f"chmod {file_mode:o} {target}"]
        if args.get("owner") is not None:
            cmds.append(f"chown {q(str(args['owner']))} {target}")
        if args.get("group") is not None:
            cmds.append(f"chgrp {q(str(args['group']))} {target}")
        return " && ".join(cmds)

    temps = [f"T{i}" for i in range(len(files))]
    named = [(temps[i], path, data) for i, (path, data) in enumerate(files)]
    out = ["umask 077"]
    out.append("cleanup() { rm -f " + " ".join(f'"${{{v}:-}}"' for v in temps) + " 2>/dev/null; }")
    out.append('fail() { cleanup; echo "error:$1"; exit 3; }')
    out.append(f"[ -f {q(pending)} ] || fail {q(f'no pending key {pending}: run the prepare step first')}")
    for path in [key_path] + [p for p, _d in files]:
        out.append(f"[ ! -d {q(path)} ] || fail {q(f'{path} is a directory')}")
    for var, path, data in named:
        directory = posixpath.dirname(path) or "/"
        out.append(
            f"{var}=$(mktemp {q(posixpath.join(directory, '.portail-XXXXXXXX'))}) || fail {q(f'cannot write {path}')}"
        )
        ref = f'"${var}"'
        out.append(f"printf '%s' {q(data)} > {ref} || fail {q(f'cannot write {path}')}")
        out.append(f"{attrs(ref, mode or 0o644)} || fail {q(f'cannot set owner, group or mode of {path}')}")
    out.append(f"{attrs(q(pending), key_mode or 0o600)} || fail {q(f'cannot set owner, group or mode of {pending}')}")
    out.append("sync -- " + " ".join(f'"${v}"' for v in temps) + " " + q(pending) + " 2>/dev/null || sync")
    switch = [(f'"${v}"', path) for v, path, _d in named] + [(q(pending), key_path)]
    if args.get("backup", True):
        for _src, path in [(None, key_path)] + [(None, p) for p, _d in files]:
            bak, tmp = path + BACKUP_SUFFIX, path + BACKUP_SUFFIX + ".tmp"
            out.append(
                f"if [ -e {q(path)} ]; then rm -f {q(tmp)}; "
                f"{{ ln {q(path)} {q(tmp)} 2>/dev/null || cp -p {q(path)} {q(tmp)}; }} && mv -f {q(tmp)} {q(bak)} "
                f"|| fail {q(f'cannot keep a backup of {path}')}; echo {q('backup:' + bak)}; fi"
            )
    restore = []
    for i, (_src, path) in enumerate(switch):
        bak = path + BACKUP_SUFFIX
        restore.append(f'if [ -n "${{D{i}:-}}" ] && [ -e {q(bak)} ]; then cp -p {q(bak)} {q(path)}; fi')
    out.append("rollback() { " + "; ".join(restore) + "; }")
    for i, (src, path) in enumerate(switch):
        msg = f"deploying {args['cert_path']} failed at {path} and was rolled back"
        out.append(f"mv -f {src} {q(path)} || {{ rollback; fail {q(msg)}; }}; D{i}=1; echo {q('written:' + path)}")
    dirs = sorted({posixpath.dirname(p) or "/" for _s, p in switch})
    out.append("sync -- " + " ".join(q(d) for d in dirs) + " 2>/dev/null || sync")
    # the http-01 token files of this order go in the same round trip; a leftover is only worth a warning
    if args.get("files"):
        out.append("rm -f -- " + " ".join(q(f) for f in args["files"]) + " || echo 'problem:token files left'")
    for d in sorted(args.get("created_dirs") or [], key=len, reverse=True):
        out.append(f"rmdir -- {q(d)} 2>/dev/null")
    out.append("exit 0")
    return "\n".join(out) + "\n"


def parse_output(stdout: str) -> dict[str, t.Any]:
    result: dict[str, t.Any] = {"written": [], "backups": [], "error": None, "problem": None}
    for line in stdout.splitlines():
        kind, _sep, value = line.partition(":")
        if kind == "written":
            result["written"].append(value)
        elif kind == "backup":
            result["backups"].append(value)
        elif kind in ("error", "problem"):
            result[kind] = value
    return result
