"""Account keys as operators hold them: encrypted with a passphrase, given as content (a vaulted variable or
an AWX credential), with no key file on the controller. acme_account, acme_revoke's account key and the
thumbprint filter (and so the web roles' stateless responder) all take them; the passphrase never shows."""

from __future__ import annotations

from ansible_collections.portail.https.plugins.module_utils._acme import Account, AccountKey, AcmeClient
from ansible_collections.portail.https.plugins.module_utils._acme.order import issue
from cryptography.hazmat.primitives import serialization

from .acme_support import make_csr
from .harness import run_playbook
from .test_acme_thumbprint_filter import StatelessResponder

PASSPHRASE = "correct horse battery staple 7f3a"

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: account
      portail.https.acme_account:
        acme_directory: "{{ directory }}"
        acme_ca_bundle: "{{ ca_bundle }}"
        account_key_content: "{{ key_pem }}"
        account_key_passphrase: "{{ key_pass | default(omit) }}"
        contact: [mailto:passphrase@portail.test]
        terms_agreed: true
    - name: thumbprint
      ansible.builtin.set_fact:
        thumb: "{{ key_pem | portail.https.acme_thumbprint(key_pass | default(omit)) }}"
"""


def encrypted_pem(key: AccountKey, passphrase: str) -> str:
    private = serialization.load_pem_private_key(key.private_pem(), password=None)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()


def test_encrypted_key_as_content_for_account_filter_and_stateless_responder(rig, tmp_path):
    key = AccountKey.generate("ec256")
    ev = {
        "directory": rig["PORTAIL_ACME_DIRECTORY"],
        "ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "key_pem": encrypted_pem(key, PASSPHRASE),
        "key_pass": PASSPHRASE,
    }
    first = run_playbook(PLAYBOOK, tmp_path, extra_vars=ev, verbosity=3, json_output=False)
    assert first.rc == 0, first.stdout[-3000:]
    assert PASSPHRASE not in first.stdout + first.stderr
    assert "ENCRYPTED PRIVATE KEY" not in first.stdout + first.stderr

    again = run_playbook(PLAYBOOK, tmp_path, extra_vars=ev)
    assert again.rc == 0, again.failures()
    assert again.result("account")["changed"] is False
    assert again.result("account")["thumbprint"] == key.thumbprint
    thumb = again.data["plays"][0]["tasks"][1]["hosts"]["localhost"]["ansible_facts"]["thumb"]
    assert thumb == key.thumbprint

    # The thumbprint computed from the encrypted content lets a stateless responder pass HTTP-01.
    client = AcmeClient(rig["PORTAIL_ACME_DIRECTORY"], key, ca_bundle=rig["PORTAIL_ACME_CA_BUNDLE"])
    assert Account(client).find()
    responder = StatelessResponder("127.0.10.249", thumb)
    try:
        name = "acme249.portail.test"
        csr, _csr_key = make_csr([name])
        order, _chain = issue(client, [name], csr, lambda ch: None, deadline=60)
    finally:
        responder.close()
    assert order.status == "valid"


def test_wrong_or_missing_passphrase_fails_clearly(rig, tmp_path):
    key = AccountKey.generate("ec256")
    ev = {
        "directory": rig["PORTAIL_ACME_DIRECTORY"],
        "ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "key_pem": encrypted_pem(key, PASSPHRASE),
    }
    for extra in ({}, {"key_pass": "not the passphrase"}):
        res = run_playbook(PLAYBOOK, tmp_path, extra_vars=dict(ev, **extra), verbosity=3, json_output=False)
        assert res.rc != 0
        assert "cannot load the account key" in res.stdout, res.stdout[-1500:]
        assert PASSPHRASE not in res.stdout + res.stderr
        assert "not the passphrase" not in res.stdout + res.stderr
