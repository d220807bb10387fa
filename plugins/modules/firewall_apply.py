#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: firewall_apply
short_description: Open ports in nftables, iptables, ufw or firewalld in one self-undoing step that keeps SSH open
version_added: 0.1.0
description:
  - Computes the complete state of what it owns and, when the host differs, arms a rollback job and
    applies everything right after it (nftables and iptables - in B(one) atomic step; ufw and firewalld -
    their commands one after the other, in the same module run, the rollback waiting for the last one),
    then (through its action plugin) drops the
    SSH connection, opens a new one and confirms. If the new connection cannot be made, the host puts
    the previous state back by itself after O(rollback_timeout) seconds.
  - "V(nftables): the table C(inet) O(nft_table) whole (one input chain, its policy included), replaced in one
    C(nft -f) transaction; with O(persist), the same table in O(nftables_file) and a glob include of it in
    O(nftables_conf) (a missing file is skipped at boot instead of failing the whole configuration)."
  - "V(iptables): for each of O(iptables_commands), our chain O(iptables_chain) (flushed and refilled), one
    jump to it at the top of C(INPUT) and, with O(default_deny), the C(INPUT) policy: one
    C(iptables-restore --noflush) per family, naming nothing else, so other chains and rules (fail2ban,
    Docker) are never rewritten. When default deny is turned off, the C(INPUT) policy goes back to what it
    was before this module set it to C(DROP)."
  - "V(ufw): through the C(ufw) command (which persists and applies its own rules), our allow rules - those
    carrying O(comment) - are made exactly the wanted ports (a rule of ours no longer wanted is deleted; a port
    another rule already allows is left to it); with O(default_deny) the incoming default becomes C(deny) (its
    previous value is recorded and put back when default deny is turned off); an inactive ufw is enabled, with
    C(allow incoming) unless default deny is asked. The rollback puts back C(/etc/ufw/user.rules),
    C(user6.rules), C(ufw.conf) and C(/etc/default/ufw) and runs C(ufw reload), or C(ufw disable) when ufw was
    inactive before."
  - "V(firewalld): through C(firewall-cmd), runtime and permanent, the zone O(firewalld_zone) gets the wanted
    ports; the ports this module added are recorded in O(state_dir) and removed again when no longer wanted.
    Ports the zone had before, its services and rich rules are never touched, and no C(--reload) is made (so
    runtime-only rules of others survive). The rollback puts back the zone file under C(/etc/firewalld/zones)
    and runs C(firewall-cmd --reload) (which, on that emergency path only, drops runtime-only changes)."
  - Why the C(ufw) and C(firewall-cmd) commands and not M(community.general.ufw) or M(ansible.posix.firewalld) -
    the change must run in the same module run as the rollback that guards it (nothing from the controller
    in between), be computed against what we own (the modules only add or remove what they are told), and
    one module call per host is much faster than one task per port. C(firewall-cmd) also needs no firewalld
    Python bindings in the interpreter Ansible uses.
  - The SSH port of the session is kept open whatever the inputs. It is read from the sockets of the sshd
    process that owns the connection (so it is found under C(become), where sudo removes C(SSH_CONNECTION)),
    and from C(SSH_CONNECTION) when present. With O(default_deny) and no port found, the module refuses.
  - "With default deny, what keeps the host's addresses stays accepted: ICMP and ICMPv6 (neighbour discovery,
    router advertisements) and DHCPv6 replies (from C(fe80::/10), udp 547 to 546)."
  - Why not M(community.general.iptables_state) for the apply - it restores whole tables (every rule of
    others, as they were when the file was written, replacing bans added meanwhile) and its rollback is
    tied to its own async task, not to a reconnection after the change. The role uses it to B(save) the
    rules once the change is confirmed.
author:
  - portail.https contributors (@portail)
extends_documentation_fragment:
  - portail.https.attributes
  - portail.https.attributes.action
