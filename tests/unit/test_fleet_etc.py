"""The fleet's private copy of /etc (tests/fleet/fleet.py): made once per package set, whole, without our state."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import subprocess
from pathlib import Path

import pytest

from tests.fleet import fleet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="copies the machine's /etc (root-only files in it)")


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    status = tmp_path / "status"
    status.write_text("Package: a\nVersion: 1\n")
    monkeypatch.setattr(fleet, "PACKAGES", status)
    monkeypatch.delenv("PORTAIL_FLEET_ETC_LOWER", raising=False)
    return status


def test_one_snapshot_per_package_set(tmp_path: Path, packages: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "snapshots"
    first = fleet.etc_snapshot(root)
    assert first.parent == root
    assert (root.stat().st_mode & 0o777) == 0o700
    assert (first / "passwd").read_bytes() == Path("/etc/passwd").read_bytes()
    assert fleet.etc_snapshot(root) == first  # taken once
    monkeypatch.setattr(fleet, "SNAPSHOTS", root)
    assert fleet.etc_lower() == str(first)
    monkeypatch.setenv("PORTAIL_FLEET_ETC_LOWER", "/etc")
    assert fleet.etc_lower() == "/etc"

    packages.write_text("Package: a\nVersion: 2\n")  # a package upgraded
    second = fleet.etc_snapshot(root)
    assert second != first
    assert not first.exists()  # no host had it as its lower layer
    assert sorted(p.name for p in root.iterdir()) == [".lock", second.name]


def test_a_snapshot_in_use_is_kept(tmp_path: Path, packages: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "snapshots"
    first = fleet.etc_snapshot(root)
    monkeypatch.setattr(fleet, "_mount_options", lambda: f"1 2 0:71 / /etc rw - overlay overlay rw,lowerdir={first},x")
    packages.write_text("Package: b\n")
    second = fleet.etc_snapshot(root)
    assert first.is_dir()
    assert second.is_dir()


def test_a_copy_left_half_made_is_not_used(tmp_path: Path, packages: Path) -> None:
    root = tmp_path / "snapshots"
    (root / ".tmp-999999").mkdir(parents=True)  # a process killed mid-copy
    snap = fleet.etc_snapshot(root)
    assert sorted(p.name for p in root.iterdir()) == [".lock", snap.name]


def _take(root: str) -> str:
    return str(fleet.etc_snapshot(Path(root)))


def test_processes_starting_at_once_share_one_copy(tmp_path: Path, packages: Path) -> None:
    root = tmp_path / "snapshots"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        made = pool.map(_take, [str(root)] * 8)
    assert len(set(made)) == 1
    assert sorted(p.name for p in root.iterdir()) == [".lock", Path(made[0]).name]


def test_scrub_removes_this_collections_state(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    files = {
        "ssl/portail/main/cert.pem": "x",
        "ssl/certs/other.pem": "keep",
        "ansible/facts.d/portail_https.fact": "{}",
        "nftables.d/portail_https.nft": "table inet portail_https {}",
        "nftables.conf": 'flush ruleset\ninclude "/etc/nftables.d/portail_https.nft" # portail_https\n',
        "nginx/sites-available/default": "server {}",
        "nginx/sites-available/portail-main.conf": "server {}",
        "nginx/modules-enabled/90-portail-stream.conf": "stream {}",
        "nginx/nginx.conf": "events {}",
        "apache2/sites-available/portail-main.conf": "<VirtualHost>",
        "apache2/ports.conf": "Listen 80",
    }
    for name, text in files.items():
        (etc / name).parent.mkdir(parents=True, exist_ok=True)
        (etc / name).write_text(text)
    (etc / "nginx/sites-enabled").mkdir()
    (etc / "nginx/sites-enabled/portail-main.conf").symlink_to("/etc/nginx/sites-available/portail-main.conf")

    subprocess.run(["sh", "-ec", fleet._scrub_etc(str(etc))], check=True)
    left = sorted(str(p.relative_to(etc)) for p in etc.rglob("*") if not p.is_dir())
    assert left == [
        "apache2/ports.conf",
        "nftables.conf",
        "nginx/nginx.conf",
        "nginx/sites-available/default",
        "nginx/sites-enabled/default",
        "ssl/certs/other.pem",
    ]
    assert (etc / "nftables.conf").read_text() == "flush ruleset\n"
    assert os.readlink(etc / "nginx/sites-enabled/default") == "/etc/nginx/sites-available/default"
    subprocess.run(["sh", "-ec", fleet._scrub_etc(str(etc))], check=True)  # again: nothing left to do, no error


def test_a_snapshot_is_held_until_the_hosts_mount_it(
    tmp_path: Path, packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "snapshots"
    monkeypatch.setattr(fleet, "SNAPSHOTS", root)
    with fleet._etc_held() as etc, open(root / ".lock") as other:
        assert etc == str(fleet.etc_snapshot())
        with pytest.raises(BlockingIOError):  # a new snapshot (and its pruning) waits for the hosts' mounts
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(root / ".lock") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    monkeypatch.setenv("PORTAIL_FLEET_ETC_LOWER", "/somewhere/etc")
    with fleet._etc_held() as etc:
        assert etc == "/somewhere/etc"
