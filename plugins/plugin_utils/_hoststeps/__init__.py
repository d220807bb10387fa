# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host steps of acme_certificate: one POSIX sh + openssl (>= 1.1.1) script per step, built and parsed here.

``ShellHost(execute, run_module, check_mode, run_id)(step, args) -> dict`` is what CertificateRun calls.
``execute(script, stdin_bytes)`` runs a script with /bin/sh as root on the host and returns
``(rc, stdout, stderr)``; ``run_module(name, args)`` runs a module (only for tls-alpn-01, which needs
Python's ssl). Every failure raises ``HostError`` with a message naming the path and what to do.

Steps and results (beyond ``changed``):

- ``inspect`` -> ``cert`` (names, not_before, not_after, serial, aki, issuer, key_type, matches_key),
  ``key`` ({key_type}), ``missing_files``, ``meta``, ``problems``, ``missing_webroots``, ``key_dir_exists``;
  with ``prepare_if_due`` and a file missing (or ``force``): ``prepared`` ({csr, pending_created,
  created_dirs}). New keys: ``locked`` ({expires_in: seconds}) when another live run holds the
  certificate's lease (nothing prepared; wait and inspect again), ``foreign`` (documented paths that are
  symlinks not made by us: never read, replaced at deploy), ``stale_lease_removed`` (a killed run's lease
  and pending key were removed), ``store_version`` (the N of ``current -> vN``, None before the first
  deploy into the store), ``fixed`` (paths whose mode/owner/group were repaired), ``attribute_problems``
  (files left unrepaired, e.g. with other hard links).
- ``prepare`` -> ``csr``, ``pending_created``, ``created_dirs`` (fails when another run holds the lease).
- ``deploy`` (``cert_pem``, ``chain_pem``, ``meta``, ``files``/``created_dirs`` of http-01 to remove; new:
  ``key_pem`` to install a given key, e.g. a pool leader's, instead of this run's pending key) ->
  ``written``, ``backups``, ``cert``, ``http01_problem``; new: ``store_version``, ``migrated`` (plain files
  became links into the store).
- ``discard`` -> ``removed``; ``http01_place`` -> ``files``, ``created_dirs``; ``http01_cleanup`` ->
  ``removed``; ``alpn_start`` -> ``responder``; ``alpn_stop``.

