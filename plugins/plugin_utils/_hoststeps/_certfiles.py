# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inspect, prepare, deploy and discard: the certificate's files on the host, by one shell script each.

Layout on the host (S = ``<dirname(key_path)>/.portail-<basename(key_path)>.d``, root-owned, 0755)::

    S/v<N>/{privkey,cert,chain,fullchain}.pem + acme.json   one version per issuance (configured files only)
    S/current -> v<N>                                       swapped by one rename: the switch
    S/lock/owner                                            "<run_id> <expiry, host epoch seconds>"
    S/lock/privkey.pem                                      the pending key, removed with an expired lease

``key_path``, ``cert_path``, ``chain_path`` and ``fullchain_path`` are symlinks (absolute) to
``S/current/<file>``; the previous version stays as the backup (``backup: false``: only the current one).
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
import typing as t

from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _shell as sh
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps._http01 import cleanup_lines

q = sh.q
STORE_PREFIX = ".portail-"
STORE_SUFFIX = ".d"
META = "acme.json"
LABELS = ("key", "cert", "chain", "fullchain")
STORE_NAMES = {"key": "privkey.pem", "cert": "cert.pem", "chain": "chain.pem", "fullchain": "fullchain.pem"}
LEGACY_META_SUFFIX = ".acme.json"
GENPKEY = {
    "ec256": "-algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve",
    "ec384": "-algorithm EC -pkeyopt ec_paramgen_curve:P-384 -pkeyopt ec_param_enc:named_curve",
    "rsa2048": "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
    "rsa3072": "-algorithm RSA -pkeyopt rsa_keygen_bits:3072",
    "rsa4096": "-algorithm RSA -pkeyopt rsa_keygen_bits:4096",
}
_DNS_RE = re.compile(r"\A(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?\Z")
_PEM_RE = re.compile(r"\A[A-Za-z0-9+/=\n -]*\Z")

FILES_PRELUDE = r"""
# store: S exists as a real directory of root that nobody else can write (1: it does not exist)
store() {
  [ -L "$S" ] && die store
  [ -e "$S" ] || return 1
  [ -d "$S" ] || die store
  set -- $(stat -c '%u %a' -- "$S")
  case $1 in 0 | "$ME") ;; *) die store ;; esac
  [ $((0$2 & 022)) -eq 0 ] || die store
}
# current: CUR = the version S/current points to (V = its name), if any
current() {
  CUR=; V=
  [ -L "$S/current" ] || return 0
  V=$(readlink -- "$S/current")
  case $V in v | v*[!0-9]* | [!v]*) die store ;; esac
  [ -d "$S/$V" ] && [ ! -L "$S/$V" ] || die store
  CUR=$S/$V
}
# lease: LEASE = ours | other | none; an expired lease goes, with its pending key
lease() {
  LEASE=none
  [ -L "$S/lock" ] && die store
  [ -d "$S/lock" ] || return 0
  set -- $(cat -- "$S/lock/owner" 2>/dev/null)
  if [ "${1:-}" = "$RUN" ]; then LEASE=ours; return 0; fi
  lx=${2:-}
  case $lx in '' | *[!0-9]*) lx=$(($(stat -c %Y -- "$S/lock") + 120)) ;; esac
  if [ "$lx" -gt "$NOW" ]; then LEASE=other; say locked $((lx - NOW)); return 0; fi
  [ "$CHECK" = 1 ] && { say stale; return 0; }
  rm -rf -- "$S/lock" || die lease
  say stale removed
}
# take: the lease for this run, unless another live run holds it (1)
take() {
  lease
  [ "$LEASE" = ours ] && return 0
  [ "$LEASE" = other ] && return 1
  mkdir -m 700 -- "$S/lock" 2>/dev/null || { LEASE=other; say locked 60; return 1; }
  printf '%s %s\n' "$RUN" $((NOW + TTL)) >"$S/lock/owner" || die lease
  LEASE=ours
}
# link IDX PATH NAME: PATH becomes a symlink to $S/current/NAME, by rename (never through a link)
link() {
  [ -L "$2" ] && [ "$(readlink -- "$2")" = "$S/current/$3" ] && return 0
  [ -d "$2" ] && [ ! -L "$2" ] && die notfile "$1"
  rm -f -- "$2.portail-new" && ln -s -- "$S/current/$3" "$2.portail-new" &&
    mv -Tf -- "$2.portail-new" "$2" || die link "$1"
  say linked "$1"
}
"""


