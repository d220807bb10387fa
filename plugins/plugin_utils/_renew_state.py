# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side bookkeeping of the certificate role, the renew playbook and the report.

Everything here is pure: it turns what acme_certificate returned (and, after a failure, what the host
had recorded before) into the host's fact entries, the Prometheus textfile, the one shell command that
writes both, the renew summary and the report rows. The filters in plugins/filter/portail_renew.py are
thin wrappers around these functions.

The fact file starts with ``{"state": "<digest>",``: the digest covers everything that only depends on
the certificates themselves (names, serial, validity, issuer, renewal window, result). A run that
changed nothing sends the digest along, and the host keeps its file when the prefix matches, so a no-op
run neither rewrites the file nor needs to read it first (the one write step costs one SSH execution
and no Python on the host).

Cheaper still, acme_certificate's first host round trip (its ``record`` option) reads that prefix
(``RECORDED_LENGTH`` bytes), says whether the metrics file exists, probes the serial served on port 443
and rewrites the one file whose content moves at every run, ``portail_https_check.prom`` (the check
time, from ``check_metrics``). ``record_command(..., recorded=...)`` is then empty when the fact file
and the metrics file already say what this run would write: a no-op run costs that single round trip.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import ipaddress
import json
import re
import shlex
import typing as t

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")
# Per-certificate options of certificate_list passed through to acme_certificate as they are.
PASSTHROUGH = ("profile", "preferred_chain")
STATE_FIELDS = (
    "names",
    "serial",
    "issuer",
    "not_before",
    "not_after",
    "key_type",
    "profile",
    "window_start",
    "window_end",
    "last_result",
    "served_serial",
    "renew_after",
)


class RenewStateError(ValueError):
    """Bad input, reported before anything is changed."""


# --------------------------------------------------------------------------------------------- time


def parse_time(value: t.Any) -> t.Optional[_dt.datetime]:
    """ISO 8601 (with Z, an offset, or naive meaning UTC) -> aware datetime; None for empty values."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.astimezone(_dt.timezone.utc)


def iso(when: t.Optional[_dt.datetime]) -> str:
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if when else ""


def now_utc(now: t.Any = None) -> _dt.datetime:
    parsed = parse_time(now) if isinstance(now, str) else now
    if isinstance(parsed, _dt.datetime):
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)
    return _dt.datetime.now(_dt.timezone.utc)


# --------------------------------------------------------------------------------------------- plan


def _check_entry(entry: t.Any, index: int) -> None:
    if not isinstance(entry, dict):
        raise RenewStateError(f"certificate_list[{index}] must be a dictionary")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RenewStateError(f"certificate_list[{index}]: name must be letters, digits, '.', '-', '_' (got {name!r})")
    names = entry.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise RenewStateError(f"certificate {name}: names must be a non-empty list of DNS names or IP addresses")
    if entry.get("key_type") is not None and entry["key_type"] not in KEY_TYPES:
        raise RenewStateError(f"certificate {name}: key_type must be one of {', '.join(KEY_TYPES)}")
    if entry.get("challenge") is not None and entry["challenge"] not in CHALLENGES:
        raise RenewStateError(f"certificate {name}: challenge must be one of {', '.join(CHALLENGES)}")
    if entry.get("dns") is not None and not isinstance(entry["dns"], dict):
        raise RenewStateError(f"certificate {name}: dns must be a dictionary (merged over certificate_dns)")
    for key in ("profile", "preferred_chain", "pool", "owner", "group", "challenge_dir"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise RenewStateError(f"certificate {name}: {key} must be a string")


#: keys of a portail_sites entry that the certificate takes over as they are
SITE_CERTIFICATE_KEYS = (
    "pool",
    "challenge",
    "key_type",
    "dns",
    "challenge_dir",
    "profile",
    "preferred_chain",
    "owner",
    "group",
)


def site_certificates(sites: t.Any) -> list[dict[str, t.Any]]:
    """The playbooks' certificate_list: one certificate per site, its server names (plan() checks the rest)."""
    if not isinstance(sites, list):
        raise RenewStateError("portail_sites must be a list of sites")
    out: list[dict[str, t.Any]] = []
    for index, site in enumerate(sites):
        if not isinstance(site, dict):
            raise RenewStateError(f"portail_sites[{index}] must be a dictionary")
        cert = {"name": site.get("name"), "names": site.get("server_names")}
        cert.update({k: site[k] for k in SITE_CERTIFICATE_KEYS if k in site})
        out.append(cert)
    return out


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def plan(
    certificate_list: t.Any,
    *,
    host: str,
    groups: t.Mapping[str, t.Sequence[str]],
    defaults: t.Mapping[str, t.Any],
) -> dict[str, list[dict[str, t.Any]]]:
    """Split certificate_list into what this host issues ('own') and what it copies ('copied').

    defaults: dir, key_type, challenge, challenge_dir, owner, group, dns, profile.
    """
    if not isinstance(certificate_list, list):
        raise RenewStateError("certificate_list must be a list")
    seen: set[str] = set()
    own: list[dict[str, t.Any]] = []
    copied: list[dict[str, t.Any]] = []
    warnings: list[str] = []
    for index, entry in enumerate(certificate_list):
        _check_entry(entry, index)
        name = entry["name"]
        if name in seen:
            raise RenewStateError(f"certificate {name} is listed twice")
        seen.add(name)
        directory = f"{str(defaults.get('dir') or '/etc/ssl/portail').rstrip('/')}/{name}"
        req: dict[str, t.Any] = {
            "name": name,
            "names": list(entry["names"]),
            "key_type": entry.get("key_type") or defaults.get("key_type") or "ec256",
            "challenge": entry.get("challenge") or defaults.get("challenge") or "http-01",
            "challenge_dir": entry.get("challenge_dir") or defaults.get("challenge_dir"),
            "key_path": f"{directory}/privkey.pem",
            "cert_path": f"{directory}/cert.pem",
            "chain_path": f"{directory}/chain.pem",
            "fullchain_path": f"{directory}/fullchain.pem",
            "owner": entry.get("owner") or defaults.get("owner") or "root",
            "group": entry.get("group") or defaults.get("group") or "root",
        }
        if not req["challenge_dir"]:
            req.pop("challenge_dir")
        if entry.get("dns"):
            req["dns"] = {**dict(defaults.get("dns") or {}), **entry["dns"]}
        for key in PASSTHROUGH:
            if entry.get(key):
                req[key] = entry[key]
        profile = req.get("profile") or defaults.get("profile")
        if any(is_ip(n) for n in req["names"]) and not profile:
            warnings.append(
                f"certificate {name} has IP identifiers and no profile: CAs that offer profiles (Let's Encrypt) "
                "issue IP certificates only under a short-lived profile (shortlived); set profile on the entry"
            )
        pool = entry.get("pool")
        if pool:
            members = list(groups.get(pool) or [])
            if not members:
                raise RenewStateError(f"certificate {name}: pool {pool!r} is not an inventory group with hosts")
            if members[0] == host:
                own.append(req)
            elif host in members:
                copied.append({**req, "leader": members[0]})
        else:
            own.append(req)
    return {"own": own, "copied": copied, "warnings": warnings}  # type: ignore[dict-item]


# --------------------------------------------------------------------------------------------- facts


def _renewal_point(entry: dict[str, t.Any], fraction: float) -> tuple[str, str]:
    """(renew_after, source): the CA's renew_at or window start when known, else the lifetime rule."""
    if entry.get("renew_at"):
        return entry["renew_at"], "ari"
    if entry.get("window_start"):
        return entry["window_start"], "ari"
    nb, na = parse_time(entry.get("not_before")), parse_time(entry.get("not_after"))
    if nb and na:
        return iso(na - (na - nb) * fraction), "lifetime"
    return "", ""


def _window(result: t.Mapping[str, t.Any]) -> tuple[str, str]:
    window = result.get("renewal_window")
    if isinstance(window, dict):
        return str(window.get("start") or ""), str(window.get("end") or "")
    return "", ""


def overdue(entry: t.Mapping[str, t.Any], now: _dt.datetime, fraction: float) -> bool:
    """A certificate that must be renewed now: missing, in its last `fraction` of life, or past the ARI window."""
    na = parse_time(entry.get("not_after"))
    if not entry.get("serial") or na is None:
        return True
    if now >= na:
        return True
    end = parse_time(entry.get("window_end"))
    if end and now >= end:
        return True
    nb = parse_time(entry.get("not_before"))
    return bool(nb and now >= na - (na - nb) * fraction)


def state_digest(entries: t.Mapping[str, t.Mapping[str, t.Any]]) -> str:
    core = {name: {k: e.get(k, "") for k in STATE_FIELDS} for name, e in sorted(entries.items())}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:32]


