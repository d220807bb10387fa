"""A profile chosen per certificate in the certificate role reaches the CA (acme2certifier, which has profiles).

fleet154 serves its challenge directory with python's http.server on port 80; acme2certifier resolves
fleet154.portail.test through the rig's BIND and validates over the fleet bridge. The CA's database
shows the profile the order was placed under; the host's fact file records it. An IP address without
a profile gets the warning before anything is done.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fleet import fleet

from .harness import run_playbook

pytestmark = [pytest.mark.rig, pytest.mark.slow]

INDEX = 154
WEB = "/srv/portail-web"
PLAYBOOK = """
- name: Certificates with a profile each
  hosts: all
  gather_facts: false
  roles:
    - role: portail.https.certificate
"""


def test_profile_per_certificate_reaches_the_ca(fleet_factory, rig, tmp_path):
    directory = rig.get("PORTAIL_A2C_DIRECTORY")
    db = Path(rig["PORTAIL_RIG_DIR"]) / "a2c" / "acme_srv.db"
    if not directory or not db.exists():
        pytest.skip("the rig runs no acme2certifier")
    (host,) = fleet_factory([INDEX])
    fleet.exec_in(host, ["sh", "-c", f"rm -rf /etc/ssl/portail {WEB}; mkdir -p {WEB}/.well-known/acme-challenge"])
    pid = fleet.exec_in(
        host,
        ["sh", "-c", f"nohup python3 -m http.server 80 --bind {host.ipv4} --directory {WEB} >/dev/null 2>&1 & echo $!"],
    ).stdout.strip()
    try:
        account = tmp_path / "account.key"
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        account.write_bytes(pem)
        account.chmod(0o600)
        inv = fleet.inventory([host])
        inv["all"]["vars"] = {
            "certificate_acme_directory": directory,
            "certificate_account_key_src": str(account),
            "certificate_contact": ["mailto:profiles@portail.test"],
            "certificate_terms_agreed": True,
            "certificate_challenge_dir": f"{WEB}/.well-known/acme-challenge",
            "certificate_metrics_dir": "",
        }
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps(inv))
        with_ip = [
            {"name": "short", "names": [host.fqdn], "profile": "shortlived"},
            {"name": "ip", "names": [host.ipv4]},
        ]
        check = run_playbook(
            PLAYBOOK, tmp_path, inventory=inventory, extra_vars={"certificate_list": with_ip}, check=True
        )
        # said once per host by the plan itself (no task of its own)
        warned = " ".join(check.stderr.split())
        assert f"{host.name}: certificate ip has IP identifiers and no profile" in warned, check.stderr[-2000:]

        with sqlite3.connect(db) as conn:
            before = conn.execute("select count(*) from orders where profile = 'shortlived'").fetchone()[0]
        res = run_playbook(PLAYBOOK, tmp_path, inventory=inventory, extra_vars={"certificate_list": with_ip[:1]})
        assert res.rc == 0, res.failures()
        with sqlite3.connect(db) as conn:
            after = conn.execute("select count(*) from orders where profile = 'shortlived'").fetchone()[0]
        assert after == before + 1
        facts = json.loads(fleet.exec_in(host, ["cat", "/etc/ansible/facts.d/portail_https.fact"], check=True).stdout)[
            "certificates"
        ]
        assert facts["short"]["profile"] == "shortlived" and facts["short"]["serial"]
        again = run_playbook(PLAYBOOK, tmp_path, inventory=inventory, extra_vars={"certificate_list": with_ip[:1]})
        assert again.rc == 0 and again.changed() == 0
    finally:
        os.kill(int(pid), 15)
