# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inspect and prepare steps of acme_certificate by one POSIX shell command instead of a module run.

A module run starts Python on the host, unpacks AnsiballZ and imports ``ansible.module_utils.basic`` and
cryptography: about twice the cost of a plain command, and on a daily no-op run over a fleet it is the
whole cost. What inspect needs from the host is small: whether the files exist and with which mode and
owner, the certificate (public), the public half of the private key (``openssl pkey -pubout``, so the key
itself never leaves the host), the ``.acme.json`` record and whether the webroots exist. The controller
parses that and builds the same state the module returns.

When a file is missing (first issuance) or ``force`` is set, the same command also makes the pending key
with ``openssl genpkey`` (0600, written to a temporary name and renamed) and the CSR with ``openssl req``,
which saves the separate prepare round trip, as the module's ``prepare_if_due`` does. Other renewal
reasons (names, key type, expiry) are decided on the controller, which then asks for a prepare.

The script needs ``openssl`` (1.1.1 or later, for ``-addext``) and a ``stat`` that knows ``-c``
(GNU coreutils, busybox). Without them it reports ``unsupported:`` before touching anything and the
caller uses the module. Every value is validated and shell-quoted; file contents come back prefixed
with ``|`` so nothing in a file can pass for a protocol line.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
import typing as t

from ansible_collections.portail.https.plugins.module_utils._certhost import META_SUFFIX, PENDING_SUFFIX, split_names
from ansible_collections.portail.https.plugins.plugin_utils import _deploy_shell

#: prepare: never (check mode), when due (a file missing or force), always (the prepare step)
NEVER, IF_MISSING, ALWAYS = 0, 1, 2

_GENPKEY = {
    "ec256": "-algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve",
    "ec384": "-algorithm EC -pkeyopt ec_paramgen_curve:P-384 -pkeyopt ec_param_enc:named_curve",
    "rsa2048": "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
    "rsa3072": "-algorithm RSA -pkeyopt rsa_keygen_bits:3072",
    "rsa4096": "-algorithm RSA -pkeyopt rsa_keygen_bits:4096",
}
_DNS_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
_BLOCKS = ("cert", "keypub", "meta", "csr")

_PRELUDE = r"""umask 077
LC_ALL=C
export LC_ALL
command -v openssl >/dev/null 2>&1 || { echo "unsupported:openssl"; exit 0; }
stat -L -c %a / >/dev/null 2>&1 || { echo "unsupported:stat -c"; exit 0; }
fail() { echo "error:$1"; exit 3; }
blk() { echo "begin:$1"; sed 's/^/|/'; echo; echo "end:$1"; }
st() {
  if [ -e "$1" ]; then echo "stat:$2:$(stat -L -c '%F|%a|%u|%g|%U|%G' "$1" 2>/dev/null)"; else echo "stat:$2:"; fi
}
same_who() {
  case "$2" in *[!0-9]*) [ "$(stat -L -c "%$3" "$1")" = "$2" ] ;; *) [ "$(stat -L -c "%$4" "$1")" = "$2" ] ;; esac
}
fix() {
  [ "$(stat -L -c %a "$1")" = "$2" ] || { [ "$CHECK" = 1 ] || chmod "$2" "$1" || return 1; echo "fixed:$1"; }
  if [ -n "$3" ] && ! same_who "$1" "$3" U u; then
    [ "$CHECK" = 1 ] || chown "$3" "$1" || return 1; echo "fixed:$1"
  fi
  if [ -n "$4" ] && ! same_who "$1" "$4" G g; then
    [ "$CHECK" = 1 ] || chgrp "$4" "$1" || return 1; echo "fixed:$1"
  fi
  return 0
}
mk() {
  [ -d "$1" ] && return 0
  mk "$(dirname "$1")" || return 1
  mkdir -m 755 "$1" 2>/dev/null || [ -d "$1" ] || return 1
  echo "dir:$1"
}
"""


class ShellInputError(Exception):
    """Input the script cannot carry safely: the caller uses the module instead."""


def eligible(args: t.Mapping[str, t.Any]) -> bool:
    """Whether the shell path can do exactly what the module would (else the module runs)."""
    if not _deploy_shell.eligible(args):
        return False
    if args.get("key_type", "ec256") not in _GENPKEY:
        return False
    roots = list(args.get("webroot") or []) + list(args.get("challenge_dir") or [])
    if not all(_deploy_shell.eligible({"files": [r]}) for r in roots):
        return False
    return all(_name_ok(n) for n in args.get("names") or [])