def facts(
    plan_own: t.Sequence[t.Mapping[str, t.Any]],
    result: t.Any,
    *,
    previous: t.Any = None,
    failed_msg: str = "",
    fraction: float = 0.333,
    now: t.Any = None,
    served: t.Optional[t.Mapping[str, str]] = None,
) -> dict[str, dict[str, t.Any]]:
    """Fact entries of the certificates this host issues, from acme_certificate's result.

    previous: the host's recorded entries (read only after a failure, to keep what is known about the
    certificate still in place). failed_msg: the task's message when it failed as a whole.
    """
    when = now_utc(now)
    results = {}
    if isinstance(result, dict):
        for item in result.get("certificates") or []:
            if isinstance(item, dict) and item.get("name"):
                results[item["name"]] = item
    prev_all = previous if isinstance(previous, dict) else {}
    out: dict[str, dict[str, t.Any]] = {}
    for req in plan_own:
        name = req["name"]
        r = results.get(name, {})
        found = prev_all.get(name)
        prev: dict[str, t.Any] = found if isinstance(found, dict) else {}
        failed = bool(r.get("failed")) or (bool(failed_msg) and not r)
        base = prev if failed and not r.get("serial") else r
        start, end = _window(r) if r.get("serial") else (prev.get("window_start", ""), prev.get("window_end", ""))
        entry: dict[str, t.Any] = {
            "names": list(base.get("names") or req.get("names") or []),
            "serial": base.get("serial") or "",
            "issuer": base.get("issuer") or "",
            "not_before": base.get("not_before") or "",
            "not_after": base.get("not_after") or "",
            "key_type": base.get("key_type") or req.get("key_type") or "",
            "profile": r.get("profile") or req.get("profile") or prev.get("profile") or "",
            "window_start": start,
            "window_end": end,
            "renew_at": str(r.get("renew_at") or ""),
        }
        entry["renew_after"], entry["renewal_source"] = _renewal_point(entry, fraction)
        if served is not None and name in served:
            entry["served_serial"] = str(served[name] or "")
        if failed:
            entry.update(
                last_result="failed",
                last_reason=str(r.get("msg") or failed_msg or "failed"),
                last_run=iso(when),
            )
            entry["overdue"] = overdue(entry, when, fraction)
        elif r.get("changed"):
            entry.update(
                last_result="issued" if r.get("reason") == "missing" else "renewed",
                last_reason=str(r.get("reason_msg") or r.get("reason") or ""),
                last_run=iso(when),
            )
        else:
            entry.update(last_result="valid", last_reason="", last_run="")
        out[name] = entry
    return out


