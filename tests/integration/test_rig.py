"""The rig itself: Pebble answers its directory over TLS, BIND accepts a TSIG-signed update."""

from __future__ import annotations

import json
import secrets
import ssl
import time
import urllib.request

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest


def _get_json(url: str, cafile: str) -> dict:
    ctx = ssl.create_default_context(cafile=cafile)
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize(
    "key", ["PORTAIL_ACME_DIRECTORY", "PORTAIL_ACME_EAB_DIRECTORY", "PORTAIL_ACME_NONCE_DIRECTORY"]
)
def test_pebble_directory(rig, key):
    directory = _get_json(rig[key], rig["PORTAIL_ACME_CA_BUNDLE"])
    for field in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert directory[field].startswith("https://127.0.0.1:")
    assert directory["meta"]["externalAccountRequired"] is (key == "PORTAIL_ACME_EAB_DIRECTORY")


def _txt(server: str, name: str) -> set[str]:
    q = dns.message.make_query(name, "TXT")
    r = dns.query.udp(q, server, timeout=2)
    return {b"".join(rd.strings).decode() for rrset in r.answer for rd in rrset}


def test_rfc2136_update_reaches_both_servers(rig):
    zone = rig["PORTAIL_DNS_ZONE"]
    name = f"_rigtest-{secrets.token_hex(4)}.{zone}."
    value = secrets.token_urlsafe(16)
    keyring = dns.tsigkeyring.from_text({rig["PORTAIL_TSIG_NAME"]: rig["PORTAIL_TSIG_SECRET"]})
    upd = dns.update.Update(zone, keyring=keyring, keyalgorithm=rig["PORTAIL_TSIG_ALGORITHM"])
    upd.add(name, 30, "TXT", f'"{value}"')
    resp = dns.query.tcp(upd, rig["PORTAIL_DNS_PRIMARY"], timeout=5)
    assert dns.rcode.to_text(resp.rcode()) == "NOERROR"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(value in _txt(s, name) for s in (rig["PORTAIL_DNS_PRIMARY"], rig["PORTAIL_DNS_SECONDARY"])):
                break
            time.sleep(0.1)
        assert value in _txt(rig["PORTAIL_DNS_PRIMARY"], name)
        assert value in _txt(rig["PORTAIL_DNS_SECONDARY"], name)
    finally:
        upd = dns.update.Update(zone, keyring=keyring, keyalgorithm=rig["PORTAIL_TSIG_ALGORITHM"])
        upd.delete(name, "TXT")
        dns.query.tcp(upd, rig["PORTAIL_DNS_PRIMARY"], timeout=5)


def test_wrong_tsig_is_refused(rig):
    zone = rig["PORTAIL_DNS_ZONE"]
    keyring = dns.tsigkeyring.from_text({rig["PORTAIL_TSIG_NAME"]: "d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldA=="})
    upd = dns.update.Update(zone, keyring=keyring, keyalgorithm=rig["PORTAIL_TSIG_ALGORITHM"])
    upd.add(f"_bad.{zone}.", 30, "TXT", '"x"')
    with pytest.raises(dns.tsig.PeerBadSignature):
        dns.query.tcp(upd, rig["PORTAIL_DNS_PRIMARY"], timeout=5)
