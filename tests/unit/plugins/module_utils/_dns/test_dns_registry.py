"""The provider registry: option table, secrets, flat secret variables, and provider options checks."""

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsConfigError
from ansible_collections.portail.https.plugins.module_utils._dns.providers import (
    PROVIDERS,
    make_provider,
    merge_secret_variables,
    options_spec,
    secret_options,
    secret_variables,
)


def test_every_provider_declares_options_and_a_factory() -> None:
    assert set(PROVIDERS) == {"rfc2136", "pdns", "command", "external"}
    for name, module in PROVIDERS.items():
        assert isinstance(module.OPTIONS, dict) and module.OPTIONS, name
        assert callable(module.make), name
        for option, spec in module.OPTIONS.items():
            assert "default" not in spec, f"{name}.{option}: defaults live in the provider's config class"


def test_options_spec_merges_providers_and_common_options() -> None:
    spec = options_spec()
    assert spec["provider"] == {
        "type": "str",
        "default": "rfc2136",
        "choices": ["rfc2136", "pdns", "command", "external"],
    }
    assert spec["propagation_timeout"] == {"type": "float"}
    for module in PROVIDERS.values():
        for option, option_spec in module.OPTIONS.items():
            assert spec[option] == option_spec
    # the table is an argument spec Ansible accepts
    result = ArgumentSpecValidator({"dns": {"type": "dict", "options": spec}}).validate(
        {"dns": {"provider": "pdns", "api_url": "http://192.0.2.1:8081", "api_key": "k"}}
    )
    assert result.error_messages == []
    assert result.validated_parameters["dns"]["provider"] == "pdns"
    spec["provider"]["choices"].append("mutated")
    assert "mutated" not in options_spec()["provider"]["choices"]  # callers get a copy


def test_every_secret_is_no_log() -> None:
    assert secret_options() == {"key_secret", "api_key", "command_env"}
    spec = options_spec()
    for name in ("key_secret", "api_key", "command_env"):
        assert spec[name]["no_log"] is True
    assert secret_variables() == {
        "certificate_dns_api_key": "api_key",
        "certificate_dns_command_env": "command_env",
        "certificate_dns_key_secret": "key_secret",
    }


def test_conflicting_specs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.portail.https.plugins.module_utils._dns.providers import pdns

    monkeypatch.setitem(pdns.OPTIONS, "ttl", {"type": "str"})
    with pytest.raises(DnsConfigError, match="give option 'ttl' different specs"):
        options_spec()


def test_flat_secret_variables_fill_unset_options_only() -> None:
    merged = merge_secret_variables(
        {"server": "192.0.2.53", "key_secret": None}, {"certificate_dns_key_secret": "c2VjcmV0", "other": 1}
    )
    assert merged == {"server": "192.0.2.53", "key_secret": "c2VjcmV0"}
    same = merge_secret_variables({"key_secret": "c2VjcmV0"}, {"certificate_dns_key_secret": "c2VjcmV0"})
    assert same == {"key_secret": "c2VjcmV0"}
    assert merge_secret_variables({"api_key": "a"}, {"certificate_dns_api_key": ""}) == {"api_key": "a"}


def test_flat_secret_variable_conflict_names_the_option_not_the_values() -> None:
    with pytest.raises(DnsConfigError) as info:
        merge_secret_variables({"api_key": "first-secret"}, {"certificate_dns_api_key": "second-secret"})
    text = str(info.value)
    assert "api_key" in text and "certificate_dns_api_key" in text
    assert "first-secret" not in text and "second-secret" not in text


def test_unknown_provider_and_foreign_options_are_named() -> None:
    with pytest.raises(DnsConfigError, match="unknown DNS provider 'route53'; known: rfc2136, pdns, command"):
        make_provider("route53", {})
    with pytest.raises(DnsConfigError, match="pdns: unknown option 'key_name'"):
        make_provider("pdns", {"api_url": "http://192.0.2.1", "api_key": "k", "key_name": "x"})
    with pytest.raises(DnsConfigError, match="rfc2136: unknown option 'api_key'"):
        make_provider("rfc2136", {"server": "192.0.2.53", "api_key": "k"})
    with pytest.raises(DnsConfigError, match="handled by the caller"):
        make_provider("rfc2136", {"server": "192.0.2.53", "propagation_timeout": 5})
    # options of other providers left unset (None) by the argument spec are ignored
    assert make_provider("rfc2136", {"server": "192.0.2.53", "api_key": None, "command": None}).kind == "rfc2136"
