"""ARI (RFC 9773) and profiles against acme2certifier (tests/rig/a2c.py), checked on the wire and at the CA.

Complements test_acme_a2c.py (engine behaviour) and test_acme_engine.py (Pebble, which offers neither):
here the newOrder payloads the client signed are recorded, so the test proves that `replaces` and
`profile` were sent, that the CA stored the profile, and that an unknown profile never reaches newOrder.
Also checks that the rig's acme2certifier start is idempotent.

Addresses 127.0.10.240-249 (acme240..249.portail.test) belong to this file.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme import (
    Account,
    AccountKey,
    AcmeClient,
    UnsupportedError,
    cert_id,
)
from ansible_collections.portail.https.plugins.module_utils._acme.order import issue
from ansible_collections.portail.https.plugins.module_utils._acme.utils import b64u_decode
from cryptography import x509

from .acme_support import Http01Responder, make_csr


def a2c_directory(rig: dict[str, str]) -> dict:
    url = rig.get("PORTAIL_A2C_DIRECTORY")
    if not url:
        pytest.skip("the rig runs no acme2certifier (tests/rig/a2c.py)")
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read().decode())


def spy_new_orders(client: AcmeClient) -> list[dict]:
    """Record the payload of every newOrder request the client signs (what went over the wire)."""
    sent: list[dict] = []
    real = client.http

    def http(method, url, body=None, headers=None, kind=""):
        if kind == "newOrder" and body:
            sent.append(json.loads(b64u_decode(json.loads(body)["payload"])))
        return real(method, url, body, headers, kind)

    client.http = http  # type: ignore[method-assign]
    return sent


@pytest.fixture
def a2c(rig):
    directory = a2c_directory(rig)
    client = AcmeClient(rig["PORTAIL_A2C_DIRECTORY"], AccountKey.generate("ec256"))
    Account(client).create(["mailto:ari@portail.test"], terms_agreed=True)
    return client, directory


def test_ari_window_and_replaces_on_renewal(a2c):
    client, directory = a2c
    if "renewalInfo" not in directory:
        pytest.skip("this CA offers no renewalInfo")
    name = "acme240.portail.test"
    sent = spy_new_orders(client)
    with Http01Responder(["127.0.10.240"]) as web:
        csr, _key = make_csr([name])
        _order, chain = issue(client, [name], csr, web.publish, cleanup=web.cleanup, deadline=60)
        cert = x509.load_pem_x509_certificate(chain.cert_pem)
        assert client.ari.supported

        info = client.ari.renewal_info(chain.cert_pem)
        assert info.cert_id == cert_id(chain.cert_pem)
        # the window lies inside the certificate's validity, and the picked point inside the window
        assert cert.not_valid_before_utc <= info.start < info.end <= cert.not_valid_after_utc
        assert info.start <= info.selected <= info.end
        assert info.retry_after is not None and info.retry_after > 0
        assert not info.should_renew(datetime.datetime.now(datetime.timezone.utc))
        assert info.should_renew(info.end + datetime.timedelta(seconds=1))

        # the renewal names the certificate it replaces in newOrder
        renewed, chain2 = issue(
            client, [name], csr, web.publish, cleanup=web.cleanup, replaces=info.cert_id, deadline=60
        )
    assert sent[0].get("replaces") is None
    assert sent[-1]["replaces"] == info.cert_id
    assert not renewed.replaces_dropped
    assert chain2.leaf.serial_number != cert.serial_number


def test_profile_known_is_sent_unknown_is_refused_before_new_order(a2c, rig):
    client, directory = a2c
    profiles = (directory.get("meta") or {}).get("profiles")
    if not profiles:
        pytest.skip("this CA offers no profiles")
    profile = sorted(profiles)[0]
    name = "acme241.portail.test"
    sent = spy_new_orders(client)
    with Http01Responder(["127.0.10.241"]) as web:
        csr, _key = make_csr([name])
        order, chain = issue(client, [name], csr, web.publish, cleanup=web.cleanup, profile=profile, deadline=60)
    assert chain.leaf is not None
    assert sent[-1]["profile"] == profile
    # acme2certifier keeps the profile of each order in its database: the CA took it
    db = Path(rig["PORTAIL_RIG_DIR"]) / "a2c" / "acme_srv.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            row = conn.execute("select profile from orders where name = ?", (order.url.rsplit("/", 1)[-1],)).fetchone()
        assert row == (profile,)

    before = client.requests_by_kind["newOrder"]
    with pytest.raises(UnsupportedError) as exc:
        client.new_order([name], profile="no-such-profile")
    assert "no-such-profile" in str(exc.value) and profile in str(exc.value)
    assert client.requests_by_kind["newOrder"] == before  # refused before contacting newOrder


def test_a2c_start_is_idempotent(rig):
    a2c_directory(rig)
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rig"))
    import a2c  # type: ignore[import-not-found]

    rig_dir = Path(rig["PORTAIL_RIG_DIR"])
    pid_before = (rig_dir / "a2c" / "a2c.pid").read_text()
    facts = a2c.start(rig_dir, Path(rig["PORTAIL_RIG_LOGS"]))
    assert facts["PORTAIL_A2C_DIRECTORY"] == rig["PORTAIL_A2C_DIRECTORY"]
    assert (rig_dir / "a2c" / "a2c.pid").read_text() == pid_before  # the running server was left alone
    assert facts["PORTAIL_A2C_DIRECTORY"].startswith("http://127.0.0.1:")