class Files:
    """The controller's view of one certificate's paths (validated) and the script fragments over them."""

    def __init__(self, args: t.Mapping[str, t.Any]) -> None:
        self.paths: list[tuple[str, str]] = []  # (label, path)
        for label in LABELS:
            value = args.get(f"{label}_path")
            if value:
                self.paths.append((label, sh.check_path(value, f"{label}_path")))
        if [lbl for lbl, _p in self.paths[:2]] != ["key", "cert"]:
            raise ValueError("key_path and cert_path are required")
        self.dirs: list[str] = []
        for _label, path in self.paths:
            d = posixpath.dirname(path) or "/"
            if d not in self.dirs:
                self.dirs.append(d)
        key_path = self.paths[0][1]
        self.store_name = STORE_PREFIX + posixpath.basename(key_path) + STORE_SUFFIX
        self.store = posixpath.join(self.dirs[0], self.store_name)
        # every directory a step may create, by index: the results name them by index only
        self.mkdirs: list[str] = []
        for d in self.dirs:
            for p in sh.prefixes(d):
                if p not in self.mkdirs:
                    self.mkdirs.append(p)
        self.mkdirs.append(self.store)
        #: directory names for messages, by the index the scripts report (mkdirs' indices, then "/")
        self.named_dirs = [*self.mkdirs, "/"]
        self.owner = sh.check_name(args.get("owner"), "owner")
        self.group = sh.check_name(args.get("group"), "group")
        self.mode = sh.octal(args.get("mode") if args.get("mode") is not None else 0o644, "mode")
        self.key_mode = sh.octal(args.get("key_mode") if args.get("key_mode") is not None else 0o600, "key_mode")

    def dir_index(self, path: str) -> int:
        return self.dirs.index(posixpath.dirname(path) or "/")

    def ref(self, j: int) -> str:
        """Shell words for documented file j under its trusted, physical directory."""
        path = self.paths[j][1]
        return f'"$D{self.dir_index(path)}"/{q(posixpath.basename(path))}'

    def file_mode(self, j: int) -> str:
        return self.key_mode if self.paths[j][0] == "key" else self.mode

    def head(self, run_id: str, check: bool, ttl: int) -> list[str]:
        return [
            *sh.prelude(run_id),
            FILES_PRELUDE,
            f"CHECK={1 if check else 0}",
            f"RUN={run_id}",
            f"TTL={int(ttl)}",
            "NOW=$(date +%s)",
            f"ids {q(self.owner)} {q(self.group)}",
        ]

    def look_dirs(self) -> list[str]:
        """Existing directories trusted (D<i>, empty when missing) and S set; nothing created."""
        out = []
        for i, d in enumerate(self.dirs):
            n = self.named_dirs.index(d)
            out.append(f"D{i}=; if [ -d {q(d)} ]; then trust {q(d)} || untrusted {n}; D{i}=$R; fi")
        out.append(f'S=; [ -n "$D0" ] && S="$D0"/{q(self.store_name)}')
        return out

    def make_dirs(self) -> list[str]:
        """Missing directories made one component at a time in trusted parents, then S."""
        out = [f"mk1 {i} {q(p)}" for i, p in enumerate(self.mkdirs[:-1])]
        for i, d in enumerate(self.dirs):
            out.append(f"trust {q(d)} || untrusted {self.named_dirs.index(d)}; D{i}=$R")
        sidx = len(self.mkdirs) - 1
        out.append(f'S="$D0"/{q(self.store_name)}')
        out.append(f'store || {{ mkdir -m 755 -- "$S" || die mkdir {sidx}; say mk {sidx}; }}')
        return out


def split_names(names: t.Sequence[str]) -> tuple[list[str], list[str]]:
    dns_names: list[str] = []
    ips: list[str] = []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns = name.lower().rstrip(".")
            if not _DNS_RE.match(dns) or len(dns) > 253:
                raise ValueError(f"refusing name {name!r} for the CSR") from None
            dns_names.append(dns)
    if not dns_names and not ips:
        raise ValueError("the CSR needs at least one name")
    return dns_names, ips


