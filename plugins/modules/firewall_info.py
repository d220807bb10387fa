#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: firewall_info
short_description: Find out which firewall a host really runs, and the port of the current SSH connection
version_added: 0.1.0
description:
  - "Looks, in this order, for: firewalld running; ufw active; the nftables table or iptables chain
    that portail.https created earlier; a native nftables ruleset (any table other than iptables-nft's
    compatibility tables); iptables rules (legacy, then nft variant). With none of these, returns
    O(fallback)."
  - Also returns the server port of the SSH connection the module runs under, read from the sockets of
    the sshd process that owns the connection (found through the parents of the module in C(/proc), so
    it works under C(become), where sudo's C(env_reset) removes C(SSH_CONNECTION)) and from
    C(SSH_CONNECTION) when present, so callers can keep it open whatever else they are told.
  - Reads only; changes nothing.
author:
  - portail.https contributors (@portail)
extends_documentation_fragment:
  - portail.https.attributes.no_diff
options:
  nft_table:
    description: Family and name of our own nftables table, as C(inet portail_https).
    type: str
    default: inet portail_https
  iptables_chain:
    description: Name of our own iptables chain.
    type: str
    default: PORTAIL-HTTPS
  fallback:
    description: Backend to return when the host runs no firewall at all.
    type: str
    choices: [nftables, iptables]
    default: nftables
"""

EXAMPLES = r"""
- name: Which firewall?
  portail.https.firewall_info:
  register: fw

- name: Show it
  ansible.builtin.debug:
    msg: "{{ fw.backend }} ({{ fw.evidence | join(', ') }}), SSH on {{ fw.ssh_port }}"
"""

RETURN = r"""
backend:
  description: V(firewalld), V(ufw), V(nftables) or V(iptables).
  returned: always
  type: str
  sample: nftables
evidence:
  description: Why that backend was chosen.
  returned: always
  type: list
  elements: str
  sample: ["nftables tables: inet filter"]
iptables_variant:
  description: V(legacy) or V(nft), the iptables variant that holds rules, when the backend is iptables.
  returned: when detected through iptables rules
  type: str
  sample: legacy
iptables_alternative:
  description: Variant the plain C(iptables) command runs (Debian alternatives).
  returned: always
  type: str
  sample: nft
nft_tables:
  description: Native nftables tables found.
  returned: always
  type: list
  elements: str
  sample: ["inet filter", "inet f2b-table"]
ssh_port:
  description: Server port of the SSH connection this module runs under, or null when not under SSH.
  returned: always
  type: int
  sample: 22
ufw_active:
  description: Whether ufw is active.
  returned: when ufw is installed
  type: bool
  sample: false
ufw_incoming:
  description: ufw's default policy for incoming traffic (V(drop), V(reject) or V(accept)), from C(/etc/default/ufw).
  returned: when ufw is installed
  type: str
  sample: drop
ssh_ports:
  description: Every server port found for this SSH session (usually one), empty when not under SSH.
  returned: always
  type: list
  elements: int
  sample: [2222]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portail.https.plugins.module_utils._firewall import detect
from ansible_collections.portail.https.plugins.module_utils._fwapply import ssh_port_from_env, ssh_session_ports


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "nft_table": {"type": "str", "default": "inet portail_https"},
            "iptables_chain": {"type": "str", "default": "PORTAIL-HTTPS"},
            "fallback": {"type": "str", "default": "nftables", "choices": ["nftables", "iptables"]},
        },
        supports_check_mode=True,
    )
    p = module.params
    parts = p["nft_table"].split()
    if len(parts) != 2:
        module.fail_json(msg="nft_table must be '<family> <name>', for example 'inet portail_https'")

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    def which(name: str) -> str | None:
        return module.get_bin_path(name, opt_dirs=["/usr/sbin", "/sbin"])

    facts = detect(run, which, (parts[0], parts[1]), p["iptables_chain"], p["fallback"])
    ports = set(ssh_session_ports())
    env_port = ssh_port_from_env(os.environ)
    if env_port:
        ports.add(env_port)
    found = sorted(ports)
    module.exit_json(changed=False, ssh_port=found[0] if found else None, ssh_ports=found, **facts)


if __name__ == "__main__":
    main()
