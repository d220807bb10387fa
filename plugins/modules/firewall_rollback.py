#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: firewall_rollback
short_description: Undo a firewall change by itself unless the controller confirms it in time
version_added: 0.1.0
description:
  - With O(state=armed), takes a snapshot of what a firewall change may break (the nftables table
    O(table), or the whole C(iptables) and C(ip6tables) rulesets, and the persistence O(files)) and
    starts a detached job on the host that restores that snapshot after O(timeout) seconds.
  - "With O(state=confirmed), cancels that job. Run it over a B(new) connection after the change
    (C(meta: reset_connection) first): if the change cut the controller off, the confirmation never
    arrives and the host restores the previous state by itself."
  - Snapshots and logs live in a directory under C(/run/portail-https/rollback/<id>).
  - A confirmation and the restore never run at the same time (a lock in that directory) - a confirmation
    that arrives while the restore runs waits for it and then fails, saying the change was undone.
  - Only one job may be pending per host; arming a second one meanwhile fails.
  - The role portail.https.firewall does not use O(state=armed) - M(portail.https.firewall_apply) arms and
    applies in one step. O(state=armed) is for playbooks of your own that change a firewall otherwise.
author:
  - portail.https contributors (@portail)
extends_documentation_fragment:
  - portail.https.attributes.no_diff
attributes:
  check_mode:
    details: In check mode nothing is armed or confirmed.
options:
  state:
    description: V(armed) starts the job, V(confirmed) cancels it, V(status) only reports it.
    type: str
    required: true
    choices: [armed, confirmed, status]
  backend:
    description: What to snapshot when arming.
    type: str
    choices: [nftables, iptables]
    default: nftables
  timeout:
    description: Seconds before the job restores the snapshot.
    type: int
    default: 60
  id:
    description: Job id returned by O(state=armed); required for V(confirmed) and V(status).
    type: str
  table:
    description: nftables table to snapshot (O(backend=nftables)).
    type: str
    default: portail_https
  family:
    description: Family of O(table).
    type: str
    default: inet
  iptables_commands:
    description: Commands whose C(-save) / C(-restore) forms snapshot and restore (O(backend=iptables)).
    type: list
    elements: str
    default: [iptables, ip6tables]
  files:
    description: Files restored (or removed, if absent now) together with the ruleset.
    type: list
    elements: path
    default: []
notes:
  - The restore runs C(nft -f) or C(iptables-restore) on the snapshot; rules added by others during the
    timeout window (for example a fail2ban ban) are lost by an iptables restore of the whole snapshot
    (M(portail.https.firewall_apply) restores only what it owns), not by an nftables one.
"""

EXAMPLES = r"""
- name: Arm a rollback of our nftables table
  portail.https.firewall_rollback:
    state: armed
    timeout: 60
  register: rollback

- name: Apply the risky change
  portail.https.nft_table:
    chains: []

- name: Drop the SSH connection so that the confirmation uses a new one
  ansible.builtin.meta: reset_connection

- name: Confirm (the host restores the previous state if this never arrives)
  portail.https.firewall_rollback:
    state: confirmed
    id: "{{ rollback.id }}"
"""

RETURN = r"""
id:
  description: Job id (O(state=armed)).
  returned: when armed
  type: str
  sample: 6f1c0e8a4b8f4bd59c3a3f1d2e7b9a10
path:
  description: Directory with the snapshot, the restore script and, after a restore, its log.
  returned: when armed
  type: str
  sample: /run/portail-https/rollback/6f1c0e8a4b8f4bd59c3a3f1d2e7b9a10
status:
  description: V(pending), V(confirmed), V(rolled-back) or V(unknown).
  returned: always
  type: str
  sample: confirmed
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portail.https.plugins.module_utils import _fwapply, _nft
from ansible_collections.portail.https.plugins.module_utils._fwrollback import (
    BASE_DIR,
    Job,
    RollbackError,
    Step,
    confirm,
    status,
)
from ansible_collections.portail.https.plugins.module_utils._hostfiles import HostFileError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "required": True, "choices": ["armed", "confirmed", "status"]},
            "backend": {"type": "str", "default": "nftables", "choices": ["nftables", "iptables"]},
            "timeout": {"type": "int", "default": 60},
            "id": {"type": "str"},
            "table": {"type": "str", "default": "portail_https"},
            "family": {"type": "str", "default": "inet"},
            "iptables_commands": {"type": "list", "elements": "str", "default": ["iptables", "ip6tables"]},
            "files": {"type": "list", "elements": "path", "default": []},
        },
        required_if=[("state", "confirmed", ["id"]), ("state", "status", ["id"])],
        supports_check_mode=True,
    )
    p = module.params

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    try:
        if p["state"] == "status":
            module.exit_json(changed=False, status=status(p["id"]))
        if module.check_mode:
            module.exit_json(changed=True, status="pending" if p["state"] == "armed" else "confirmed")
        if p["state"] == "confirmed":
            module.exit_json(**confirm(p["id"]))
        job = Job(BASE_DIR, p["timeout"])
        if p["backend"] == "nftables":
            nft = _nft.Nft(module.get_bin_path("nft", required=True), run)
            steps = _fwapply.nft_table_steps(nft, p["family"], p["table"])
        else:
            steps = []
            for command in p["iptables_commands"]:
                binary = module.get_bin_path(command, required=True, opt_dirs=["/usr/sbin", "/sbin"])
                rc, out, err = run([f"{binary}-save"])
                if rc != 0:
                    raise RollbackError(f"{binary}-save failed: {err.strip()}")
                steps.append(Step([f"{binary}-restore", "-w"], out))
        job.prepare(steps, p["files"])
        module.exit_json(changed=True, status="pending", **job.start())
    except (RollbackError, _fwapply.ApplyError, _nft.NftError, HostFileError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