def prepare_lines(args: t.Mapping[str, t.Any], files: Files, *, fail_if_locked: bool) -> list[str]:
    """Directories, store, lease, pending key and CSR (``blk csr``); ``locked`` when another run holds it."""
    key_type = args.get("key_type") or "ec256"
    if key_type not in GENPKEY:
        raise ValueError(f"unsupported key_type {key_type!r}")
    dns_names, ips = split_names(list(args.get("names") or []))
    first = (dns_names or ips)[0]
    subject = f"/CN={first}" if len(first) <= 64 else "/"
    san = "subjectAltName=" + ",".join([f"DNS:{n}" for n in dns_names] + [f"IP:{i}" for i in ips])
    out = files.make_dirs()
    out += [
        "take || die locked" if fail_if_locked else "if take; then",
        '  K="$S/lock/privkey.pem"',
        '  if [ ! -f "$K" ]; then',
        f'    E=$(openssl genpkey {GENPKEY[key_type]} -out "$S/lock/new.pem" 2>&1 >/dev/null) ||'
        ' { rm -rf -- "$S/lock"; die genpkey "$(b64 "$E")"; }',
        '    mv -f -- "$S/lock/new.pem" "$K" || die lease',
        "    say pending created",
        "  fi",
        f'  E=$(openssl req -new -key "$K" -passin pass: -subj {q(subject)} -addext {q(san)} -sha256 '
        '-out "$S/lock/csr.pem" 2>&1 >/dev/null) || { rm -rf -- "$S/lock"; die csr "$(b64 "$E")"; }',
        '  blk csr <"$S/lock/csr.pem"',
    ]
    return [*out, "fi"] if not fail_if_locked else out


def inspect_script(
    args: t.Mapping[str, t.Any],
    run_id: str,
    *,
    check: bool,
    prepare: bool,
    ttl: int,
    extra: t.Optional[list[str]] = None,
) -> str:
    """The inspect step; ``extra``: lines run after it, before ``say done`` (acme_certificate's record)."""
    files = Files(args)
    roots = list(args.get("webroot") or []) + list(args.get("challenge_dir") or [])
    out = files.head(run_id, check, ttl)
    out += files.look_dirs()
    out += [
        "MISSING=0; LEASE=none; CUR=",
        'if [ -n "$S" ] && store; then current; lease; fi',
        '[ -n "$CUR" ] && say cur "${V#v}"',
        '[ -n "$D0" ] && say keydir',
    ]
    for j, (label, _path) in enumerate(files.paths):
        name = STORE_NAMES[label]
        i = files.dir_index(files.paths[j][1])
        out += [
            f"P={files.ref(j)}; R{j}=",
            f'if [ -z "$D{i}" ]; then MISSING=1; say missing {j}',
            'elif [ -L "$P" ]; then',
            f'  if [ -n "$CUR" ] && [ "$(readlink -- "$P")" = "$S/current/{name}" ] && [ -f "$CUR/{name}" ] &&'
            f' [ ! -L "$CUR/{name}" ]; then R{j}=$CUR/{name}; say ours {j}',
            f"  else MISSING=1; say foreign {j}; fi",
            f'elif [ -f "$P" ]; then R{j}=$P; say legacy {j}',
            f'elif [ -e "$P" ]; then die notfile {j}',
            f"else MISSING=1; say missing {j}; fi",
        ]
    out += [
        '[ -n "$R1" ] && blk cert <"$R1"',
        '[ -n "$R0" ] && openssl pkey -in "$R0" -passin pass: -pubout 2>/dev/null | blk keypub',
        f'LM="$D{files.dir_index(files.paths[1][1])}"/{q(posixpath.basename(files.paths[1][1]) + LEGACY_META_SUFFIX)}',
        'if [ -n "$CUR" ]; then [ -f "$CUR/acme.json" ] && [ ! -L "$CUR/acme.json" ] && blk meta <"$CUR/acme.json"',
        'elif [ -n "$R1" ] && [ -f "$LM" ] && [ ! -L "$LM" ]; then blk meta <"$LM"; fi',
    ]
    if args.get("fix_attributes", True):
        out.append('if [ "$MISSING" = 0 ] && [ "$LEASE" != other ]; then')
        out += [f'  fix {j} "$R{j}" {files.file_mode(j)}' for j in range(len(files.paths))]
        out.append("fi")
    for k, root in enumerate(roots):
        out.append(f"[ -d {q(sh.check_path(root, 'webroot'))} ] || {{ say nowebroot {k}; NOWEB=1; }}")
    if prepare and not check:
        due = "1" if args.get("force") else "$MISSING"
        out.append(f'if [ {due} = 1 ] && [ -z "${{NOWEB:-}}" ] && [ "$LEASE" != other ]; then')
        out += ["  " + line for line in prepare_lines(args, files, fail_if_locked=False)]
        out.append("fi")
    out += extra or []
    out.append("say done")
    return "\n".join(out)


