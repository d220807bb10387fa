# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors of the DNS backends.

Messages name the record, the server and the rcode; they never contain a TSIG secret.
"""

from __future__ import annotations


class DnsError(Exception):
    """Base class of every error raised by the DNS backends."""

    def __init__(
        self,
        message: str,
        *,
        record: str | None = None,
        server: str | None = None,
        rcode: str | None = None,
        zone: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.record = record
        self.server = server
        self.rcode = rcode
        self.zone = zone

    def __str__(self) -> str:
        return self.message


class DnsNameError(DnsError):
    """A malformed DNS name or TXT value (raised before anything is sent)."""


class DnsConfigError(DnsError):
    """Invalid provider settings (bad algorithm, secret not base64, ...)."""


class DnsUnreachableError(DnsError):
    """A server did not answer in time or refused the connection."""


class DnsAuthError(DnsError):
    """TSIG was rejected: BADKEY (unknown key name), BADSIG (wrong secret) or BADTIME (clock skew)."""


class DnsRefusedError(DnsError):
    """REFUSED / NOTAUTH: the key may not change this name, or the server is not primary for the zone."""


class DnsUpdateError(DnsError):
    """Any other failed UPDATE (SERVFAIL, FORMERR, NOTZONE, ...)."""


class DnsLookupError(DnsError):
    """Zone discovery, CNAME following or nameserver resolution failed."""


class DnsCnameLoopError(DnsLookupError):
    """A CNAME chain loops or is longer than the limit."""


class DnsPropagationTimeout(DnsError):
    """Some authoritative server did not serve all values before the deadline.

    ``lagging`` lists one line per (record, server) that was still behind.
    """

    def __init__(self, message: str, lagging: list[str]) -> None:
        super().__init__(message)
        self.lagging = lagging