options:
  backend:
    description:
      - Firewall to program. V(auto) picks it as M(portail.https.firewall_info) does (firewalld running, ufw
        active, our own nftables table or iptables chain, a native nftables ruleset, iptables rules, else
        nftables), in the same run, and returns it in RV(backend).
    type: str
    required: true
    choices: [auto, nftables, iptables, ufw, firewalld]
  tcp_ports:
    description: TCP ports to accept (the SSH ports are added).
    type: list
    elements: int
    default: []
  udp_ports:
    description: UDP ports to accept.
    type: list
    elements: int
    default: []
  ssh_ports:
    description: More SSH ports to keep open besides the one of this session (always kept).
    type: list
    elements: int
    default: []
  default_deny:
    description:
      - Drop what is not accepted (nftables - policy of our chain; iptables - C(INPUT) policy; ufw - its incoming
        default; firewalld - the zone already rejects what it does not allow, nothing more is done).
    type: bool
    default: false
  rollback_timeout:
    description: Seconds after which the host undoes an unconfirmed change.
    type: int
    default: 60
  confirm:
    description:
      - Reconnect and confirm in the same task (action plugin). V(false) leaves the job pending and
        returns its id, for a caller that confirms with M(portail.https.firewall_rollback).
    type: bool
    default: true
  persist:
    description: Keep the nftables table across reboots (O(nftables_file), included from O(nftables_conf)).
    type: bool
    default: true
  nft_table:
    description: Our nftables table (family C(inet)).
    type: str
    default: portail_https
  nftables_file:
    description: File holding our table for the next boot.
    type: path
    default: /etc/nftables.d/portail_https.nft
  nftables_conf:
    description: The boot configuration that includes O(nftables_file).
    type: path
    default: /etc/nftables.conf
  iptables_chain:
    description: Our iptables chain.
    type: str
    default: PORTAIL-HTTPS
  iptables_commands:
    description: iptables commands (one per family) whose C(-save)/C(-restore) forms are used.
    type: list
    elements: str
    default: [iptables, ip6tables]
  comment:
    description: Comment on our iptables jump rule, and on our ufw rules (how they are recognized as ours).
    type: str
    default: portail.https
  ufw_command:
    description: The ufw command.
    type: str
    default: ufw
  firewalld_zone:
    description: firewalld zone to open the ports in; the default zone when empty.
    type: str
    default: ""
  connection:
    description: Set by the action plugin - the connection type; V(local) needs no SSH port.
    type: str
    default: ssh
  verify_host:
    description:
      - After the change (and its confirmation), open ports 80, 443 and the SSH ports kept from the controller,
        in the controller's process, as M(portail.https.port_probe) delegated to localhost would; the task
        fails when one of them is filtered or unreachable. Empty skips this. Not done in check mode.
    type: str
    default: ""
  verify_timeout:
    description: Seconds to wait for each port of O(verify_host).
    type: float
    default: 3
  iptables_save_files:
    description:
      - On the iptables backend, after the change is confirmed (or when there was nothing to change), the whole
        live ruleset of each IP version (C(ipv4), C(ipv6)) is saved to the file given for it, where
        iptables-persistent restores it (C(community.general.iptables_state), C(state=saved)). Empty saves nothing.
      - Used by the action plugin (the controller side), not on the host.
    type: dict
    default: {}
  state_dir:
    description:
      - Small state files (the nft listing digests, the iptables policy and ufw default we replaced, the
        firewalld ports we added).
    type: path
    default: /var/lib/portail-https
notes:
  - Only one change per host may wait for its confirmation; a second run meanwhile is refused.
  - The persisted iptables rules are not written here (see the role portail.https.firewall, which saves
    them with M(community.general.iptables_state) after the confirmation).
"""

EXAMPLES = r"""
- name: Open 80 and 443, drop the rest, keep SSH; reconnect and confirm
  portail.https.firewall_apply:
    backend: nftables
    tcp_ports: [80, 443]
    default_deny: true
    rollback_timeout: 60
"""

RETURN = r"""
backend:
  description: The firewall programmed (the one found, with O(backend=auto)).
  returned: always
  type: str
  sample: nftables
evidence:
  description:
    - Why that backend (with O(backend=auto)), as M(portail.https.firewall_info) returns it; its other
      findings (C(iptables_variant), C(iptables_alternative), C(nft_tables), C(ufw_active), C(ufw_incoming))
      are returned too.
  returned: always
  type: list
  elements: str
  sample: ["nftables tables: inet filter"]
