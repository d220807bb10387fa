# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A controller-side executable that writes the records: ``<command> present|cleanup <fqdn> <value> <zone>``.

The shape of lego's ``exec`` provider and certbot's manual hooks, so existing acme.sh / lego /
certbot hook scripts can be reused behind a few lines of shell. ``fqdn`` is where the value goes
(the CNAME of ``_acme-challenge`` already followed), absolute with its trailing dot; ``zone`` is the
zone holding it (also with the trailing dot). One call per value: two values on one name (apex +
wildcard) are two ``present`` calls, and ``cleanup`` must remove only the value it is given.
"""

from __future__ import annotations

import os
import stat
import subprocess
import typing as t
from dataclasses import dataclass, field

from ansible_collections.portail.https.plugins.module_utils._dns.base import (
    DnsProvider,
    RecordSpec,
    TxtRecord,
    as_tuple,
    option_kwargs,
)
from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsConfigError,
    DnsError,
    DnsUnreachableError,
    DnsUpdateError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.lookup import DnsLookup, parse_server, system_resolvers
from ansible_collections.portail.https.plugins.module_utils._dns.names import require_dnspython

#: acme_certificate's ``dns`` options this provider reads (see providers/__init__.py: options_spec)
OPTIONS: dict[str, dict[str, t.Any]] = {
    "command": {"type": "path"},
    "command_env": {"type": "dict", "no_log": True},
    "timeout": {"type": "float"},
    "resolvers": {"type": "list", "elements": "str"},
    "nameserver_port": {"type": "int"},
}

_OUTPUT_TAIL = 400


@dataclass(frozen=True)
class CommandConfig:
    """Settings of the command provider. ``repr`` never shows ``command_env`` (it holds secrets)."""

    command: str
    command_env: t.Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 60.0
    resolvers: tuple[str, ...] = ()
    nameserver_port: int = 53

    def __post_init__(self) -> None:
        if not isinstance(self.command, str) or not self.command.strip():
            raise DnsConfigError("command: the 'command' option (path of the executable) is required")
        if not os.path.isabs(self.command):
            raise DnsConfigError(f"command: {self.command!r} must be an absolute path")
        if not 0 < float(self.timeout) <= 3600:
            raise DnsConfigError("command: timeout must be more than 0 and at most 3600 seconds")
        if not 0 < int(self.nameserver_port) < 65536:
            raise DnsConfigError("command: nameserver_port must be between 1 and 65535")
        env: dict[str, str] = {}
        for key, value in dict(self.command_env or {}).items():
            if not isinstance(key, str) or not key or "=" in key or "\0" in key:
                raise DnsConfigError(f"command: command_env has an invalid variable name {key!r}")
            text = "" if value is None else str(value)
            if "\0" in text:
                raise DnsConfigError(f"command: command_env variable {key} holds a NUL byte")
            env[key] = text
        object.__setattr__(self, "command_env", env)
        if isinstance(self.resolvers, (list, str)):
            object.__setattr__(self, "resolvers", as_tuple(self.resolvers))

    def __str__(self) -> str:
        return repr(self)

    @classmethod
    def from_options(cls, options: t.Mapping[str, t.Any]) -> CommandConfig:
        kwargs = option_kwargs("command", options, {k: k for k in OPTIONS})
        if "command" not in kwargs:
            raise DnsConfigError("command: the 'command' option (path of the executable) is required")
        return cls(**kwargs)


def check_executable(path: str) -> None:
    """Refuse an executable (or a directory above it) that someone other than root or us can
    change, like OpenSSH's StrictModes: whoever can rewrite it would run code as the controller."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError as exc:
        raise DnsConfigError(f"command: {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DnsConfigError(f"command: {path} is not a regular file")
    if not os.access(real, os.X_OK):
        raise DnsConfigError(f"command: {path} is not executable")
    for start in dict.fromkeys((os.path.abspath(path), real)):
        _check_chain(path, start)


def _check_chain(path: str, start: str) -> None:
    me = os.geteuid()
    current = start
    while True:
        st = os.lstat(current)
        if st.st_uid not in (0, me):
            raise DnsConfigError(f"command: refusing {path}: {current} belongs to uid {st.st_uid}, not root or us")
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
            raise DnsConfigError(f"command: refusing {path}: others can write {current}")
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


class CommandProvider(DnsProvider):
    """TXT records through a user's executable."""

    kind = "command"

    def __init__(self, config: CommandConfig) -> None:
        require_dnspython()
        self.config = config
        self.__env = dict(config.command_env)
        lookups = [parse_server(r, 53) for r in config.resolvers] or system_resolvers()
        self.lookup = DnsLookup(lookups, timeout=5.0, nameserver_port=config.nameserver_port)
        self._checked = False

    def __repr__(self) -> str:
        return f"CommandProvider({self.config!r})"

    def _scrub(self, text: str) -> str:
        for secret in self.__env.values():
            if len(secret) >= 4:
                text = text.replace(secret, "********")
        return text

    def _check_access(self, zone: str, records: t.Sequence[TxtRecord]) -> None:
        if not self._checked:
            check_executable(self.config.command)
            self._checked = True

    def _run(self, action: str, rec: TxtRecord) -> None:
        argv = [self.config.command, action, rec.target, rec.value, rec.zone]
        env = dict(os.environ)
        env.update(self.__env)
        what = f"{action} {rec.target} (zone {rec.zone})"
        try:
            proc = subprocess.run(  # argv list, no shell; the path was checked
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=float(self.config.timeout),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DnsUnreachableError(
                f"command: {self.config.command} {what}: no exit within {float(self.config.timeout):g}s",
                record=rec.target,
                zone=rec.zone,
            ) from None
        except OSError as exc:
            raise DnsConfigError(
                f"command: cannot run {self.config.command}: {exc.strerror or exc}", record=rec.target
            ) from None
        if proc.returncode != 0:
            output = (proc.stderr or proc.stdout or b"").decode("utf-8", errors="replace").strip()
            tail = self._scrub(output[-_OUTPUT_TAIL:]).replace("\n", " | ")
            raise DnsUpdateError(
                f"command: {self.config.command} {what} exited with status {proc.returncode}"
                + (f": {tail}" if tail else ""),
                record=rec.target,
                rcode=str(proc.returncode),
                zone=rec.zone,
            )

    def add_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        placed = self._records(records)
        for zone, recs in self._by_zone(placed).items():
            self._check_access(zone, recs)
        done: list[TxtRecord] = []
        try:
            for rec in placed:
                self._run("present", rec)
                done.append(rec)
        except DnsError:
            for rec in reversed(done):  # leave nothing half-done
                try:
                    self._run("cleanup", rec)
                except DnsError:
                    pass
            raise
        return placed

    def remove_txt_records(self, records: t.Iterable[RecordSpec]) -> list[TxtRecord]:
        placed = self._records(records)
        self._check_access("", placed)
        errors: list[DnsError] = []
        for rec in placed:
            try:
                self._run("cleanup", rec)
            except DnsError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise DnsUpdateError("; ".join(str(e) for e in errors), record=errors[0].record, zone=errors[0].zone)
        return placed


def make(options: t.Mapping[str, t.Any]) -> CommandProvider:
    """The registry's factory (providers/__init__.py)."""
    return CommandProvider(CommandConfig.from_options(options))