def prepare_script(args: t.Mapping[str, t.Any], run_id: str, *, ttl: int) -> str:
    files = Files(args)
    out = files.head(run_id, False, ttl) + prepare_lines(args, files, fail_if_locked=True) + ["say done"]
    return "\n".join(out)


def pem_parts(cert_pem: str, chain_pem: str) -> tuple[str, str]:
    """(leaf PEM, chain PEM ending with a newline); only PEM characters reach the script."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certs = x509.load_pem_x509_certificates(cert_pem.encode("ascii"))
    if not certs:
        raise ValueError("the CA returned no certificate")
    leaf = certs[0].public_bytes(serialization.Encoding.PEM).decode("ascii")
    chain = chain_pem or ""
    if chain and not chain.endswith("\n"):
        chain += "\n"
    if not (_PEM_RE.match(leaf) and _PEM_RE.match(chain)):
        raise ValueError("unexpected characters in the PEM from the CA")
    return leaf, chain


def deploy_script(args: t.Mapping[str, t.Any], run_id: str, *, ttl: int) -> tuple[str, bytes]:
    """The switch to a new version (pending key of this run's lease, or ``key_pem`` given on stdin)."""
    files = Files(args)
    leaf, chain = pem_parts(args["cert_pem"], args.get("chain_pem") or "")
    content = {"cert": leaf, "chain": chain, "fullchain": leaf + chain}
    key_pem = args.get("key_pem")
    out = files.head(run_id, False, ttl) + files.make_dirs() + ["current"]
    if key_pem:
        out.append("take || die locked")
    else:
        out.append('lease; [ "$LEASE" = ours ] && [ -f "$S/lock/privkey.pem" ] || die notours')
    out += [
        'PREV=$V; NEXT=1; [ -n "$V" ] && NEXT=$((${V#v} + 1))',
        'NEW="$S/v$NEXT"',
        'rm -rf -- "$NEW" && mkdir -m 755 -- "$NEW" || die store',
        'drop() { rm -rf -- "$NEW"; die "$@"; }',
    ]
    for j, (label, _path) in enumerate(files.paths):
        name = STORE_NAMES[label]
        if label == "key":
            src = 'cat >"$NEW/privkey.pem"' if key_pem else 'cp -- "$S/lock/privkey.pem" "$NEW/privkey.pem"'
            out.append(f"{src} || drop write {j}")
        else:
            out.append(f"printf '%s' {q(content[label])} >\"$NEW/{name}\" || drop write {j}")
    if args.get("meta") is not None:
        meta = json.dumps(args["meta"], sort_keys=True) + "\n"
        out.append(f"printf '%s' {q(meta)} >\"$NEW/acme.json\" || drop write 1")
        out.append(f'chmod -- {files.mode} "$NEW/acme.json" || drop write 1')
    names = [STORE_NAMES[lbl] for lbl, _p in files.paths] + ([META] if args.get("meta") is not None else [])
    out += [
        'A=$(openssl pkey -in "$NEW/privkey.pem" -passin pass: -pubout 2>/dev/null)',
        'B=$(openssl x509 -in "$NEW/cert.pem" -noout -pubkey 2>/dev/null)',
        '[ -n "$A" ] && [ "$A" = "$B" ] || drop mismatch',
        "SAME=",
    ]
    if key_pem:
        cmps = " && ".join(f'cmp -s -- "$NEW/{n}" "$CUR/{n}"' for n in names)
        out.append(f'if [ -n "$CUR" ] && {cmps}; then SAME=1; rm -rf -- "$NEW"; fi')
    out.append('F=$NEW; [ -n "$SAME" ] && F=$CUR')
    out += [f'fix {j} "$F/{STORE_NAMES[lbl]}" {files.file_mode(j)}' for j, (lbl, _p) in enumerate(files.paths)]
    out.append('[ -n "$SAME" ] || sync -- "$NEW"/* "$NEW" 2>/dev/null || sync')
    # from today's plain files: first a v0 of them and the paths linked to it (same bytes, no mismatch)
    legacy = " && ".join(f"[ -f {files.ref(j)} ] && [ ! -L {files.ref(j)} ]" for j in range(len(files.paths)))
    lm = f'"$D{files.dir_index(files.paths[1][1])}"/{q(posixpath.basename(files.paths[1][1]) + LEGACY_META_SUFFIX)}'
    out.append(f'if [ -z "$CUR" ] && {legacy}; then')
    out.append('  rm -rf -- "$S/v0" && mkdir -m 755 -- "$S/v0" || drop store')
    for j, (label, _path) in enumerate(files.paths):
        out.append(f'  cp -p -- {files.ref(j)} "$S/v0/{STORE_NAMES[label]}" || drop store')
    out += [
        f'  if [ -f {lm} ] && [ ! -L {lm} ]; then cp -p -- {lm} "$S/v0/acme.json" || drop store; fi',
        '  sync -- "$S/v0"/* "$S/v0" 2>/dev/null || sync',
        '  rm -f -- "$S/.current" && ln -s v0 "$S/.current" && mv -Tf -- "$S/.current" "$S/current" || drop store',
        "  CUR=$S/v0; V=v0; PREV=v0; say migrated",
        "fi",
    ]
    links = [f"link {j} {files.ref(j)} {STORE_NAMES[lbl]}" for j, (lbl, _p) in enumerate(files.paths)]
    out.append('if [ -n "$CUR" ]; then')
    out += ["  " + line for line in links]
    out += [
        "fi",
        'if [ -z "$SAME" ]; then',
        '  rm -f -- "$S/.current" && ln -s -- "v$NEXT" "$S/.current" && mv -Tf -- "$S/.current" "$S/current" ||'
        " drop switch",
        '  say switched "$NEXT"; V=v$NEXT; CUR=$NEW',
        "fi",
        *links,
        "sync -- " + " ".join(f'"$D{i}"' for i in range(len(files.dirs))) + ' "$S" 2>/dev/null || sync',
        'for d in "$S"/v*; do',
        '  [ -d "$d" ] || continue',
        "  case ${d##*/} in",
        '    "$V") ;;',
        '    "$PREV") ' + ("say backup ${PREV#v}" if args.get("backup", True) else 'rm -rf -- "$d"') + " ;;",
        '    *) rm -rf -- "$d" ;;',
        "  esac",
        "done",
        f"if [ -f {lm} ] && [ ! -L {lm} ]; then rm -f -- {lm}; fi",
        'rm -rf -- "$S/lock"',
    ]
    out += cleanup_lines(args.get("files") or [], args.get("created_dirs") or [])
    out.append("say done")
    return "\n".join(out), (key_pem.encode("ascii") if key_pem else b"")


def discard_script(args: t.Mapping[str, t.Any], run_id: str) -> str:
    key_path = sh.check_path(args.get("key_path"), "key_path")
    key_dir = posixpath.dirname(key_path) or "/"
    store_name = STORE_PREFIX + posixpath.basename(key_path) + STORE_SUFFIX
    out = [*sh.prelude(run_id), FILES_PRELUDE, f"RUN={run_id}"]
    out += [
        f"if [ -d {q(key_dir)} ]; then",
        f"  trust {q(key_dir)} || untrusted 0",
        f'  S="$R"/{q(store_name)}',
        '  if store && [ -d "$S/lock" ] && [ ! -L "$S/lock" ]; then',
        '    set -- $(cat -- "$S/lock/owner" 2>/dev/null)',
        '    if [ "${1:-}" = "$RUN" ]; then rm -rf -- "$S/lock" && say discarded; fi',
        "  fi",
        "fi",
    ]
    dirs = [sh.check_path(d, "created_dirs") for d in args.get("created_dirs") or []]
    for i, d in sorted(enumerate(dirs), key=lambda x: -len(x[1])):
        out.append(f"rmdir -- {q(d)} 2>/dev/null && say rmd {i}")
    out.append("say done")
    return "\n".join(out)
