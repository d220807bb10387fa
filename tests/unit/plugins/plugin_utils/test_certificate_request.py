"""Input validation and renewal decisions of acme_certificate (no I/O)."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.portail.https.plugins.plugin_utils import _certificate_request as cr

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)


def args(**kw):
    base = {"names": ["www.example.org"], "key_path": "/etc/k.pem", "cert_path": "/etc/c.pem", "webroot": ["/srv"]}
    base.update(kw)
    return base


def state(names=("www.example.org",), key_type="ec256", days_left=60.0, lifetime=90.0, matches=True):
    not_after = NOW + datetime.timedelta(days=days_left)
    not_before = not_after - datetime.timedelta(days=lifetime)
    return {
        "missing_files": [],
        "problems": [],
        "key": {"key_type": key_type},
        "cert": {
            "names": list(names),
            "not_before": not_before.isoformat(),
            "not_after": not_after.isoformat(),
            "serial": "87654321",
            "aki": "69885b6b87464041e1b37b847ba0ae2cde01c8d4",
            "matches_key": matches,
        },
    }


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
    assert spec.mode == "0644" and spec.key_mode == "0600"
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


@pytest.mark.parametrize(
    ("st", "spec_kw", "reason"),
    [
        (state(), {}, cr.VALID),
        ({"missing_files": ["/etc/c.pem"], "cert": None}, {}, cr.MISSING),
        (state(names=("old.example.org",)), {}, cr.NAMES_CHANGED),
        (state(key_type="rsa2048"), {}, cr.KEY_TYPE_CHANGED),
        (state(matches=False), {}, cr.KEY_MISMATCH),
        (state(days_left=29), {}, cr.EXPIRING),
        (state(days_left=31), {}, cr.VALID),
        (state(days_left=50), {"renew_remaining_fraction": 0.6}, cr.EXPIRING),
        (state(days_left=-1), {}, cr.EXPIRING),
        (state(), {"force": True}, cr.FORCED),
    ],
)
def test_decide_local(st, spec_kw, reason):
    [spec] = cr.build_specs(args(**spec_kw))
    assert cr.decide_local(spec, st, NOW)[0] == reason


def test_names_changed_message_lists_added_and_dropped():
    [spec] = cr.build_specs(args(names=["www.example.org", "new.example.org"]))
    _reason, msg = cr.decide_local(spec, state(names=("www.example.org", "gone.example.org")), NOW)
    assert "adds new.example.org" in msg and "drops gone.example.org" in msg


def test_ari_cert_id_rfc9773_example():
    # RFC 9773 section 4.1: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4, serial 00:87:65:43:21
    assert (
        cr.ari_cert_id("69885b6b87464041e1b37b847ba0ae2cde01c8d4", "87654321") == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    )
    assert cr.ari_cert_id(None, "01") is None


def test_ari_window():
    inside = {"suggestedWindow": {"start": "2026-11-22T00:00:00Z", "end": "2026-11-24T00:00:00Z"}}
    before = {"suggestedWindow": {"start": "2026-12-01T00:00:00.123456789Z", "end": "2026-12-03T00:00:00Z"}}
    assert cr.ari_says_renew(inside, NOW)[0] is True
    assert cr.ari_says_renew(before, NOW)[0] is False
    assert cr.ari_says_renew({}, NOW)[0] is False
