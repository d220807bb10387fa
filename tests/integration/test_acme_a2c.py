"""ARI (RFC 9773) and profiles against acme2certifier in the rig; skipped cleanly where the CA lacks them.

Addresses 127.0.10.51-59 (acme51-59.portail.test).
"""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme import AccountKey, AcmeClient, UnsupportedError, issue
from ansible_collections.portail.https.plugins.module_utils._acme.ari import cert_id

from .acme_support import Http01Responder, acme_addr, acme_name, make_csr

pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def a2c(rig):
    url = rig.get("PORTAIL_A2C_DIRECTORY")
    if not url:
        pytest.skip("acme2certifier is not part of the running rig")
    key = AccountKey.generate()
    c = AcmeClient(url, key)
    try:
        c.directory  # noqa: B018
    except Exception as exc:
        pytest.skip(f"acme2certifier does not answer: {exc}")
    c.account().create(contact=["mailto:a2c@portail.test"], terms_agreed=True)
    return c


@pytest.fixture(scope="module")
def responder():
    r = Http01Responder([acme_addr(n) for n in range(51, 56)])
    yield r
    r.close()


def _issue(c, responder, n, **kw):
    csr, _csr_key = make_csr([acme_name(n)])
    return issue(c, [acme_name(n)], csr, responder.publish, cleanup=responder.cleanup, deadline=120, **kw)


def test_profiles(a2c, responder):
    profiles = a2c.directory.profiles
    if not profiles:
        pytest.skip("the CA offers no profiles")
    name = sorted(profiles)[0]
    order, chain = _issue(a2c, responder, 51, profile=name)
    assert order.status == "valid"
    assert chain.leaf.serial_number
    with pytest.raises(UnsupportedError, match="no-such-profile"):
        a2c.new_order([acme_name(52)], profile="no-such-profile")


def test_ari_renewal_info_and_replaces(a2c, responder):
    if not a2c.ari.supported:
        pytest.skip("the CA offers no renewalInfo")
    _order, chain = _issue(a2c, responder, 53)
    info = a2c.ari.renewal_info(chain.leaf)
    assert info.cert_id == cert_id(chain.leaf)
    assert info.start <= info.selected <= info.end
    now = datetime.datetime.now(datetime.timezone.utc)
    assert info.should_renew(info.end + datetime.timedelta(seconds=1))
    assert not info.should_renew(min(now, info.start) - datetime.timedelta(seconds=1))
    # a renewal that names the certificate it replaces (retried without `replaces` if the CA refuses it)
    order2, chain2 = _issue(a2c, responder, 53, replaces=info.cert_id)
    assert order2.status == "valid"
    assert chain2.leaf.serial_number != chain.leaf.serial_number
