# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portail.https.acme_certificate: ACME on the controller, keys and files on the host."""

from __future__ import annotations

import os
import secrets as _random
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.portail.https.plugins.plugin_utils._certificate_request import (
    RequestError,
    argument_spec,
    build_specs,
    secrets,
)
from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import CertificateRun, Options
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import ShellHost

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

    def _host_call(
        self,
        task_vars: dict[str, t.Any],
        lease: int,
        run_id: t.Optional[str] = None,
        record: t.Optional[dict[str, t.Any]] = None,
    ) -> ShellHost:
        """The host steps: shell scripts run as root by one command each (tls-alpn-01: the host module)."""

        def execute(script: str, data: bytes) -> tuple[int, str, str]:
            res = self._low_level_execute_command(script, sudoable=True, in_data=data or None)
            text = [to_text(res.get(k, ""), errors="surrogate_or_strict") for k in ("stdout", "stderr")]
            return int(res.get("rc", 1)), text[0], text[1]

        def run_module(name: str, module_args: dict[str, t.Any]) -> dict[str, t.Any]:
            return self._execute_module(module_name=name, module_args=module_args, task_vars=task_vars)

        run_id = run_id or _random.token_hex(16)
        return ShellHost(execute, run_module, bool(self._task.check_mode), run_id, lease, record)

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
                proxy=args.get("acme_proxy"),
                use_proxy=args["use_proxy"],
            )

        dns_factory = None
        if any(s.challenge == "dns-01" for s in specs):
            from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider

            def dns_factory(options: dict[str, t.Any]) -> t.Any:
                opts = {k: v for k, v in options.items() if v is not None}
                return make_provider(opts.pop("provider", "rfc2136"), opts)

        resume = {str(e.get("name")): e for e in args.get("resume") or [] if isinstance(e, dict)}
        if args["abort"] and not resume:
            raise RequestError("abort needs resume (the entries returned by the first phase)")
        if resume:
            # phase 2 of dns-01 with provider external: only the certificates the first phase handed out
            specs = [s for s in specs if s.label in resume]

        run_ids = {str(e.get("run_id") or "") for e in resume.values()}
        if len(run_ids) > 1:
            raise RequestError("resume: entries from several first-phase runs; resume each run separately")
        try:
            # the lease covers one certificate's order (bounded by timeout) with room for the host round trips;
            # with dns-01 provider external the playbook also writes the records between the two phases
            lease = int(args["timeout"]) + 60
            if any(s.challenge == "dns-01" and s.dns.get("provider") == "external" for s in specs):
                lease += 1800
            run_id = run_ids.pop() or None if run_ids else None
        except ValueError as exc:
            raise RequestError(f"resume: {exc}") from None
        try:
            # the bookkeeping of a no-op run rides on the first inspect (not in the second dns-01 phase)
            host = self._host_call(task_vars, lease, run_id, None if resume else args.get("record"))
        except ValueError as exc:
            raise RequestError(f"{'resume' if run_id else 'record'}: {exc}") from None
        check_mode = bool(self._task.check_mode)
        eab = (args["eab_kid"], args["eab_hmac_key"], args["eab_alg"]) if args.get("eab_kid") else None
        run = CertificateRun(
            host,
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

        def one(spec: t.Any) -> t.Any:
            entry = resume.get(spec.label)
            return run.resume(spec, entry, args["abort"]) if entry else run.process(spec)

        if not resume:
            run.prefetch(specs)  # every certificate's inspect in one round trip
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
        pending = [dict(o.resume, run_id=host.run_id) for o in outcomes if o.resume]
        if pending:
            out["resume"] = pending
            out["dns_records"] = [dict(r, certificate=o.spec.label) for o in outcomes for r in o.dns_records]
        if host.recorded is not None:
            changed = {o.spec.label for o in outcomes if o.changed}
            # a certificate deployed by this run is served after the reload, not yet
            served = {k: v for k, v in host.recorded["served"].items() if k not in changed}
            out["record"] = dict(host.recorded, served=served)
        warnings = [w for o in outcomes for w in o.warnings]
        if warnings:
            out["warnings"] = warnings
        if not args.get("certificates"):
            skip = ("changed", "failed", "msg", "resume") + (("dns_records",) if pending else ())
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
