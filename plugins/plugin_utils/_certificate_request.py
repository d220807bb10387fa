# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input validation and renewal decisions of portail.https.acme_certificate (controller side, no I/O).

Everything here runs before the CA is contacted: a bad request fails with a clear message and
nothing changes anywhere.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import typing as t
from dataclasses import dataclass, field

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")
DEFAULT_FRACTION = 1.0 / 3.0

#: options a ``certificates`` item may set (anything else comes from the task's top level)
ITEM_OPTIONS = (
    "name",
    "names",
    "key_type",
    "challenge",
    "webroot",
    "challenge_dir",
    "dns",
    "alpn_address",
    "alpn_port",
    "key_path",
    "cert_path",
    "chain_path",
    "fullchain_path",
    "owner",
    "group",
    "mode",
    "key_mode",
    "backup",
    "profile",
    "preferred_chain",
    "force",
    "renew_remaining_fraction",
)

_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SAFE_PATH_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")
DNS_OPTIONS = (
    "provider",
    "server",
    "port",
    "key_name",
    "key_secret",
    "key_algorithm",
    "timeout",
    "ttl",
    "resolvers",
    "nameserver_port",
    "propagation_timeout",
)

# Reasons (stable strings: roles and reports match on them)
MISSING = "missing"
NAMES_CHANGED = "names_changed"
KEY_TYPE_CHANGED = "key_type_changed"
KEY_MISMATCH = "key_mismatch"
EXPIRING = "expiring"
ARI_WINDOW = "ari_window"
FORCED = "forced"
VALID = "valid"


class RequestError(Exception):
    """Bad input, found before anything is contacted or changed."""


@dataclass
class CertSpec:
    label: str
    names: list[str]
    key_type: str
    challenge: str
    key_path: str
    cert_path: str
    chain_path: t.Optional[str]
    fullchain_path: t.Optional[str]
    webroot: list[str] = field(default_factory=list)
    challenge_dir: t.Optional[str] = None
    dns: dict[str, t.Any] = field(default_factory=dict)
    alpn_address: str = "0.0.0.0"  # noqa: S104
    alpn_port: int = 443
    owner: t.Optional[str] = None
    group: t.Optional[str] = None
    mode: str = "0644"
    key_mode: str = "0600"
    backup: bool = True
    profile: t.Optional[str] = None
    preferred_chain: t.Optional[str] = None
    force: bool = False
    renew_remaining_fraction: float = DEFAULT_FRACTION

    @property
    def identifiers(self) -> list[dict[str, str]]:
        return [{"type": "ip" if is_ip(n) else "dns", "value": n} for n in self.names]


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normalize_name(raw: t.Any, challenge: str) -> str:
    """One certificate name: a DNS name (IDNA, lower case, optional leading ``*.``) or an IP address."""
    if not isinstance(raw, str):
        raise RequestError(f"names: {raw!r} is not a string")
    name = raw.strip()
    if not name:
        raise RequestError("names: empty name")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in raw):
        raise RequestError(f"names: {raw!r} contains white space or control characters")
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        if challenge == "dns-01":
            raise RequestError(
                f"names: IP address {name} cannot be validated with dns-01 (RFC 8738); use http-01 or tls-alpn-01"
            )
        return str(ip)
    if name.endswith("."):
        name = name[:-1]
    wildcard = name.startswith("*.")
    base = name[2:] if wildcard else name
    if "*" in base:
        raise RequestError(f"names: {raw!r}: '*' is only allowed as the whole leftmost label (*.example.org)")
    if wildcard and challenge != "dns-01":
        raise RequestError(f"names: wildcard {raw!r} needs challenge dns-01 (CAs validate wildcards by DNS only)")
    try:
        ascii_name = base.encode("idna").decode("ascii") if not base.isascii() else base
    except UnicodeError as exc:
        raise RequestError(f"names: {raw!r} cannot be IDNA-encoded: {exc}") from None
    ascii_name = ascii_name.lower()
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise RequestError(f"names: {raw!r} is not a fully qualified domain name")
    if len(ascii_name) > 253:
        raise RequestError(f"names: {raw!r} is longer than 253 characters")
    for label in labels:
        if not _LABEL_RE.match(label):
            raise RequestError(
                f"names: {raw!r} has an invalid label {label!r} (letters, digits and inner hyphens, 1 to 63 characters)"
            )
    if labels[-1].isdigit():
        raise RequestError(f"names: {raw!r} looks like a malformed IP address")
    return ("*." if wildcard else "") + ascii_name


