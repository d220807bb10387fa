# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portail.https.firewall_apply: apply (arm + one atomic change) on the host, then drop
the connection, open a NEW one and confirm, all inside this host's task. The time between the change
and its confirmation therefore does not grow with the number of hosts or forks (a role doing
"apply" and "confirm" as two tasks waits for every other host's "apply" in between).

With ``backend: auto`` the module finds the firewall in the same run, and with ``verify_host`` this
plugin then opens ports 80, 443 and the SSH ports kept from the controller, in its own process (the
code of portail.https.port_probe): a firewall role with nothing to change is one Python start on the host
and none on the controller."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible_collections.portail.https.plugins.modules import port_probe

MODULE = "portail.https.firewall_apply"
CONFIRM = "portail.https.firewall_rollback"
SAVE = "community.general.iptables_state"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: t.Any = None, task_vars: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        verify_host = str(args.pop("verify_host", "") or "")
        verify_timeout = float(args.pop("verify_timeout", 3))
        save_files = dict(args.pop("iptables_save_files", None) or {})
        transport = str(getattr(self._connection, "transport", "ssh") or "ssh").rsplit(".", 1)[-1]
        args.setdefault("connection", transport)
        confirm = bool(args.get("confirm", True))
        applied = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
        result.update(applied)
        if applied.get("failed"):
            return result
        drops = [c for c in applied.get("foreign_input_chains") or [] if c.get("policy") == "drop"]
        if drops:
            result.setdefault("warnings", []).append(
                f"Other nftables input chains exist: {', '.join(str(c.get('table')) for c in drops)}. A packet must"
                " be accepted by every input chain: if one of them drops ports 80/443, open them there too."
            )
        rollback = applied.get("rollback") or {}
        if (
            rollback.get("id")
            and confirm
            and not self._task.check_mode
            and not self._confirm(result, rollback, args, task_vars)
        ):
            return result
        if save_files and applied.get("backend") == "iptables" and not self._task.check_mode:
            # only confirmed rules are saved: the whole live ruleset, as netfilter-persistent would (others' kept)
            for version, path in sorted(save_files.items()):
                saved = self._execute_module(
                    SAVE, module_args={"state": "saved", "ip_version": version, "path": path}, task_vars=task_vars
                )
                if saved.get("failed") or saved.get("unreachable"):
                    result.update(failed=True, msg=f"saving the {version} rules to {path}: {saved.get('msg', '')}")
                    return result
                result["changed"] = bool(result.get("changed")) or bool(saved.get("changed"))
                result.setdefault("saved", []).append(path)
        if verify_host and not self._task.check_mode:
            ports = [80, 443, *[int(p) for p in applied.get("ssh_ports") or []]]
            probed = port_probe.run(
                {"host": verify_host, "ports": [], "timeout": verify_timeout, "expect": {}, "reachable": ports}
            )
            result["probe"] = probed.get("ports", {})
            if probed.get("failed"):
                result.update(failed=True, msg=f"the firewall is in place but from the controller: {probed['msg']}")
        return result

    def _confirm(
        self,
        result: dict[str, t.Any],
        rollback: dict[str, t.Any],
        args: dict[str, t.Any],
        task_vars: t.Optional[dict[str, t.Any]],
    ) -> bool:
        # The change may have cut us off: only a brand-new connection proves it did not.
        try:
            self._connection.reset()
            confirmed = self._execute_module(
                CONFIRM, module_args={"state": "confirmed", "id": rollback["id"]}, task_vars=task_vars
            )
        except AnsibleConnectionFailure as exc:
            result.update(
                failed=True,
                unreachable=True,
                msg=(
                    f"the firewall change cut the connection ({exc}); the host restores the previous state "
                    f"by itself in at most {args.get('rollback_timeout', 60)} s (rollback {rollback['id']})"
                ),
            )
            return False
        if confirmed.get("failed") or confirmed.get("unreachable"):
            result.update(failed=True, msg=f"confirmation failed: {confirmed.get('msg', '')}")
            return False
        result["confirmed"] = True
        return True
