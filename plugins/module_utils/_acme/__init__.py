# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""portail.https ACME engine: an RFC 8555 client (with RFC 8737, 8738, 9773 and profiles).

See docs/acme-engine.md. Public names are re-exported here.
"""

from __future__ import annotations

from .account import Account
from .ari import Ari, RenewalInfo, cert_id
from .chain import Chain, choose_chain
from .challenges import dns01_value, key_authorization, tls_alpn01_certificate
from .client import AcmeClient, Directory
from .errors import (
    AccountDoesNotExist,
    AcmeError,
    AcmeTimeout,
    BadNonce,
    ProblemError,
    RateLimited,
    TransportError,
    UnsupportedError,
    ValidationFailed,
)
from .keys import AccountKey, jwk_thumbprint
from .order import Authorization, Challenge, Order, issue
from .revoke import REASONS
from .utils import Deadline

__all__ = [
    "REASONS",
    "Account",
    "AccountDoesNotExist",
    "AccountKey",
    "AcmeClient",
    "AcmeError",
    "AcmeTimeout",
    "Ari",
    "Authorization",
    "BadNonce",
    "Chain",
    "Challenge",
    "Deadline",
    "Directory",
    "Order",
    "ProblemError",
    "RateLimited",
    "RenewalInfo",
    "TransportError",
    "UnsupportedError",
    "ValidationFailed",
    "cert_id",
    "choose_chain",
    "dns01_value",
    "issue",
    "jwk_thumbprint",
    "key_authorization",
    "tls_alpn01_certificate",
]
