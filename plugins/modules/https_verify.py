#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: https_verify
short_description: Check a site from the outside, the way a visitor and an ACME CA see it
version_added: 0.1.0
description:
  - Connects to a web server and checks, for one name, that port 80 answers with a redirect to the same
    host and URI over HTTPS, that the ACME challenge path is not redirected, that port 443 serves
    TLS 1.2 or 1.3 only, the expected certificate and an HSTS header, and that port 80 sends no HSTS.
  - "Usually run on the controller with C(delegate_to: localhost), so it tests the network path
    (firewall included) rather than the loopback of the host."
  - Changes nothing; check mode runs the same checks.
author:
  - portail.https contributors (@portail)
extends_documentation_fragment:
  - portail.https.attributes.no_diff
  - portail.https.attributes.platform
attributes:
  check_mode:
    details: The checks only read; check mode runs them all.
options:
  name:
    description: Host name sent as HTTP Host header and TLS SNI.
    type: str
    required: true
  address:
    description: Address to connect to. Defaults to O(name) resolved by the system resolver.
    type: str
  http_port:
    description: Port of the plain HTTP listener.
    type: int
    default: 80
  https_port:
    description: Port of the TLS listener.
    type: int
    default: 443
  timeout:
    description: Seconds for each connection attempt.
    type: float
    default: 5
  redirect_codes:
    description: Status codes accepted for the port 80 redirect.
    type: list
    elements: int
    default: [301, 308]
  expected_serial:
    description:
      - Serial number (hexadecimal, as returned by M(portail.https.acme_certificate)) the served certificate
        must have. Not checked when omitted.
    type: str
  ca_file:
    description: PEM bundle to verify the served chain against. Not verified when omitted.
    type: path
  require_hsts:
    description: Fail unless port 443 sends C(Strict-Transport-Security) and port 80 does not.
    type: bool
    default: true
  refused_protocols:
    description: TLS versions the server must refuse.
    type: list
    elements: str
    choices: [TLSv1, TLSv1.1, TLSv1.2, TLSv1.3]
    default: [TLSv1, TLSv1.1]
  accepted_protocols:
    description: TLS versions the server must accept.
    type: list
    elements: str
    choices: [TLSv1, TLSv1.1, TLSv1.2, TLSv1.3]
    default: [TLSv1.2, TLSv1.3]
  fail_on_error:
    description: Fail the task when a check fails. With V(false), the results are only returned.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Verify www from the controller
  portail.https.https_verify:
    name: www.example.org
    address: "{{ ansible_host }}"
    expected_serial: "{{ cert_result.serial }}"
  delegate_to: localhost

- name: Only report, do not fail
  portail.https.https_verify:
    name: www.example.org
    fail_on_error: false
  delegate_to: localhost
  register: verify
"""

RETURN = r"""
ok:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: true
failed_checks:
  description: Names of the checks that failed.
  returned: always
  type: list
  elements: str
  sample: []
checks:
  description: One entry per check with C(ok) and what was observed.
  returned: always
  type: dict
  sample:
    redirect: {ok: true, status: 301, location: "https://www.example.org/portail-verify?x=1"}
    challenge_path: {ok: true, status: 404}
    hsts: {ok: true, value: "max-age=63072000; includeSubDomains"}
    certificate: {ok: true, serial: "3a1f...", not_after: "2027-02-21T10:00:00+00:00"}
certificate:
  description: The served certificate.
  returned: when the TLS handshake succeeded
  type: dict
  sample: {serial: "3a1f...", issuer: "Pebble Intermediate CA 1a2b3c", names: [www.example.org]}
"""

import secrets
import socket
import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portail.https.plugins.module_utils._verify import run_checks

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "name": {"type": "str", "required": True},
    "address": {"type": "str"},
    "http_port": {"type": "int", "default": 80},
    "https_port": {"type": "int", "default": 443},
    "timeout": {"type": "float", "default": 5},
    "redirect_codes": {"type": "list", "elements": "int", "default": [301, 308]},
    "expected_serial": {"type": "str"},
    "ca_file": {"type": "path"},
    "require_hsts": {"type": "bool", "default": True},
    "refused_protocols": {
        "type": "list",
        "elements": "str",
        "choices": ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
        "default": ["TLSv1", "TLSv1.1"],
    },
    "accepted_protocols": {
        "type": "list",
        "elements": "str",
        "choices": ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
        "default": ["TLSv1.2", "TLSv1.3"],
    },
    "fail_on_error": {"type": "bool", "default": True},
}


def run(p: dict[str, t.Any]) -> dict[str, t.Any]:
    """The module's work on validated parameters (also run in-process by the action plugin): a result."""
    address = p["address"]
    if not address:
        try:
            address = socket.getaddrinfo(p["name"], p["https_port"], type=socket.SOCK_STREAM)[0][4][0]
        except OSError as exc:
            return {"failed": True, "msg": f"cannot resolve {p['name']}: {exc}"}
    result = run_checks(
        name=p["name"],
        address=address,
        http_port=p["http_port"],
        https_port=p["https_port"],
        timeout=p["timeout"],
        redirect_codes=p["redirect_codes"],
        expected_serial=p["expected_serial"],
        ca_file=p["ca_file"],
        require_hsts=p["require_hsts"],
        refused=p["refused_protocols"],
        accepted=p["accepted_protocols"],
        probe_token="portail-verify-" + secrets.token_hex(6),
    )
    if p["fail_on_error"] and not result["ok"]:
        msg = f"{p['name']} ({address}): failed checks: {', '.join(result['failed_checks'])}"
        return {"failed": True, "changed": False, "msg": msg, **result}
    return {"changed": False, **result}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = run(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