def _name_ok(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_DNS_RE.match(name)) and len(name) <= 253


def _subject_and_san(names: list[str]) -> tuple[str, str]:
    """``-subj`` and ``-addext`` values: CN is the first DNS name (or IP) when it fits in 64 characters."""
    dns_names, ips = split_names(names)
    first = (dns_names or ips)[0]
    subject = f"/CN={first}" if len(first) <= 64 else "/"
    san = ",".join([f"DNS:{n}" for n in dns_names] + [f"IP:{i}" for i in ips])
    return subject, f"subjectAltName={san}"


def build_script(args: t.Mapping[str, t.Any], *, prepare: int, check_mode: bool) -> str:
    """The inspect command (prepare=NEVER/IF_MISSING) or the prepare command (prepare=ALWAYS)."""
    if not eligible(args):
        raise ShellInputError("not eligible for the shell path")
    q = shlex.quote
    key_path: str = args["key_path"]
    cert_path: str = args["cert_path"]
    pending = key_path + PENDING_SUFFIX
    files = [("key", key_path), ("cert", cert_path)]
    files += [(k, args[f"{k}_path"]) for k in ("chain", "fullchain") if args.get(f"{k}_path")]
    mode = _deploy_shell.numeric_mode(args.get("mode", "0644"))
    key_mode = _deploy_shell.numeric_mode(args.get("key_mode", "0600"))
    owner = str(args["owner"]) if args.get("owner") is not None else ""
    group = str(args["group"]) if args.get("group") is not None else ""
    roots = list(args.get("webroot") or []) + list(args.get("challenge_dir") or [])

    out = [_PRELUDE, f"CHECK={1 if check_mode else 0}", "MISSING=0"]
    for label, path in files:
        out.append(f"st {q(path)} {label}; [ -e {q(path)} ] || MISSING=1")
    out.append(f"[ -d {q(posixpath.dirname(key_path) or '/')} ] && echo keydir:1")
    for root in roots:
        out.append(f"[ -d {q(root)} ] || {{ echo {q('nowebroot:' + root)}; NOWEBROOT=1; }}")
    out.append(f"[ -f {q(cert_path)} ] && blk cert < {q(cert_path)}")
    out.append(f"[ -f {q(key_path)} ] && openssl pkey -in {q(key_path)} -passin pass: -pubout 2>/dev/null | blk keypub")
    meta = cert_path + META_SUFFIX
    out.append(f"[ -f {q(meta)} ] && blk meta < {q(meta)}")
    if prepare != ALWAYS:
        # the module fixes owner, group and mode only when every file is there (else it is an issuance)
        fixes = [
            f"fix {q(path)} {(key_mode if label == 'key' else mode) or 0:o} {q(owner)} {q(group)} "
            f"|| fail {q('cannot set owner, group or mode of ' + path)}"
            for label, path in files
        ]
        out.append('if [ "$MISSING" = 0 ]; then')
        out.extend("  " + f for f in fixes)
        out.append("fi")

    if prepare != NEVER and not check_mode:
        names = list(args.get("names") or [])
        if not names:
            raise ShellInputError("prepare needs names")
        subject, san = _subject_and_san(names)
        due = "1" if prepare == ALWAYS or args.get("force") else "$MISSING"
        dirs = sorted({posixpath.dirname(p) or "/" for _l, p in files})
        key_dir = posixpath.dirname(key_path) or "/"
        prep = [f'if [ {due} = 1 ] && [ -z "${{NOWEBROOT:-}}" ]; then']
        for d in dirs:
            prep.append(f"  mk {q(d)} || fail {q('cannot create ' + d)}")
        prep += [
            f"  if [ -f {q(pending)} ]; then echo pending:existing; else",
            f"    T=$(mktemp {q(posixpath.join(key_dir, '.portail-XXXXXXXX'))}) || fail {q('cannot write ' + pending)}",
            f'    E=$(openssl genpkey {_GENPKEY[args.get("key_type", "ec256")]} -out "$T" 2>&1 >/dev/null) '
            f'|| {{ rm -f "$T"; fail "openssl genpkey: $(printf \'%s\' "$E" | tail -n 1)"; }}',
            f'    chmod 600 "$T" && mv -f "$T" {q(pending)} || {{ rm -f "$T"; fail {q("cannot write " + pending)}; }}',
            "    echo pending:created",
            "  fi",
            f"  C=$(openssl req -new -key {q(pending)} -passin pass: -subj {q(subject)} -addext {q(san)} -sha256 "
            "2>/dev/null) && printf '%s\\n' \"$C\" | blk csr || echo csr:failed",
            "fi",
        ]
        out.extend(prep)
    out.append("exit 0")
    return "\n".join(out) + "\n"


