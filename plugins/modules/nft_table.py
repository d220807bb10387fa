#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nft_table
short_description: Manage one nftables table of your own, atomically and idempotently
version_added: 0.1.0
description:
  - Renders the whole wanted table (chains, hooks, policies, rules), compares it with the live table
    (C(nft list table), whitespace-normalised) and, when they differ, replaces the table in one
    C(nft -f) transaction that deletes and re-adds this table only. The script is validated with
    C(nft -c -f) first, also in check mode. Other tables (fail2ban, Docker, firewalld, the host's own
    C(inet filter)) are never read for changes, flushed or modified.
  - "nftables semantics: a packet must be accepted by every base chain attached to a hook. An C(accept)
    in this table does not override a C(drop) in another table's input chain; such chains are returned
    in RV(foreign_input_chains) so the caller can warn about them."
  - Optionally writes the same definition to O(persist_path), a file meant to be included from
    C(/etc/nftables.conf), so the table comes back at boot.
author:
  - portail.https contributors (@portail)
extends_documentation_fragment:
  - portail.https.attributes
options:
  name:
    description: Name of the table.
    type: str
    default: portail_https
  family:
    description: Address family of the table; V(inet) covers IPv4 and IPv6.
    type: str
    default: inet
    choices: [inet, ip, ip6, arp, bridge, netdev]
  state:
    description: V(present) makes the table exactly O(chains); V(absent) deletes it (and O(persist_path)).
    type: str
    default: present
    choices: [present, absent]
  chains:
    description: The chains of the table, in order. The table holds exactly these.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Chain name.
        type: str
        required: true
      type:
        description: Chain type of a base chain.
        type: str
        choices: [filter, nat, route]
      hook:
        description: Hook of a base chain (V(input), V(forward), V(output), V(prerouting), V(postrouting)...).
        type: str
      priority:
        description: Priority of a base chain, a number or a name such as V(filter).
        type: str
        default: filter
      policy:
        description: Policy of a base chain.
        type: str
        choices: [accept, drop]
      rules:
        description: Rules in nft syntax, one per item, for example V(tcp dport { 80, 443 } accept).
        type: list
        elements: str
        default: []
  persist_path:
    description:
      - File to write the table definition to (a C(nft -f) script that replaces this table only).
        Include it from C(/etc/nftables.conf) to restore it at boot. Not written when omitted.
    type: path
  state_dir:
    description: Directory for the small state file that recognises rules nft prints in another form.
    type: path
    default: /var/lib/portail-https/nft
notes:
  - Requires the C(nft) binary (Debian/Ubuntu package C(nftables)) and root.
  - The role portail.https.firewall opens ports 80 and 443 with this module on nftables hosts.
"""

EXAMPLES = r"""
- name: Open HTTP and HTTPS in our own table
  portail.https.nft_table:
    chains:
      - name: input
        type: filter
        hook: input
        policy: accept
        rules:
          - tcp dport { 80, 443 } accept
    persist_path: /etc/nftables.d/portail_https.nft

- name: Remove the table
  portail.https.nft_table:
    state: absent
"""

RETURN = r"""
rendered:
  description: The wanted table as nft lists it (empty for O(state=absent)).
  returned: always
  type: str
  sample: "table inet portail_https {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\n"
table:
  description: Family and name of the managed table.
  returned: always
  type: str
  sample: inet portail_https
foreign_input_chains:
  description: Input base chains of other tables; a drop there wins over an accept here.
  returned: always
  type: list
  elements: dict
  sample: [{"family": "inet", "table": "filter", "chain": "input", "policy": "drop"}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portail.https.plugins.module_utils._nft import Chain, Nft, NftError, manage_table


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "default": "portail_https"},
            "family": {"type": "str", "default": "inet", "choices": ["inet", "ip", "ip6", "arp", "bridge", "netdev"]},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "chains": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "type": {"type": "str", "choices": ["filter", "nat", "route"]},
                    "hook": {"type": "str"},
                    "priority": {"type": "str", "default": "filter"},
                    "policy": {"type": "str", "choices": ["accept", "drop"]},
                    "rules": {"type": "list", "elements": "str", "default": []},
                },
            },
            "persist_path": {"type": "path"},
            "state_dir": {"type": "path", "default": "/var/lib/portail-https/nft"},
        },
        supports_check_mode=True,
    )
    binary = module.get_bin_path("nft", required=True)

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    params = module.params
    try:
        chains = [Chain.from_dict(c) for c in params["chains"]]
        result = manage_table(
            Nft(binary, run),
            params["family"],
            params["name"],
            chains,
            state=params["state"],
            persist_path=params["persist_path"],
            state_dir=params["state_dir"],
            check_mode=module.check_mode,
        )
    except (ValueError, NftError, OSError) as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
