# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin portail.https.webserver_apply, the file work of the nginx and Apache roles in one step.

One probe (one SSH execution, no Python on the host) tells the package state, which certificates
exist, the server version and the state of every managed directory, module, link and file. The
templates are rendered here, on the controller, with the probe's facts; only what differs is sent,
in one switch script that tests the whole configuration before it keeps it (see
plugins/plugin_utils/_webhost.py). A missing package or directory is repaired by the usual modules,
which run only then. Role-internal: the roles call it; its arguments follow the roles' variables.
"""

from __future__ import annotations

import secrets
import typing as t

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template
from ansible_collections.portail.https.plugins.modules.webserver_apply import ARGUMENT_SPEC
from ansible_collections.portail.https.plugins.plugin_utils import _webhost as wh
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _shell as sh
from ansible_collections.portail.https.plugins.plugin_utils._webserver import (
    WebserverError,
    cert_paths,
    host_facts,
    os_family,
    site_files,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: t.Any = None, task_vars: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
        task_vars = task_vars or {}
        self._vars = task_vars
        result = super().run(tmp, task_vars)
        _v, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        server = args["server"]
        present = list(args["plan"].get("present") or [])
        layouts = args["layouts"] or {}
        # No OS family given (facts not gathered): the probe also reads /etc/os-release and runs with the first
        # layout's paths (the fallback); a host of another family costs one more probe, with its own layout.
        detect = bool(layouts) and not args["os_family"]
        try:
            family = wh.pick_family(layouts, args["os_family"] or next(iter(layouts), ""))
            args, layout, templates = _layout({**args, **layouts.get(family, {})}, present)
        except (ValueError, KeyError, TypeError) as exc:
            result.update(failed=True, changed=False, msg=f"webserver_apply: {exc}. Nothing was changed.")
            return result
        check = bool(self._task.check_mode)
        want_diff = bool(self._task.diff)
        run_id = secrets.token_hex(12)
        changed = False
        done: list[str] = []

        try:
            probe = self._probe(layout, run_id, want_diff, os_release=detect)
            if detect:
                found = wh.pick_family(layouts, os_family(probe.os_release))
                if found != family:
                    family = found
                    args, layout, templates = _layout({**args, **layouts[family]}, present)
                    probe = self._probe(layout, run_id, want_diff)
            if layouts:
                result["os_family"] = family
            if probe.packages_missing and args["install_packages"]:
                res = self._package(probe.packages_missing)
                changed = changed or bool(res.get("changed"))
                done.append("installed " + ", ".join(probe.packages_missing))
                result["packages_installed"] = list(probe.packages_missing)
                if not check:
                    probe = self._probe(layout, run_id, want_diff)
            for i in probe.dirs_wrong:
                path, owner = layout.dirs[i]
                fargs: dict[str, t.Any] = {"path": path, "state": "directory", "mode": "0755"}
                if owner:
                    fargs.update(owner="root", group="root")
                res = self._module("ansible.legacy.file", fargs)
                changed = changed or bool(res.get("changed"))
                done.append("directory " + path)
            facts = host_facts(probe.cert_exists, probe.version, present)
            rendered = [self._render(spec, facts, args["facts_var"], task_vars) for spec in templates]
        except (_Failed, WebserverError, AnsibleError, ValueError, KeyError, TypeError) as exc:
            result.update(failed=True, changed=changed, msg=f"webserver_apply: {exc}")
            return result

        change = wh.Change(
            files=[(i, c) for i, c in enumerate(rendered) if wh.file_differs(probe.files[i], c)],
            links=[i for i, ok in enumerate(probe.links_ok) if not ok],
            absent=[i for i, there in enumerate(probe.present) if there],
            modules=list(probe.modules_missing),
        )
        result["facts"] = facts
        result["files_changed"] = [layout.files[i] for i, _c in change.files]
        result["links_changed"] = [layout.links[i][0] for i in change.links]
        result["removed"] = [layout.absent[i] for i in change.absent]
        result["modules_enabled"] = change.modules
        if want_diff:
            result["diff"] = [
                {
                    "before_header": layout.files[i],
                    "after_header": layout.files[i],
                    "before": to_text(probe.contents.get(i, b""), errors="surrogate_or_strict"),
                    "after": to_text(content, errors="surrogate_or_strict"),
                }
                for i, content in change.files
            ] + [
                {"before_header": p, "after_header": p, "before": "present\n", "after": "absent\n"}
                for p in result["removed"]
            ]
        wanted_service = args["service"] and not wh.service_ok(
            probe.service, args["service_state"], args["service_enabled"]
        )
        result["validated"] = False
        # stopped before, started now (after the files): it reads the new configuration, no reload needed
        stopped = probe.service is not None and not probe.service[0] and args["service_state"] == "started"
        result["service_started"] = bool(wanted_service and not check and stopped)
        if not change or check:
            if wanted_service and not self._service(args, result, done):
                result["changed"] = changed
                return result
            changed = changed or bool(result.get("service_changed")) or bool(change)
            default = "would write the configuration" if change else "configuration up to date"
            result.update(changed=changed, msg="; ".join(done + ([default] if change else [])) or default)
            return result
        script = wh.switch_script(layout, change, run_id)
        rc, stdout, stderr = self._execute(script)
        lines = sh.parse(stdout, run_id)
        err = sh.first(lines, "err")
        if err is not None or rc != 0 or sh.first(lines, "done") is None:
            if err is None:
                tail = [x for x in stderr.strip().split("\n") if x.strip()]
                msg = f"the host script stopped (exit code {rc}){': ' + tail[-1] if tail else ''}"
            else:
                msg = wh.explain(err, layout, server, change)
            test = sh.first(lines, "test")
            if test:
                msg += ": " + sh.unb64(test[0]).decode("utf-8", "replace").strip()
            result.update(failed=True, changed=changed, msg=msg, stderr=msg)
            return result
        result.update(changed=True, validated=True)
        if wanted_service and not self._service(args, result, done):
            return result
        result.update(changed=True, msg="; ".join([*done, "configuration written and tested"]))
        return result

    # -- plumbing ---------------------------------------------------------------------------------------

    def _execute(self, script: str) -> tuple[int, str, str]:
        res = self._low_level_execute_command(script, sudoable=True)
        text = [to_text(res.get(k, ""), errors="surrogate_or_strict") for k in ("stdout", "stderr")]
        return int(res.get("rc", 1)), text[0], text[1]

    def _probe(self, layout: wh.Layout, run_id: str, diff: bool, os_release: bool = False) -> wh.Probe:
        rc, stdout, stderr = self._execute(wh.probe_script(layout, run_id, diff=diff, os_release=os_release))
        lines = sh.parse(stdout, run_id)
        err = sh.first(lines, "err")
        if err is not None:
            raise _Failed(wh.explain(err, layout, "the web server"))
        if rc != 0 or sh.first(lines, "done") is None:
            tail = [x for x in (stderr or stdout).strip().split("\n") if x.strip()]
            raise _Failed(f"the host probe stopped (exit code {rc}){': ' + tail[-1][:300] if tail else ''}")
        return wh.read_probe(lines, layout)

    def _module(self, name: str, module_args: dict[str, t.Any]) -> dict[str, t.Any]:
        res = self._execute_module(module_name=name, module_args=module_args, task_vars=self._vars)
        if res.get("failed") or res.get("unreachable"):
            raise _Failed(f"{name}: {res.get('msg') or res.get('module_stderr') or 'failed'}")
        return res

    def _package(self, names: list[str]) -> dict[str, t.Any]:
        """ansible.builtin.package (an action: it picks apt, dnf... from the pkg_mgr fact or asks the host)."""
        try:
            return self._action("ansible.legacy.package", {"name": names, "state": "present"})
        except _Failed as exc:
            raise _Failed(f"installing {', '.join(names)}: {exc}") from None

    def _action(self, name: str, module_args: dict[str, t.Any]) -> dict[str, t.Any]:
        """Another action (package, service: they find the host's package or service manager themselves)."""
        task = self._task.copy()
        task.args = module_args
        action = self._shared_loader_obj.action_loader.get(
            name,
            task=task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        res = t.cast(dict[str, t.Any], action.run(task_vars=self._vars))
        if res.get("failed") or res.get("unreachable"):
            raise _Failed(str(res.get("msg") or "failed"))
        return res

    def _service(self, args: dict[str, t.Any], result: dict[str, t.Any], done: list[str]) -> bool:
        """The service as wanted, through ansible.builtin.service (only when the probe did not see it so),
        with the configuration already in place so that a start reads the new files. False on failure
        (the result says why)."""
        sargs: dict[str, t.Any] = {"name": args["service"], "state": args["service_state"]}
        if args["service_enabled"] is not None:
            sargs["enabled"] = args["service_enabled"]
        try:
            res = self._action("ansible.legacy.service", sargs)
        except (_Failed, AnsibleError) as exc:
            result.update(failed=True, msg=f"webserver_apply: service {args['service']}: {exc}")
            return False
        done.append(f"service {args['service']} {args['service_state']}")
        result["service_changed"] = bool(res.get("changed"))
        return True

    def _render(
        self, spec: dict[str, t.Any], facts: dict[str, t.Any], facts_var: str, task_vars: dict[str, t.Any]
    ) -> bytes:
        src = str(spec["src"])
        source = self._find_needle("templates", src)
        data = trust_as_template(self._loader.get_text_file_contents(source))
        variables = dict(task_vars)
        variables[facts_var] = facts
        if "item" in spec:
            variables["item"] = spec["item"]
        if "ansible_managed" not in variables:
            variables["ansible_managed"] = _managed(src, source, str(spec["dest"]))
        templar = self._templar.copy_with_new_env(available_variables=variables)
        text = templar.template(data, escape_backslashes=False)
        return to_bytes("" if text is None else text, errors="surrogate_or_strict")


def _layout(
    args: dict[str, t.Any], present: list[dict[str, t.Any]]
) -> tuple[dict[str, t.Any], wh.Layout, list[dict[str, t.Any]]]:
    """The effective arguments, what the probe and the switch manage, and the templates to render."""
    if not args["sites_dir"]:
        raise ValueError("sites_dir is missing (an option or in the layout)")
    files = site_files(args["plan"], args["sites_dir"], args["sites_enabled_dir"], args["site_prefix"])
    templates = [{"src": args["site_template"], "dest": dest, "item": site} for dest, site in files["sites"]]
    templates += [{"src": str(x["src"]), "dest": str(x["dest"])} for x in args["templates"]]
    layout = wh.Layout(
        packages=[str(p) for p in args["packages"]],
        cert_paths=cert_paths(present),
        version_command=str(args["version_command"]),
        dirs=[(str(d), "0") for d in args["root_dirs"]]
        + [(str(site["root"]), "") for site in present if "root" in site],
        files=[str(f["dest"]) for f in templates],
        links=files["links"],
        absent=files["absent"] + [str(p) for p in args["absent"]],
        modules=[str(m) for m in args["modules"]],
        mods_dir=str(args["mods_dir"]),
        enable_command=str(args["enable_command"]),
        validate_command=[str(a) for a in args["validate_command"]],
        service=str(args["service"]),
    ).check()
    return args, layout, templates


def _managed(src: str, source: str, dest: str) -> str:
    """The ansible_managed text the template module would give (the same files on the first run after an upgrade)."""
    try:
        from ansible._internal._templating import _template_vars

        generated = _template_vars.generate_ansible_template_vars(
            path=src, fullpath=source, dest_path=dest, include_ansible_managed=True
        )
        return str(generated.get("ansible_managed", "Ansible managed"))
    except (ImportError, AttributeError, TypeError):
        return "Ansible managed"


class _Failed(Exception):
    """A step failed; the message says what and where."""