def parse_output(stdout: str) -> dict[str, t.Any]:
    """Raw facts from the script: stat lines, blocks, fixes, created dirs, pending key, errors."""
    raw: dict[str, t.Any] = {
        "stat": {},
        "blocks": {},
        "fixed": [],
        "dirs": [],
        "nowebroot": [],
        "keydir": False,
        "pending": None,
        "csr_failed": False,
        "error": None,
        "unsupported": None,
    }
    current: t.Optional[str] = None
    lines: list[str] = []
    for line in stdout.splitlines():
        if current is not None:
            if line == f"end:{current}":
                raw["blocks"][current] = "\n".join(lines) + ("\n" if lines else "")
                current, lines = None, []
            elif line.startswith("|"):
                lines.append(line[1:])
            continue
        kind, _sep, value = line.partition(":")
        if kind == "begin" and value in _BLOCKS:
            current, lines = value, []
        elif kind == "stat":
            label, _s, info = value.partition(":")
            raw["stat"][label] = info.split("|") if info else None
        elif kind == "fixed":
            raw["fixed"].append(value)
        elif kind == "dir":
            raw["dirs"].append(value)
        elif kind == "nowebroot":
            raw["nowebroot"].append(value)
        elif kind == "keydir":
            raw["keydir"] = True
        elif kind == "pending":
            raw["pending"] = value
        elif kind == "csr":
            raw["csr_failed"] = True
        elif kind in ("error", "unsupported"):
            raw[kind] = value
    return raw


def _load_public_key(pem: str) -> t.Any:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeError):
        return None


def state_from(raw: t.Mapping[str, t.Any], args: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The inspect result, shaped like the module's (cert, key, missing_files, meta, problems, ...)."""
    from ansible_collections.portail.https.plugins.module_utils._certhost import (
        describe_current,
        key_type_of,
        parse_meta,
    )
    from cryptography.hazmat.primitives import serialization

    def der(public_key: t.Any) -> bytes:
        return t.cast(
            bytes,
            public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        )

    paths = {k: args.get(f"{k}_path") for k in ("key", "cert", "chain", "fullchain")}
    state: dict[str, t.Any] = {"cert": None, "key": None, "missing_files": [], "meta": None, "problems": []}
    for label in ("key", "cert", "chain", "fullchain"):
        if paths[label] and raw["stat"].get(label) is None:
            state["missing_files"].append(paths[label])
    blocks = raw["blocks"]
    key_der = None
    if raw["stat"].get("key") is not None:
        public = _load_public_key(blocks.get("keypub", ""))
        if public is None:
            state["problems"].append(f"{paths['key']} is not an unencrypted PEM private key")
        else:
            state["key"] = {"key_type": key_type_of(public)}
            key_der = der(public)
    if raw["stat"].get("cert") is not None:
        describe_current(state, blocks.get("cert", "").encode("ascii", "replace"), key_der, paths["cert"])
    if "meta" in blocks:
        state["meta"] = parse_meta(blocks["meta"])
    state["missing_webroots"] = list(raw["nowebroot"])
    state["key_dir_exists"] = bool(raw["keydir"]) or bool(raw["dirs"])
    changed = bool(raw["fixed"])
    if "csr" in blocks:
        state["prepared"] = {
            "csr": blocks["csr"],
            "pending_created": raw["pending"] == "created",
            "created_dirs": list(raw["dirs"]),
        }
        changed = changed or raw["pending"] == "created" or bool(raw["dirs"])
    elif raw["pending"] == "created" or raw["dirs"]:
        # the key was made but the CSR was not (old openssl): the caller finishes with the module
        state["partial_prepare"] = {"pending_created": raw["pending"] == "created", "created_dirs": list(raw["dirs"])}
        changed = True
    state["changed"] = changed
    return state


def csr_key_type(csr_pem: str) -> t.Optional[str]:
    """Key type of a CSR (to check a reused pending key has the wanted type)."""
    from ansible_collections.portail.https.plugins.module_utils._certhost import key_type_of
    from cryptography import x509

    try:
        return key_type_of(x509.load_pem_x509_csr(csr_pem.encode("ascii")).public_key())
    except (ValueError, UnicodeError):
        return None
