# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portail.https.port_probe: run in-process when delegated to localhost (see
plugins/plugin_utils/_inprocess.py), as the module everywhere else."""

from __future__ import annotations

import typing as t

from ansible_collections.portail.https.plugins.modules.port_probe import ARGUMENT_SPEC, run
from ansible_collections.portail.https.plugins.plugin_utils._inprocess import InProcessAction


class ActionModule(InProcessAction):
    MODULE = "portail.https.port_probe"
    ARGUMENT_SPEC = ARGUMENT_SPEC

    @staticmethod
    def work(params: dict[str, t.Any]) -> dict[str, t.Any]:
        return run(params)
