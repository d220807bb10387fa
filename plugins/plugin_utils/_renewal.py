# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renewal rule of acme_certificate, in one place (controller side, no I/O).

``decide`` reads what the host reported (inspect) and says whether the certificate must be issued and
why. ``ari`` folds in the CA's renewal information (RFC 9773) for a certificate the local rule finds
valid. ``renew_at`` is when the local rule will say "expiring", for reports and metrics.

Local rule: missing files, changed names, changed key type, a key that does not match, ``force``, or less
than ``fraction`` of the lifetime left. Certificates living under 10 days (the 160-hour ``shortlived``
profiles) are renewed at half their lifetime at the latest, so a daily run always has a second chance.
ARI: renew once the point picked uniformly (and stably) inside the CA's suggested window has passed
(section 4.2); the window passed means renew now.
"""

from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass

from ansible_collections.portail.https.plugins.module_utils._acme.ari import RenewalInfo, cert_id_from
from ansible_collections.portail.https.plugins.module_utils._acme.utils import parse_timestamp

# Reasons: stable strings that roles, reports and metrics match on.
MISSING = "missing"
NAMES_CHANGED = "names_changed"
KEY_TYPE_CHANGED = "key_type_changed"
KEY_MISMATCH = "key_mismatch"
EXPIRING = "expiring"
ARI_WINDOW = "ari_window"
FORCED = "forced"
VALID = "valid"

SHORT_LIFETIME = datetime.timedelta(days=10)
SHORT_FRACTION = 0.5


@dataclass(frozen=True)
class Decision:
    reason: str
    msg: str
    renew_at: t.Optional[datetime.datetime] = None

    @property
    def due(self) -> bool:
        return self.reason != VALID


def _time(value: t.Any) -> datetime.datetime:
    parsed = parse_timestamp(str(value)) if value else None
    if parsed is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return parsed


def effective_fraction(lifetime: datetime.timedelta, fraction: float) -> float:
    """The share of the lifetime left at which to renew: at least half for lifetimes under 10 days."""
    return max(fraction, SHORT_FRACTION) if lifetime < SHORT_LIFETIME else fraction


def local_renew_at(cert: t.Mapping[str, t.Any], fraction: float) -> t.Optional[datetime.datetime]:
    try:
        not_before, not_after = _time(cert.get("not_before")), _time(cert.get("not_after"))
    except ValueError:
        return None
    lifetime = not_after - not_before
    return not_after - lifetime * effective_fraction(lifetime, fraction)


def decide(
    state: t.Mapping[str, t.Any],
    *,
    names: t.Sequence[str],
    key_type: str,
    fraction: float,
    force: bool,
    cert_path: str,
    key_path: str,
    now: datetime.datetime,
) -> Decision:
    """The local rule on an inspect result; VALID means only the CA's ARI could still say renew."""
    cert = state.get("cert")
    renew_at = local_renew_at(cert, fraction) if cert else None
    if force:
        return Decision(FORCED, "force is set", renew_at)
    if state.get("missing_files") or not cert:
        missing = ", ".join(state.get("missing_files") or [cert_path])
        return Decision(MISSING, f"no certificate yet (missing: {missing})")
    if state.get("problems"):
        return Decision(MISSING, "; ".join(state["problems"]))
    have, want = set(cert.get("names") or []), set(names)
    if have != want:
        parts = []
        if want - have:
            parts.append("adds " + ", ".join(sorted(want - have)))
        if have - want:
            parts.append("drops " + ", ".join(sorted(have - want)))
        return Decision(NAMES_CHANGED, "names changed: " + "; ".join(parts), renew_at)
    key = state.get("key") or {}
    if key.get("key_type") != key_type:
        return Decision(KEY_TYPE_CHANGED, f"key type changed from {key.get('key_type')} to {key_type}", renew_at)
    if not cert.get("matches_key"):
        return Decision(KEY_MISMATCH, f"{cert_path} does not match {key_path}", renew_at)
    try:
        not_before, not_after = _time(cert.get("not_before")), _time(cert.get("not_after"))
    except ValueError as exc:
        return Decision(MISSING, f"cannot read the validity of {cert_path}: {exc}")
    lifetime = not_after - not_before
    share = effective_fraction(lifetime, fraction)
    if lifetime.total_seconds() <= 0 or now >= t.cast(datetime.datetime, renew_at):
        days = (not_after - now).total_seconds() / 86400
        return Decision(
            EXPIRING,
            f"{days:.1f} days left of {lifetime.total_seconds() / 86400:.1f}, less than {share:.0%} of the lifetime"
            + (" (renew_remaining_fraction)" if share == fraction else " (lifetimes under 10 days renew at half)"),
            renew_at,
        )
    return Decision(VALID, f"valid until {cert['not_after']}", renew_at)


def ari(decision: Decision, info: RenewalInfo, now: datetime.datetime) -> Decision:
    """Fold the CA's renewal window into a VALID local decision (RFC 9773 section 4.2)."""
    window = f"{info.start.isoformat()} .. {info.end.isoformat()}"
    suffix = f" (explanation: {info.explanation_url})" if info.explanation_url else ""
    if info.should_renew(now):
        when = "the window has passed" if now >= info.end else f"the point picked in it, {info.selected.isoformat()}"
        return Decision(ARI_WINDOW, f"inside the CA's ARI renewal window {window}: {when}{suffix}", info.selected)
    renew_at = min(info.selected, decision.renew_at) if decision.renew_at else info.selected
    return Decision(
        VALID, f"{decision.msg}; the CA's ARI window is {window}, renewal at {renew_at.isoformat()}", renew_at
    )


def cert_id(cert: t.Mapping[str, t.Any]) -> t.Optional[str]:
    """RFC 9773 certID of an inspected certificate (hex AKI and serial); None without an AKI."""
    aki, serial = cert.get("aki"), cert.get("serial")
    if not aki or not serial:
        return None
    return cert_id_from(bytes.fromhex(str(aki).replace(":", "")), int(str(serial).replace(":", ""), 16))
