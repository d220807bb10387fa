"""portail.https.acme_thumbprint in a real playbook, proven against Pebble: a stateless http-01 responder
that knows only the filter's thumbprint (it answers ``<token>.<thumbprint>`` for any token) gets a
certificate issued. Also bad input and the plugin's documentation.

Addresses 127.0.10.250-252 (acme250..252.portail.test) belong to this file.
"""

from __future__ import annotations

import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ansible_collections.portail.https.plugins.module_utils._acme import Account, AccountKey, AcmeClient
from ansible_collections.portail.https.plugins.module_utils._acme.order import issue

from .acme_support import make_csr
from .harness import BIN, ansible_env, run_playbook

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Thumbprint
      ansible.builtin.set_fact:
        thumb: "{{ lookup('ansible.builtin.file', key_path) | portail.https.acme_thumbprint }}"
    - name: Show
      ansible.builtin.debug:
        var: thumb
"""

BAD = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Bad
      ansible.builtin.debug:
        msg: "{{ 'no key here' | portail.https.acme_thumbprint }}"
"""


class StatelessResponder:
    """Answers every /.well-known/acme-challenge/<token> with <token>.<thumbprint>, like the web roles do."""

    def __init__(self, address: str, thumbprint: str) -> None:
        prefix = "/.well-known/acme-challenge/"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self.path.startswith(prefix):
                    self.send_response(404)
                    self.end_headers()
                    return
                body = f"{self.path[len(prefix) :]}.{thumbprint}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer((address, 80), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_filter_thumbprint_lets_a_stateless_responder_pass_http01(rig, tmp_path):
    key = AccountKey.generate("ec256")
    key_path = tmp_path / "account.key"
    key_path.write_bytes(key.private_pem())
    key_path.chmod(0o600)

    res = run_playbook(PLAYBOOK, tmp_path, extra_vars={"key_path": str(key_path)})
    assert res.rc == 0, res.failures()
    thumb = res.result("Show")["thumb"]
    assert thumb == key.thumbprint
    assert "PRIVATE KEY" not in res.stdout

    client = AcmeClient(rig["PORTAIL_ACME_DIRECTORY"], key, ca_bundle=rig["PORTAIL_ACME_CA_BUNDLE"])
    Account(client).create(["mailto:thumb@portail.test"], terms_agreed=True)
    responder = StatelessResponder("127.0.10.250", thumb)
    try:
        name = "acme250.portail.test"
        csr, _csr_key = make_csr([name])
        order, chain = issue(client, [name], csr, lambda ch: None, deadline=60)  # nothing published
    finally:
        responder.close()
    assert order.status == "valid"
    assert chain.leaf.serial_number


def test_filter_bad_input_fails_clearly(tmp_path):
    res = run_playbook(BAD, tmp_path)
    assert res.rc != 0
    assert "acme_thumbprint" in " ".join(res.failures())


def test_filter_documentation():
    proc = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "filter", "portail.https.acme_thumbprint"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RFC 7638" in proc.stdout


ACCOUNT = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: account
      portail.https.acme_account:
        acme_directory: "{{ directory }}"
        acme_ca_bundle: "{{ ca_bundle }}"
        account_key_src: "{{ key_path }}"
        state: "{{ state | default('present') }}"
        new_account_key_src: "{{ new_key_path | default(omit) }}"
        contact: [mailto:thumb@portail.test]
        terms_agreed: true
    - name: filter
      ansible.builtin.set_fact:
        thumb: "{{ lookup('ansible.builtin.file', new_key_path | default(key_path)) | portail.https.acme_thumbprint }}"
"""


def test_acme_account_returns_the_same_thumbprint_as_the_filter(rig, tmp_path):
    key, new_key = AccountKey.generate("ec256"), AccountKey.generate("ec384")
    paths = {}
    for label, k in (("key_path", key), ("new_key_path", new_key)):
        path = tmp_path / f"{label}.pem"
        path.write_bytes(k.private_pem())
        path.chmod(0o600)
        paths[label] = str(path)
    ev = {"directory": rig["PORTAIL_ACME_DIRECTORY"], "ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"]}
    res = run_playbook(ACCOUNT, tmp_path, extra_vars=dict(ev, key_path=paths["key_path"]))
    assert res.rc == 0, res.failures()
    assert (
        res.result("account")["thumbprint"]
        == key.thumbprint
        == res.data["plays"][0]["tasks"][1]["hosts"]["localhost"]["ansible_facts"]["thumb"]
    )
    # after a rollover (and in check mode before it), the thumbprint is the new key's
    for check in (True, False):
        res = run_playbook(ACCOUNT, tmp_path, extra_vars=dict(ev, state="changed_key", **paths), check=check)
        assert res.rc == 0, res.failures()
        assert res.result("account")["thumbprint"] == new_key.thumbprint
        assert res.result("account")["changed"]
