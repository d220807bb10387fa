# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the certificate role, the renew playbook and the report (thin wrappers).

The logic lives in plugins/plugin_utils/_renew_state.py. Documentation: one YAML file per filter
next to this file.
"""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display
from ansible_collections.portail.https.plugins.plugin_utils import _renew_state as rs
from ansible_collections.portail.https.plugins.plugin_utils import _systemd


def _wrap(func: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    def run(*args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return func(*args, **kwargs)
        except (rs.RenewStateError, _systemd.SystemdQuoteError) as exc:
            raise AnsibleFilterError(str(exc)) from None

    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


def site_certificates(sites: t.Any) -> list[dict[str, t.Any]]:
    return rs.site_certificates(sites)


def certificate_plan(
    certificate_list: t.Any, host: str, groups: t.Mapping[str, t.Any], defaults: t.Mapping[str, t.Any]
) -> dict[str, t.Any]:
    planned = rs.plan(certificate_list, host=host, groups=groups, defaults=defaults)
    # said here rather than by a task of its own: a task costs every host of every run a worker
    for warning in planned["warnings"]:
        Display().warning(f"{host}: {warning}")
    return planned


def certificate_facts(
    plan_own: t.Sequence[t.Mapping[str, t.Any]],
    result: t.Any,
    previous: t.Any = None,
    failed_msg: str = "",
    fraction: float = 0.333,
    served: t.Optional[t.Mapping[str, str]] = None,
    now: t.Any = None,
) -> dict[str, t.Any]:
    return rs.facts(
        plan_own, result, previous=previous, failed_msg=failed_msg, fraction=float(fraction), now=now, served=served
    )


def certificate_merge_pool(
    own: t.Mapping[str, t.Any], copied: t.Sequence[t.Any], hostvars: t.Any, fraction: float = 0.333, now: t.Any = None
) -> dict[str, t.Any]:
    return rs.merged_facts(own, copied, hostvars, fraction=float(fraction), now=now)


def certificate_record_command(
    entries: t.Mapping[str, t.Any],
    fact_file: str,
    metrics_dir: str = "",
    keep_when_unchanged: bool = True,
    fraction: float = 0.333,
    now: t.Any = None,
    recorded: t.Any = None,
) -> str:
    return rs.record_command(
        entries,
        fact_file=fact_file,
        metrics_dir=metrics_dir,
        keep_when_unchanged=bool(keep_when_unchanged),
        fraction=float(fraction),
        now=now,
        recorded=recorded,
    )


def certificate_metrics(entries: t.Mapping[str, t.Any], fraction: float = 0.333, now: t.Any = None) -> str:
    return rs.metrics(entries, now=now, fraction=float(fraction))


def renew_summary(hostvars: t.Any, hosts: t.Sequence[str]) -> dict[str, t.Any]:
    return rs.summary(hostvars, list(hosts))


def report_rows(
    hostvars: t.Any, hosts: t.Sequence[str], fraction: float = 0.333, check_served: bool = False, now: t.Any = None
) -> list[dict[str, t.Any]]:
    return rs.report_rows(hostvars, list(hosts), now=now, fraction=float(fraction), check_served=bool(check_served))


def systemd_quote(value: t.Any, command: bool = True) -> str:
    return _systemd.quote(value, command=bool(command))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        funcs = (
            site_certificates,
            certificate_plan,
            certificate_facts,
            certificate_merge_pool,
            certificate_record_command,
            certificate_metrics,
            renew_summary,
            report_rows,
            systemd_quote,
        )
        return {f.__name__: _wrap(f) for f in funcs}
