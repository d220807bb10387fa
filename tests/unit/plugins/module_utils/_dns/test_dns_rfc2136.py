"""RFC 2136 provider: error mapping (rcodes, TSIG errors, network) and secret hiding.
dns.query is replaced by fakes; the real server is exercised in tests/integration."""

from __future__ import annotations

import base64

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsig
import pytest
from ansible_collections.portail.https.plugins.module_utils._dns.base import TxtRecord
from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsAuthError,
    DnsConfigError,
    DnsError,
    DnsRefusedError,
    DnsUnreachableError,
    DnsUpdateError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider
from ansible_collections.portail.https.plugins.module_utils._dns.providers.rfc2136 import (
    Rfc2136Config,
    Rfc2136Provider,
)

SECRET = base64.b64encode(b"s3cr3t-do-not-print-me-0123456789").decode()
OPTIONS = {"server": "192.0.2.53", "key_name": "portail-tsig", "key_secret": SECRET, "timeout": 0.5}
RECORD = ("_acme-challenge.www.example.com", "value-1")


def provider() -> Rfc2136Provider:
    p = make_provider("rfc2136", OPTIONS)
    assert isinstance(p, Rfc2136Provider)
    # skip discovery: pretend the name sits in example.com.
    p.lookup.follow_cname = lambda name: [name]  # type: ignore[method-assign]
    p.lookup.find_zone = lambda name: dns.name.from_text("example.com.")  # type: ignore[method-assign]
    return p


def answer(rcode: int):
    def fake(message, where, timeout=None, port=53, **kw):
        response = dns.message.make_response(message) if not hasattr(message, "zone") else None
        if response is None:
            response = dns.message.Message(id=message.id)
            response.flags |= dns.flags.QR
        response.flags |= dns.flags.AA
        response.set_rcode(rcode)
        return response

    return fake


def raising(exc: BaseException):
    def fake(*args, **kw):
        raise exc

    return fake


def assert_no_secret(text: str) -> None:
    assert SECRET not in text
    assert SECRET[:12] not in text


@pytest.mark.parametrize(
    ("exc", "error", "rcode"),
    [
        (dns.tsig.PeerBadSignature(), DnsAuthError, "BADSIG"),
        (dns.tsig.PeerBadKey(), DnsAuthError, "BADKEY"),
        (dns.tsig.PeerBadTime(), DnsAuthError, "BADTIME"),
        (dns.exception.Timeout(), DnsUnreachableError, "TIMEOUT"),
        (OSError(113, "No route to host"), DnsUnreachableError, "UNREACHABLE"),
    ],
)
def test_transport_errors_are_typed(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, error: type, rcode: str
) -> None:
    monkeypatch.setattr(dns.query, "tcp", raising(exc))
    monkeypatch.setattr(dns.query, "udp", raising(exc))
    monkeypatch.setattr(dns.query, "udp_with_fallback", raising(exc))
    with pytest.raises(error) as info:
        provider().add_txt(*RECORD)
    err = info.value
    assert err.rcode == rcode
    assert err.server == "192.0.2.53:53"
    assert "example.com." in str(err)
    assert "192.0.2.53:53" in str(err)
    assert rcode in str(err)
    assert_no_secret(str(err))
    assert_no_secret(repr(err))