def merged_facts(
    own: t.Mapping[str, t.Any],
    copied: t.Sequence[t.Mapping[str, t.Any]],
    hostvars: t.Mapping[str, t.Any],
    *,
    fraction: float = 0.333,
    now: t.Any = None,
) -> dict[str, t.Any]:
    """This host's entries plus, for pool certificates it copies, the entry of the leader's result.

    Built from the leader's registered acme_certificate result (it ran before, for every host), so the
    whole computation is one task on the controller.
    """
    out = dict(own)
    for c in copied:
        leader: t.Any = hostvars.get(c["leader"]) if hasattr(hostvars, "get") else None
        result = leader.get("__certificate_result") if hasattr(leader, "get") else None
        if not isinstance(result, dict):
            continue
        items = [i for i in result.get("certificates") or [] if isinstance(i, dict) and i.get("name") == c["name"]]
        if not items:
            continue
        entry = facts(
            [{"name": c["name"], "names": c["names"], "key_type": c.get("key_type")}],
            result,
            fraction=fraction,
            now=now,
        )[c["name"]]
        out[c["name"]] = {**entry, "issued_by": c["leader"]}
    return out


def _result_kind(entry: t.Mapping[str, t.Any]) -> str:
    return "failed" if entry.get("last_result") == "failed" else "ok"


