"""portail.https.acme_thumbprint: RFC 7638 vector, same value as the engine for keys, public keys, certificates."""

from __future__ import annotations

import base64
import datetime

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.portail.https.plugins.filter.acme_thumbprint import FilterModule, acme_thumbprint
from ansible_collections.portail.https.plugins.module_utils._acme.keys import AccountKey
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# RFC 7638 section 3.1: the RSA key and its thumbprint
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
    "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zg"
    "dAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
    "kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def b64u_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def pub_pem(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def self_signed(key) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "thumbprint test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_rfc7638_example_public_key():
    public = rsa.RSAPublicNumbers(65537, b64u_int(RFC7638_N)).public_key()
    assert acme_thumbprint(pub_pem(public)) == RFC7638_THUMBPRINT


@pytest.mark.parametrize("kind", ["ec256", "ec384", "rsa2048"])
def test_matches_the_engine_for_private_key_public_key_and_certificate(kind):
    key = AccountKey.generate(kind)
    private_pem = key.private_pem().decode()
    assert acme_thumbprint(private_pem) == key.thumbprint
    assert acme_thumbprint(private_pem.encode()) == key.thumbprint
    assert acme_thumbprint(pub_pem(key.key.public_key())) == key.thumbprint
    assert acme_thumbprint(self_signed(key.key)) == key.thumbprint


def test_p521_public_key():
    key = ec.generate_private_key(ec.SECP521R1())
    assert len(acme_thumbprint(pub_pem(key.public_key()))) == 43


@pytest.mark.parametrize(
    "value", ["", "not a pem", 42, None, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_bad_input_is_a_filter_error_without_key_material(value):
    with pytest.raises(AnsibleFilterError) as exc:
        acme_thumbprint(value)
    assert "AAAA" not in str(exc.value)


def test_registered():
    assert FilterModule().filters()["acme_thumbprint"] is acme_thumbprint
