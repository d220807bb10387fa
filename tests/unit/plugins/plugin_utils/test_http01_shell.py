"""The http-01 placement script, run by a real /bin/sh in a temporary directory."""

from __future__ import annotations

import subprocess

import pytest
from ansible_collections.portail.https.plugins.plugin_utils import _http01_shell as hs

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEYAUTH = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def run(script: str) -> tuple[int, dict]:
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
    return proc.returncode, hs.parse_output(proc.stdout)


def test_places_files_in_every_webroot_and_reports_created_dirs(tmp_path):
    a, b, direct = tmp_path / "a", tmp_path / "b", tmp_path / "direct"
    for d in (a, b, direct):
        d.mkdir()
    (b / ".well-known").mkdir()
    rc, out = run(hs.build_script([str(a), str(b)], [str(direct)], [{"token": TOKEN, "content": KEYAUTH}]))
    assert rc == 0 and out["error"] is None
    for target in (a / ".well-known/acme-challenge", b / ".well-known/acme-challenge", direct):
        f = target / TOKEN
        assert f.read_text() == KEYAUTH
        assert oct(f.stat().st_mode & 0o777) == "0o644"
        assert str(f) in out["files"]
    assert out["created_dirs"] == [
        str(a / ".well-known"),
        str(a / ".well-known/acme-challenge"),
        str(b / ".well-known/acme-challenge"),
    ]
    assert not list(tmp_path.rglob("*.portail-tmp"))


def test_missing_webroot_stops_before_writing(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    rc, out = run(hs.build_script([str(good), str(tmp_path / "nope")], [], [{"token": TOKEN, "content": KEYAUTH}]))
    assert rc == 3
    assert "does not exist" in out["error"] and str(tmp_path / "nope") in out["error"]
    assert out["files"] == [] and not (good / ".well-known").exists()


def test_unwritable_target_reports_what_was_written(tmp_path):
    ok, blocked = tmp_path / "ok", tmp_path / "blocked"
    ok.mkdir()
    blocked.mkdir()
    (blocked / ".well-known").write_text("a file where a directory should be")
    rc, out = run(hs.build_script([str(ok), str(blocked)], [], [{"token": TOKEN, "content": KEYAUTH}]))
    assert rc == 3 and "cannot create" in out["error"]
    assert out["files"] == [str(ok / ".well-known/acme-challenge" / TOKEN)]


def test_shell_metacharacters_in_paths_are_data(tmp_path):
    root = tmp_path / "we$(touch pwned)b 'root'"
    root.mkdir()
    rc, out = run(hs.build_script([str(root)], [], [{"token": TOKEN, "content": KEYAUTH}]))
    assert rc == 0, out
    assert (root / ".well-known/acme-challenge" / TOKEN).read_text() == KEYAUTH
    assert not (tmp_path / "pwned").exists() and not list(tmp_path.parent.glob("pwned"))


@pytest.mark.parametrize(
    ("webroot", "token", "content"),
    [
        ("relative/path", TOKEN, KEYAUTH),
        ("/srv/www\nrm -rf /", TOKEN, KEYAUTH),
        ("/srv/www", "../../etc/passwd", KEYAUTH),
        ("/srv/www", TOKEN, KEYAUTH + "; reboot"),
    ],
)
def test_bad_input_refused_before_running(webroot, token, content):
    with pytest.raises(hs.PlacementError):
        hs.build_script([webroot], [], [{"token": token, "content": content}])
