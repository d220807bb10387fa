# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One module per DNS-01 provider; ``make_provider`` picks one by name."""

from __future__ import annotations

import typing as t

from ansible_collections.portail.https.plugins.module_utils._dns.base import DnsProvider
from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsConfigError
from ansible_collections.portail.https.plugins.module_utils._dns.providers.rfc2136 import (
    Rfc2136Config,
    Rfc2136Provider,
)

PROVIDERS = ("rfc2136",)


def make_provider(kind: str, options: t.Mapping[str, t.Any]) -> DnsProvider:
    """``make_provider("rfc2136", {"server": ..., "key_name": ..., "key_secret": ...})``."""
    if kind == "rfc2136":
        return Rfc2136Provider(Rfc2136Config.from_options(options))
    raise DnsConfigError(f"unknown DNS provider {kind!r}; known: {', '.join(PROVIDERS)}")


def options_spec() -> dict[str, dict[str, t.Any]]:
    """The ``dns`` suboptions of acme_certificate: every provider's options, ``provider`` and the wait."""
    return {
        "provider": {"type": "str", "default": "rfc2136", "choices": list(PROVIDERS)},
        "server": {"type": "str"},
        "port": {"type": "int"},
        "key_name": {"type": "str"},
        "key_secret": {"type": "str", "no_log": True},
        "key_algorithm": {"type": "str"},
        "timeout": {"type": "float"},
        "ttl": {"type": "int"},
        "resolvers": {"type": "list", "elements": "str"},
        "nameserver_port": {"type": "int"},
        "propagation_timeout": {"type": "float"},
    }