def test_tcp_refused_falls_back_to_udp(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []
    ok = answer(dns.rcode.NOERROR)

    def udp(message, where, **kw):
        used.append("udp")
        return ok(message, where, **kw)

    monkeypatch.setattr(dns.query, "tcp", raising(ConnectionRefusedError(111, "Connection refused")))
    monkeypatch.setattr(dns.query, "udp", udp)
    monkeypatch.setattr(dns.query, "udp_with_fallback", lambda m, w, **kw: (ok(m, w, **kw), False))
    record = provider().add_txt(*RECORD)
    assert used == ["udp"]
    assert record == TxtRecord(
        "_acme-challenge.www.example.com.",
        "value-1",
        "_acme-challenge.www.example.com.",
        "example.com.",
        ("_acme-challenge.www.example.com.",),
    )


@pytest.mark.parametrize(
    ("rcode", "error"),
    [
        (dns.rcode.REFUSED, DnsRefusedError),
        (dns.rcode.NOTAUTH, DnsRefusedError),
        (dns.rcode.SERVFAIL, DnsUpdateError),
        (dns.rcode.NOTZONE, DnsUpdateError),
    ],
)
def test_update_rcodes_are_typed(monkeypatch: pytest.MonkeyPatch, rcode: int, error: type) -> None:
    monkeypatch.setattr(dns.query, "udp_with_fallback", lambda m, w, **kw: (answer(dns.rcode.NOERROR)(m, w), False))
    monkeypatch.setattr(dns.query, "tcp", answer(rcode))
    with pytest.raises(error) as info:
        provider().add_txt(*RECORD)
    assert info.value.rcode == dns.rcode.to_text(rcode)
    assert "_acme-challenge.www.example.com." in str(info.value)
    assert "zone example.com." in str(info.value)


def test_preflight_refusal_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def tcp(*args, **kw):
        sent.append("update")
        raise AssertionError("no UPDATE may be sent")

    monkeypatch.setattr(dns.query, "udp_with_fallback", lambda m, w, **kw: (answer(dns.rcode.REFUSED)(m, w), False))
    monkeypatch.setattr(dns.query, "tcp", tcp)
    with pytest.raises(DnsRefusedError, match="REFUSED"):
        provider().add_txt(*RECORD)
    assert sent == []


def test_cleanup_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dns.query, "tcp", raising(dns.exception.Timeout()))
    errors = provider().cleanup([RECORD, ("_acme-challenge.example.com", "value-2")])
    assert len(errors) == 1  # unreachable: not retried record by record
    assert "TIMEOUT" in errors[0]
    assert provider().cleanup([]) == []


def test_secret_hidden_in_repr_and_str() -> None:
    config = Rfc2136Config.from_options(OPTIONS)
    p = Rfc2136Provider(config)
    for text in (repr(config), str(config), repr(p), str(p), f"{config}", str(vars(p).keys())):
        assert_no_secret(text)
    assert "portail-tsig" in repr(config)
    assert config.secret == SECRET


def test_bad_secret_is_refused_without_echoing_it() -> None:
    bad = "not base64 !!" + SECRET
    with pytest.raises(DnsConfigError) as info:
        Rfc2136Config(server="192.0.2.53", key_name="k", secret=bad)
    assert bad not in str(info.value)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"server": ""}, "server is required"),
        ({"server": "192.0.2.1", "key_name": "k"}, "go together"),
        ({"server": "192.0.2.1", "key_name": "k", "secret": SECRET, "algorithm": "hmac-foo"}, "unknown TSIG algorithm"),
        ({"server": "192.0.2.1", "port": 70000}, "port"),
        ({"server": "192.0.2.1", "bogus": 1}, "unknown option"),
        ({"server": "192.0.2.1", "key_name": "bad key", "secret": SECRET}, "white space"),
    ],
)
def test_config_errors(options: dict, match: str) -> None:
    with pytest.raises(DnsError, match=match):
        Rfc2136Config.from_options(options)


def test_unknown_provider() -> None:
    with pytest.raises(DnsConfigError, match="unknown DNS provider"):
        make_provider("route53", {})


def test_cleanup_retries_record_by_record_after_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def tcp(message, where, **kw):
        calls.append(1)
        return answer(dns.rcode.REFUSED)(message, where)

    monkeypatch.setattr(dns.query, "tcp", tcp)
    errors = provider().cleanup([RECORD, ("_acme-challenge.example.com", "value-2")])
    assert len(calls) == 3  # the batch, then each record
    assert len(errors) == 2
    assert all("REFUSED" in e for e in errors)