probe:
  description:
    - The ports as seen from the controller (M(portail.https.port_probe)'s C(ports)), with O(verify_host).
  returned: with O(verify_host), not in check mode
  type: dict
  sample: {"80": {"port": 80, "state": "open", "detail": "connected"}}
ssh_ports:
  description: SSH ports kept open.
  returned: always
  type: list
  elements: int
  sample: [22]
ssh_evidence:
  description: How the port of this session was found.
  returned: always
  type: list
  elements: str
  sample: ["sockets of the sshd owning this session: 2222"]
rollback:
  description: The rollback job armed before the change (id, path, pid, deadline); absent when nothing changed.
  returned: when changed
  type: dict
  sample: {"id": "6f1c0e8a4b8f4bd59c3a3f1d2e7b9a10", "deadline": 1796217000}
confirmed:
  description: The change was confirmed over a new connection.
  returned: when changed and O(confirm=true)
  type: bool
  sample: true
foreign_input_chains:
  description: Input base chains of other nftables tables; a drop there wins over an accept in ours.
  returned: with O(backend=nftables)
  type: list
  elements: dict
  sample: [{"family": "inet", "table": "filter", "chain": "input", "policy": "drop"}]
zone:
  description: The firewalld zone the ports were opened in.
  returned: with O(backend=firewalld)
  type: str
  sample: public
"""

import os
import re
import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portail.https.plugins.module_utils import _fwapply, _fwfrontends, _fwrollback, _nft
from ansible_collections.portail.https.plugins.module_utils._firewall import detect

SBIN = ["/usr/sbin", "/sbin"]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "backend": {
                "type": "str",
                "required": True,
                "choices": ["auto", "nftables", "iptables", "ufw", "firewalld"],
            },
            "tcp_ports": {"type": "list", "elements": "int", "default": []},
            "udp_ports": {"type": "list", "elements": "int", "default": []},
            "ssh_ports": {"type": "list", "elements": "int", "default": []},
            "default_deny": {"type": "bool", "default": False},
            "rollback_timeout": {"type": "int", "default": 60},
            "confirm": {"type": "bool", "default": True},
            "persist": {"type": "bool", "default": True},
            "nft_table": {"type": "str", "default": "portail_https"},
            "nftables_file": {"type": "path", "default": "/etc/nftables.d/portail_https.nft"},
            "nftables_conf": {"type": "path", "default": "/etc/nftables.conf"},
            "iptables_chain": {"type": "str", "default": "PORTAIL-HTTPS"},
            "iptables_commands": {"type": "list", "elements": "str", "default": ["iptables", "ip6tables"]},
            "comment": {"type": "str", "default": "portail.https"},
            "ufw_command": {"type": "str", "default": "ufw"},
            "firewalld_zone": {"type": "str", "default": ""},
            "connection": {"type": "str", "default": "ssh"},
            "state_dir": {"type": "path", "default": "/var/lib/portail-https"},
            # used by the action plugin on the controller
            "verify_host": {"type": "str", "default": ""},
            "verify_timeout": {"type": "float", "default": 3},
            "iptables_save_files": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    ports = p["tcp_ports"] + p["udp_ports"] + p["ssh_ports"]
    if any(not 1 <= port <= 65535 for port in ports):
        module.fail_json(msg="ports must be integers from 1 to 65535")
    if p["rollback_timeout"] < 5:
        module.fail_json(msg="rollback_timeout must be at least 5 seconds")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,30}", p["nft_table"]):
        module.fail_json(msg="nft_table must be a letter then up to 30 letters, digits or _")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,27}", p["iptables_chain"]):
        module.fail_json(msg="iptables_chain must be a letter then up to 27 letters, digits, _ or -")

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    found: dict[str, t.Any] = {"backend": p["backend"], "evidence": ["backend given"]}
    if p["backend"] == "auto":

        def which(name: str) -> t.Optional[str]:
            return module.get_bin_path(name, opt_dirs=SBIN)

        found = detect(run, which, ("inet", p["nft_table"]), p["iptables_chain"], "nftables")
    backend = found["backend"]
    try:
        ssh, evidence = _fwapply.ssh_ports(os.environ, p["ssh_ports"], p["connection"], p["default_deny"])
        tcp = sorted(set(p["tcp_ports"]) | set(ssh))
        udp = sorted(set(p["udp_ports"]))
        wanted = [(port, "tcp") for port in tcp] + [(port, "udp") for port in udp]
        # one host, one change at a time: a second run waits here (and then finds the first one pending)
        _fwrollback.safe_dir(os.path.dirname(_fwrollback.BASE_DIR), 0o755)
        with _fwapply.host_lock(os.path.join(os.path.dirname(_fwrollback.BASE_DIR), "firewall.lock")):
            if backend == "nftables":
                nft = _nft.Nft(module.get_bin_path("nft", required=True), run)
                change: _fwapply.Change = _fwapply.NftChange(
                    nft,
                    p["nft_table"],
                    _fwapply.nft_rules(tcp, udp, p["default_deny"]),
                    p["default_deny"],
                    p["nftables_file"] if p["persist"] else None,
                    p["nftables_conf"] if p["persist"] else None,
                    os.path.join(p["state_dir"], "nft"),
                )
            elif backend == "ufw":
                change = _fwfrontends.UfwChange(
                    run,
                    module.get_bin_path(p["ufw_command"], required=True, opt_dirs=SBIN),
                    p["comment"],
                    wanted,
                    p["default_deny"],
                    os.path.join(p["state_dir"], "ufw.json"),
                )
            elif backend == "firewalld":
                change = _fwfrontends.FirewalldChange(
                    run,
                    module.get_bin_path("firewall-cmd", required=True, opt_dirs=SBIN),
                    p["firewalld_zone"],
                    wanted,
                    os.path.join(p["state_dir"], "firewalld.json"),
                )
            else:
                commands = [module.get_bin_path(c, required=True, opt_dirs=SBIN) for c in p["iptables_commands"]]
                change = _fwapply.XtChange(
                    run,
                    commands,
                    p["iptables_chain"],
                    p["comment"],
                    tcp,
                    udp,
                    p["default_deny"],
                    os.path.join(p["state_dir"], "iptables-policy.json"),
                )
            result = _fwapply.apply(change, p["rollback_timeout"], module.check_mode)
    except (_fwapply.ApplyError, _fwrollback.RollbackError, _nft.NftError, ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(ssh_ports=ssh, ssh_evidence=evidence, **found, **result)


if __name__ == "__main__":
    main()