def fact_document(entries: t.Mapping[str, t.Mapping[str, t.Any]]) -> tuple[str, str]:
    """(file text, prefix that identifies its state)."""
    digest = state_digest({n: {**e, "last_result": _result_kind(e)} for n, e in entries.items()})
    text = json.dumps({"state": digest, "certificates": entries}, indent=2, sort_keys=False) + "\n"
    return text, '{\n  "state": "' + digest + '",'


# --------------------------------------------------------------------------------------------- metrics

_LABEL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}


def _label(value: str) -> str:
    return "".join(_LABEL_ESCAPES.get(ch, ch) for ch in value)


METRICS = (
    ("not_after_seconds", "End of validity of the certificate on disk (Unix time)."),
    ("not_before_seconds", "Start of validity of the certificate on disk (Unix time)."),
    ("renew_after_seconds", "When renewal starts: the CA's ARI choice or the remaining-lifetime rule (Unix time)."),
    ("renewal_window_start_seconds", "Start of the renewal window suggested by the CA through ARI (Unix time)."),
    ("renewal_window_end_seconds", "End of the renewal window suggested by the CA through ARI (Unix time)."),
    ("last_renewal_success", "1 when the last run kept or renewed the certificate, 0 when it failed."),
    ("overdue", "1 when the certificate should have been renewed by now and was not."),
)


def _labels(name: str, names: t.Any) -> str:
    return f'certificate="{_label(str(name))}",names="{_label(",".join(str(n) for n in names or []))}"'


def _same_serial(a: t.Any, b: t.Any) -> bool:
    """Serials as hex text, whatever the case, colons or leading zeros."""
    return str(a).replace(":", "").lower().lstrip("0") == str(b or "").replace(":", "").lower().lstrip("0")


CHECK_METRIC = (
    "portail_https_certificate_last_check_timestamp_seconds",
    "When the last renew or site run checked the certificate (Unix time).",
)
SERVED_METRIC = (
    "portail_https_certificate_served_matches",
    "1 when the certificate served on port 443 is the one on disk, 0 when it is another (at the last check).",
)
CHECK_FILE = "portail_https_check.prom"
MAIN_FILE = "portail_https.prom"
#: what ends a sample line of check_metrics: the host's clock, or the served-check value of certificate <k>
CLOCK_MARK = " @T"
SERVED_MARK = " @S"


def check_metrics(certificates: t.Sequence[t.Mapping[str, t.Any]], served: bool = False) -> str:
    """The check file without its values, which the host fills in: the time of the check (its own clock)
    and, with ``served``, whether the certificate it serves is the one on disk (a sample only where
    something answered).

    Kept apart from portail_https.prom, whose content only changes with the certificates, so that a run
    that changed nothing rewrites this small file in the round trip it makes anyway, and nothing else:
    what is observed at each run never makes the fact file change.
    """
    ordered = sorted(enumerate(certificates), key=lambda kc: str(kc[1].get("name")))
    name, help_text = CHECK_METRIC
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f"{name}{{{_labels(c.get('name', ''), c.get('names'))}}}{CLOCK_MARK}" for _k, c in ordered]
    if served:
        name, help_text = SERVED_METRIC
        # '#?': header lines the host keeps only when at least one served sample follows
        lines += [f"#? HELP {name} {help_text}", f"#? TYPE {name} gauge"]
        lines += [f"{name}{{{_labels(c.get('name', ''), c.get('names'))}}}{SERVED_MARK}{k}" for k, c in ordered]
    return "\n".join(lines) + "\n"