def _path(value: t.Any, what: str, label: str) -> t.Optional[str]:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.startswith("/") or not _SAFE_PATH_RE.match(value):
        raise RequestError(f"certificate {label}: {what} must be an absolute path without control characters")
    return value


def _mode(value: t.Any, what: str, label: str) -> str:
    text = format(value, "o") if isinstance(value, int) else str(value)
    if not re.match(r"^0?[0-7]{3,4}$", text):
        raise RequestError(f"certificate {label}: {what} must be an octal mode such as '0644', got {value!r}")
    return text if text.startswith("0") else "0" + text


def build_specs(args: t.Mapping[str, t.Any]) -> list[CertSpec]:
    """Turn the task arguments (single form or ``certificates`` list) into validated CertSpecs."""
    items = args.get("certificates")
    if items:
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise RequestError("certificates must be a list of dictionaries")
        if args.get("names"):
            raise RequestError("give either names (one certificate) or certificates (a list), not both")
    else:
        items = [{}]
    specs: list[CertSpec] = []
    for index, item in enumerate(items):
        unknown = sorted(set(item) - set(ITEM_OPTIONS))
        if unknown:
            raise RequestError(
                f"certificates[{index}]: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(ITEM_OPTIONS)}"
            )
        merged = {k: args.get(k) for k in ITEM_OPTIONS}
        merged.update({k: v for k, v in item.items() if v is not None})
        specs.append(_build_one(merged, index if args.get("certificates") else None))
    seen: dict[str, str] = {}
    for spec in specs:
        for path in (spec.key_path, spec.cert_path, spec.chain_path, spec.fullchain_path):
            if path and path in seen and seen[path] != spec.label:
                raise RequestError(f"certificates {seen[path]} and {spec.label} both write {path}")
            if path:
                seen[path] = spec.label
    return specs


def _build_one(o: dict[str, t.Any], index: t.Optional[int]) -> CertSpec:
    names_in = o.get("names") or []
    if isinstance(names_in, str):
        names_in = [names_in]
    label = str(o.get("name") or (names_in[0] if names_in else f"certificates[{index}]"))
    if not names_in:
        raise RequestError(f"certificate {label}: names is required (DNS names and/or IP addresses)")
    challenge = o.get("challenge") or "http-01"
    if challenge not in CHALLENGES:
        raise RequestError(f"certificate {label}: challenge must be one of {', '.join(CHALLENGES)}, got {challenge!r}")
    names: list[str] = []
    for raw in names_in:
        name = normalize_name(raw, challenge)
        if name not in names:
            names.append(name)
    key_type = o.get("key_type") or "ec256"
    if key_type not in KEY_TYPES:
        raise RequestError(f"certificate {label}: key_type must be one of {', '.join(KEY_TYPES)}, got {key_type!r}")
    cert_path = _path(o.get("cert_path"), "cert_path", label)
    key_path = _path(o.get("key_path"), "key_path", label)
    if not cert_path or not key_path:
        raise RequestError(f"certificate {label}: key_path and cert_path are required")
    webroot = o.get("webroot") or []
    if isinstance(webroot, str):
        webroot = [webroot]
    webroots = [t.cast(str, _path(w, "webroot", label)) for w in webroot]
    challenge_dir = _path(o.get("challenge_dir"), "challenge_dir", label)
    if challenge == "http-01" and not webroots and not challenge_dir:
        raise RequestError(f"certificate {label}: http-01 needs webroot (or challenge_dir) to place token files")
    dns = dict(o.get("dns") or {})
    unknown = sorted(set(dns) - set(DNS_OPTIONS))
    if unknown:
        raise RequestError(f"certificate {label}: unknown dns option(s) {', '.join(unknown)}")
    if challenge == "dns-01" and not dns.get("server"):
        raise RequestError(f"certificate {label}: dns-01 needs dns.server (the primary that accepts RFC 2136 updates)")
    port = o.get("alpn_port")
    alpn_port = 443 if port in (None, "") else int(port)
    if not 0 < alpn_port < 65536:
        raise RequestError(f"certificate {label}: alpn_port must be between 1 and 65535")
    alpn_address = str(o.get("alpn_address") or "0.0.0.0")  # noqa: S104
    if not is_ip(alpn_address):
        raise RequestError(f"certificate {label}: alpn_address must be an IP address, got {alpn_address!r}")
    fraction = o.get("renew_remaining_fraction")
    fraction = DEFAULT_FRACTION if fraction in (None, "") else float(fraction)
    if not 0 < fraction < 1:
        raise RequestError(f"certificate {label}: renew_remaining_fraction must be between 0 and 1")
    return CertSpec(
        label=label,
        names=names,
        key_type=key_type,
        challenge=challenge,
        key_path=key_path,
        cert_path=cert_path,
        chain_path=_path(o.get("chain_path"), "chain_path", label),
        fullchain_path=_path(o.get("fullchain_path"), "fullchain_path", label),
        webroot=webroots,
        challenge_dir=challenge_dir,
        dns=dns,
        alpn_address=alpn_address,
        alpn_port=alpn_port,
        owner=o.get("owner") or None,
        group=o.get("group") or None,
        mode=_mode(o.get("mode") or "0644", "mode", label),
        key_mode=_mode(o.get("key_mode") or "0600", "key_mode", label),
        backup=True if o.get("backup") is None else bool(o.get("backup")),
        profile=o.get("profile") or None,
        preferred_chain=o.get("preferred_chain") or None,
        force=bool(o.get("force")),
        renew_remaining_fraction=fraction,
    )


