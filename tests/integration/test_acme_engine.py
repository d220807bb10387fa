"""The ACME engine against the rig's real Pebble: orders, challenges, chains, nonces, errors, concurrency.

Addresses 127.0.10.1-39 (names acme1-39.portail.test) answer http-01 from a responder this module runs.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import time

import dns.message
import dns.query
import dns.tsigkeyring
import dns.update
import pytest
from ansible_collections.portail.https.plugins.module_utils._acme import (
    AccountKey,
    AcmeClient,
    UnsupportedError,
    ValidationFailed,
    issue,
)
from cryptography import x509

from .acme_support import Http01Responder, acme_addr, acme_name, make_csr

pytestmark = pytest.mark.rig

ADDRS = list(range(1, 40))


@pytest.fixture(scope="module")
def responder():
    r = Http01Responder([acme_addr(n) for n in ADDRS])
    yield r
    r.close()


def new_client(rig, directory_key="PORTAIL_ACME_DIRECTORY", key=None):
    c = AcmeClient(rig[directory_key], key or AccountKey.generate(), ca_bundle=rig["PORTAIL_ACME_CA_BUNDLE"])
    c.account().create(contact=["mailto:engine@portail.test"], terms_agreed=True)
    return c


def known_account_client(rig, c):
    """A fresh client (empty caches, no nonce) that knows its account URL: the per-order cost a module pays."""
    return AcmeClient(c.directory_url, c.key, account_url=c.account_url, ca_bundle=rig["PORTAIL_ACME_CA_BUNDLE"])


def sans(chain):
    ext = chain.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(ext.get_values_for_type(x509.DNSName)), sorted(
        str(i) for i in ext.get_values_for_type(x509.IPAddress)
    )


def test_http01_dns_order_costs_at_most_8_requests(rig, responder):
    c = known_account_client(rig, new_client(rig))
    csr, _csr_key = make_csr([acme_name(1)])
    order, chain = issue(c, [acme_name(1)], csr, responder.publish, cleanup=responder.cleanup)
    assert order.status == "valid"
    assert sans(chain) == ([acme_name(1)], [])
    kinds = dict(c.requests_by_kind)
    # directory, newNonce, newOrder, authz, challenge, finalize, one order poll, certificate = 8.
    # On top of that only: Pebble's random badNonce rejections (5 % by default; retried transparently)
    # and extra polls when the CA was slower than the engine's first pause (bench/acme_engine.py reports it).
    assert kinds["directory"] == 1 and kinds["newNonce"] == 1, kinds
    retried = c.bad_nonce_by_kind
    extra_polls = (kinds["order"] - 1 - retried["order"]) + (kinds["finalize"] - 1 - retried["finalize"])
    assert c.requests - c.bad_nonce_retried - extra_polls == 8, (kinds, c.bad_nonce_retried)


def test_ip_identifier_order(rig, responder):
    c = new_client(rig)
    csr, _csr_key = make_csr([acme_addr(2)])
    order, chain = issue(c, [acme_addr(2)], csr, responder.publish, cleanup=responder.cleanup)
    assert order.identifiers == [{"type": "ip", "value": "127.0.10.2"}]
    assert sans(chain) == ([], ["127.0.10.2"])


def test_multi_name_dns_and_ip_order(rig, responder):
    c = new_client(rig)
    names = [acme_name(3), acme_name(4), acme_addr(5)]
    csr, _csr_key = make_csr(names)
    _order, chain = issue(c, names, csr, responder.publish, cleanup=responder.cleanup)
    assert sans(chain) == (sorted(names[:2]), ["127.0.10.5"])


def test_step_by_step_api_and_authz_reuse(rig, responder):
    c = new_client(rig)
    order = c.new_order([acme_name(6)])
    authzs = order.authorizations()
    assert [a.identifier for a in authzs] == [acme_name(6)]
    ch = authzs[0].challenge("http-01")
    assert ch.key_authorization == f"{ch.token}.{c.key.thumbprint}"
    responder.publish(ch)
    c.answer(ch)
    order.wait_ready(30)
    assert order.status == "ready"
    csr, _csr_key = make_csr([acme_name(6)])
    order.finalize(csr, 30)
    chain = order.download()
    assert sans(chain)[0] == [acme_name(6)]
    # a second order for the same name: the CA may hand back the valid authorization (nothing to answer)
    order2 = c.new_order([acme_name(6)])
    pending = order2.pending_challenges("http-01")
    assert all(a.status in ("valid", "pending") for a in order2.authorizations())
    assert len(pending) == sum(a.status == "pending" for a in order2.authorizations())


def test_validation_failure_names_identifier_and_challenge(rig, responder):
    c = new_client(rig)
    csr, _csr_key = make_csr([acme_name(7)])
    with pytest.raises(ValidationFailed) as info:
        issue(c, [acme_name(7)], csr, lambda ch: None, deadline=60)  # nothing published: the CA gets 404
    text = str(info.value)
    assert acme_name(7) in text
    assert "http-01" in text
    assert info.value.detail


def test_preferred_chain_by_root_cn(rig, responder):
    c = new_client(rig)
    csr, _csr_key = make_csr([acme_name(8)])
    order, default = issue(c, [acme_name(8)], csr, responder.publish, cleanup=responder.cleanup)
    order.download(all_chains=True)
    roots = [ch.root_name for ch in order.chains]
    assert len(roots) == 3, roots  # PEBBLE_ALTERNATE_ROOTS=2: the default chain and two alternates
    assert len(set(roots)) == 3
    wanted = roots[2]
    fresh = c.order(order.url)
    chosen = fresh.download(preferred_chain=wanted)
    assert chosen.root_name == wanted
    assert chosen.leaf.serial_number == default.leaf.serial_number
    assert fresh.download(preferred_chain="no such root").root_name == roots[0]


def _dns_publish(rig, name, value, delete=False):
    keyring = dns.tsigkeyring.from_text({rig["PORTAIL_TSIG_ACME_NAME"]: rig["PORTAIL_TSIG_ACME_SECRET"]})
    upd = dns.update.UpdateMessage(rig["PORTAIL_DNS_ZONE"], keyring=keyring, keyalgorithm=rig["PORTAIL_TSIG_ALGORITHM"])
    if delete:
        upd.delete(name + ".", "TXT", f'"{value}"')
    else:
        upd.add(name + ".", 30, "TXT", f'"{value}"')
    resp = dns.query.tcp(upd, rig["PORTAIL_DNS_PRIMARY"], timeout=5)
    assert resp.rcode() == 0
    if not delete:
        # the CA's resolver may ask either authoritative server: wait until the secondary has the value too
        _wait_txt(rig, name, value)


def _wait_txt(rig, name, value, timeout=20.0):
    deadline = time.monotonic() + timeout
    servers = [rig["PORTAIL_DNS_PRIMARY"], rig["PORTAIL_DNS_SECONDARY"]]
    while servers:
        q = dns.message.make_query(name + ".", "TXT")
        answer = dns.query.udp(q, servers[0], timeout=2)
        texts = {b"".join(rd.strings).decode() for rrset in answer.answer for rd in rrset}
        if value in texts:
            servers.pop(0)
            continue
        assert time.monotonic() < deadline, f"{name} TXT not served by {servers[0]}"
        time.sleep(0.05)


def test_wildcard_order_with_dns01(rig):
    c = new_client(rig)
    names = [f"*.{acme_name(9)}", acme_name(9)]
    csr, _csr_key = make_csr(names)
    published = []

    def publish(ch):
        _dns_publish(rig, ch.dns_name, ch.dns_value)
        published.append(ch)

    try:
        order, chain = issue(c, names, csr, publish, challenge_type="dns-01")
    finally:
        for ch in published:
            _dns_publish(rig, ch.dns_name, ch.dns_value, delete=True)
    assert order.status == "valid"
    assert sans(chain)[0] == sorted(names)
    assert any(a.wildcard for a in order.authorizations())


def test_tls_alpn01_certificate_material(rig):
    c = new_client(rig)
    order = c.new_order([acme_name(10)])
    ch = order.authorizations()[0].challenge("tls-alpn-01")
    assert ch is not None
    pem, _key = ch.tls_alpn_certificate()
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")).critical


def test_profile_not_offered_by_pebble(rig):
    c = new_client(rig)
    with pytest.raises(UnsupportedError, match="profile"):
        c.new_order([acme_name(11)], profile="shortlived")
    assert not c.ari.supported


def test_replaces_dropped_when_ca_has_no_ari(rig, responder):
    c = new_client(rig)
    order = c.new_order([acme_name(12)], replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert order.replaces_dropped


def test_nonce_rejecting_pebble_all_orders_succeed(rig, responder):
    c = new_client(rig, "PORTAIL_ACME_NONCE_DIRECTORY")
    idx = list(range(20, 40))  # 20 orders (names 30-39 are reused by the next test: the responder keys by token)

    def one(n):
        csr, _csr_key = make_csr([acme_name(n)])
        return issue(c, [acme_name(n)], csr, responder.publish, cleanup=responder.cleanup)[1]

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        chains = list(pool.map(one, idx))
    assert [sans(ch)[0] for ch in chains] == [[acme_name(n)] for n in idx]
    # the CA rejected about half of the nonces: the retries happened and stayed invisible
    assert c.requests > 8 * len(idx)
    assert c.bad_nonce_retried > 0


def test_concurrent_orders_one_client(rig, responder):
    c = new_client(rig)
    idx = list(range(30, 40))

    def one(n):
        csr, _csr_key = make_csr([acme_name(n)])
        return issue(c, [acme_name(n)], csr, responder.publish, cleanup=responder.cleanup)[1]

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        chains = list(pool.map(one, idx))
    assert len({ch.leaf.serial_number for ch in chains}) == len(idx)
    assert c.requests_by_kind["newNonce"] <= len(idx)


def test_ec384_and_rsa_account_keys(rig, responder):
    for n, kind in ((13, "ec384"), (14, "rsa2048")):
        c = new_client(rig, key=AccountKey.generate(kind))
        csr, _csr_key = make_csr([acme_name(n)])
        order, _chain = issue(c, [acme_name(n)], csr, responder.publish, cleanup=responder.cleanup)
        assert order.status == "valid"
    assert ipaddress.ip_address(acme_addr(13))


def test_tls_alpn01_validation(rig, tmp_path):
    """Serve the engine's tls-alpn-01 certificate on 127.0.10.15:443 with ALPN acme-tls/1; Pebble validates it."""
    import socket
    import ssl
    import threading

    c = new_client(rig)
    order = c.new_order([acme_name(15)])
    ch = order.pending_challenges("tls-alpn-01")[0]
    cert_pem, key_pem = ch.tls_alpn_certificate()
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_alpn_protocols(["acme-tls/1"])
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    srv = socket.create_server((acme_addr(15), 443), reuse_port=False)
    srv.settimeout(0.2)
    stop = threading.Event()
    seen = []

    def serve():
        while not stop.is_set():
            try:
                conn, _peer = srv.accept()
            except OSError:
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    seen.append(tls.selected_alpn_protocol())
            except (ssl.SSLError, OSError):
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        c.answer(ch)
        order.wait_ready(60)
    finally:
        stop.set()
        t.join(2)
        srv.close()
    assert order.status == "ready"
    assert "acme-tls/1" in seen