def metrics(entries: t.Mapping[str, t.Mapping[str, t.Any]], *, now: t.Any = None, fraction: float = 0.333) -> str:
    """Prometheus text exposition format (node_exporter textfile collector)."""
    when = now_utc(now)
    lines: list[str] = []
    for metric, help_text in METRICS:
        full = f"portail_https_certificate_{metric}"
        samples: list[str] = []
        for name, e in sorted(entries.items()):
            value: t.Optional[float]
            if metric.startswith(("not_after", "not_before", "renew_after", "renewal_window")):
                key = {
                    "not_after_seconds": "not_after",
                    "not_before_seconds": "not_before",
                    "renew_after_seconds": "renew_after",
                    "renewal_window_start_seconds": "window_start",
                    "renewal_window_end_seconds": "window_end",
                }[metric]
                parsed = parse_time(e.get(key))
                value = parsed.timestamp() if parsed else None
            elif metric == "last_renewal_success":
                value = 0.0 if e.get("last_result") == "failed" else 1.0
            else:  # overdue
                value = 1.0 if (e.get("last_result") == "failed" and overdue(e, when, fraction)) else 0.0
            if value is None:
                continue
            label = _labels(name, e.get("names"))
            samples.append(f"{full}{{{label}}} {value:.0f}")
        if samples:
            lines.append(f"# HELP {full} {help_text}")
            lines.append(f"# TYPE {full} gauge")
            lines.extend(samples)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- writer

