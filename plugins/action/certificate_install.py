# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portail.https.certificate_install: a key and its certificates switched in at once."""

from __future__ import annotations

import secrets as _random
import typing as t

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import HostError
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import ShellHost

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "key_path": {"type": "str", "required": True},
    "cert_path": {"type": "str", "required": True},
    "chain_path": {"type": "str"},
    "fullchain_path": {"type": "str"},
    "key_content": {"type": "str", "required": True, "no_log": True},
    "cert_content": {"type": "str", "required": True},
    "chain_content": {"type": "str", "default": ""},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "mode": {"type": "str", "default": "0644"},
    "key_mode": {"type": "str", "default": "0600"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: t.Any = None, task_vars: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
        from ansible_collections.portail.https.plugins.plugin_utils._certificate_request import RequestError, _mode
        from ansible_collections.portail.https.plugins.plugin_utils._hoststeps._facts import describe_pem

        result = super().run(tmp, task_vars or {})
        _v, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            mode = _mode(args["mode"], "mode", args["cert_path"])
            key_mode = _mode(args["key_mode"], "key_mode", args["cert_path"], private=True)
            new = describe_pem(args["cert_content"].encode("ascii"), None)
        except (RequestError, ValueError, UnicodeError) as exc:
            result.update(failed=True, changed=False, msg=f"certificate_install: {exc}")
            return result

        def execute(script: str, data: bytes) -> tuple[int, str, str]:
            res = self._low_level_execute_command(script, sudoable=True, in_data=data or None)
            text = [to_text(res.get(k, ""), errors="surrogate_or_strict") for k in ("stdout", "stderr")]
            return int(res.get("rc", 1)), text[0], text[1]

        def no_module(name: str, module_args: dict[str, t.Any]) -> dict[str, t.Any]:
            raise HostError("certificate_install runs no module")

        check = bool(self._task.check_mode)
        host = ShellHost(execute, no_module, check, _random.token_hex(16), 120)
        paths = {k: args[k] for k in ("key_path", "cert_path", "chain_path", "fullchain_path")}
        attrs = {"owner": args["owner"], "group": args["group"], "mode": mode, "key_mode": key_mode}
        try:
            state = host("inspect", dict(paths, **attrs, webroot=[], challenge_dir=[], prepare_if_due=False))
            current = state.get("cert") or {}
            same = (
                not state.get("missing_files")
                and current.get("serial") == new["serial"]
                and current.get("matches_key")
                and not state.get("problems")
            )
            if same:
                # the key is compared on the host (matches_key) with the certificate that has this serial
                result.update(changed=bool(state.get("changed")), serial=new["serial"], msg="already installed")
                return result
            if check:
                result.update(changed=True, serial=new["serial"], msg="would install")
                return result
            done = host(
                "deploy",
                dict(
                    paths,
                    **attrs,
                    key_pem=args["key_content"],
                    cert_pem=args["cert_content"],
                    chain_pem=args["chain_content"],
                    backup=True,
                    files=[],
                    created_dirs=[],
                ),
            )
        except HostError as exc:
            result.update(failed=True, changed=False, msg=f"certificate_install: {exc}")
            return result
        result.update(changed=bool(done.get("changed")), serial=new["serial"], msg="installed")
        if self._task.diff:
            result["diff"] = {
                "before": f"serial: {current.get('serial')}\n",
                "after": f"serial: {new['serial']}\n",
                "before_header": args["cert_path"],
                "after_header": args["cert_path"],
            }
        return result
