# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portail.https.acme_certificate: ACME on the controller, keys and files on the host."""

from __future__ import annotations

import os
import secrets
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.portail.https.plugins.plugin_utils._certificate_request import (
    RequestError,
    build_specs,
)
from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import CertificateRun, Options
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import ShellHost

display = Display()

_DNS_SPEC: dict[str, t.Any] = {
    "provider": {"type": "str", "default": "rfc2136", "choices": ["rfc2136"]},
    "server": {"type": "str"},
    "port": {"type": "int"},
    "key_name": {"type": "str"},
    "key_secret": {"type": "str", "no_log": True},
    "key_algorithm": {"type": "str"},
    "timeout": {"type": "float"},
    "ttl": {"type": "int"},
    "resolvers": {"type": "list", "elements": "str"},
    "nameserver_port": {"type": "int"},
    "propagation_timeout": {"type": "float"},
}

ARGUMENT_SPEC: dict[str, t.Any] = {
    "names": {"type": "list", "elements": "str"},
    "certificates": {"type": "list", "elements": "dict"},
    "key_type": {"type": "str", "default": "ec256", "choices": ["ec256", "ec384", "rsa2048", "rsa3072", "rsa4096"]},
    "key_path": {"type": "str"},
    "cert_path": {"type": "str"},
    "chain_path": {"type": "str"},
    "fullchain_path": {"type": "str"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "mode": {"type": "raw", "default": "0644"},
    "key_mode": {"type": "raw", "default": "0600"},
    "backup": {"type": "bool", "default": True},
    "acme_directory": {"type": "str", "required": True},
    "acme_ca_bundle": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "account_key_src": {"type": "path"},
    "account_key_content": {"type": "str", "no_log": True},
    "contact": {"type": "list", "elements": "str", "default": []},
    "terms_agreed": {"type": "bool", "default": False},
    "eab_kid": {"type": "str"},
    "eab_hmac_key": {"type": "str", "no_log": True},
    "eab_alg": {"type": "str", "default": "HS256", "choices": ["HS256", "HS384", "HS512"]},
    "profile": {"type": "str"},
    "preferred_chain": {"type": "str"},
    "challenge": {"type": "str", "default": "http-01", "choices": ["http-01", "dns-01", "tls-alpn-01"]},
    "webroot": {"type": "list", "elements": "str", "default": []},
    "challenge_dir": {"type": "str"},
    "dns": {"type": "dict", "options": _DNS_SPEC},
    "alpn_address": {"type": "str", "default": "0.0.0.0"},  # noqa: S104
    "alpn_port": {"type": "int", "default": 443},
    "renew_remaining_fraction": {"type": "float", "default": 1.0 / 3.0},
    "use_ari": {"type": "bool", "default": True},
    "force": {"type": "bool", "default": False},
    "timeout": {"type": "float", "default": 300},
    "concurrency": {"type": "int", "default": 4},
}


def _scrub(value: t.Any, secrets: list[str]) -> t.Any:
    """Replace any secret that slipped into a message (e.g. echoed by a server) by a mask."""
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, "********")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: t.Any = None, task_vars: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(
            argument_spec=ARGUMENT_SPEC,
            mutually_exclusive=[("names", "certificates"), ("account_key_src", "account_key_content")],
            required_one_of=[("names", "certificates"), ("account_key_src", "account_key_content")],
        )
        secrets = self._secrets(args)
        try:
            out = self._run(args, task_vars, secrets)
        except RequestError as exc:
            out = {"failed": True, "changed": False, "msg": str(exc)}
        except AnsibleActionFail as exc:
            out = {"failed": True, "changed": False, "msg": to_text(exc.message)}
        result.update(_scrub(out, secrets))
        return result

    @staticmethod
    def _secrets(args: dict[str, t.Any]) -> list[str]:
        found = [args.get("account_key_content") or "", args.get("eab_hmac_key") or ""]
        found.append((args.get("dns") or {}).get("key_secret") or "")
        for item in args.get("certificates") or []:
            if isinstance(item, dict) and isinstance(item.get("dns"), dict):
                found.append(item["dns"].get("key_secret") or "")
        return [s for s in found if len(s) >= 8]

    def _account_key(self, args: dict[str, t.Any]) -> str:
        if args.get("account_key_content"):
            return t.cast(str, args["account_key_content"])
        path = os.path.expanduser(args["account_key_src"])
        try:
            with open(path, encoding="ascii") as f:
                return f.read()
        except (OSError, UnicodeError) as exc:
            raise AnsibleActionFail(f"cannot read account_key_src {path} on the controller: {exc}") from None

    def _host_call(self, task_vars: dict[str, t.Any]) -> ShellHost:
        """The host steps: shell scripts run as root by one command each (tls-alpn-01: the host module)."""

        def execute(script: str, data: bytes) -> tuple[int, str, str]:
            res = self._low_level_execute_command(script, sudoable=True, in_data=data or None)
            text = [to_text(res.get(k, ""), errors="surrogate_or_strict") for k in ("stdout", "stderr")]
            return int(res.get("rc", 1)), text[0], text[1]

        def run_module(name: str, module_args: dict[str, t.Any]) -> dict[str, t.Any]:
            return self._execute_module(module_name=name, module_args=module_args, task_vars=task_vars)

        try:  # the lease covers one certificate's order (timeout) with room for the host round trips
            lease = int(float(self._task.args.get("timeout") or 300)) + 600
        except (TypeError, ValueError):
            lease = 1800
        return ShellHost(execute, run_module, bool(self._task.check_mode), secrets.token_hex(16), lease)

    def _run(self, args: dict[str, t.Any], task_vars: dict[str, t.Any], secrets: list[str]) -> dict[str, t.Any]:
        specs = build_specs(args)
        if args.get("eab_kid") and not args.get("eab_hmac_key"):
            raise RequestError("eab_kid needs eab_hmac_key")
        account_pem = self._account_key(args)
        if "PRIVATE KEY" not in account_pem:
            raise RequestError("the account key is not a PEM private key")
        directory = args["acme_directory"]
        if not directory.startswith(("https://", "http://")):
            raise RequestError(f"acme_directory must be an http(s) URL, got {directory!r}")

        from ansible_collections.portail.https.plugins.plugin_utils._acme_session import EngineSession

        def make_session() -> EngineSession:
            return EngineSession(
                directory_url=directory,
                account_key_pem=account_pem,
                contact=args["contact"],
                terms_agreed=args["terms_agreed"],
                eab_kid=args.get("eab_kid"),
                eab_hmac_key=args.get("eab_hmac_key"),
                eab_alg=args["eab_alg"],
                ca_bundle=args.get("acme_ca_bundle"),
                validate_certs=args["validate_certs"],
            )

        dns_factory = None
        if any(s.challenge == "dns-01" for s in specs):
            from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider

            def dns_factory(options: dict[str, t.Any]) -> t.Any:
                opts = {k: v for k, v in options.items() if v is not None}
                return make_provider(opts.pop("provider", "rfc2136"), opts)

        check_mode = bool(self._task.check_mode)
        run = CertificateRun(
            self._host_call(task_vars),
            make_session,
            Options(
                directory_url=directory,
                use_ari=args["use_ari"],
                timeout=args["timeout"],
                check_mode=check_mode,
            ),
            dns_factory=dns_factory,
        )
        workers = max(1, min(args["concurrency"], len(specs)))
        if workers == 1:
            outcomes = [run.process(s) for s in specs]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="portail-acme") as pool:
                outcomes = list(pool.map(run.process, specs))
        session = run.session_if_made()
        results = [o.result() for o in outcomes]
        out: dict[str, t.Any] = {
            "changed": any(o.changed for o in outcomes),
            "certificates": results,
            "acme_requests": session.request_count() if session else 0,
            "acme_retries": session.retry_count() if session else 0,
        }
        warnings = [w for o in outcomes for w in o.warnings]
        if warnings:
            out["warnings"] = warnings
        if not args.get("certificates"):
            single = dict(results[0])
            single.pop("changed", None)
            single.pop("failed", None)
            single.pop("msg", None)
            out.update(single)
        if self._task.diff:
            diffs = [o.diff() for o in outcomes if o.changed]
            if diffs:
                out["diff"] = diffs if len(diffs) > 1 else diffs[0]
        failures = [o.error for o in outcomes if o.error]
        if failures:
            out["failed"] = True
            out["msg"] = "; ".join(t.cast(list[str], failures))
        elif check_mode:
            out["msg"] = "; ".join(f"{o.spec.label}: {o.msg}" for o in outcomes)
        else:
            out["msg"] = "; ".join(f"{o.spec.label}: {o.reason} ({o.msg})" for o in outcomes)
        return out
