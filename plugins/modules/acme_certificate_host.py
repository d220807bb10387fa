#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: acme_certificate_host
short_description: TLS-ALPN-01 responder of M(portail.https.acme_certificate)
version_added: 0.1.0
description:
  - Internal helper run by the M(portail.https.acme_certificate) action plugin on the managed host.
    Use M(portail.https.acme_certificate) instead of calling it directly.
  - V(alpn_start) / V(alpn_stop) start and stop a short-lived detached TLS-ALPN-01 (RFC 8737) responder
    (Python's C(ssl) module). Every other host step of M(portail.https.acme_certificate) is a POSIX shell
    script with C(openssl).
author:
  - portail.https contributors (@portail)
requirements:
  - python >= 3.9
extends_documentation_fragment:
  - portail.https.attributes.no_diff
options:
  step:
    description: What to do.
    type: str
    required: true
    choices: [alpn_start, alpn_stop]
  alpn_address:
    description: Address the TLS-ALPN-01 responder listens on.
    type: str
    default: "0.0.0.0"
  alpn_port:
    description: Port the TLS-ALPN-01 responder listens on.
    type: int
    default: 443
  alpn_lifetime:
    description: Seconds after which the responder exits on its own.
    type: int
    default: 600
  alpn_certs:
    description: For V(alpn_start), items with C(sni), C(cert) and C(key) (throw-away challenge certificates).
    type: list
    elements: dict
    default: []
  responder:
    description: For V(alpn_stop), the C(responder) value returned by V(alpn_start).
    type: path
"""

EXAMPLES = r"""
- name: Stop a responder left by an interrupted run (what the action plugin does after validation)
  portail.https.acme_certificate_host:
    step: alpn_stop
    responder: /tmp/portail-alpn-abc123
"""

RETURN = r"""
responder:
  description: Handle of the started TLS-ALPN-01 responder.
  returned: alpn_start
  type: str
  sample: /tmp/portail-alpn-abc123
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portail.https.plugins.module_utils import _certhost as ch


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "step": {"type": "str", "required": True, "choices": ["alpn_start", "alpn_stop"]},
            "alpn_address": {"type": "str", "default": "0.0.0.0"},  # noqa: S104
            "alpn_port": {"type": "int", "default": 443},
            "alpn_lifetime": {"type": "int", "default": 600},
            "alpn_certs": {"type": "list", "elements": "dict", "default": [], "no_log": True},
            "responder": {"type": "path"},
        },
        required_if=[("step", "alpn_start", ["alpn_certs"]), ("step", "alpn_stop", ["responder"])],
        supports_check_mode=True,
    )
    p = module.params
    if module.check_mode:
        module.exit_json(changed=p["step"] == "alpn_start", skipped_in_check=True)
    try:
        if p["step"] == "alpn_start":
            result = ch.alpn_start(
                address=p["alpn_address"], port=p["alpn_port"], certs=p["alpn_certs"], lifetime=p["alpn_lifetime"]
            )
        else:
            result = ch.alpn_stop(responder=p["responder"])
    except (ch.CertHostError, OSError, ValueError) as exc:
        module.fail_json(msg=f"{p['step']}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
