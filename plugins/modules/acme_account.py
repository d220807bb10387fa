#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: acme_account
short_description: Create, update, deactivate an ACME account or roll its key over
version_added: 0.1.0
description:
  - Manages the account of an ACME CA (RFC 8555) identified by its key, with the collection's own ACME engine.
  - V(present) creates the account when it does not exist (with terms of service agreement and External
    Account Binding when the CA wants them) and updates its contact addresses when they differ.
  - V(absent) deactivates the account. Deactivation is final; the key cannot be used with the CA again.
  - V(changed_key) replaces the account key by O(new_account_key_src) or O(new_account_key_content)
    (key rollover, RFC 8555 section 7.3.5).
author:
  - portail.https contributors (@portail)
requirements:
  - cryptography
extends_documentation_fragment:
  - portail.https.acme
  - portail.https.attributes
attributes:
  check_mode:
    details: The CA's state is not changed.
  diff_mode:
    details: The account before and after the task.
options:
  state:
    description: What the account should be.
    type: str
    choices: [present, absent, changed_key]
    default: present
  allow_creation:
    description: With O(state=present), create the account when it does not exist. With V(false), fail instead.
    type: bool
    default: true
  contact:
    description:
      - Contact URLs of the account, for example V(mailto:admin@example.com).
      - When omitted, the contact of an existing account is left as it is. An empty list removes all contacts.
    type: list
    elements: str
  terms_agreed:
    description: Agree to the CA's terms of service (needed by most public CAs to create an account).
    type: bool
    default: false
  external_account_binding:
    description: External Account Binding credentials the CA issued (RFC 8555 section 7.3.4). Used on creation.
    type: dict
    suboptions:
      kid:
        description: Key identifier given by the CA.
        type: str
        required: true
      hmac_key:
        description: MAC key given by the CA (base64url). Never logged.
        type: str
        required: true
        aliases: [key]
      alg:
        description: MAC algorithm.
        type: str
        choices: [HS256, HS384, HS512]
        default: HS256
  new_account_key_src:
    description: With O(state=changed_key), path to the new account key.
    type: path
  new_account_key_content:
    description: With O(state=changed_key), the new account key as PEM text. Never logged.
    type: str
  new_account_key_passphrase:
    description: Passphrase of an encrypted new account key.
    type: str
seealso:
  - module: portail.https.acme_revoke
"""

EXAMPLES = r"""
# The account key stays on the controller: run these tasks there (delegate_to: localhost, once per play).
# lookup('ansible.builtin.file', ...) finds a relative path the way Ansible finds files (files/ next to
# the playbook or role).
- name: Make sure the account exists and has the right contact
  portail.https.acme_account:
    acme_directory: https://acme-staging-v02.api.letsencrypt.org/directory
    account_key_content: "{{ lookup('ansible.builtin.file', 'acme-account.key') }}"
    contact:
      - mailto:hostmaster@example.com
    terms_agreed: true
  delegate_to: localhost
  run_once: true

- name: The same with an encrypted key kept in Ansible Vault
  portail.https.acme_account:
    acme_directory: https://acme-staging-v02.api.letsencrypt.org/directory
    account_key_content: "{{ vault_acme_account_key }}"
    account_key_passphrase: "{{ vault_acme_account_key_passphrase }}"
    contact:
      - mailto:hostmaster@example.com
    terms_agreed: true
  delegate_to: localhost
  run_once: true

- name: Create an account at a CA that wants External Account Binding
  portail.https.acme_account:
    acme_directory: https://acme.example.net/directory
    account_key_content: "{{ vault_acme_account_key }}"
    terms_agreed: true
    external_account_binding:
      kid: "{{ vault_eab_kid }}"
      hmac_key: "{{ vault_eab_hmac_key }}"
  delegate_to: localhost
  run_once: true

- name: Reach the CA through the corporate proxy
  portail.https.acme_account:
    acme_directory: https://acme-staging-v02.api.letsencrypt.org/directory
    account_key_content: "{{ lookup('ansible.builtin.file', 'acme-account.key') }}"
    acme_proxy: http://proxy.example.com:3128
    terms_agreed: true
  delegate_to: localhost
  run_once: true

- name: Roll the account key over
  portail.https.acme_account:
    acme_directory: https://acme-staging-v02.api.letsencrypt.org/directory
    account_key_content: "{{ lookup('ansible.builtin.file', 'acme-account.key') }}"
    new_account_key_content: "{{ lookup('ansible.builtin.file', 'acme-account-new.key') }}"
    state: changed_key
  delegate_to: localhost
  run_once: true

- name: Deactivate the account
  portail.https.acme_account:
    acme_directory: https://acme-staging-v02.api.letsencrypt.org/directory
    account_key_content: "{{ lookup('ansible.builtin.file', 'acme-account.key') }}"
    state: absent
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
account_uri:
  description: URL of the account (the JWS key identifier); null when there is none.
  returned: always
  type: str
  sample: https://acme.example.net/acme/acct/123456
exists:
  description: Whether the account exists (and is not deactivated) after the task.
  returned: always
  type: bool
contact:
  description: Contact URLs of the account after the task.
  returned: always
  type: list
  elements: str
  sample: [mailto:hostmaster@example.com]
