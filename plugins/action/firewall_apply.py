# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portail.https.firewall_apply: apply (arm + one atomic change) on the host, then drop
the connection, open a NEW one and confirm, all inside this host's task. The time between the change
and its confirmation therefore does not grow with the number of hosts or forks (a role doing
"apply" and "confirm" as two tasks waits for every other host's "apply" in between)."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

MODULE = "portail.https.firewall_apply"
CONFIRM = "portail.https.firewall_rollback"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: t.Any = None, task_vars: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        transport = str(getattr(self._connection, "transport", "ssh") or "ssh").rsplit(".", 1)[-1]
        args.setdefault("connection", transport)
        confirm = bool(args.get("confirm", True))
        applied = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
        result.update(applied)
        rollback = applied.get("rollback") or {}
        if applied.get("failed") or not rollback.get("id") or not confirm or self._task.check_mode:
            return result
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
            return result
        if confirmed.get("failed") or confirmed.get("unreachable"):
            result.update(failed=True, msg=f"confirmation failed: {confirmed.get('msg', '')}")
            return result
        result["confirmed"] = True
        return result
