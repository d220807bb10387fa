"""command provider: settings and the refusal of executables others can change."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest
from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsConfigError
from ansible_collections.portail.https.plugins.module_utils._dns.providers import command, make_provider


@pytest.fixture
def hook(tmp_path: Path) -> Path:
    d = tmp_path / "safe"
    d.mkdir(mode=0o700)
    h = d / "hook"
    h.write_text("#!/bin/sh\nexit 0\n")
    h.chmod(0o700)
    return h


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "'command' option .* is required"),
        ({"command": "hook.sh"}, "must be an absolute path"),
        ({"command": "/bin/true", "timeout": 0}, "timeout must be"),
        ({"command": "/bin/true", "command_env": {"A=B": "x"}}, "invalid variable name"),
        ({"command": "/bin/true", "command_env": {"A": "x\0y"}}, "NUL byte"),
    ],
)
def test_bad_settings(options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(DnsConfigError, match=message):
        make_provider("command", {**options, "resolvers": ["192.0.2.53"]})


def test_repr_hides_command_env() -> None:
    p = make_provider("command", {"command": "/bin/true", "command_env": {"TOKEN": "tok-secret"}, "resolvers": ["1"]})
    assert "tok-secret" not in repr(p)


def test_safe_hook_is_accepted(hook: Path) -> None:
    command.check_executable(str(hook))


def test_missing_or_not_executable(hook: Path, tmp_path: Path) -> None:
    with pytest.raises(DnsConfigError, match="No such file"):
        command.check_executable(str(tmp_path / "nope"))
    hook.chmod(0o600)
    with pytest.raises(DnsConfigError, match="not executable"):
        command.check_executable(str(hook))
    with pytest.raises(DnsConfigError, match="not a regular file"):
        command.check_executable(str(hook.parent))


@pytest.mark.parametrize("mode", [0o722, 0o757])
def test_group_or_world_writable_hook_is_refused(hook: Path, mode: int) -> None:
    hook.chmod(mode)
    with pytest.raises(DnsConfigError, match="others can write"):
        command.check_executable(str(hook))


def test_writable_directory_is_refused_unless_sticky(hook: Path) -> None:
    hook.parent.chmod(0o777)
    with pytest.raises(DnsConfigError, match=f"others can write {hook.parent}"):
        command.check_executable(str(hook))
    hook.parent.chmod(0o1777)
    command.check_executable(str(hook))


def test_symlink_into_an_unsafe_place_is_refused(hook: Path, tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    real = unsafe / "real-hook"
    real.write_text("#!/bin/sh\n")
    real.chmod(0o700)
    link = hook.parent / "link"
    os.symlink(real, link)
    with pytest.raises(DnsConfigError, match="others can write"):
        command.check_executable(str(link))


def test_hook_owned_by_someone_else_is_refused(hook: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    os.chown(hook, 12345, 12345)
    with pytest.raises(DnsConfigError, match="belongs to uid 12345"):
        command.check_executable(str(hook))
