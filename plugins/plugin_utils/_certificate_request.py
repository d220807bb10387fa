# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The option table and input validation of portail.https.acme_certificate (controller side, no I/O).

``OPTIONS`` is the one declaration of the task's options: the argument spec, the options a
``certificates`` item may set (``item: True``) and the secrets masked in every message are derived from
it, the DNS options come from the DNS provider registry (each provider declares its own), and a unit test
holds the module's DOCUMENTATION to it. ``KEY_TYPES`` is the one table of key types (with the
``openssl genpkey`` arguments the host steps use). Everything here runs before the CA is contacted: a bad
request fails with a clear message and nothing changes anywhere.
"""

from __future__ import annotations

import ipaddress
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.portail.https.plugins.module_utils._dns.providers import options_spec as dns_options_spec

#: key type -> ``openssl genpkey`` arguments (the host makes the key; the only place key types are listed)
KEY_TYPES: dict[str, str] = {
    "ec256": "-algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve",
    "ec384": "-algorithm EC -pkeyopt ec_paramgen_curve:P-384 -pkeyopt ec_param_enc:named_curve",
    "rsa2048": "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
    "rsa3072": "-algorithm RSA -pkeyopt rsa_keygen_bits:3072",
    "rsa4096": "-algorithm RSA -pkeyopt rsa_keygen_bits:4096",
}
CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")
DEFAULT_FRACTION = 1.0 / 3.0

#: name -> Ansible argument spec, plus ``item: True`` for options a ``certificates`` item may override
OPTIONS: dict[str, dict[str, t.Any]] = {
    "names": {"type": "list", "elements": "str", "item": True},
    "certificates": {"type": "list", "elements": "dict"},
    "name": {"type": "str", "item": True, "item_only": True},
    "key_type": {"type": "str", "default": "ec256", "choices": list(KEY_TYPES), "item": True},
    "key_path": {"type": "str", "item": True},
    "cert_path": {"type": "str", "item": True},
    "chain_path": {"type": "str", "item": True},
    "fullchain_path": {"type": "str", "item": True},
    "owner": {"type": "str", "item": True},
    "group": {"type": "str", "item": True},
    "mode": {"type": "raw", "default": "0644", "item": True},
    "key_mode": {"type": "raw", "default": "0600", "item": True},
    "backup": {"type": "bool", "default": True, "item": True},
    "acme_directory": {"type": "str", "required": True},
    "acme_ca_bundle": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "account_key_src": {"type": "path"},
    "account_key_content": {"type": "str", "no_log": True},
    "account_key_passphrase": {"type": "str", "no_log": True},
    "contact": {"type": "list", "elements": "str", "default": []},
    "terms_agreed": {"type": "bool", "default": False},
    "acme_proxy": {"type": "str", "no_log": True},
    "use_proxy": {"type": "bool", "default": True},
    "eab_kid": {"type": "str"},
    "eab_hmac_key": {"type": "str", "no_log": True},
    "eab_alg": {"type": "str", "default": "HS256", "choices": ["HS256", "HS384", "HS512"]},
    "profile": {"type": "str", "item": True},
    "preferred_chain": {"type": "str", "item": True},
    "challenge": {"type": "str", "default": "http-01", "choices": list(CHALLENGES), "item": True},
    "webroot": {"type": "list", "elements": "str", "default": [], "item": True},
    "challenge_dir": {"type": "str", "item": True},
    "dns": {"type": "dict", "options": "dns", "item": True},
    "alpn_address": {"type": "str", "default": "0.0.0.0", "item": True},  # noqa: S104
    "alpn_port": {"type": "int", "default": 443, "item": True},
    "renew_remaining_fraction": {"type": "float", "default": DEFAULT_FRACTION, "item": True},
    "use_ari": {"type": "bool", "default": True},
    "preflight": {"type": "bool", "default": True},
    "preflight_resolvers": {"type": "list", "elements": "str", "default": []},
    "caa_check": {"type": "bool", "default": True},
    "force": {"type": "bool", "default": False, "item": True},
    "resume": {"type": "list", "elements": "dict"},
    "abort": {"type": "bool", "default": False},
    "timeout": {"type": "float", "default": 300},
    "concurrency": {"type": "int", "default": 4},
    "record": {"type": "dict"},
}
_OURS = ("item", "item_only")


def argument_spec() -> dict[str, dict[str, t.Any]]:
    """The Ansible argument spec of the task (item-only options and our own keys left out)."""
    spec: dict[str, dict[str, t.Any]] = {}
    for name, opt in OPTIONS.items():
        if opt.get("item_only"):
            continue
        entry = {k: v for k, v in opt.items() if k not in _OURS}
        if entry.get("options") == "dns":
            entry["options"] = dns_options_spec()
        spec[name] = entry
    return spec


ITEM_OPTIONS = tuple(name for name, opt in OPTIONS.items() if opt.get("item"))


def _secret_names(spec: t.Mapping[str, t.Mapping[str, t.Any]]) -> set[str]:
    return {name for name, opt in spec.items() if opt.get("no_log")}


def secrets(args: t.Mapping[str, t.Any]) -> list[str]:
    """Every secret value in the task arguments (top level, dns, certificates items), longest first."""
    top = _secret_names(OPTIONS)
    dns = _secret_names(dns_options_spec())
    found: list[str] = []

    def collect(values: t.Mapping[str, t.Any]) -> None:
        for name in top:
            if isinstance(values.get(name), str):
                found.append(values[name])
        sub = values.get("dns")
        if isinstance(sub, dict):
            for k, v in sub.items():
                if k in dns and isinstance(v, str):
                    found.append(v)
                elif k in dns and isinstance(v, dict):  # command_env: every value is a secret
                    found.extend(x for x in v.values() if isinstance(x, str))

    collect(args)
    for item in args.get("certificates") or []:
        if isinstance(item, dict):
            collect(item)
    # short strings would mask innocent words; Ansible's own no_log masking covers the task's arguments
    return sorted({s for s in found if len(s) >= 6}, key=len, reverse=True)


_LABEL_RE = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_SAFE_PATH_RE = re.compile(r"\A[^\x00-\x1f\x7f]+\Z")


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
    mode: int = 0o644
    key_mode: int = 0o600
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


def _mode(value: t.Any, what: str, label: str, *, private: bool = False) -> int:
    """An octal mode given as a string ('0644', '644'); integers are refused: YAML reads an unquoted
    644 as decimal (0o1204) and 0644 as octal, so only a quoted string says what the user meant."""
    if isinstance(value, bool) or not isinstance(value, str) or not re.match(r"\A0?[0-7]{3}\Z", value):
        raise RequestError(
            f"certificate {label}: {what} must be a quoted octal string such as '0644' (got {value!r}; "
            "an unquoted 644 is read as a decimal number)"
        )
    mode = int(value, 8)
    if private and mode & 0o077 & ~0o040:
        raise RequestError(f"certificate {label}: {what} {value} lets other accounts read or change the private key")
    return mode


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
    dns = {k: v for k, v in dict(o.get("dns") or {}).items() if v is not None}
    unknown = sorted(set(dns) - set(dns_options_spec()))
    if unknown:
        raise RequestError(f"certificate {label}: unknown dns option(s) {', '.join(unknown)}")
    if challenge == "dns-01" and dns.get("provider", "rfc2136") == "rfc2136" and not dns.get("server"):
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
        key_mode=_mode(o.get("key_mode") or "0600", "key_mode", label, private=True),
        backup=True if o.get("backup") is None else bool(o.get("backup")),
        profile=o.get("profile") or None,
        preferred_chain=o.get("preferred_chain") or None,
        force=bool(o.get("force")),
        renew_remaining_fraction=fraction,
    )
