"""The certificate role with certificate_dns.provider external: the user's task file writes the records.

On localhost (connection local), against the rig's Pebble and BIND: the task file uses
community.general.nsupdate. One certificate goes through a CNAME into validation.test; another run's
task file fails half-way, and then the records are removed and the pending key is given back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import test_acme_certificate as tac
from .harness import run_playbook

pytestmark = pytest.mark.rig


def task_file(path: Path, rig: dict, fail_on_present: bool = False) -> Path:
    record = {
        "server": rig["PORTAIL_DNS_PRIMARY"],
        "key_name": rig["PORTAIL_TSIG_NAME"],
        "key_secret": "{{ tsig_secret }}",
        "key_algorithm": rig["PORTAIL_TSIG_ALGORITHM"],
        "zone": "{{ item.zone }}",
        "record": "{{ item.target }}",
        "type": "TXT",
        "value": "{{ item.value }}",
        "ttl": 30,
        "state": "{{ certificate_dns_state }}",
    }
    failing = ""
    if fail_on_present:
        failing = (
            "- name: Break after the first record\n  ansible.builtin.fail:\n    msg: injected failure\n"
            "  when: certificate_dns_state == 'present'\n"
        )
    path.write_text(
        "- name: dns-01 records\n"
        f"  community.general.nsupdate: {json.dumps(record)}\n"
        '  loop: "{{ certificate_dns_records }}"\n'
        "  no_log: true\n" + failing
    )
    return path


def fact_dir(tmp: Path) -> Path:
    d = Path("/root/.cache/portail-tests") / tmp.name
    d.mkdir(parents=True, exist_ok=True, mode=0o755)
    return d


def play(rig: dict, tmp: Path, tasks: Path, names: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    account = tmp / "account.key"
    if not account.exists():
        account.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    dns = {"provider": "external", "resolvers": [rig["PORTAIL_DNS_PRIMARY"]], "propagation_timeout": 60}
    variables = {
        "certificate_acme_directory": rig["PORTAIL_ACME_DIRECTORY"],
        "certificate_acme_ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "certificate_account_key_src": str(account),
        "certificate_terms_agreed": True,
        "certificate_challenge": "dns-01",
        "certificate_dns": dns,
        "certificate_dns_tasks": str(tasks),
        "certificate_dir": str(tmp / "ssl"),
        # the facts' directory must be root's and writable by root only (a sticky /tmp is refused there)
        "certificate_fact_file": str(fact_dir(tmp) / "portail_https.fact"),
        "certificate_fail_on": "any",
        "tsig_secret": rig["PORTAIL_TSIG_SECRET"],
        "certificate_list": [{"name": "ext", "names": names}],
    }
    return (
        "- hosts: localhost\n  gather_facts: false\n"
        f"  vars: {json.dumps(variables)}\n"
        "  roles:\n    - role: portail.https.certificate\n"
    )


def test_role_writes_the_records_through_the_users_task_file(rig, tmp_path):
    names = ["delegated.portail.test", "cert27.portail.test"]
    tasks = task_file(tmp_path / "dns-records.yml", rig)
    res = run_playbook(play(rig, tmp_path, tasks, names), tmp_path)
    assert res.rc == 0, res.failures()
    issued = res.result("Answer the CA and deploy, with the dns-01 records in place")
    assert issued["changed"] is True and not issued.get("failed")
    tac.check_deployed(tmp_path / "ssl" / "ext", names, issued["certificates"][0])
    for rec in res.result("Issue or renew certificates")["dns_records"]:
        assert tac.txt_values(rig["PORTAIL_DNS_PRIMARY"], rec["target"]) == set()
    again = run_playbook(play(rig, tmp_path, tasks, names), tmp_path)
    assert again.rc == 0 and again.changed() == 0, again.failures()


def test_role_failure_in_the_task_file_removes_records_and_pending_key(rig, tmp_path):
    names = ["cert28.portail.test"]
    tasks = task_file(tmp_path / "dns-records.yml", rig, fail_on_present=True)
    res = run_playbook(play(rig, tmp_path, tasks, names), tmp_path)
    assert res.rc != 0  # certificate_fail_on any
    out = tmp_path / "ssl" / "ext"
    assert not (out / "cert.pem").exists()
    assert [p for p in out.rglob("*") if p.name == "lock"] == [] if out.exists() else True
    assert tac.txt_values(rig["PORTAIL_DNS_PRIMARY"], "_acme-challenge.cert28.portail.test") == set()
    gave_back = res.result("Give back the pending keys and host locks of the first phase")
    assert not gave_back.get("failed"), gave_back
