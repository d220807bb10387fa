"""The EXAMPLES of acme_account work when copied: only the CA's address (and its test CA bundle) change.

The account key comes from files/acme-account.key next to the playbook, found the way Ansible finds files,
or from a vaulted variable holding an encrypted key; the tasks run on the controller."""

from __future__ import annotations

import yaml
from ansible_collections.portail.https.plugins.module_utils._acme import AccountKey
from ansible_collections.portail.https.plugins.modules import acme_account

from .harness import run_playbook
from .test_account_key_passphrase import PASSPHRASE, encrypted_pem


def _examples(rig, names: list[str]) -> list[dict]:
    tasks = {t["name"]: t for t in yaml.safe_load(acme_account.EXAMPLES)}
    out = []
    for name in names:
        task = tasks[name]
        args = task["portail.https.acme_account"]
        assert args["acme_directory"].startswith("https://")
        args["acme_directory"] = rig["PORTAIL_ACME_DIRECTORY"]
        args["acme_ca_bundle"] = rig["PORTAIL_ACME_CA_BUNDLE"]
        assert task.get("delegate_to") == "localhost"
        out.append(task)
    return out


def test_account_examples_run_as_written(rig, tmp_path):
    key = AccountKey.generate("ec256")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "acme-account.key").write_bytes(key.private_pem())
    names = ["Make sure the account exists and has the right contact"]
    names.append("The same with an encrypted key kept in Ansible Vault")
    tasks = _examples(rig, names)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    ev = {"vault_acme_account_key": encrypted_pem(key, PASSPHRASE), "vault_acme_account_key_passphrase": PASSPHRASE}
    first = run_playbook(yaml.safe_dump(play, sort_keys=False) + "\n", tmp_path, extra_vars=ev)
    assert first.rc == 0, first.failures()
    results = first.data["plays"][0]["tasks"]
    assert results[0]["hosts"]["localhost"]["changed"] is True
    assert results[1]["hosts"]["localhost"]["changed"] is False  # the same account, from the vaulted copy
    again = run_playbook(yaml.safe_dump(play, sort_keys=False) + "\n", tmp_path, extra_vars=ev)
    assert again.rc == 0, again.failures()
    assert again.changed() == 0
