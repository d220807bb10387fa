# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side checks (port_probe, https_verify) without a Python start per host and per name.

Such a module is normally delegated to localhost: Ansible then starts a new Python interpreter on the
controller for every host and every item only to open a few sockets. When the task's connection is
local and nothing is to be run as another user, the action plugin runs the module's own ``run``
function (the same code, on parameters validated against the same argument spec) in the worker
process instead. Anywhere else (delegated to another host, or with become), the module runs as usual.
"""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase


def runs_here(action: ActionBase) -> bool:
    """Whether the module would run on the controller as this very user: local connection, no become."""
    transport = str(getattr(action._connection, "transport", "") or "").rsplit(".", 1)[-1]
    return transport == "local" and not getattr(action._play_context, "become", False)


class InProcessAction(ActionBase):
    """An action plugin for a read-only module whose work is ``run(params) -> result``."""

    TRANSFERS_FILES = False
    MODULE = ""
    ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {}

    @staticmethod
    def work(params: dict[str, t.Any]) -> dict[str, t.Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def run(self, tmp: t.Any = None, task_vars: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        if not runs_here(self):
            result.update(self._execute_module(self.MODULE, module_args=dict(self._task.args), task_vars=task_vars))
            return result
        _v, params = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        result.update(self.work(params))
        return result
