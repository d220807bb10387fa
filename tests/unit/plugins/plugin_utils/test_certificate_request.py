"""Input validation and the option table of acme_certificate (no I/O)."""

from __future__ import annotations

import pytest
from ansible_collections.portail.https.plugins.plugin_utils import _certificate_request as cr


def args(**kw):
    base = {"names": ["www.example.org"], "key_path": "/etc/k.pem", "cert_path": "/etc/c.pem", "webroot": ["/srv"]}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("raw", "challenge", "expected"),
    [
        ("WWW.Example.ORG.", "http-01", "www.example.org"),
        ("*.example.org", "dns-01", "*.example.org"),
        ("bücher.example", "http-01", "xn--bcher-kva.example"),
        ("2001:DB8::1", "http-01", "2001:db8::1"),
        ("192.0.2.1", "tls-alpn-01", "192.0.2.1"),
    ],
)
def test_good_names(raw, challenge, expected):
    assert cr.normalize_name(raw, challenge) == expected


@pytest.mark.parametrize(
    ("raw", "challenge", "message"),
    [
        ("*.example.org", "http-01", "needs challenge dns-01"),
        ("*.example.org", "tls-alpn-01", "needs challenge dns-01"),
        ("192.0.2.1", "dns-01", "RFC 8738"),
        ("a.*.example.org", "dns-01", "leftmost"),
        ("a..example.org", "http-01", "invalid label"),
        ("a_b.example.org", "http-01", "invalid label"),
        ("x.example.org;reboot", "http-01", "invalid label"),
        ("x.example.org\n", "http-01", "control"),
        ("$(id).example.org", "http-01", "invalid label"),
        ("localhost", "http-01", "fully qualified"),
        ("1.2.3.999", "http-01", "malformed IP"),
        ("", "http-01", "empty"),
    ],
)
def test_bad_names(raw, challenge, message):
    with pytest.raises(cr.RequestError, match=message):
        cr.normalize_name(raw, challenge)


def test_build_specs_single_and_list():
    [spec] = cr.build_specs(args(names=["B.example.org", "b.example.org", "a.example.org"]))
    assert spec.names == ["b.example.org", "a.example.org"]
    assert spec.mode == 0o644 and spec.key_mode == 0o600
    specs = cr.build_specs(
        {
            "webroot": ["/srv"],
            "key_type": "rsa2048",
            "certificates": [
                {"name": "one", "names": ["one.example.org"], "key_path": "/k1", "cert_path": "/c1"},
                {"names": ["two.example.org"], "key_path": "/k2", "cert_path": "/c2", "key_type": "ec384"},
            ],
        }
    )
    assert [s.label for s in specs] == ["one", "two.example.org"]
    assert [s.key_type for s in specs] == ["rsa2048", "ec384"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"webroot": []}, "needs webroot"),
        ({"challenge": "dns-01"}, "dns.server"),
        ({"key_path": "relative.pem"}, "absolute path"),
        ({"mode": "rwx"}, "octal"),
        ({"mode": 644}, "quoted octal string"),
        ({"mode": 420}, "quoted octal string"),
        ({"key_mode": "0644"}, "private key"),
        ({"key_mode": "0602"}, "private key"),
        ({"dns": {"bogus": 1}, "challenge": "dns-01"}, "unknown dns option"),
        ({"renew_remaining_fraction": 1.5}, "between 0 and 1"),
        ({"alpn_address": "host; rm"}, "IP address"),
        ({"certificates": [{"names": ["x.example.org"], "bogus": 1}], "names": None}, "unknown option"),
    ],
)
def test_bad_requests(extra, message):
    with pytest.raises(cr.RequestError, match=message):
        cr.build_specs(args(**extra))


def test_two_certificates_same_path_refused():
    items = [
        {"names": ["a.example.org"], "key_path": "/k", "cert_path": "/c1"},
        {"names": ["b.example.org"], "key_path": "/k", "cert_path": "/c2"},
    ]
    with pytest.raises(cr.RequestError, match="both write /k"):
        cr.build_specs({"webroot": ["/srv"], "certificates": items})


def test_key_mode_group_read_is_allowed():
    [spec] = cr.build_specs(args(key_mode="0640", mode="644"))
    assert spec.key_mode == 0o640 and spec.mode == 0o644


def test_argument_spec_is_derived_from_the_table():
    spec = cr.argument_spec()
    assert "name" not in spec  # an item-only option
    assert spec["dns"]["options"]["key_secret"]["no_log"] is True
    assert spec["key_type"]["choices"] == list(cr.KEY_TYPES)
    assert not any("item" in opt for opt in spec.values())
    assert set(cr.ITEM_OPTIONS) >= {"name", "names", "dns", "key_type", "profile"}


def test_secrets_found_everywhere_the_table_says():
    found = cr.secrets(
        {
            "account_key_content": "-----BEGIN PRIVATE KEY-----xyz",
            "eab_hmac_key": "hmac-secret-1",
            "dns": {
                "key_secret": "tsig-secret-1",
                "server": "ns1.example.org",
                "command_env": {"TOKEN": "api-token-9"},
            },
            "certificates": [{"dns": {"key_secret": "tsig-secret-2"}}, "not a dict"],
            "names": ["www.example.org"],
        }
    )
    assert set(found) == {
        "-----BEGIN PRIVATE KEY-----xyz",
        "hmac-secret-1",
        "tsig-secret-1",
        "tsig-secret-2",
        "api-token-9",
    }


def test_module_documentation_matches_the_table():
    """The docs' option list is held to the table: same names, types, defaults, choices and no_log."""
    import yaml
    from ansible_collections.portail.https.plugins.modules import acme_certificate as mod

    doc = yaml.safe_load(mod.DOCUMENTATION)["options"]
    from ansible_collections.portail.https.plugins.doc_fragments.acme import ModuleDocFragment

    doc.update({k: v for k, v in yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"].items() if k not in doc})
    spec = cr.argument_spec()
    assert set(spec) <= set(doc), sorted(set(spec) - set(doc))
    for name, opt in spec.items():
        d = doc[name]
        assert d.get("type", "str") == opt["type"], name
        if "choices" in opt:
            assert list(d.get("choices")) == list(opt["choices"]), name
        if "default" in opt and opt["default"] not in ([], None):
            assert d.get("default") == opt["default"] or str(d.get("default")) == str(opt["default"]), name
    for name, opt in spec["dns"]["options"].items():
        sub = doc["dns"]["suboptions"][name]
        assert sub.get("type", "str") == opt["type"], name
        assert list(sub.get("choices") or []) == list(opt.get("choices") or []), name
