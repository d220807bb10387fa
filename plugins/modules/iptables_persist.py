#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iptables_persist
short_description: Save the live iptables or ip6tables ruleset where iptables-persistent restores it from
version_added: 0.1.0
description:
  - Runs C(iptables-save) (or C(ip6tables-save), or a variant such as C(iptables-legacy-save)) and writes
    its output to O(path) when it differs from what the file holds, ignoring the dated comments and the
    packet counters. The whole live ruleset is saved, so rules of others (fail2ban, Docker) are kept as
    they are, exactly as C(netfilter-persistent save) would.
author:
  - portail.https contributors (@portail)
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
options:
  command:
    description: The iptables command whose C(-save) form is run, for example V(ip6tables) or V(iptables-legacy).
    type: str
    default: iptables
  path:
    description: Rules file; iptables-persistent reads C(/etc/iptables/rules.v4) and C(/etc/iptables/rules.v6).
    type: path
    default: /etc/iptables/rules.v4
"""

EXAMPLES = r"""
- name: Persist IPv6 rules
  portail.https.iptables_persist:
    command: ip6tables
    path: /etc/iptables/rules.v6
"""

RETURN = r"""
path:
  description: The rules file.
  returned: always
  type: str
  sample: /etc/iptables/rules.v4
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portail.https.plugins.module_utils._firewall import persist_iptables


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "command": {"type": "str", "default": "iptables"},
            "path": {"type": "path", "default": "/etc/iptables/rules.v4"},
        },
        supports_check_mode=True,
    )
    save = module.get_bin_path(module.params["command"] + "-save", required=True, opt_dirs=["/usr/sbin", "/sbin"])

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    try:
        result = persist_iptables(run, save, module.params["path"], module.check_mode)
    except (RuntimeError, OSError) as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
