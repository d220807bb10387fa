# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small helpers: base64url, Retry-After, deadlines and backoff, Link headers."""

from __future__ import annotations

import base64
import datetime
import email.utils
import re
import time
from typing import Optional

from .errors import AcmeTimeout


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64u_decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def int_bytes(value: int, length: Optional[int] = None) -> bytes:
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def parse_retry_after(value: Optional[str], now: Optional[datetime.datetime] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = now or utcnow()
    return max(0.0, (when - now).total_seconds())


def parse_timestamp(value: Optional[str]) -> Optional[datetime.datetime]:
    """RFC 3339 timestamp (as ACME servers send them) to an aware datetime."""
    if not value:
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python < 3.11 fromisoformat needs at most 6 fractional digits
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m:
        frac = (m.group(2) or "")[:7]
        text = m.group(1) + frac + m.group(3)
    try:
        result = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if result.tzinfo is None:
        result = result.replace(tzinfo=datetime.timezone.utc)
    return result


class Deadline:
    """An overall time budget: every wait in the engine is bounded by one."""

    def __init__(self, seconds: float, what: str = "ACME operation") -> None:
        self.seconds = float(seconds)
        self.what = what
        self.end = time.monotonic() + self.seconds

    @classmethod
    def of(cls, value: Deadline | float | None, default: float, what: str = "ACME operation") -> Deadline:
        if isinstance(value, Deadline):
            return value
        return cls(default if value is None else float(value), what)

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def check(self, detail: str = "") -> None:
        if self.expired:
            raise AcmeTimeout(
                f"{self.what} did not finish within {self.seconds:g} s" + (f": {detail}" if detail else "")
            )

    def sleep(self, seconds: float, detail: str = "") -> None:
        """Sleep, but never past the deadline; raise AcmeTimeout if it has passed."""
        self.check(detail)
        time.sleep(max(0.0, min(seconds, self.remaining())))


class Backoff:
    """Exponential backoff starting small; a server's Retry-After wins when it is given."""

    def __init__(self, first: float = 0.05, factor: float = 2.0, maximum: float = 5.0) -> None:
        self.first = first
        self.factor = factor
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            self.attempt += 1
            return max(0.0, retry_after)
        delay = min(self.maximum, self.first * (self.factor**self.attempt))
        self.attempt += 1
        return delay


_LINK_RE = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+(?:=(?:"[^"]*"|[^;,]*))?)*)')


def parse_links(values: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Parse Link header values into (url, params) pairs."""
    result: list[tuple[str, dict[str, str]]] = []
    for value in values:
        for m in _LINK_RE.finditer(value):
            params: dict[str, str] = {}
            for raw in m.group(2).split(";"):
                part = raw.strip()
                if not part:
                    continue
                key, _sep, val = part.partition("=")
                params[key.strip().lower()] = val.strip().strip('"')
            result.append((m.group(1), params))
    return result
