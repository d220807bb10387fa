"""Known-answer tests of the ACME engine's pure functions."""

from __future__ import annotations

import datetime
import hashlib
import random

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme import ari, challenges, errors, keys, utils
from ansible_collections.portail.https.plugins.module_utils._acme.chain import Chain, choose_chain
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# RFC 7638 section 3.1
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
    "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zg"
    "dAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
    "kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_rfc7638_thumbprint():
    assert keys.jwk_thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_key_authorization_and_dns01_value():
    ka = challenges.key_authorization("token123", "thumb456")
    assert ka == "token123.thumb456"
    # base64url(SHA-256("token123.thumb456")), computed with openssl dgst
    assert challenges.dns01_value(ka) == "C57a8n4V6RiD8qaxNQ93zJcBZK-JSpPVi4LssXkFchA"
    assert challenges.dns01_name("*.example.com") == "_acme-challenge.example.com"


def test_tls_alpn01_certificate():
    ka = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    pem, _key = challenges.tls_alpn01_certificate("www.example.org", ka)
    cert = x509.load_pem_x509_certificate(pem)
    ext = cert.extensions.get_extension_for_oid(challenges.ACME_IDENTIFIER_OID)
    assert ext.critical
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(ka.encode()).digest()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.org"]
    pem_ip, _ip_key = challenges.tls_alpn01_certificate("192.0.2.1", ka)
    san = x509.load_pem_x509_certificate(pem_ip).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [str(a) for a in san.value.get_values_for_type(x509.IPAddress)] == ["192.0.2.1"]
    assert challenges.tls_alpn01_sni("192.0.2.1") == "1.2.0.192.in-addr.arpa"


def test_rfc9773_cert_id_example():
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    assert ari.cert_id_from(aki, 0x87654321) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert ari.serial_der_bytes(0x7F) == b"\x7f"
    assert ari.serial_der_bytes(0x80) == b"\x00\x80"


def _cert(serial: int, aki: bytes) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "t")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_cert_id_from_certificate():
    cert = _cert(0x87654321, bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4"))
    assert ari.cert_id(cert) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_renewal_window_choice():
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    end = start + datetime.timedelta(days=2)
    info = ari.RenewalInfo("x.y", start, end, rng=random.Random(1))
    assert start <= info.selected <= end
    assert not info.should_renew(start - datetime.timedelta(seconds=1))
    assert info.should_renew(end)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("", None), (None, None), ("soon", None), ("-5", None)],
)
def test_retry_after_seconds(value, expected):
    assert utils.parse_retry_after(value) == expected


def test_retry_after_http_date():
    now = datetime.datetime(2015, 10, 21, 7, 28, 0, tzinfo=datetime.timezone.utc)
    assert utils.parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0
    assert utils.parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0.0


def test_timestamps():
    ts = utils.parse_timestamp("2026-01-02T03:04:05.123456789Z")
    assert ts == datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)
    assert utils.parse_timestamp("nonsense") is None


def test_problem_with_subproblems():
    # RFC 8555 section 6.7.1
    doc = {
        "type": "urn:ietf:params:acme:error:malformed",
        "detail": "Some of the identifiers requested were rejected",
        "subproblems": [
            {
                "type": "urn:ietf:params:acme:error:malformed",
                "detail": 'Invalid underscore in DNS name "_example.org"',
                "identifier": {"type": "dns", "value": "_example.org"},
            },
            {
                "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                "detail": 'This CA will not issue for "example.net"',
                "identifier": {"type": "dns", "value": "example.net"},
            },
        ],
    }
    body = __import__("json").dumps(doc).encode()
    err = errors.problem_error(errors.parse_problem(body, "application/problem+json", 400), status=400)
    assert isinstance(err, errors.Malformed)
    assert [s.identifier for s in err.subproblems] == ["_example.org", "example.net"]
    text = str(err)
    assert "malformed (HTTP 400): Some of the identifiers requested were rejected" in text
    assert 'example.net: rejectedIdentifier: This CA will not issue for "example.net"' in text


def test_problem_names_identifier_and_challenge():
    err = errors.problem_error(
        {"type": "urn:ietf:params:acme:error:incorrectResponse", "detail": "key authorization mismatch"},
        identifier="www.example.org",
        challenge_type="http-01",
    )
    assert isinstance(err, errors.ValidationFailed)
    assert "www.example.org" in str(err)
    assert "http-01" in str(err)
    assert "key authorization mismatch" in str(err)
    assert isinstance(errors.problem_error({"type": "urn:ietf:params:acme:error:badNonce"}), errors.BadNonce)


def test_problem_from_non_json_body():
    doc = errors.parse_problem(b"<html>bad gateway</html>", "text/html", 502)
    assert doc["detail"] == "<html>bad gateway</html>"


def test_links():
    links = utils.parse_links(
        ['<https://ca/cert/1/1>;rel="alternate", <https://ca/dir>;rel="index"', "<https://ca/cert/1/2>; rel=alternate"]
    )
    assert [u for u, p in links if p["rel"] == "alternate"] == ["https://ca/cert/1/1", "https://ca/cert/1/2"]


def test_backoff_and_deadline():
    b = utils.Backoff(first=0.05, factor=2, maximum=0.3)
    assert [b.next_delay() for _attempt in range(4)] == [0.05, 0.1, 0.2, 0.3]
    assert b.next_delay(retry_after=3) == 3
    d = utils.Deadline(0)
    with pytest.raises(errors.AcmeTimeout):
        d.sleep(1)


@pytest.mark.parametrize("kind", ["ec256", "ec384", "rsa2048"])
def test_jws_signatures_verify(kind):
    key = keys.AccountKey.generate(kind)
    obj = key.jws_object({"alg": key.alg, "url": "https://ca/x", "nonce": "n"}, {"a": 1})
    signing_input = f"{obj['protected']}.{obj['payload']}".encode()
    sig = utils.b64u_decode(obj["signature"])
    pub = key.key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        assert key.alg == "RS256"
        pub.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        size = {"ES256": 32, "ES384": 48}[key.alg]
        assert len(sig) == 2 * size
        der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
        pub.verify(der, signing_input, ec.ECDSA(hashes.SHA256() if size == 32 else hashes.SHA384()))
    assert keys.jwk_thumbprint(key.jwk) == key.thumbprint


def test_eab_jws():
    obj = keys.eab_jws({"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}, "kid-1", "c2VjcmV0", "https://ca/new-acct")
    import hmac as _h

    mac = _h.new(b"secret", f"{obj['protected']}.{obj['payload']}".encode(), hashlib.sha256).digest()
    assert utils.b64u_decode(obj["signature"]) == mac
    assert '"kid":"kid-1"' in utils.b64u_decode(obj["protected"]).decode()


def test_choose_chain_by_root_cn():
    def chain_with(root_cn: str) -> Chain:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)

        def mk(subject: str, issuer: str) -> bytes:
            from cryptography.hazmat.primitives import serialization

            c = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, issuer)]))
                .public_key(key.public_key())
                .serial_number(1)
                .not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, hashes.SHA256())
            )
            return c.public_bytes(serialization.Encoding.PEM)

        return Chain(mk("leaf", "Inter " + root_cn) + mk("Inter " + root_cn, root_cn))

    a, b = chain_with("Root A"), chain_with("Root B")
    assert choose_chain([a, b], "Root B") is b
    assert choose_chain([a, b], "Inter Root B") is b
    assert choose_chain([a, b], "nothing") is a
    assert choose_chain([a, b], None) is a
    assert a.root_name == "Root A"
