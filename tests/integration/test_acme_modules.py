"""acme_account and acme_revoke through real ansible-playbook runs against the rig's Pebble."""

from __future__ import annotations

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme import AccountKey, AcmeClient, issue
from cryptography.hazmat.primitives import serialization

from .acme_support import Http01Responder, acme_addr, acme_name, make_csr
from .harness import run_playbook

pytestmark = pytest.mark.rig

ACCOUNT_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: account
      portail.https.acme_account:
        acme_directory: "{{ directory }}"
        ca_bundle: "{{ ca_bundle }}"
        account_key_src: "{{ key }}"
        state: "{{ state | default('present') }}"
        contact: "{{ contact | default(omit) }}"
        terms_agreed: true
        new_account_key_src: "{{ new_key | default(omit) }}"
        external_account_binding: "{{ eab | default(omit) }}"
"""


def write_key(path, kind="ec256"):
    key = AccountKey.generate(kind)
    path.write_bytes(key.private_pem())
    path.chmod(0o600)
    return key


def account_run(rig, tmp, check=False, **ev):
    extra = {"directory": rig["PORTAIL_ACME_DIRECTORY"], "ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"]}
    extra.update({k: str(v) if hasattr(v, "parent") else v for k, v in ev.items()})
    res = run_playbook(ACCOUNT_PLAY, tmp, extra_vars=extra, check=check, diff=True)
    return res, res.result("account")


@pytest.mark.slow
def test_account_lifecycle(rig, workdir):
    key = workdir / "account.key"
    write_key(key)
    # check mode creates nothing
    res, r = account_run(rig, workdir, check=True, key=key, contact=["mailto:a@portail.test"])
    assert res.rc == 0, res.stdout
    assert r["changed"] and r["diff"]["before"]["exists"] is False
    res, r = account_run(rig, workdir, key=key, contact=["mailto:a@portail.test"])
    assert res.rc == 0 and r["changed"], res.stdout
    uri = r["account_uri"]
    assert uri and r["status"] == "valid" and r["contact"] == ["mailto:a@portail.test"]
    res, r = account_run(rig, workdir, key=key, contact=["mailto:a@portail.test"])
    assert res.changed() == 0 and r["account_uri"] == uri
    # contact update, with diff, idempotent
    res, r = account_run(rig, workdir, check=True, key=key, contact=["mailto:b@portail.test"])
    assert r["changed"] and r["diff"]["after"]["contact"] == ["mailto:b@portail.test"]
    res, r = account_run(rig, workdir, key=key, contact=["mailto:b@portail.test"])
    assert r["changed"] and r["contact"] == ["mailto:b@portail.test"]
    res, r = account_run(rig, workdir, key=key, contact=["mailto:b@portail.test"])
    assert res.changed() == 0
    # key rollover, idempotent
    new_key = workdir / "account-new.key"
    write_key(new_key, "ec384")
    res, r = account_run(rig, workdir, check=True, key=key, new_key=new_key, state="changed_key")
    assert r["changed"]
    res, r = account_run(rig, workdir, key=key, new_key=new_key, state="changed_key")
    assert res.rc == 0 and r["changed"], res.stdout
    res, r = account_run(rig, workdir, key=key, new_key=new_key, state="changed_key")
    assert res.rc == 0 and res.changed() == 0, res.stdout
    res, r = account_run(rig, workdir, key=new_key)
    assert res.changed() == 0 and r["account_uri"] == uri
    # deactivation, idempotent
    res, r = account_run(rig, workdir, check=True, key=new_key, state="absent")
    assert r["changed"]
    res, r = account_run(rig, workdir, key=new_key, state="absent")
    assert r["changed"] and r["status"] == "deactivated"
    res, r = account_run(rig, workdir, key=new_key, state="absent")
    assert res.rc == 0 and res.changed() == 0


@pytest.mark.slow
def test_account_eab(rig, workdir):
    key = workdir / "eab.key"
    write_key(key)
    directory = rig["PORTAIL_ACME_EAB_DIRECTORY"]
    res, r = account_run(rig, workdir, key=key, directory=directory, contact=["mailto:eab@portail.test"])
    assert res.rc != 0 and "external account binding" in r["msg"]
    eab = {"kid": rig["PORTAIL_EAB_KID"], "hmac_key": rig["PORTAIL_EAB_HMAC_KEY"]}
    res, r = account_run(rig, workdir, key=key, directory=directory, eab=eab, contact=["mailto:eab@portail.test"])
    assert res.rc == 0 and r["changed"], res.stdout
    assert rig["PORTAIL_EAB_HMAC_KEY"] not in res.stdout
    res, r = account_run(rig, workdir, key=key, directory=directory, eab=eab, contact=["mailto:eab@portail.test"])
    assert res.changed() == 0
    bad = {"kid": rig["PORTAIL_EAB_KID"], "hmac_key": "AAAA" + rig["PORTAIL_EAB_HMAC_KEY"][4:]}
    other = workdir / "eab2.key"
    write_key(other)
    res, r = account_run(rig, workdir, key=other, directory=directory, eab=bad, contact=["mailto:eab@portail.test"])
    assert res.rc != 0 and "CA error" in r["msg"]


@pytest.mark.slow
def test_account_bad_input(rig, workdir):
    res, r = account_run(rig, workdir, key=workdir / "missing.key")
    assert res.rc != 0 and "cannot read the account key" in r["msg"]
    (workdir / "junk.key").write_text("not a key")
    res, r = account_run(rig, workdir, key=workdir / "junk.key")
    assert res.rc != 0 and "account key" in r["msg"]
    key = workdir / "k.key"
    write_key(key)
    res, r = account_run(rig, workdir, key=key, state="changed_key")
    assert res.rc != 0 and "new_account_key" in r["msg"]


REVOKE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: revoke
      portail.https.acme_revoke:
        acme_directory: "{{ directory }}"
        ca_bundle: "{{ ca_bundle }}"
        account_key_src: "{{ key | default(omit) }}"
        private_key_src: "{{ cert_key | default(omit) }}"
        certificate: "{{ cert }}"
        revoke_reason: "{{ reason | default(omit) }}"
"""