# ---------------------------------------------------------------------------------------------------------
# decisions


def parse_time(value: str) -> datetime.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # RFC 3339 with more than 6 fractional digits (Go servers) -> cut to microseconds
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def decide_local(spec: CertSpec, state: t.Mapping[str, t.Any], now: datetime.datetime) -> tuple[str, str]:
    """(reason, message) from what the host reported; VALID means only the CA's ARI could still say renew."""
    if spec.force:
        return FORCED, "force is set"
    cert = state.get("cert")
    if state.get("missing_files") or not cert:
        missing = ", ".join(state.get("missing_files") or [spec.cert_path])
        return MISSING, f"no certificate yet (missing: {missing})"
    if state.get("problems"):
        return MISSING, "; ".join(state["problems"])
    have, want = set(cert.get("names") or []), set(spec.names)
    if have != want:
        added, removed = sorted(want - have), sorted(have - want)
        parts = (["adds " + ", ".join(added)] if added else []) + (["drops " + ", ".join(removed)] if removed else [])
        return NAMES_CHANGED, "names changed: " + "; ".join(parts)
    key = state.get("key") or {}
    if key.get("key_type") != spec.key_type:
        return KEY_TYPE_CHANGED, f"key type changed from {key.get('key_type')} to {spec.key_type}"
    if not cert.get("matches_key"):
        return KEY_MISMATCH, f"{spec.cert_path} does not match {spec.key_path}"
    not_before, not_after = parse_time(cert["not_before"]), parse_time(cert["not_after"])
    lifetime = (not_after - not_before).total_seconds()
    remaining = (not_after - now).total_seconds()
    fraction = spec.renew_remaining_fraction
    if lifetime <= 0 or remaining < fraction * lifetime:
        return EXPIRING, (
            f"{remaining / 86400:.1f} days left of {lifetime / 86400:.0f}, less than "
            f"{fraction:.0%} of the lifetime (renew_remaining_fraction)"
        )
    return VALID, f"valid until {cert['not_after']}"


def ari_says_renew(info: t.Mapping[str, t.Any], now: datetime.datetime) -> tuple[bool, str]:
    """RFC 9773: renew once the suggested window has started."""
    window = info.get("suggestedWindow") or {}
    try:
        start, end = parse_time(window["start"]), parse_time(window["end"])
    except (KeyError, TypeError, ValueError):
        return False, "the CA's renewalInfo has no usable suggestedWindow"
    explanation = info.get("explanationURL")
    suffix = f" (explanation: {explanation})" if explanation else ""
    if now >= start:
        return True, f"inside the CA's ARI renewal window {window['start']} .. {window['end']}{suffix}"
    return False, f"the CA's ARI window starts {start.isoformat()} (ends {end.isoformat()})"


def ari_cert_id(aki_hex: t.Optional[str], serial_hex: str) -> t.Optional[str]:
    """RFC 9773 section 4.1 certID from the host's hex AKI and serial (the engine's encoding); None without AKI."""
    from ansible_collections.portail.https.plugins.module_utils._acme.ari import cert_id_from

    if not aki_hex:
        return None
    return cert_id_from(bytes.fromhex(aki_hex.replace(":", "")), int(serial_hex.replace(":", ""), 16))
