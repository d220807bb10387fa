"""ufw and firewalld changes of the firewall role, on fake commands and files (integration tests: real tools)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ansible_collections.portail.https.plugins.module_utils import _fwfrontends, _fwrollback

TAG = "706f727461696c2e6874747073"  # "portail.https", as ufw stores a comment
RULES = f"""*filter
### RULES ###
### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in comment={TAG}
### tuple ### allow tcp 8080 0.0.0.0/0 any 0.0.0.0/0 in comment={TAG}
### tuple ### allow tcp 8081 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow tcp 9000 0.0.0.0/0 any 198.18.0.0/16 in comment={TAG}
### tuple ### allow tcp 9001 0.0.0.0/0 any 0.0.0.0/0 in_eth0 comment={TAG}
### END RULES ###
"""


def test_ufw_tuples_only_plain_rules_with_their_comment() -> None:
    assert _fwfrontends.ufw_tuples(RULES) == [
        ((80, "tcp"), "portail.https"),
        ((8080, "tcp"), "portail.https"),
        ((8081, "tcp"), None),
    ]
    assert _fwfrontends.ufw_ipv6("IPV6=no\n") is False and _fwfrontends.ufw_ipv6("") is True


class FakeUfw:
    def __init__(self, active: bool) -> None:
        self.active = active
        self.ran: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        if argv[1:] == ["status"]:
            return 0, f"Status: {'active' if self.active else 'inactive'}\n", ""
        self.ran.append(argv[1:])
        return 0, "", ""


def _ufw_files(tmp: Path, policy: str, rules: str = RULES) -> dict[str, str]:
    files = {
        "rules": tmp / "user.rules",
        "rules6": tmp / "user6.rules",
        "conf": tmp / "ufw.conf",
        "defaults": tmp / "ufw",
    }
    files["rules"].write_text(rules)
    files["rules6"].write_text(rules.replace("0.0.0.0/0", "::/0"))
    files["conf"].write_text("ENABLED=no\n")
    files["defaults"].write_text(f'IPV6=yes\nDEFAULT_INPUT_POLICY="{policy}"\n')
    return {k: str(v) for k, v in files.items()}


def _ufw(
    fake: FakeUfw, files: dict[str, str], state: Path, wanted: list[tuple[int, str]], deny: bool
) -> _fwfrontends.UfwChange:
    return _fwfrontends.UfwChange(
        fake,
        "ufw",
        "portail.https",
        wanted,
        deny,
        str(state),
        (files["rules"], files["rules6"]),
        files["conf"],
        files["defaults"],
    )


def test_ufw_exact_for_our_rules_and_enable_with_default_deny(tmp_path: Path) -> None:
    files = _ufw_files(tmp_path, "DROP")
    state = tmp_path / "state" / "ufw.json"
    fake = FakeUfw(active=False)
    change = _ufw(fake, files, state, [(22, "tcp"), (80, "tcp"), (8081, "tcp")], True)
    assert change.commands == [
        ["ufw", "allow", "22/tcp", "comment", "portail.https"],  # 80 is ours already, 8081 the admin's
        ["ufw", "delete", "allow", "8080/tcp"],  # ours, no longer wanted; 9000/9001 are not plain rules
        ["ufw", "--force", "enable"],  # the file already says DROP: no "default" command
    ]
    assert change.state_after == {"incoming": "allow"}  # an inactive ufw let everything in
    assert change.files[:4] == [files["rules"], files["rules6"], files["conf"], files["defaults"]]
    assert change.undo_after == [_fwrollback.Step(["ufw", "disable"])]
    change.apply()
    assert fake.ran == [c[1:] for c in change.commands] and json.loads(state.read_text()) == {"incoming": "allow"}


def test_ufw_default_deny_off_goes_back_and_converged_is_unchanged(tmp_path: Path) -> None:
    files = _ufw_files(tmp_path, "DROP")
    state = tmp_path / "ufw.json"
    state.write_text('{"incoming": "allow"}\n')
    wanted = [(80, "tcp"), (8080, "tcp")]
    off = _ufw(FakeUfw(active=True), files, state, wanted, False)
    assert off.commands == [["ufw", "default", "allow", "incoming"]] and off.state_after == {}
    assert off.undo_after == [_fwrollback.Step(["ufw", "reload"])]
    on = _ufw(FakeUfw(active=True), files, state, wanted, True)
    assert not on.changed and on.files == [] and on.undo_after == []
    # without a record, an admin's deny stays; enabling an inactive ufw without default deny allows incoming
    state.unlink()
    assert not _ufw(FakeUfw(active=True), files, state, wanted, False).changed
    assert _ufw(FakeUfw(active=False), files, state, wanted, False).commands == [
        ["ufw", "default", "allow", "incoming"],
        ["ufw", "--force", "enable"],
    ]


class FakeFirewalld:
    def __init__(self, runtime: set[str], permanent: set[str]) -> None:
        self.runtime, self.permanent = runtime, permanent
        self.ran: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        args = argv[1:]
        if args == ["--get-default-zone"]:
            return 0, "public\n", ""
        if args[-1] == "--list-ports":
            return 0, " ".join(sorted(self.permanent if "--permanent" in args else self.runtime)) + "\n", ""
        self.ran.append(args)
        return 0, "success\n", ""


def test_firewalld_removes_only_the_ports_it_added(tmp_path: Path) -> None:
    state = tmp_path / "firewalld.json"
    fake = FakeFirewalld({"80/tcp", "8081/tcp"}, {"80/tcp", "8081/tcp"})  # both there before us: not ours
    change = _fwfrontends.FirewalldChange(
        fake, "firewall-cmd", "", [(80, "tcp"), (8080, "tcp")], str(state), str(tmp_path)
    )
    assert change.commands == [
        ["firewall-cmd", "--zone=public", "--add-port=8080/tcp"],
        ["firewall-cmd", "--permanent", "--zone=public", "--add-port=8080/tcp"],
    ]
    assert change.state_after == {"zones": {"public": ["8080/tcp"]}}
    assert change.files == [str(tmp_path / "public.xml"), str(tmp_path / "public.xml.old"), str(state)]
    assert change.undo_after == [_fwrollback.Step(["firewall-cmd", "--reload"])]
    change.apply()
    # 8080 leaves the inputs: removed (it is ours); 80 too, but it is the admin's: stays
    fake = FakeFirewalld({"80/tcp", "8080/tcp", "8081/tcp"}, {"80/tcp", "8080/tcp", "8081/tcp"})
    drop = _fwfrontends.FirewalldChange(fake, "firewall-cmd", "public", [(443, "tcp")], str(state), str(tmp_path))
    assert drop.commands == [
        ["firewall-cmd", "--zone=public", "--add-port=443/tcp"],
        ["firewall-cmd", "--zone=public", "--remove-port=8080/tcp"],
        ["firewall-cmd", "--permanent", "--zone=public", "--add-port=443/tcp"],
        ["firewall-cmd", "--permanent", "--zone=public", "--remove-port=8080/tcp"],
    ]
    assert drop.state_after == {"zones": {"public": ["443/tcp"]}}
    converged = FakeFirewalld({"80/tcp", "8080/tcp"}, {"80/tcp", "8080/tcp"})
    again = _fwfrontends.FirewalldChange(
        converged, "firewall-cmd", "public", [(80, "tcp"), (8080, "tcp")], str(state), str(tmp_path)
    )
    assert not again.changed and again.commands == []


def test_restore_runs_after_steps_once_the_files_are_back() -> None:
    script = _fwrollback.restore_script("/run/x", [], ["/etc/ufw/user.rules"], [_fwrollback.Step(["ufw", "reload"])])
    lines = script.splitlines()
    assert "user.rules" in lines[1] and lines[2] == "ufw reload"


def test_a_timer_firing_during_the_apply_waits_for_it(tmp_path: Path) -> None:
    """A change of several commands (ufw, firewalld) is never restored half-way: the restore waits for it."""
    target = tmp_path / "user.rules"
    target.write_text("before\n")
    job = _fwrollback.Job(str(tmp_path / "rb"), 5)
    job.prepare([], [str(target)])
    job.start()
    with job.applying():
        target.write_text("half-way\n")
        time.sleep(6)  # the timer fires now, while the change is still being applied
        assert not Path(job.dir, "rolled-back").exists()
        target.write_text("after\n")
    deadline = time.monotonic() + 10
    while not Path(job.dir, "rolled-back").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.read_text() == "before\n"  # restored once the whole change was applied, not in between
