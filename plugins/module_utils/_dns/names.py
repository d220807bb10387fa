# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name handling: IDNA, trailing dots, case, wildcards, the ``_acme-challenge`` label."""

from __future__ import annotations

import ipaddress
import re
import typing as t

from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsNameError

try:
    import dns.exception
    import dns.name
except ImportError as exc:  # pragma: no cover - exercised by ansible-test's import sanity test
    HAS_DNSPYTHON = False
    DNSPYTHON_IMPORT_ERROR: t.Optional[ImportError] = exc
else:
    HAS_DNSPYTHON = True
    DNSPYTHON_IMPORT_ERROR = None

if t.TYPE_CHECKING:  # pragma: no cover
    from dns.name import Name

CHALLENGE_LABEL = "_acme-challenge"
# After IDNA: letters, digits, hyphen; underscore is allowed for service labels such as _acme-challenge.
_LABEL_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
MAX_TXT_LEN = 255


def require_dnspython() -> None:
    """Raise a clear error when dnspython is missing on the controller."""
    if not HAS_DNSPYTHON:
        raise DnsNameError(f"the DNS-01 backends need dnspython >= 2.4 on the controller: {DNSPYTHON_IMPORT_ERROR}")


def to_name(name: str, *, what: str = "name") -> Name:
    """Parse a user-given DNS name into an absolute, lower-case ``dns.name.Name``.

    Accepts unicode (IDNA-encoded), upper case and an optional trailing dot. Rejects
    empty names, empty labels, over-long labels/names, IP addresses and characters that
    are not letters, digits, hyphen or underscore.
    """
    require_dnspython()
    if not isinstance(name, str):
        raise DnsNameError(f"{what} must be a string, got {type(name).__name__}")
    text = name.strip()
    if text in ("", "."):
        raise DnsNameError(f"{what} is empty", record=name)
    if any(c.isspace() for c in text):
        raise DnsNameError(f"{what} {name!r} contains white space", record=name)
    try:
        ipaddress.ip_address(text.rstrip("."))
    except ValueError:
        pass
    else:
        raise DnsNameError(f"{what} {name!r} is an IP address, not a DNS name", record=name)
    try:
        if text.isascii():
            parsed = dns.name.from_text(text)
        else:
            parsed = dns.name.from_unicode(text)
    except dns.exception.DNSException as exc:
        raise DnsNameError(f"{what} {name!r} is not a valid DNS name: {exc}", record=name) from None
    except UnicodeError as exc:
        raise DnsNameError(f"{what} {name!r} cannot be IDNA-encoded: {exc}", record=name) from None
    parsed = parsed.canonicalize()
    labels = parsed.labels[:-1]
    for i, raw in enumerate(labels):
        label = raw.decode("ascii", errors="replace")
        if label == "*" and i == 0:
            continue
        if not _LABEL_RE.match(label):
            raise DnsNameError(f"{what} {name!r} has an invalid label {label!r}", record=name)
    return parsed


def to_text(name: Name) -> str:
    """Absolute presentation form with trailing dot (ASCII, lower case)."""
    return name.canonicalize().to_text()


def is_wildcard(name: Name) -> bool:
    return len(name.labels) > 1 and name.labels[0] == b"*"


def record_name(name: str) -> Name:
    """Parse the owner name of a TXT record to write; wildcards are refused here."""
    parsed = to_name(name, what="record name")
    if is_wildcard(parsed) or b"*" in parsed.labels:
        raise DnsNameError(f"record name {name!r} may not contain '*'", record=name)
    return parsed


def challenge_name(identifier: str) -> str:
    """``example.com`` and ``*.example.com`` -> ``_acme-challenge.example.com.`` (RFC 8555 section 8.4)."""
    parsed = to_name(identifier, what="identifier")
    if is_wildcard(parsed):
        parsed = parsed.parent()
    if b"*" in parsed.labels:
        raise DnsNameError(f"identifier {identifier!r} has '*' other than as the leftmost label", record=identifier)
    return to_text(dns.name.Name((CHALLENGE_LABEL.encode(),)).concatenate(parsed))


def check_txt_value(value: str, record: str = "") -> str:
    """A TXT value we can write as one character-string (ACME values are 43 base64url characters)."""
    if not isinstance(value, str):
        raise DnsNameError(f"TXT value for {record or 'record'} must be a string", record=record)
    if not value or len(value.encode("utf-8")) > MAX_TXT_LEN:
        raise DnsNameError(f"TXT value for {record or 'record'} must be 1 to {MAX_TXT_LEN} bytes", record=record)
    if not value.isascii() or not value.isprintable():
        raise DnsNameError(f"TXT value for {record or 'record'} must be printable ASCII", record=record)
    return value