@pytest.fixture(scope="module")
def responder():
    r = Http01Responder([acme_addr(n) for n in (41, 42)])
    yield r
    r.close()


def _issue(rig, workdir, responder, n, name):
    key = AccountKey.generate()
    (workdir / f"{name}-account.key").write_bytes(key.private_pem())
    c = AcmeClient(rig["PORTAIL_ACME_DIRECTORY"], key, ca_bundle=rig["PORTAIL_ACME_CA_BUNDLE"])
    c.account().create(contact=["mailto:revoke@portail.test"], terms_agreed=True)
    csr, cert_key = make_csr([acme_name(n)])
    _order, chain = issue(c, [acme_name(n)], csr, responder.publish, cleanup=responder.cleanup)
    (workdir / f"{name}.pem").write_bytes(chain.fullchain_pem)
    (workdir / f"{name}.key").write_bytes(
        cert_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return chain


def revoke_run(rig, tmp, check=False, **ev):
    extra = {"directory": rig["PORTAIL_ACME_DIRECTORY"], "ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"]}
    extra.update({k: str(v) if hasattr(v, "parent") else v for k, v in ev.items()})
    res = run_playbook(REVOKE_PLAY, tmp, extra_vars=extra, check=check)
    return res, res.result("revoke")


@pytest.mark.slow
def test_revoke_with_account_key(rig, workdir, responder):
    chain = _issue(rig, workdir, responder, 41, "a")
    res, r = revoke_run(rig, workdir, check=True, key=workdir / "a-account.key", cert=workdir / "a.pem", reason=4)
    assert r["changed"] and "requests" not in r
    res, r = revoke_run(rig, workdir, key=workdir / "a-account.key", cert=workdir / "a.pem", reason=4)
    assert res.rc == 0 and r["changed"], res.stdout
    assert r["serial"] == format(chain.leaf.serial_number, "x")
    res, r = revoke_run(rig, workdir, key=workdir / "a-account.key", cert=workdir / "a.pem", reason=4)
    assert res.rc == 0 and res.changed() == 0 and r["already_revoked"], res.stdout


def test_revoke_with_certificate_key(rig, workdir, responder):
    _issue(rig, workdir, responder, 42, "b")
    res, r = revoke_run(rig, workdir, cert_key=workdir / "b.key", cert=workdir / "b.pem", reason=1)
    assert res.rc == 0 and r["changed"], res.stdout
    res, r = revoke_run(rig, workdir, cert_key=workdir / "b.key", cert=workdir / "b.pem", reason=1)
    assert res.rc == 0 and res.changed() == 0


def test_revoke_bad_input(rig, workdir):
    (workdir / "x.pem").write_text("junk")
    key = workdir / "x.key"
    write_key(key)
    res, r = revoke_run(rig, workdir, key=key, cert=workdir / "x.pem")
    assert res.rc != 0 and "certificate" in r["msg"]
    res, r = revoke_run(rig, workdir, key=key, cert=workdir / "x.pem", reason=7)
    assert res.rc != 0 and "revoke_reason" in r["msg"]