With ``record`` (acme_certificate's option of that name), the first ``inspect`` of the task also does
the bookkeeping of a no-op run (see ``_record``); ``ShellHost.recorded`` then holds what it found.
``prefetch(args_list)`` inspects several certificates in one round trip (CertificateRun.prefetch calls
it before processing them), so a host with many certificates costs one SSH execution when none is due.

The lock is a lease directory ``<store>/lock`` (atomic mkdir, root's) holding ``owner`` (run id and expiry)
and the pending key: an expired lease is removed with its key by the next run, even a no-op inspect.
See ``_certfiles`` for the store layout and ``_shell`` for the framing.
"""

from __future__ import annotations

import json
import threading
import typing as t

from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import HostError
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _certfiles, _facts, _http01, _record
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _shell as sh

HOST_MODULE = "portail.https.acme_certificate_host"
Execute = t.Callable[[str, bytes], tuple[int, str, str]]
RunModule = t.Callable[[str, dict[str, t.Any]], dict[str, t.Any]]

_TOKDIR = {
    "link": "is a symlink (or was swapped for one)",
    "missing": "does not exist",
    "notdir": "is not a directory",
    "owner": "is not owned by root",
    "mode": "can be written by group or others",
}


class ShellHost:
    """Dispatches CertificateRun's host steps to scripts; one instance per task run (``run_id``)."""

    def __init__(
        self,
        execute: Execute,
        run_module: RunModule,
        check_mode: bool,
        run_id: str,
        lease_seconds: int = 1800,
        record: t.Optional[t.Mapping[str, t.Any]] = None,
    ) -> None:
        if not sh.RUN_ID_RE.match(run_id):
            raise ValueError("run_id must be 8 to 64 characters of [A-Za-z0-9_-]")
        # validated here: bad input fails before any host is contacted
        self.record = _record.Record(record) if record else None
        self.recorded: t.Optional[dict[str, t.Any]] = None
        self._record_lock = threading.Lock()
        self._prefetched: dict[str, tuple[list[list[str]], str, t.Optional[_record.Record]]] = {}
        self.execute = execute
        self.run_module = run_module
        self.check_mode = check_mode
        self.run_id = run_id
        self.lease_seconds = lease_seconds

    def __call__(self, step: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
        if step in ("alpn_start", "alpn_stop"):
            return self._module(step, args)
        handler = getattr(self, f"_{step}", None)
        if handler is None or step.startswith("_") or step in ("run", "module"):
            raise HostError(f"unknown host step {step!r}")
        if self.check_mode and step != "inspect":
            return {"changed": step not in ("discard", "http01_cleanup"), "skipped_in_check": True}
        try:
            return t.cast(dict[str, t.Any], handler(args))
        except ValueError as exc:
            raise HostError(f"{step}: {exc}") from None

    # -- plumbing -----------------------------------------------------------------------------------

    def _run(
        self,
        step: str,
        script: str,
        data: bytes = b"",
        names: t.Optional[dict[str, t.Sequence[str]]] = None,
        tolerate: tuple[str, ...] = (),
    ) -> list[list[str]]:
        rc, stdout, stderr = self.execute(script, data)
        return self._check(step, sh.parse(stdout, self.run_id), rc, stderr, names or {}, tolerate)

    def _check(
        self,
        step: str,
        lines: list[list[str]],
        rc: int,
        stderr: str,
        names: t.Mapping[str, t.Sequence[str]],
        tolerate: tuple[str, ...] = (),
    ) -> list[list[str]]:
        err = sh.first(lines, "err")
        if err is not None and err[:1] and err[0] in tolerate:
            return lines
        if err is not None:
            raise HostError(f"{step}: {self._explain(err, names)}")
        if rc != 0 or sh.first(lines, "done") is None:
            tail = [x for x in stderr.strip().split("\n") if x.strip()]
            raise HostError(f"{step}: the host script stopped (exit code {rc}){': ' + tail[-1] if tail else ''}")
        return lines

    #: which of the controller's lists an error's index points into (default: the documented paths)
    _SPACES = {"untrusted": "dirs", "mkdir": "dirs", "tokdir": "dirs", "nowebroot": "roots", "put": "files"}

    def _explain(self, err: list[str], names: t.Mapping[str, t.Sequence[str]]) -> str:
        kind, rest = (err[0] if err else "?"), err[1:]
        idx = int(rest[0]) if rest and rest[0].isdigit() else -1
        space = names.get(self._SPACES.get(kind, "paths"), [])

        def name(i: int) -> str:
            return str(space[i]) if 0 <= i < len(space) else f"item {i}"

        if kind == "need":
            tool = rest[0] if rest else "?"
            return f"the host has no {tool}: install {sh.PACKAGES.get(tool, tool)} (the certificate role does)"
        if kind == "untrusted":
            bad = sh.unb64(rest[1]).decode("utf-8", "replace") if len(rest) > 1 else "?"
            return (
                f"refusing to work in {name(idx)}: {bad or 'a directory above it'} is not a directory owned by root "
                "that only root can write (as OpenSSH StrictModes); make it so (chown root, chmod go-w). "
                "Nothing was changed"
            )
        if kind in ("genpkey", "csr"):
            detail = sh.unb64(rest[0]).decode("utf-8", "replace").strip().split("\n")[-1] if rest else ""
            return f"openssl {kind} failed: {detail} (openssl 1.1.1 or later is needed)"
        if kind == "tokdir":
            why = _TOKDIR.get(rest[1] if len(rest) > 1 else "", "is not usable")
            return (
                f"http-01 directory {name(idx)} {why}: it must be a real directory owned by root that only root can "
                "write; remove it and let the task create it"
            )
        messages = {
            "mkdir": f"cannot create {name(idx)}",
            "store": "the certificate store next to the key is not a directory of root that only root can write",
            "lease": "cannot write the certificate's lease",
            "locked": "another run holds the lock of this certificate; try again when it is done",
            "notours": "this run no longer holds the certificate's lock (it expired and another run took it); "
            "nothing was deployed",
            "notfile": f"{name(idx)} is neither a file nor a symlink; nothing was changed",
            "link": f"cannot replace {name(idx)} by a link into the certificate store",
            "nouser": "the owner does not exist on the host (a user name or uid; user.group is not accepted)",
            "nogroup": "the group does not exist on the host",
            "chmod": f"cannot set the mode of {name(idx)}",
            "chown": f"cannot set the owner or group of {name(idx)}",
            "write": f"cannot write the new {name(idx)}; nothing was changed",
            "mismatch": "the new certificate does not carry the public key of the key to install; nothing was changed",
            "switch": "cannot switch to the new version; nothing was changed",
            "nowebroot": f"http-01 webroot does not exist: {name(idx)}",
            "put": f"cannot write http-01 token file {name(idx)}",
        }
        return messages.get(kind, f"failed ({' '.join(err)[:200]})")

    def _module(self, step: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
        if self.check_mode:
            return {"changed": True, "skipped_in_check": True}
        module_args = {k: v for k, v in args.items() if v is not None}
        module_args["step"] = step
        res = self.run_module(HOST_MODULE, module_args)
        if res.get("failed") or res.get("unreachable"):
            detail = str(res.get("msg") or f"{HOST_MODULE} step {step} failed")
            stderr = str(res.get("module_stderr") or "").strip()
            if stderr:
                detail += ": " + stderr.rsplit("\n", maxsplit=1)[-1]
            raise HostError(detail)
        return res

    # -- certificate files ------------------------------------------------------------------------------

    def _take_record(self) -> t.Optional[_record.Record]:
        with self._record_lock:
            record, self.record = self.record, None  # the first inspect of the task, only
        return record

    def _inspect_script(self, args: t.Mapping[str, t.Any], record: t.Optional[_record.Record]) -> str:
        return _certfiles.inspect_script(
            args,
            self.run_id,
            check=self.check_mode,
            prepare=bool(args.get("prepare_if_due")) and bool(args.get("names")),
            ttl=self.lease_seconds,
            extra=record.lines if record else None,
        )

    @staticmethod
    def _key(args: t.Mapping[str, t.Any]) -> str:
        return json.dumps(args, sort_keys=True, default=str)

    def prefetch(self, args_list: t.Sequence[dict[str, t.Any]]) -> None:
        """The inspect of several certificates in one round trip (each in a subshell of its own, its lines
        after a ``sect <k>`` marker); each later ``inspect`` with the same arguments takes its section.

        A section that failed fails only its certificate, when it is taken. When the round trip itself
        fails, nothing is kept: each inspect then makes its own.
        """
        if len(args_list) < 2:
            return
        with self._record_lock:
            record = self.record  # taken only when the round trip worked: otherwise the first lone inspect has it
        parts = [f"N={self.run_id}"]
        for k, args in enumerate(args_list):
            script = self._inspect_script(args, record if k == 0 else None)
            parts += [f"printf '%s sect {k}\\n' \"$N\"", "(", script, ")"]
        parts.append("printf '%s sect end\\n' \"$N\"")
        rc, stdout, stderr = self.execute("\n".join(parts), b"")
        sections: dict[str, list[list[str]]] = {}
        current: t.Optional[str] = None
        for words in sh.parse(stdout, self.run_id):
            if len(words) == 2 and words[0] == "sect":
                current = words[1]
                sections[current] = []
            elif current is not None:
                sections[current].append(words)
        if rc != 0 or "end" not in sections:
            return
        with self._record_lock:
            if self.record is record:
                self.record = None
            for k, args in enumerate(args_list):
                self._prefetched[self._key(args)] = (sections.get(str(k), []), stderr, record if k == 0 else None)

    def _inspect(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        files = _certfiles.Files(args)
        roots = list(args.get("webroot") or []) + list(args.get("challenge_dir") or [])
        with self._record_lock:
            found = self._prefetched.pop(self._key(args), None)
        if found is not None:
            section, stderr, record = found
            lines = self._check("inspect", section, 0, stderr, self._names(files))
        else:
            record = self._take_record()
            lines = self._run("inspect", self._inspect_script(args, record), names=self._names(files))
        n = len(files.paths)
        state: dict[str, t.Any] = {"cert": None, "key": None, "meta": None, "problems": [], "attribute_problems": []}
        missing = set(sh.indices(lines, "missing", n)) | set(sh.indices(lines, "foreign", n))
        state["missing_files"] = [files.paths[j][1] for j in sorted(missing)]
        state["foreign"] = [files.paths[j][1] for j in sh.indices(lines, "foreign", n)]
        state["missing_webroots"] = [roots[k] for k in sh.indices(lines, "nowebroot", len(roots))]
        state["key_dir_exists"] = sh.first(lines, "keydir") is not None
        state["fixed"] = [files.paths[j][1] for j in sh.indices(lines, "fixed", n)]
        state["stale_lease_removed"] = sh.first(lines, "stale") == ["removed"]
        for j in sh.indices(lines, "links", n):
            path = files.paths[j][1]
            state["attribute_problems"].append(f"{path} has other hard links: mode and owner left as they are")
        locked = sh.first(lines, "locked")
        if locked and locked[0].isdigit():
            state["locked"] = {"expires_in": int(locked[0])}
        blocks = {w[1]: sh.unb64(w[2]) for w in lines if len(w) == 3 and w[0] == "blk"}
        if record:
            self.recorded = record.parse(lines, blocks)
        key_der = None
        if 0 not in missing:
            pub = _facts.public_key_der(blocks.get("keypub", b""))
            if pub is None:
                state["problems"].append(f"{files.paths[0][1]} is not an unencrypted PEM private key")
            else:
                state["key"] = {"key_type": pub[0]}
                key_der = pub[1]
        if 1 not in missing:
            try:
                state["cert"] = _facts.describe_pem(blocks.get("cert", b""), key_der)
            except ValueError as exc:
                state["problems"].append(f"cannot read certificate {files.paths[1][1]}: {exc}")
        if "meta" in blocks:
            state["meta"] = _facts.parse_meta(blocks["meta"])
        cur = sh.first(lines, "cur")
        state["store_version"] = int(cur[0]) if cur and cur[0].isdigit() else None
        made = [files.mkdirs[i] for i in sh.indices(lines, "mk", len(files.mkdirs))]
        pending_created = sh.first(lines, "pending") == ["created"]
        if "csr" in blocks:
            state["prepared"] = {
                "csr": blocks["csr"].decode("ascii", "replace"),
                "pending_created": pending_created,
                "created_dirs": made,
            }
        state["key_dir_exists"] = state["key_dir_exists"] or bool(made)
        state["changed"] = bool(state["fixed"] or state["stale_lease_removed"] or made or pending_created)
        return state

    @staticmethod
    def _names(files: _certfiles.Files) -> dict[str, t.Sequence[str]]:
        return {"paths": [p for _label, p in files.paths], "dirs": files.named_dirs}

    def _prepare(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        files = _certfiles.Files(args)
        script = _certfiles.prepare_script(args, self.run_id, ttl=self.lease_seconds)
        lines = self._run("prepare", script, names=self._names(files), tolerate=("locked",))
        if (sh.first(lines, "err") or [""])[0] == "locked":
            # another live run holds the lease: CertificateRun waits, then inspects and decides again
            left = sh.first(lines, "locked")
            return {"changed": False, "locked": {"expires_in": int(left[0]) if left and left[0].isdigit() else 60}}
        csr = [w for w in lines if len(w) == 3 and w[:2] == ["blk", "csr"]]
        if not csr:
            raise HostError("prepare: the host returned no CSR")
        made = [files.mkdirs[i] for i in sh.indices(lines, "mk", len(files.mkdirs))]
        created = sh.first(lines, "pending") == ["created"]
        return {
            "changed": bool(created or made),
            "csr": sh.unb64(csr[0][2]).decode("ascii", "replace"),
            "pending_created": created,
            "created_dirs": made,
        }

    def _deploy(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        from cryptography import x509

        files = _certfiles.Files(args)
        script, data = _certfiles.deploy_script(args, self.run_id, ttl=self.lease_seconds)
        leaf = x509.load_pem_x509_certificate(_certfiles.pem_parts(args["cert_pem"], "")[0].encode("ascii"))
        lines = self._run("deploy", script, data, names=self._names(files))
        switched = sh.first(lines, "switched")
        backup = sh.first(lines, "backup")
        result: dict[str, t.Any] = {
            "changed": bool(switched or sh.first(lines, "linked") is not None or sh.first(lines, "fixed") is not None),
            "written": [p for _l, p in files.paths] if switched else [],
            "backups": [f"{files.store}/v{backup[0]}"] if backup and backup[0].isdigit() else [],
            "cert": _facts.describe_cert(leaf),
            "store_version": int(switched[0]) if switched and switched[0].isdigit() else None,
            "migrated": sh.first(lines, "migrated") is not None,
        }
        left = sh.indices(lines, "left", len(args.get("files") or []))
        if left:
            result["http01_problem"] = "http-01 token files left: " + ", ".join(args["files"][i] for i in left)
        return result

    def _discard(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        dirs = list(args.get("created_dirs") or [])
        key_dir = str(args.get("key_path") or "/").rsplit("/", 1)[0] or "/"
        lines = self._run("discard", _certfiles.discard_script(args, self.run_id), names={"dirs": [key_dir]})
        removed = [dirs[i] for i in sh.indices(lines, "rmd", len(dirs))]
        if sh.first(lines, "discarded") is not None:
            removed.insert(0, f"{args['key_path']} (pending key)")
        return {"changed": bool(removed), "removed": removed}

    # -- http-01 ----------------------------------------------------------------------------------------

    def _http01_place(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        script, layout = _http01.place_script(args, self.run_id)
        roots = layout.roots + layout.challenge_dirs
        placed: list[list[str]] = []
        names = {"roots": roots, "dirs": layout.dirs, "files": layout.files}
        try:
            rc, stdout, _stderr = self.execute(script, b"")
            placed = sh.parse(stdout, self.run_id)
            err = sh.first(placed, "err")
            if err is not None:
                raise HostError(f"placing http-01 token files: {self._explain(err, names)}")
            if rc != 0 or sh.first(placed, "done") is None:
                raise HostError(f"placing http-01 token files: the host script stopped (exit code {rc})")
        except HostError:
            files = [layout.files[i] for i in sh.indices(placed, "tok", len(layout.files))]
            dirs = [layout.dirs[i] for i in sh.indices(placed, "mk", len(layout.dirs))]
            if files or dirs:
                try:
                    self._http01_cleanup({"files": files, "created_dirs": dirs})
                except HostError:
                    pass
            raise
        return {
            "changed": True,
            "files": [layout.files[i] for i in sh.indices(placed, "tok", len(layout.files))],
            "created_dirs": [layout.dirs[i] for i in sh.indices(placed, "mk", len(layout.dirs))],
        }

    def _http01_cleanup(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        files, dirs = list(args.get("files") or []), list(args.get("created_dirs") or [])
        lines = self._run("http01_cleanup", _http01.cleanup_script(args, self.run_id))
        left = set(sh.indices(lines, "left", len(files)))
        removed = [f for i, f in enumerate(files) if i not in left]
        removed += [dirs[i] for i in sh.indices(lines, "rmd", len(dirs))]
        if left:
            raise HostError("http-01 token files left: " + ", ".join(files[i] for i in sorted(left)))
        return {"changed": bool(removed), "removed": removed}
