# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DNS-01 provider registry.

A provider is one module in this package plus one line in ``PROVIDERS``. The module declares
``OPTIONS`` (an Ansible argument-spec fragment of its own options, ``no_log: True`` on every
secret, no defaults: the provider's config class holds them) and a ``make(options)`` factory.
``options_spec()`` merges every provider's options into acme_certificate's ``dns`` suboptions.
"""

from __future__ import annotations

import copy
import types
import typing as t

from ansible_collections.portail.https.plugins.module_utils._dns.base import DnsProvider
from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsConfigError
from ansible_collections.portail.https.plugins.module_utils._dns.providers import command, external, pdns, rfc2136

PROVIDERS: dict[str, types.ModuleType] = {
    "rfc2136": rfc2136,
    "pdns": pdns,
    "command": command,
    "external": external,
}

#: options every provider understands, handled by the caller (not passed to ``make_provider``)
COMMON_SPEC: dict[str, dict[str, t.Any]] = {
    "provider": {"type": "str", "default": "rfc2136", "choices": list(PROVIDERS)},
    "propagation_timeout": {"type": "float"},
}

#: prefix of the flat variables a credential store (an AWX credential type) can inject
FLAT_VARIABLE_PREFIX = "certificate_dns_"


def options_spec() -> dict[str, dict[str, t.Any]]:
    """acme_certificate's ``dns`` suboptions: every provider's OPTIONS, ``provider`` and
    ``propagation_timeout``. An option two providers share must have one spec."""
    merged: dict[str, dict[str, t.Any]] = copy.deepcopy(COMMON_SPEC)
    owners: dict[str, str] = {}
    for name, module in PROVIDERS.items():
        for option, spec in module.OPTIONS.items():
            if option in COMMON_SPEC:
                raise DnsConfigError(f"provider {name} redefines the common option {option!r}")
            if option in merged and merged[option] != spec:
                raise DnsConfigError(f"providers {owners[option]} and {name} give option {option!r} different specs")
            merged.setdefault(option, copy.deepcopy(spec))
            owners.setdefault(option, name)
    return merged


def secret_options() -> set[str]:
    """Names of the options that hold secrets (``no_log``), across every provider."""
    return {name for name, spec in options_spec().items() if spec.get("no_log")}


def secret_variables() -> dict[str, str]:
    """Flat variable name -> option name, e.g. ``certificate_dns_key_secret`` -> ``key_secret``.

    Extra vars do not merge into a dict, so a credential store injects secrets as flat variables;
    the role passes them on with ``merge_secret_variables``."""
    return {FLAT_VARIABLE_PREFIX + name: name for name in sorted(secret_options())}


def merge_secret_variables(options: t.Mapping[str, t.Any], variables: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """``options`` with each secret option that is unset (missing or None) taken from its flat
    variable in ``variables``. Giving both, with different values, is an error (which one was
    meant?); the message names the option, never the value."""
    out = dict(options)
    for variable, option in secret_variables().items():
        flat = variables.get(variable)
        if flat is None or flat == "":
            continue
        given = out.get(option)
        if given is None or given == "":
            out[option] = flat
        elif given != flat:
            raise DnsConfigError(
                f"dns option {option} is given both in the dns settings and as variable {variable}, "
                "with different values: give it once"
            )
    return out


def make_provider(kind: str, options: t.Mapping[str, t.Any]) -> DnsProvider:
    """``make_provider("rfc2136", {"server": ..., "key_name": ..., "key_secret": ...})``.

    ``options`` holds the provider's own options (None values are ignored); an option of
    another provider is an error that names it."""
    module = PROVIDERS.get(kind)
    if module is None:
        raise DnsConfigError(f"unknown DNS provider {kind!r}; known: {', '.join(PROVIDERS)}")
    given = {k: v for k, v in options.items() if v is not None}
    for key in given:
        if key in COMMON_SPEC:
            raise DnsConfigError(f"dns option {key!r} is handled by the caller, not by provider {kind}")
    provider: DnsProvider = module.make(given)
    return provider