_SCRIPT = r"""set -eu
umask 022
tmp=""
trap 'if [ -n "$tmp" ]; then rm -f "$tmp"; fi' EXIT
fail() { echo "portail-record: $*" >&2; exit 3; }
trusted() {
  p=$1
  while :; do
    if [ -L "$p" ]; then fail "$p is a symbolic link: refusing to write under it"; fi
    if [ ! -d "$p" ]; then fail "$p is not a directory"; fi
    o=$(stat -c %u "$p"); m=$(stat -c %a "$p")
    if [ "$o" != 0 ]; then fail "$p is not owned by root: refusing to write under it"; fi
    if [ $(( 0$m & 022 )) -ne 0 ]; then fail "$p is writable by others than root: refusing to write under it"; fi
    if [ "$p" = / ]; then break; fi
    p=${p%/*}; if [ -z "$p" ]; then p=/; fi
  done
}
put() {
  tag=$1 dest=$2 keep=$3 data=$4 create=$5
  dir=${dest%/*}; if [ -z "$dir" ]; then dir=/; fi
  if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
    if [ "$create" != yes ]; then echo "absent:$tag"; return 0; fi
    mkdir -p "$dir"
  fi
  trusted "$dir"
  if [ -L "$dest" ] || { [ -e "$dest" ] && [ ! -f "$dest" ]; }; then fail "$dest is not a regular file"; fi
  if [ -n "$keep" ] && [ -f "$dest" ] && [ "$(head -c ${#keep} "$dest")" = "$keep" ]; then
    echo "kept:$tag"; return 0
  fi
  tmp=$(mktemp "$dir/.portail-record.XXXXXX")
  printf '%s' "$data" | base64 -d > "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; tmp=""; echo "same:$tag"; return 0; fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dest"; tmp=""
  echo "written:$tag"
}
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _check_path(path: str, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "//" in path or "/../" in path + "/":
        raise RenewStateError(f"{what} must be an absolute path without '..' (got {path!r})")
    if re.search(r"[\x00-\x1f\x7f]", path) or path.endswith("/"):
        raise RenewStateError(f"{what} must be a file path without control characters (got {path!r})")
    return path


#: bytes of the fact file that identify its state: '{\n  "state": "' + 32 hex digits + '",'
RECORDED_LENGTH = 48


def up_to_date(prefix: str, recorded: t.Any, metrics_dir: str) -> bool:
    """True when what acme_certificate's first round trip saw on the host is what this run would write.

    recorded: acme_certificate's ``record`` result (``head``: the fact file's first RECORDED_LENGTH bytes,
    ``metrics``: present | missing | absent (no such directory) | untrusted, ``check``: what became of
    the check-time file). Anything unknown or odd means: write (the record command then says why).
    """
    if not isinstance(recorded, dict) or recorded.get("head") != prefix:
        return False
    if not metrics_dir:
        return True
    return recorded.get("metrics") in ("present", "absent") and recorded.get("check") in ("written", "absent")


def record_command(
    entries: t.Mapping[str, t.Mapping[str, t.Any]],
    *,
    fact_file: str,
    metrics_dir: str = "",
    keep_when_unchanged: bool = True,
    now: t.Any = None,
    fraction: float = 0.333,
    recorded: t.Any = None,
) -> str:
    """One POSIX sh command (for ansible.builtin.raw) that writes the fact file and the metrics file.

    Prints 'written:facts' when the fact file changed, 'kept:facts'/'same:facts' otherwise, and the
    same for ':metrics' (its content changes with the certificates only; the check time lives in
    portail_https_check.prom). Refuses symlinks and directories that anyone but root can write. File
    content travels base64-encoded, so no byte of it is ever read by the shell as syntax. Returns ''
    when ``recorded`` (acme_certificate's ``record`` result) shows both files already up to date and
    ``keep_when_unchanged`` holds: there is nothing to send.
    """
    fact_path = _check_path(fact_file, "certificate_fact_file")
    text, prefix = fact_document(entries)
    # checked even when nothing is to be sent: bad input is refused at every run, not only at a change
    prom = _check_path(metrics_dir.rstrip("/") + "/" + MAIN_FILE, "certificate_metrics_dir") if metrics_dir else ""
    if keep_when_unchanged and up_to_date(prefix, recorded, metrics_dir):
        return ""
    parts = [_SCRIPT]
    keep = prefix if keep_when_unchanged else ""
    parts.append(f"put facts {shlex.quote(fact_path)} {shlex.quote(keep)} {_b64(text)} yes")
    if prom:
        parts.append(f"put metrics {shlex.quote(prom)} '' {_b64(metrics(entries, now=now, fraction=fraction))} no")
    return "/bin/sh -c " + shlex.quote("\n".join(parts) + "\n")


# --------------------------------------------------------------------------------------------- summary


def summary(hostvars: t.Mapping[str, t.Any], hosts: t.Sequence[str]) -> dict[str, t.Any]:
    """The renew run's outcome: one line per certificate that changed or failed, and what is overdue."""
    lines: list[str] = []
    certs: list[dict[str, t.Any]] = []
    overdue_list: list[str] = []
    skipped: list[str] = []
    for host in hosts:
        hv = hostvars.get(host) or {}
        run = hv.get("__certificate_run") if hasattr(hv, "get") else None
        if not isinstance(run, dict):
            skipped.append(host)
            continue
        for name, e in sorted((run.get("entries") or {}).items()):
            res = e.get("last_result", "")
            changed = name in (run.get("changed") or [])
            row = {
                "host": host,
                "certificate": name,
                "result": res if (changed or res == "failed") else "valid",
                "serial": e.get("serial", ""),
                "not_after": e.get("not_after", ""),
                "renew_after": e.get("renew_after", ""),
                "overdue": bool(e.get("overdue")),
            }
            certs.append(row)
            if res == "failed":
                flag = "OVERDUE" if e.get("overdue") else "not yet due"
                lines.append(f"{host} {name}: FAILED ({flag}): {e.get('last_reason', '')}")
                if e.get("overdue"):
                    overdue_list.append(f"{host} {name}")
            elif changed:
                lines.append(
                    f"{host} {name}: {res} serial {e.get('serial', '')} until {e.get('not_after', '')}"
                    f" ({e.get('last_reason', '')})"
                )
    return {
        "lines": lines,
        "certificates": certs,
        "overdue": overdue_list,
        "hosts_without_certificates": skipped,
        "counts": {
            "certificates": len(certs),
            "changed": sum(1 for c in certs if c["result"] in ("issued", "renewed")),
            "failed": sum(1 for c in certs if c["result"] == "failed"),
            "overdue": len(overdue_list),
        },
    }


# --------------------------------------------------------------------------------------------- report


def _served_from(registered: t.Any) -> dict[str, str]:
    """certificate name -> served serial ('' when nothing answered) from looped https_verify results."""
    out: dict[str, str] = {}
    if not isinstance(registered, dict):
        return out
    for res in registered.get("results") or []:
        if not isinstance(res, dict) or res.get("skipped"):
            continue
        item = res.get("item")
        name = item.get("key") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        cert = ((res.get("checks") or {}).get("certificate") or {}) if isinstance(res.get("checks"), dict) else {}
        out[name] = str(cert.get("serial") or "") if isinstance(cert, dict) else ""
    return out


def report_rows(
    hostvars: t.Mapping[str, t.Any],
    hosts: t.Sequence[str],
    *,
    now: t.Any = None,
    fraction: float = 0.333,
    check_served: bool = False,
) -> list[dict[str, t.Any]]:
    """One row per (host, certificate), and one per host that has no data; never fails on missing fields.

    With check_served, each host's registered ``__report_served`` (https_verify results looped over its
    certificates) gives the serial served on port 443.
    """
    when = now_utc(now)
    rows: list[dict[str, t.Any]] = []
    for host in sorted(hosts):
        hv = hostvars.get(host) or {}
        live_by_cert = _served_from(hv.get("__report_served") if hasattr(hv, "get") else None) if check_served else {}
        local = hv.get("ansible_local") if hasattr(hv, "get") else None
        doc = local.get("portail_https") if isinstance(local, dict) else None
        certs = doc.get("certificates") if isinstance(doc, dict) else None
        if not isinstance(certs, dict) or not certs:
            rows.append(
                {
                    "host": host,
                    "certificate": "",
                    "names": [],
                    "issuer": "",
                    "serial": "",
                    "not_after": "",
                    "days_left": None,
                    "renew_after": "",
                    "renewal_source": "",
                    "window_start": "",
                    "window_end": "",
                    "last_result": "no data",
                    "last_reason": "no certificate facts recorded on this host",
                    "last_run": "",
                    "status": "nodata",
                    "served_serial": "",
                    "served": "",
                }
            )
            continue
        for name, raw in sorted(certs.items()):
            c = raw if isinstance(raw, dict) else {}
            na = parse_time(c.get("not_after"))
            days = round((na - when).total_seconds() / 86400, 1) if na else None
            served_serial = str(c.get("served_serial") or "")
            checked = name in live_by_cert
            if checked:
                served_serial = live_by_cert[name]
            serial = str(c.get("serial") or "")
            if serial and (served_serial or checked):
                same = _same_serial(served_serial, serial)
                served_state = "match" if served_serial and same else "mismatch"
            else:
                served_state = ""
            failed = c.get("last_result") == "failed"
            late = overdue(c, when, fraction) if (failed or na is None or (days is not None and days < 0)) else False
            end = parse_time(c.get("window_end"))
            if end and when >= end:
                late = True
            if failed and not c.get("serial"):
                late = True
            status = "overdue" if late else ("failed" if failed else "ok")
            if served_state == "mismatch" and status == "ok":
                status = "mismatch"
            rows.append(
                {
                    "host": host,
                    "certificate": str(name),
                    "names": [str(n) for n in (c.get("names") or [])],
                    "issuer": str(c.get("issuer") or ""),
                    "serial": serial,
                    "not_after": str(c.get("not_after") or ""),
                    "days_left": days,
                    "renew_after": str(c.get("renew_after") or ""),
                    "renewal_source": str(c.get("renewal_source") or ""),
                    "window_start": str(c.get("window_start") or ""),
                    "window_end": str(c.get("window_end") or ""),
                    "last_result": str(c.get("last_result") or ""),
                    "last_reason": str(c.get("last_reason") or ""),
                    "last_run": str(c.get("last_run") or ""),
                    "status": status,
                    "served_serial": served_serial,
                    "served": served_state,
                }
            )
    order = {"overdue": 0, "nodata": 1, "failed": 2, "mismatch": 3, "ok": 4}
    rows.sort(
        key=lambda r: (
            order.get(r["status"], 5),
            r["days_left"] if r["days_left"] is not None else float("-inf"),
            r["host"],
            r["certificate"],
        )
    )
    return rows
