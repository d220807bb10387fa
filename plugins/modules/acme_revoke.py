#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: acme_revoke
short_description: Revoke a certificate at an ACME CA
version_added: 0.1.0
description:
  - Revokes a certificate (RFC 8555 section 7.6) with the collection's own ACME engine, authenticated either
    by the ACME account that ordered it (O(account_key_src) or O(account_key_content)) or by the certificate's
    own private key (O(private_key_src) or O(private_key_content)), for example after a key compromise.
  - A certificate the CA reports as already revoked is not an error; the task then reports no change.
author:
  - portail.https contributors (@portail)
requirements:
  - cryptography
extends_documentation_fragment:
  - portail.https.acme
  - portail.https.attributes.no_diff
attributes:
  check_mode:
    support: partial
    details: ACME has no way to ask whether a certificate is revoked without revoking it, so check mode
      reports a change without contacting the CA.
options:
  certificate:
    description: Path to the certificate to revoke (PEM; only the first certificate is used).
    type: path
  certificate_content:
    description: The certificate to revoke as PEM text.
    type: str
  private_key_src:
    description: Path to the certificate's private key, to revoke without the account key.
    type: path
  private_key_content:
    description: The certificate's private key as PEM text. Never logged.
    type: str
  private_key_passphrase:
    description: Passphrase of an encrypted certificate key.
    type: str
  revoke_reason:
    description:
      - Revocation reason code (RFC 5280 section 5.3.1), for example V(1) for C(keyCompromise), V(4) for
        C(superseded), V(5) for C(cessationOfOperation). The CA picks when omitted.
    type: int
    choices: [0, 1, 2, 3, 4, 5, 6, 8, 9, 10]
seealso:
  - module: portail.https.acme_account
"""

EXAMPLES = r"""
# The account key stays on the controller: read the certificate from the host, revoke from the controller.
- name: Read the certificate served by this host
  ansible.builtin.slurp:
    src: /etc/ssl/portail/www/cert.pem
  register: served_cert

- name: Revoke it with the account key, as superseded
  portail.https.acme_revoke:
    acme_directory: https://acme-staging-v02.api.letsencrypt.org/directory
    account_key_content: "{{ lookup('ansible.builtin.file', 'acme-account.key') }}"
    certificate_content: "{{ served_cert.content | b64decode }}"
    revoke_reason: 4
  delegate_to: localhost

- name: Revoke a certificate with its own (compromised) key, both read on the host itself
  portail.https.acme_revoke:
    acme_directory: https://acme-staging-v02.api.letsencrypt.org/directory
    private_key_src: /etc/ssl/portail/www/privkey.pem
    certificate: /etc/ssl/portail/www/cert.pem
    revoke_reason: 1
"""

RETURN = r"""
serial:
  description: Serial number of the certificate, in hexadecimal.
  returned: always
  type: str
  sample: 4c1f9a0e2b3d5e6f
already_revoked:
  description: The CA said the certificate was already revoked.
  returned: always
  type: bool
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.portail.https.plugins.module_utils._acme.errors import (
    AcmeError,
    AlreadyRevoked,
    ProblemError,
)
from ansible_collections.portail.https.plugins.module_utils._acme.keys import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
)
from ansible_collections.portail.https.plugins.module_utils._acme.module_support import (
    acme_argument_spec,
    client_from_params,
    load_key,
)
from ansible_collections.portail.https.plugins.module_utils._acme.revoke import certificate_der, revoke

try:
    from cryptography import x509
except ImportError:  # reported in main() through keys.HAS_CRYPTOGRAPHY
    pass


def run(module: AnsibleModule) -> dict[str, Any]:
    p = module.params
    if p["certificate_content"]:
        data = p["certificate_content"].encode("utf-8")
    else:
        try:
            with open(p["certificate"], "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise AcmeError(f"cannot read the certificate {p['certificate']}: {exc.strerror}") from None
    try:
        der = certificate_der(data)
        serial = format(x509.load_der_x509_certificate(der).serial_number, "x")
    except ValueError as exc:
        raise AcmeError(f"cannot load the certificate: {exc}") from None
    result: dict[str, Any] = {"changed": True, "serial": serial, "already_revoked": False}
    cert_key = None
    if p["private_key_src"] or p["private_key_content"]:
        cert_key = load_key(
            p["private_key_src"], p["private_key_content"], p["private_key_passphrase"], "certificate key"
        )
    account_key = None
    if p["account_key_src"] or p["account_key_content"]:
        account_key = load_key(
            p["account_key_src"], p["account_key_content"], p["account_key_passphrase"], "account key"
        )
    if module.check_mode:
        return result
    client = client_from_params(p, key=account_key or cert_key)
    if cert_key is None and not client.account_url:
        if not client.account().find():
            raise AcmeError("no ACME account exists for the account key")
    try:
        revoke(client, der, reason=p["revoke_reason"], cert_key=cert_key if account_key is None else None)
    except AlreadyRevoked:
        result.update(changed=False, already_revoked=True)
    result["requests"] = client.requests
    return result


def main() -> None:
    argument_spec = acme_argument_spec()
    argument_spec.update(
        certificate={"type": "path"},
        certificate_content={"type": "str"},
        private_key_src={"type": "path", "no_log": False},
        private_key_content={"type": "str", "no_log": True},
        private_key_passphrase={"type": "str", "no_log": True},
        revoke_reason={"type": "int", "choices": [0, 1, 2, 3, 4, 5, 6, 8, 9, 10]},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[
            ("certificate", "certificate_content"),
            ("account_key_src", "account_key_content"),
            ("private_key_src", "private_key_content"),
        ],
        required_one_of=[
            ("certificate", "certificate_content"),
            ("account_key_src", "account_key_content", "private_key_src", "private_key_content"),
        ],
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    try:
        result = run(module)
    except ProblemError as exc:
        module.fail_json(msg=str(exc), problem=exc.to_dict())
    except AcmeError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
