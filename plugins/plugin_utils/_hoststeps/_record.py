# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""acme_certificate's ``record`` option: the bookkeeping a no-op run needs, inside the first inspect.

Appended to the first ``inspect`` script of the task (the round trip it makes anyway), these lines:

- send the first ``RECORDED_LENGTH`` bytes of the fact file (base64, never parsed by the shell), which
  identify the state it records (see ``_renew_state.fact_document``);
- say whether ``<metrics_dir>/portail_https.prom`` exists (``present``, ``missing``, ``absent`` when the
  directory itself does not exist, ``untrusted``);
- rewrite ``<metrics_dir>/portail_https_check.prom`` with the host's clock (not in check mode), in a
  directory that must be root's and writable by root only, by a temporary file and one rename;
- read the serial served on ``served_address:served_port`` for each certificate (hex digits only are
  kept: whatever answers there cannot forge a protocol line).

Nothing here fails the inspect: an odd fact file or metrics directory only means the certificate role
writes through its own record step, which then reports the problem.
"""

from __future__ import annotations

import base64
import ipaddress
import typing as t

from ansible_collections.portail.https.plugins.plugin_utils import _renew_state as rs
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _shell as sh

q = sh.q


def _first_dns_name(names: t.Sequence[str]) -> str:
    return next((name.removeprefix("*.") for name in names if not rs.is_ip(name)), "")


def check(record: t.Mapping[str, t.Any]) -> list[dict[str, t.Any]]:
    """The certificates of a ``record`` option, validated: [{name, names, cert_path}]."""
    out = []
    for index, cert in enumerate(record.get("certificates") or []):
        if not isinstance(cert, dict) or not isinstance(cert.get("name"), str) or not rs.NAME_RE.match(cert["name"]):
            raise ValueError(f"record.certificates[{index}] needs a name of letters, digits, '.', '-', '_'")
        names = cert.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"record.certificates[{index}].names must be a list of names")
        for n in names:
            if not n or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in n):
                raise ValueError(f"record.certificates[{index}].names: {n!r} is not a DNS name or an IP address")
        path = cert.get("cert_path")
        out.append(
            {
                "name": cert["name"],
                "names": list(names),
                "cert_path": sh.check_path(path, f"record.certificates[{index}].cert_path") if path else "",
            }
        )
    return out


def _served_lines(record: t.Mapping[str, t.Any], certs: list[dict[str, t.Any]]) -> list[str]:
    """SV<k>=1|0 (and SVANY=1) for each certificate whose served serial could be read; ``served`` lines."""
    port = int(record.get("served_port") or 0)
    if not port or not certs:
        return []
    address = str(record.get("served_address") or "127.0.0.1")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"record.served_address must be an IP address, got {address!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"record.served_port must be a TCP port, got {port}")
    target = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    out = ["SVANY=", "if command -v timeout >/dev/null 2>&1; then"]
    for k, cert in enumerate(certs):
        sni = _first_dns_name(cert["names"])
        server = f" -servername {q(sni)}" if sni else ""
        out += [
            f"  s=$(timeout 5 openssl s_client -connect {q(target)}{server} </dev/null 2>/dev/null |"
            " openssl x509 -noout -serial 2>/dev/null)",
            "  s=${s#serial=}; d=",
        ]
        if cert["cert_path"]:
            # the certificate on disk, read (never written) through our own link; a FIFO or device is not a file
            out.append(
                f"  [ -f {q(cert['cert_path'])} ] && d=$(timeout 5 openssl x509 -noout -serial -in"
                f" {q(cert['cert_path'])} 2>/dev/null) && d=${{d#serial=}}"
            )
        out.append(
            f'  case $s in "" | *[!0-9A-Fa-f]*) ;; *) say served {k} "$s"; SVANY=1;'
            f' if [ -n "$d" ] && [ "$d" = "$s" ]; then SV{k}=1; else SV{k}=0; fi ;; esac'
        )
    out.append("fi")
    return out


class Record:
    """A ``record`` option, validated once (before any host is contacted): the shell lines it adds to the
    first inspect, and the reading of what they said."""

    def __init__(self, options: t.Mapping[str, t.Any]) -> None:
        self.options = dict(options)
        self.certs = check(self.options)
        self.lines = _lines(self.options, self.certs)

    def parse(self, found: list[list[str]], blocks: t.Mapping[str, bytes]) -> dict[str, t.Any]:
        """What the lines said: {head, metrics, check, served: {certificate: serial in lowercase hex}}."""
        absent = "" if self.options.get("metrics_dir") else "absent"
        metrics = sh.first(found, "metrics")
        state = sh.first(found, "check")
        served: dict[str, str] = {}
        for words in found:
            if len(words) == 3 and words[0] == "served" and words[1].isdigit() and int(words[1]) < len(self.certs):
                value = words[2].lower().lstrip("0") or "0"
                if all(ch in "0123456789abcdef" for ch in value):
                    served[self.certs[int(words[1])]["name"]] = value
        return {
            "head": blocks.get("recorded", b"").decode("utf-8", "replace"),
            "metrics": metrics[0] if metrics else absent,
            "check": state[0] if state else absent,
            "served": served,
        }


def lines(record: t.Mapping[str, t.Any]) -> list[str]:
    """Shell lines for the inspect script (after the prelude: say, blk, trust and CHECK/NOW are set)."""
    return Record(record).lines


def _lines(record: t.Mapping[str, t.Any], certs: list[dict[str, t.Any]]) -> list[str]:
    fact_file = sh.check_path(record.get("fact_file") or "", "record.fact_file")
    metrics_dir = str(record.get("metrics_dir") or "")
    out = [
        f"RF={q(fact_file)}",
        f'if [ -f "$RF" ] && [ ! -L "$RF" ]; then head -c {rs.RECORDED_LENGTH} -- "$RF" | blk recorded; fi',
    ]
    served = _served_lines(record, certs)
    out += served
    if metrics_dir:
        metrics_dir = sh.check_path(metrics_dir, "record.metrics_dir")
        template = base64.b64encode(rs.check_metrics(certs, served=bool(served)).encode()).decode()
        clock, mark = rs.CLOCK_MARK, rs.SERVED_MARK
        out += [
            f"RM={q(metrics_dir)}",
            'if [ ! -e "$RM" ] && [ ! -L "$RM" ]; then say metrics absent; say check absent',
            # the directory and all above it: root's, writable by root only (trust also refuses links)
            'elif ! trust "$RM" || [ "$R" != "$RM" ]; then say metrics untrusted; say check untrusted',
            "else",
            f'  if [ -f "$RM/{rs.MAIN_FILE}" ] && [ ! -L "$RM/{rs.MAIN_FILE}" ]; then say metrics present;'
            " else say metrics missing; fi",
            '  if [ "$CHECK" = 1 ]; then say check skipped',
            '  elif RT=$(mktemp "$RM/.portail-check.XXXXXX"); then',
            f"    printf '%s' {template} | openssl base64 -d -A | while IFS= read -r l; do",
            "      case $l in",
            "        '#?'*) if [ -n \"${SVANY:-}\" ]; then printf '#%s\\n' \"${l#??}\"; fi ;;",
            "        '#'*) printf '%s\\n' \"$l\" ;;",
            f"        *'{clock}') printf '%s %s\\n' \"${{l%{clock}}}\" \"$NOW\" ;;",
            f"        *'{mark}'*) k=${{l##*{mark}}}",
            "          case $k in '' | *[!0-9]*) continue ;; esac",
            '          eval "v=\\${SV$k:-}"',
            f'          if [ -n "$v" ]; then printf \'%s %s\\n\' "${{l%{mark}*}}" "$v"; fi ;;',
            "      esac",
            '    done >"$RT" && chmod 644 -- "$RT" &&',
            f'      mv -Tf -- "$RT" "$RM/{rs.CHECK_FILE}" && say check written ||',
            '      { rm -f -- "$RT"; say check failed; }',
            "  else say check failed; fi",
            "fi",
        ]
    return out
