#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_probe
short_description: Tell whether TCP ports of a host are open, refused or filtered, as nc or telnet would
version_added: 0.1.0
description:
  - "Tries a TCP connection to each port and reports V(open) (handshake done), V(refused) (the host
    answered with a reset - the firewall lets the port through but nothing listens), V(filtered) (no
    answer before O(timeout) - dropped on the way) or V(unreachable) (an ICMP error, for example a
    C(REJECT) with an ICMP type, or no route)."
  - "Run it where the visitors are: on the controller with C(delegate_to: localhost), so it checks the
    firewall of the target rather than its loopback."
  - Changes nothing; check mode runs the same probes.
author:
  - portail.https contributors (@portail)
extends_documentation_fragment:
  - portail.https.attributes.no_diff
options:
  host:
    description: Name or address to connect to.
    type: str
    required: true
  ports:
    description: TCP ports to probe (together with those in O(reachable)).
    type: list
    elements: int
    default: []
  timeout:
    description: Seconds to wait for each connection before calling the port filtered.
    type: float
    default: 3
  expect:
    description:
      - Map of port to the list of accepted states; the task fails when a port is in another state.
      - "For example C({'80': [open, refused]}) asserts that the firewall lets port 80 through."
    type: dict
    default: {}
  reachable:
    description:
      - Ports that must get through the firewall, that is be V(open) or V(refused); the task fails otherwise.
        A shorthand for O(expect) with V([open, refused]) for each.
    type: list
    elements: int
    default: []
"""

EXAMPLES = r"""
- name: Ports 80 and 443 must get through the firewall
  portail.https.port_probe:
    host: "{{ ansible_host | default(inventory_hostname) }}"
    reachable: [80, 443]
  delegate_to: localhost

- name: Port 8080 must be dropped (no answer), 25 refused
  portail.https.port_probe:
    host: "{{ ansible_host | default(inventory_hostname) }}"
    ports: [8080, 25]
    timeout: 2
    expect:
      "8080": filtered
      "25": refused
  delegate_to: localhost
"""

RETURN = r"""
ports:
  description: Port (as a string) to its result.
  returned: always
  type: dict
  sample: {"80": {"port": 80, "address": "198.18.1.3", "state": "open", "detail": "connected"}}
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portail.https.plugins.module_utils._probe import STATES, mismatches, probe_all

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "host": {"type": "str", "required": True},
    "ports": {"type": "list", "elements": "int", "default": []},
    "timeout": {"type": "float", "default": 3},
    "expect": {"type": "dict", "default": {}},
    "reachable": {"type": "list", "elements": "int", "default": []},
}


def run(p: dict[str, t.Any]) -> dict[str, t.Any]:
    """The module's work on validated parameters (also run in-process by the action plugin): a result."""
    expect: dict[str, list[str]] = {}
    for port, wanted in p["expect"].items():
        states = [wanted] if isinstance(wanted, str) else list(wanted)
        unknown = [s for s in states if s not in STATES]
        if unknown:
            return {"failed": True, "msg": f"expect[{port}]: unknown state(s) {unknown}; use {', '.join(STATES)}"}
        expect[str(port)] = states
    for port in p["reachable"]:
        expect.setdefault(str(port), ["open", "refused"])
    ports = list(dict.fromkeys(p["ports"] + p["reachable"] + [int(x) for x in expect if x.isdigit()]))
    bad_ports = [port for port in ports if not 0 < port < 65536] + [x for x in expect if not x.isdigit()]
    if bad_ports:
        return {"failed": True, "msg": f"invalid port(s): {bad_ports}"}
    results = probe_all(p["host"], ports, p["timeout"])
    bad = mismatches(results, expect)
    if bad:
        return {"failed": True, "changed": False, "msg": f"{p['host']}: " + "; ".join(bad), "ports": results}
    return {"changed": False, "ports": results}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = run(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
