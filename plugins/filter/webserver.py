# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters portail.https.webserver_plan, webserver_tls and webserver_os_family, the shared core of the nginx
and Apache roles. The logic lives in plugin_utils/_webserver.py; documentation in the .yml files here.
"""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.portail.https.plugins.plugin_utils._webserver import (
    WebserverError,
    os_family,
    plan,
    tls_profile,
)


def _plain(value: t.Any) -> t.Any:
    """Templated values arrive as Ansible's own str/dict/list subclasses; the core wants plain ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def webserver_plan(sites: t.Any, role: str, settings: t.Any) -> dict[str, t.Any]:
    if not isinstance(settings, dict):
        raise AnsibleFilterError("webserver_plan: settings must be a dict")
    try:
        return plan(_plain(sites), str(role), _plain(settings))
    except WebserverError as exc:
        raise AnsibleFilterError(f"{exc}. Nothing was changed.") from None


def webserver_tls(text: t.Any) -> dict[str, t.Any]:
    return tls_profile(str(text) if text is not None else None)


def webserver_os_family(text: t.Any) -> str:
    return os_family(str(text) if text is not None else "")


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {
            "webserver_plan": webserver_plan,
            "webserver_tls": webserver_tls,
            "webserver_os_family": webserver_os_family,
        }
