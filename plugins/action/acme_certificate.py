# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portail.https.acme_certificate: ACME on the controller, keys and files on the host."""

from __future__ import annotations

import os
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.portail.https.plugins.plugin_utils import _deploy_shell, _http01_shell, _inspect_shell
from ansible_collections.portail.https.plugins.plugin_utils._certificate_request import (
    RequestError,
    argument_spec,
    build_specs,
    secrets,
)
from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import (
    CertificateRun,
    HostError,
    Options,
)

HOST_MODULE = "portail.https.acme_certificate_host"
display = Display()


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
    _VALID_ARGS = frozenset(argument_spec())

    def run(self, tmp: t.Any = None, task_vars: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(
            argument_spec=argument_spec(),
            mutually_exclusive=[("names", "certificates"), ("account_key_src", "account_key_content")],
            required_one_of=[("names", "certificates"), ("account_key_src", "account_key_content")],
        )
        masked = secrets(args)
        try:
            out = self._run(args, task_vars)
        except RequestError as exc:
            out = {"failed": True, "changed": False, "msg": str(exc), "acme_requests": 0}
        except AnsibleActionFail as exc:
            out = {"failed": True, "changed": False, "msg": to_text(exc.message), "acme_requests": 0}
        result.update(_scrub(out, masked))
        return result

    def _account_key(self, args: dict[str, t.Any]) -> str:
        if args.get("account_key_content"):
            return t.cast(str, args["account_key_content"])
        path = os.path.expanduser(args["account_key_src"])
        if not os.path.isabs(path):
            # relative paths resolve the way Ansible resolves files: the role's files/, then the playbook's
            try:
                path = self._find_needle("files", path)
            except AnsibleError:
                raise AnsibleActionFail(
                    f"account_key_src {path} was not found on the controller (searched the role's and the "
                    "playbook's files/ directories and the playbook directory)"
                ) from None
        try:
            with open(path, encoding="ascii") as f:
                return f.read()
        except (OSError, UnicodeError) as exc:
            raise AnsibleActionFail(f"cannot read account_key_src {path} on the controller: {exc}") from None

    def _host_call(self, task_vars: dict[str, t.Any]) -> t.Callable[[str, dict[str, t.Any]], dict[str, t.Any]]:
        shell_inspect = [True]

        def call(step: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
            if step == "http01_place":
                return self._http01_place(args, call)
            if step == "deploy" and _deploy_shell.eligible(args):
                return self._deploy(args)
            if step in ("inspect", "prepare") and shell_inspect[0] and _inspect_shell.eligible(args):
                res = self._inspect(step, args, module)
                if res is not None:
                    return res
                shell_inspect[0] = False  # no openssl or no stat -c on this host: the module from now on
            return module(step, args)

        def module(step: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
            module_args = {k: v for k, v in args.items() if v is not None}
            module_args["step"] = step
            res = self._execute_module(module_name=HOST_MODULE, module_args=module_args, task_vars=task_vars)
            if res.get("failed") or res.get("unreachable"):
                detail = res.get("msg") or f"{HOST_MODULE} step {step} failed"
                exception = res.get("exception")
                event = getattr(exception, "event", None)
                stderr = str(res.get("module_stderr") or getattr(event, "msg", None) or exception or "").strip()
                if stderr:
                    detail += ": " + stderr.splitlines()[-1]
                raise HostError(detail)
            return t.cast(dict[str, t.Any], res)

        return call

    def _inspect(
        self, step: str, args: dict[str, t.Any], module: t.Callable[[str, dict[str, t.Any]], dict[str, t.Any]]
    ) -> t.Optional[dict[str, t.Any]]:
        """inspect (and prepare when a file is missing) or prepare by one shell command; None: use the module."""
        if step == "prepare":
            prepare = _inspect_shell.ALWAYS
        else:
            prepare = _inspect_shell.IF_MISSING if args.get("prepare_if_due") else _inspect_shell.NEVER
        try:
            script = _inspect_shell.build_script(args, prepare=prepare, check_mode=bool(self._task.check_mode))
        except _inspect_shell.ShellInputError:
            return None
        res = self._low_level_execute_command(script, sudoable=True)
        raw = _inspect_shell.parse_output(to_text(res.get("stdout", ""), errors="surrogate_or_strict"))
        if raw["unsupported"] and not raw["stat"]:
            display.vvv(f"acme_certificate: {raw['unsupported']} missing on the host, using the module")
            return None
        if res.get("rc") != 0 or raw["error"]:
            stderr = to_text(res.get("stderr", ""), errors="surrogate_or_strict").strip()
            detail = raw["error"] or (stderr.splitlines()[-1] if stderr else f"exit code {res.get('rc')}")
            raise HostError(f"{step}: {detail}")
        state = _inspect_shell.state_from(raw, args)
        prepared = state.get("prepared")
        partial = state.pop("partial_prepare", None)
        wrong_type = prepared and _inspect_shell.csr_key_type(prepared["csr"]) != args.get("key_type", "ec256")
        if partial or wrong_type or (step == "prepare" and not prepared):
            # a pending key of another type left by an earlier run, or an openssl without -addext:
            # the module finishes (it replaces a pending key of the wrong type)
            done = partial or prepared or {}
            fields = ("key_path", "cert_path", "chain_path", "fullchain_path", "key_type", "names", "owner")
            fixed = module("prepare", {k: args.get(k) for k in fields})
            prepared = {
                "csr": fixed["csr"],
                "pending_created": bool(fixed.get("pending_created") or done.get("pending_created")),
                "created_dirs": list(done.get("created_dirs") or []) + list(fixed.get("created_dirs") or []),
            }
            state["prepared"] = prepared
            state["changed"] = True
        if step == "prepare":
            return dict(prepared or {}, changed=True)
        return state

    def _http01_place(
        self, args: dict[str, t.Any], call: t.Callable[[str, dict[str, t.Any]], dict[str, t.Any]]
    ) -> dict[str, t.Any]:
        """Token files by one shell command (no module run); on failure, removes what it had written."""
        try:
            script = _http01_shell.build_script(
                args.get("webroot") or [], args.get("challenge_dir") or [], args["tokens"]
            )
        except _http01_shell.PlacementError as exc:
            raise HostError(str(exc)) from None
        res = self._low_level_execute_command(script, sudoable=True)
        out = _http01_shell.parse_output(to_text(res.get("stdout", ""), errors="surrogate_or_strict"))
        if res.get("rc") != 0 or out["error"]:
            if out["files"] or out["created_dirs"]:
                try:
                    call("http01_cleanup", {"files": out["files"], "created_dirs": out["created_dirs"]})
                except HostError as exc:
                    display.warning(f"removing partly placed http-01 token files: {exc}")
            stderr = to_text(res.get("stderr", ""), errors="surrogate_or_strict").strip()
            detail = out["error"] or (stderr.splitlines()[-1] if stderr else f"exit code {res.get('rc')}")
            raise HostError(f"placing http-01 token files: {detail}")
        return {"changed": True, "files": out["files"], "created_dirs": out["created_dirs"]}

    def _deploy(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        """Certificate files written and the pending key switched in by one shell command (no module run)."""
        from ansible_collections.portail.https.plugins.module_utils._certhost import describe_cert
        from cryptography import x509

        try:
            script = _deploy_shell.build_script(args)
            leaf = x509.load_pem_x509_certificate(_deploy_shell.contents(args["cert_pem"], "")[0].encode("ascii"))
        except ValueError as exc:
            raise HostError(f"deploy: {exc}") from None
        res = self._low_level_execute_command(script, sudoable=True)
        out = _deploy_shell.parse_output(to_text(res.get("stdout", ""), errors="surrogate_or_strict"))
        if res.get("rc") != 0 or out["error"]:
            stderr = to_text(res.get("stderr", ""), errors="surrogate_or_strict").strip()
            detail = out["error"] or (stderr.splitlines()[-1] if stderr else f"exit code {res.get('rc')}")
            raise HostError(f"deploy: {detail}")
        result: dict[str, t.Any] = {
            "changed": True,
            "written": out["written"],
            "backups": out["backups"],
            "cert": describe_cert(leaf),
        }
        if out["problem"]:
            result["http01_problem"] = out["problem"]
        return result

    def _run(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        specs = build_specs(args)
        if args.get("eab_kid") and not args.get("eab_hmac_key"):
            raise RequestError("eab_kid needs eab_hmac_key")
        directory = args["acme_directory"]
        if not directory.startswith(("https://", "http://")):
            raise RequestError(f"acme_directory must be an http(s) URL, got {directory!r}")
        from ansible_collections.portail.https.plugins.module_utils._acme.client import AcmeClient
        from ansible_collections.portail.https.plugins.module_utils._acme.errors import AcmeError
        from ansible_collections.portail.https.plugins.module_utils._acme.keys import AccountKey

        passphrase = args.get("account_key_passphrase")
        try:
            account_key = AccountKey.from_pem(
                self._account_key(args), passphrase.encode("utf-8") if passphrase else None
            )
        except (AcmeError, ValueError, TypeError) as exc:
            raise RequestError(f"the account key cannot be loaded: {exc}") from None

        def make_client() -> AcmeClient:
            return AcmeClient(
                directory,
                account_key,
                ca_bundle=args.get("acme_ca_bundle"),
                validate_certs=args["validate_certs"],
                timeout=20.0,
            )

        dns_factory = None
        if any(s.challenge == "dns-01" for s in specs):
            from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider

            def dns_factory(options: dict[str, t.Any]) -> t.Any:
                opts = {k: v for k, v in options.items() if v is not None}
                return make_provider(opts.pop("provider", "rfc2136"), opts)

        check_mode = bool(self._task.check_mode)
        eab = (args["eab_kid"], args["eab_hmac_key"], args["eab_alg"]) if args.get("eab_kid") else None
        run = CertificateRun(
            self._host_call(task_vars),
            make_client,
            Options(
                directory_url=directory,
                use_ari=args["use_ari"],
                timeout=args["timeout"],
                check_mode=check_mode,
                contact=list(args["contact"] or []),
                terms_agreed=args["terms_agreed"],
                eab=eab,
                preflight=args["preflight"],
                preflight_resolvers=list(args["preflight_resolvers"] or []),
                caa_check=args["caa_check"],
            ),
            dns_factory=dns_factory,
        )
        resume = {str(e.get("name")): e for e in args.get("resume") or [] if isinstance(e, dict)}
        if args["abort"] and not resume:
            raise RequestError("abort needs resume (the entries returned by the first phase)")
        if resume:
            # phase 2 of dns-01 with provider external: only the certificates the first phase handed out
            specs = [s for s in specs if s.label in resume]

        def one(spec: t.Any) -> t.Any:
            entry = resume.get(spec.label)
            return run.resume(spec, entry, args["abort"]) if entry else run.process(spec)

        workers = max(1, min(args["concurrency"], len(specs)))
        if workers <= 1:
            outcomes = [one(s) for s in specs]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="portail-acme") as pool:
                outcomes = list(pool.map(one, specs))
        client = run.client_if_made()
        results = [o.result() for o in outcomes]
        out: dict[str, t.Any] = {
            "changed": any(o.changed for o in outcomes),
            "certificates": results,
            "acme_requests": client.requests if client else 0,
            "acme_retries": client.bad_nonce_retried if client else 0,
        }
        pending = [o.resume for o in outcomes if o.resume]
        if pending:
            out["resume"] = pending
            out["dns_records"] = [dict(r, certificate=o.spec.label) for o in outcomes for r in o.dns_records]
        warnings = [w for o in outcomes for w in o.warnings]
        if warnings:
            out["warnings"] = warnings
        if not args.get("certificates"):
            skip = ("changed", "failed", "msg", "resume", "dns_records")
            out.update({k: v for k, v in results[0].items() if k not in skip})
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