status:
  description: Account status reported by the CA (V(valid), V(deactivated), V(revoked)) or null.
  returned: always
  type: str
  sample: valid
thumbprint:
  description:
    - RFC 7638 JWK thumbprint of the account key (after a rollover, of the new key). Every key authorization
      is C(<token>.<thumbprint>), so this is what the web roles' stateless HTTP-01 responder needs
      (C(nginx_acme_thumbprint), C(apache_acme_thumbprint)). Not a secret.
    - The filter P(portail.https.acme_thumbprint#filter) computes the same value from a PEM key.
  returned: always
  type: str
  sample: NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs
requests:
  description: Number of HTTP requests sent to the CA.
  returned: always
  type: int
  sample: 3
"""

from typing import Any, Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.portail.https.plugins.module_utils._acme.account import Account
from ansible_collections.portail.https.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.portail.https.plugins.module_utils._acme.errors import (
    AccountDoesNotExist,
    AcmeError,
    ProblemError,
    Unauthorized,
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


def lookup(client: AcmeClient) -> tuple[Account, bool]:
    """Find the account of the client's key. A deactivated account counts as missing."""
    account = client.account()
    try:
        if client.account_url:
            try:
                account.refresh()
                found = True
            except (AccountDoesNotExist, Unauthorized):
                client.account_url = None
                found = account.find()
        else:
            found = account.find()
    except Unauthorized:
        # CAs answer a lookup of a deactivated account with unauthorized
        found = False
    if found and account.status not in (None, "valid"):
        found = False
    return account, found


def view(account: Account, found: bool) -> dict[str, Any]:
    return {
        "exists": found,
        "account_uri": account.url if found else None,
        "contact": account.contact if found else [],
        "status": account.status if found else None,
    }


def run(module: AnsibleModule) -> dict[str, Any]:
    p = module.params
    state = p["state"]
    client = client_from_params(p)
    account, found = lookup(client)
    before = view(account, found)
    changed = False
    after = dict(before)

    if state == "present":
        contact: Optional[list[str]] = p["contact"]
        if not found:
            if not p["allow_creation"]:
                raise AcmeError("the ACME account does not exist and allow_creation is false")
            changed = True
            after = {"exists": True, "account_uri": None, "contact": contact or [], "status": "valid"}
            if not module.check_mode:
                eab = p["external_account_binding"] or {}
                account.create(
                    contact=contact,
                    terms_agreed=p["terms_agreed"],
                    eab_kid=eab.get("kid"),
                    eab_hmac_key=eab.get("hmac_key"),
                    eab_alg=eab.get("alg") or "HS256",
                )
                if account.status is None:
                    account.refresh()
                after = view(account, True)
        elif contact is not None and sorted(contact) != sorted(account.contact):
            changed = True
            after = dict(before, contact=list(contact))
            if not module.check_mode:
                account.update(contact=contact)
                after = view(account, True)
    elif state == "absent":
        if found:
            changed = True
            after = {"exists": False, "account_uri": account.url, "contact": account.contact, "status": "deactivated"}
            if not module.check_mode:
                account.deactivate()
                after = dict(view(account, True), exists=False)
    else:
        new_key = load_key(
            p["new_account_key_src"],
            p["new_account_key_content"],
            p["new_account_key_passphrase"],
            "new account key",
        )
        before["key_thumbprint"] = client.key.thumbprint
        if not found:
            # already rolled over? then the new key finds the account
            probe = client_from_params(dict(p, account_uri=None), key=new_key)
            probe_account, probe_found = lookup(probe)
            if not probe_found:
                raise AcmeError("no ACME account exists for the account key nor for the new key")
            before = dict(view(probe_account, True), key_thumbprint=new_key.thumbprint)
            after = before
            account = probe_account
            client = probe
        elif new_key.thumbprint != client.key.thumbprint:
            changed = True
            after = dict(before, key_thumbprint=new_key.thumbprint)
            if not module.check_mode:
                account.rollover(new_key)
        else:
            after = before

    result: dict[str, Any] = dict(after, changed=changed, requests=client.requests)
    # the RFC 7638 thumbprint of the key the account uses after the task (stateless http-01 responders)
    result["thumbprint"] = result.pop("key_thumbprint", None) or client.key.thumbprint
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    return result


def main() -> None:
    argument_spec = acme_argument_spec()
    argument_spec.update(
        state={"type": "str", "choices": ["present", "absent", "changed_key"], "default": "present"},
        allow_creation={"type": "bool", "default": True},
        contact={"type": "list", "elements": "str"},
        terms_agreed={"type": "bool", "default": False},
        external_account_binding={
            "type": "dict",
            "options": {
                "kid": {"type": "str", "required": True},
                "hmac_key": {"type": "str", "required": True, "no_log": True, "aliases": ["key"]},
                "alg": {"type": "str", "choices": ["HS256", "HS384", "HS512"], "default": "HS256"},
            },
        },
        new_account_key_src={"type": "path", "no_log": False},
        new_account_key_content={"type": "str", "no_log": True},
        new_account_key_passphrase={"type": "str", "no_log": True},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[
            ("account_key_src", "account_key_content"),
            ("new_account_key_src", "new_account_key_content"),
        ],
        required_one_of=[("account_key_src", "account_key_content")],
        required_if=[("state", "changed_key", ("new_account_key_src", "new_account_key_content"), True)],
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
