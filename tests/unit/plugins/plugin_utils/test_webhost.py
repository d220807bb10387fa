"""The web server roles' host scripts (probe and switch) run in /bin/sh against a temporary tree."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from ansible_collections.portail.https.plugins.plugin_utils import _webhost as wh
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _shell as sh

RUN_ID = "webhost-test-1"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the switch gives files to root (chown 0:0)")


def sh_run(script: str) -> list[list[str]]:
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
    return sh.parse(out.stdout, RUN_ID)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    for d in ("avail", "enabled", "www"):
        (tmp_path / d).mkdir(mode=0o755)
    (tmp_path / "enabled" / "default").write_text("default site\n")
    (tmp_path / "cert").write_text("x")
    return tmp_path


def layout(tree: Path) -> wh.Layout:
    site = str(tree / "avail" / "portail-a.conf")
    return wh.Layout(
        packages=["portail-no-such-package"],
        cert_paths=[str(tree / "cert"), str(tree / "key")],
        version_command="echo 'nginx/1.26.0 OpenSSL 3.5.1'",
        dirs=[(str(tree / "challenge"), "0"), (str(tree / "www"), "")],
        files=[site],
        links=[(str(tree / "enabled" / "portail-a.conf"), site)],
        absent=[str(tree / "enabled" / "default")],
        validate_command=["/bin/sh", "-c", f"grep -q good {site}"],
    ).check()


def probe(lay: wh.Layout, diff: bool = False) -> wh.Probe:
    return wh.read_probe(sh_run(wh.probe_script(lay, RUN_ID, diff=diff)), lay)


def change(lay: wh.Layout, p: wh.Probe, content: bytes) -> wh.Change:
    return wh.Change(
        files=[(0, content)] if wh.file_differs(p.files[0], content) else [],
        links=[i for i, ok in enumerate(p.links_ok) if not ok],
        absent=[i for i, there in enumerate(p.present) if there],
        modules=[],
    )


def snapshot(tree: Path) -> dict[str, str]:
    out = {}
    for root, _dirs, files in os.walk(tree):
        for f in files:
            p = Path(root) / f
            out[str(p)] = os.readlink(p) if p.is_symlink() else p.read_text()
    return out


def test_probe_reports_everything_in_one_run(tree: Path) -> None:
    p = probe(layout(tree))
    assert p.packages_missing == ["portail-no-such-package"]
    assert p.cert_exists == [True, False]
    assert p.dirs_wrong == [0]  # the challenge directory is missing, www is fine
    assert p.files == [["missing"]] and p.links_ok == [False] and p.present == [True]
    assert "nginx/1.26.0" in p.version


def test_failed_test_puts_everything_back_then_a_good_config_switches(tree: Path) -> None:
    lay = layout(tree)
    before = snapshot(tree)
    lines = sh_run(wh.switch_script(lay, change(lay, probe(lay), b"bad\n"), RUN_ID))
    assert sh.first(lines, "err") == ["test"]
    assert snapshot(tree) == before  # the default site is back, no new file, no temporary left
    lines = sh_run(wh.switch_script(lay, change(lay, probe(lay), b"good\n"), RUN_ID))
    assert sh.first(lines, "done") is not None, lines
    assert snapshot(tree) == {
        str(tree / "cert"): "x",
        lay.files[0]: "good\n",
        lay.links[0][0]: lay.files[0],
    }
    again = probe(lay, diff=True)
    assert not change(lay, again, b"good\n")
    assert again.contents == {0: b"good\n"}


def test_edited_or_replaced_file_is_noticed(tree: Path) -> None:
    lay = layout(tree)
    sh_run(wh.switch_script(lay, change(lay, probe(lay), b"good\n"), RUN_ID))
    Path(lay.files[0]).write_text("good\nedited by hand\n")
    assert change(lay, probe(lay), b"good\n").files
    Path(lay.files[0]).unlink()
    Path(lay.files[0]).symlink_to(tree / "cert")
    p = probe(lay)
    assert p.files == [["link"]]  # never read through a link
    sh_run(wh.switch_script(lay, change(lay, p, b"good\n"), RUN_ID))
    assert not Path(lay.files[0]).is_symlink() and Path(lay.files[0]).read_text() == "good\n"
    assert (tree / "cert").read_text() == "x"


def test_writable_directory_is_refused_before_any_change(tree: Path) -> None:
    lay = layout(tree)
    (tree / "avail").chmod(0o777)
    before = snapshot(tree)
    lines = sh_run(wh.switch_script(lay, change(lay, probe(lay), b"good\n"), RUN_ID))
    err = sh.first(lines, "err")
    assert err is not None and err[0] == "untrusted"
    assert "refusing to write in" in wh.explain(err, lay, "nginx", change(lay, probe(lay), b"good\n"))
    assert snapshot(tree) == before


def test_layout_refuses_bad_paths() -> None:
    with pytest.raises(ValueError, match="absolute"):
        wh.Layout(files=["relative/x.conf"], validate_command=["true"]).check()
    with pytest.raises(ValueError, match="name"):
        wh.Layout(packages=["nginx; rm -rf /"], validate_command=["true"]).check()


def test_missing_directory_of_a_path_kept_absent_is_no_concern(tree: Path) -> None:
    lay = layout(tree)
    lay.absent.append(str(tree / "no-such-dir" / "x.conf"))
    p = probe(lay)
    assert p.present == [True, False]
    lines = sh_run(wh.switch_script(lay, change(lay, p, b"good\n"), RUN_ID))
    assert sh.first(lines, "done") is not None, lines


def test_service_state_is_read_by_the_probe_when_it_can_be_told(tree: Path) -> None:
    lay = layout(tree)
    lay.service = "portail-no-such-service"
    p = probe(lay.check())
    # on this machine: systemd says inactive, or there is no init script (then the service module decides)
    assert p.service in (None, (False, False))
    assert not wh.service_ok(p.service, "started", True)


@pytest.mark.parametrize(
    ("found", "state", "enabled", "ok"),
    [
        (None, "started", True, False),
        ((True, True), "started", True, True),
        ((True, False), "started", True, False),
        ((True, False), "started", None, True),
        ((False, False), "stopped", False, True),
        ((True, True), "stopped", None, False),
    ],
)
def test_service_ok(found: tuple[bool, bool] | None, state: str, enabled: bool | None, ok: bool) -> None:
    assert wh.service_ok(found, state, enabled) is ok


def test_read_probe_takes_only_well_formed_service_lines() -> None:
    lay = wh.Layout(validate_command=["true"], service="nginx").check()
    assert wh.read_probe([["svc", "1", "0"], ["done"]], lay).service == (True, False)
    assert wh.read_probe([["svc", "unknown"], ["done"]], lay).service is None
    assert wh.read_probe([["svc", "1", "x"], ["done"]], lay).service is None


def test_layout_refuses_a_bad_service_name() -> None:
    with pytest.raises(ValueError):
        wh.Layout(validate_command=["true"], service="nginx; reboot").check()


def test_probe_reads_os_release_only_when_asked(tree: Path) -> None:
    lay = layout(tree).check()
    assert "os-release" not in wh.probe_script(lay, RUN_ID, diff=False)
    probe = wh.read_probe(sh_run(wh.probe_script(lay, RUN_ID, diff=False, os_release=True)), lay)
    assert probe.os_release == Path("/etc/os-release").read_text()[:16384].rstrip("\n")


def test_read_probe_os_release_is_decoded_not_framed() -> None:
    lay = wh.Layout(validate_command=["true"])
    text = 'ID="rocky"\nID_LIKE="rhel centos fedora"'
    osr = base64.b64encode(text.encode()).decode()
    assert wh.read_probe([["osr", osr], ["done"]], lay).os_release == text
    assert wh.read_probe([["done"]], lay).os_release == ""


def test_pick_family_falls_back_to_the_first_layout() -> None:
    layouts = {"Debian": {"sites_dir": "/a"}, "RedHat": {"sites_dir": "/b"}}
    assert wh.pick_family(layouts, "RedHat") == "RedHat"
    assert wh.pick_family(layouts, "Suse") == "Debian"
    assert wh.pick_family(layouts, "") == "Debian"
    assert wh.pick_family({}, "Debian") == ""
    with pytest.raises(ValueError, match=r"layouts\.Debian"):
        wh.pick_family({"Debian": {"plan": {}}}, "Debian")
