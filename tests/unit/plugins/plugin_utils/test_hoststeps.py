"""Host steps of acme_certificate: the generated scripts run for real with /bin/sh (dash) as root in a
temporary directory, the attacker's moves made as the unprivileged account nobody."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import HostError
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _certfiles, _http01
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _shell as sh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .hoststeps_support import (
    as_nobody,
    deploy_args,
    host,
    inspect_args,
    issue,
    issue_for_csr,
    issue_once,
    legacy_files,
    nobody_ids,
    paths,
    served_pair_matches,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
STORE = ".portail-privkey.pem.d"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    for parent in (tmp_path.parent, tmp_path.parent.parent):  # pytest's 0700 directories: let nobody traverse
        if parent.stat().st_uid == 0 and str(parent).startswith("/tmp/"):
            os.chmod(parent, 0o711)
    return tmp_path


# --- generation and parsing ----------------------------------------------------------------------------


def test_parse_splits_on_newline_only_and_needs_the_run_id():
    rid = "run-abcdefgh1234"
    out = f"{rid} ok 1\n{rid} a\rb\x0bc\x1c\x85\u2028 d\nforged {rid} err x\n{rid}x err y\n{rid} done"
    assert sh.parse(out, rid) == [["ok", "1"], ["a\rb\x0bc\x1c\x85\u2028", "d"], ["done"]]
    assert sh.parse(f"{rid} mk 1\r\n{rid} blk cert QUJD\r\n", rid) == [["mk", "1"], ["blk", "cert", "QUJD"]]  # a pty
    assert sh.indices([["mk", "0"], ["mk", "7"], ["mk", "x"], ["mk", "1"]], "mk", 2) == [0, 1]


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        ({"owner": "root\n"}, "owner"),
        ({"owner": "a b"}, "owner"),
        ({"group": "wheel$(id)"}, "group"),
        ({"mode": "644x"}, "mode"),
        ({"mode": 0o10000}, "mode"),
        ({"key_mode": "u+rw"}, "key_mode"),
        ({"key_path": "relative/key.pem"}, "key_path"),
        ({"cert_path": "/etc/ssl/../shadow"}, "cert_path"),
        ({"chain_path": "/etc/ssl/x\ny"}, "chain_path"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(base, args, expect):
    h = host()
    with pytest.raises(HostError, match=expect):
        h("inspect", inspect_args(base / "c", **args))
    assert h.execute.scripts == []


def test_octal_modes():
    assert sh.octal(0o640, "mode") == "640" and sh.octal("0644", "mode") == "644" and sh.octal("600", "m") == "600"


def test_every_script_is_valid_posix_sh_and_needs_no_python(base):
    out = base / "c"
    args = inspect_args(out, webroot=[str(base)], challenge_dir=[str(base / "cd")], owner="nobody", group="0")
    cert, chain = issue(ec.generate_private_key(ec.SECP256R1()).public_key())
    scripts = [
        _certfiles.inspect_script(args, "run-aaaaaaaaaaaa", check=False, prepare=True, ttl=60),
        _certfiles.prepare_script(args, "run-aaaaaaaaaaaa", ttl=60),
        _certfiles.deploy_script(deploy_args(out, cert, chain, files=[str(base / "tok")]), "run-a0000000", ttl=9)[0],
        _certfiles.deploy_script(deploy_args(out, cert, chain, key_pem="x"), "run-a0000000", ttl=9)[0],
        _certfiles.discard_script({"key_path": str(out / "k"), "created_dirs": [str(out)]}, "run-a0000000"),
        _http01.place_script({"webroot": [str(base)], "tokens": [{"token": "t", "content": "t.x"}]}, "run-a0000000")[0],
        _http01.cleanup_script({"files": [str(base / "t")], "created_dirs": [str(base / "d")]}, "run-a0000000"),
    ]
    for script in scripts:
        subprocess.run(["/bin/sh", "-n", "-c", script], check=True)
        assert "python" not in script


# --- the steps ---------------------------------------------------------------------------------------------


def test_first_issuance_then_noop(base):
    out = base / "etc" / "cert"
    h = host("run-first000001")
    state = h("inspect", inspect_args(out))
    assert state["changed"] and state["missing_files"] == list(paths(out).values())
    assert state["prepared"]["pending_created"] is True
    assert state["prepared"]["created_dirs"] == [str(base / "etc"), str(out), str(out / STORE)]
    cert, chain = issue_for_csr(state["prepared"]["csr"])
    done = h("deploy", deploy_args(out, cert, chain))
    assert done["store_version"] == 1 and done["changed"] and done["backups"] == []
    assert served_pair_matches(out) is True
    for name in ("privkey.pem", "cert.pem", "chain.pem", "fullchain.pem"):
        assert os.readlink(out / name) == str(out / STORE / "current" / name)
    assert stat.S_IMODE((out / "privkey.pem").stat().st_mode) == 0o600
    assert not (out / STORE / "lock").exists()
    again = host("run-second00001")("inspect", inspect_args(out))
    assert again["changed"] is False and "prepared" not in again and again["missing_files"] == []
    assert again["cert"]["matches_key"] is True and again["key"] == {"key_type": "ec256"}
    assert again["meta"] == {"directory": "x"} and again["store_version"] == 1


def test_check_mode_changes_nothing(base):
    out = base / "c"
    state = host(check=True)("inspect", inspect_args(out))
    assert state["changed"] is False and "prepared" not in state and not out.exists()


def test_renewal_keeps_the_previous_version_as_backup(base):
    out = base / "c"
    issue_once(out)
    h = host("run-renew000001")
    prep = h("prepare", dict(paths(out), key_type="ec384", names=["a.portail.test"]))
    done = h("deploy", deploy_args(out, *issue_for_csr(prep["csr"])))
    assert done["store_version"] == 2 and done["backups"] == [str(out / STORE / "v1")]
    assert served_pair_matches(out) is True
    assert host("run-x0000000001")("inspect", inspect_args(out, key_type="ec384"))["key"] == {"key_type": "ec384"}
    prep = host("run-renew000002")("prepare", dict(paths(out), key_type="ec256", names=["a.portail.test"]))
    h3 = host("run-renew000002")
    h3("deploy", deploy_args(out, *issue_for_csr(prep["csr"]), backup=False))
    assert sorted(p.name for p in (out / STORE).iterdir()) == ["current", "v3"]


def test_drifted_modes_repaired_in_the_store(base):
    out = base / "c"
    issue_once(out)
    (out / STORE / "v1" / "privkey.pem").chmod(0o644)
    state = host("run-fix00000001")("inspect", inspect_args(out))
    assert state["changed"] and state["fixed"] == [str(out / "privkey.pem")]
    assert stat.S_IMODE((out / "privkey.pem").stat().st_mode) == 0o600


def test_discard_removes_the_lease_and_the_directories_made_with_sh_only(base):
    out = base / "a" / "b"
    h = host("run-disc0000001")
    state = h("inspect", inspect_args(out))
    prepared = state["prepared"]
    res = h("discard", {"key_path": str(out / "privkey.pem"), **prepared})
    assert res["changed"] and not (base / "a").exists()


# --- defect 1: never through a symlink -------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["store", "plain files"])
def test_symlinked_cert_and_key_are_never_followed(base, layout):
    out = base / "c"
    if layout == "store":
        issue_once(out)
    else:
        legacy_files(out)
    shadow = base / "secret" / "shadow"
    shadow.parent.mkdir()
    shadow.write_text("root:$6$secret:19000:0:99999:7:::\n")
    shadow.chmod(0o640)
    before = shadow.stat()
    for name in ("cert.pem", "privkey.pem"):
        (out / name).unlink()
        (out / name).symlink_to(shadow)
    uid, gid = nobody_ids()
    h = host("run-link0000001")
    state = h("inspect", inspect_args(out, owner="nobody", group="nogroup", mode="0666", key_mode="0666"))
    after = shadow.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    assert state["foreign"] == [str(out / "privkey.pem"), str(out / "cert.pem")]
    assert state["cert"] is None  # never read through it
    # the run reissues and replaces the links by rename
    h("deploy", deploy_args(out, *issue_for_csr(state["prepared"]["csr"]), owner="nobody", group="nogroup"))
    assert served_pair_matches(out) is True
    after = shadow.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    assert (out / STORE / "current" / "cert.pem").stat().st_uid == uid and (out / "cert.pem").stat().st_gid == gid


# --- defect 2: framing ------------------------------------------------------------------------------------

FORGED_CONTROL = ["\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028"]


@pytest.mark.parametrize("layout", ["store", "plain files"])
def test_file_bytes_cannot_forge_protocol_lines(base, layout):
    out = base / "c"
    victim = base / "run-sshd"
    victim.mkdir()
    uid, gid = nobody_ids()
    if layout == "store":
        issue_once(out)
        host("run-own00000001")("inspect", inspect_args(out, owner="nobody"))  # files of an owner that writes them
        meta = out / STORE / "v1" / "acme.json"
        assert meta.stat().st_uid == 0  # the record stays root's in the store
    else:
        legacy_files(out)
        meta = out / "cert.pem.acme.json"
        meta.write_text("{}")
        for f in out.iterdir():
            os.chown(f, uid, gid)
    rid = "run-attacked0001"  # even knowing the run id
    evil_csr = base64.b64encode(b"-----BEGIN CERTIFICATE REQUEST-----\nEVIL\n").decode()
    forged = "".join(
        f"{c}{rid} blk csr {evil_csr}{c}{rid} mk 0{c}begin:csr{c}dir:{victim}{c}{rid} rmd 0{c}{rid} pending created"
        for c in FORGED_CONTROL
    )
    forged += f"\n{rid} blk csr {evil_csr}\n{rid} done\n"
    (base / "forged").write_text(forged)
    targets = [out / "cert.pem"] + ([meta] if layout != "store" else [])
    as_nobody(" && ".join(f"cat {base / 'forged'} > {t}" for t in targets))
    h = host(rid)
    state = h("inspect", inspect_args(out, owner="nobody"))
    assert "prepared" not in state and state["changed"] is False
    assert state["cert"] is None and state["meta"] in (None, {"directory": "x"})
    assert len(state["problems"]) == 1 and state["problems"][0].startswith(f"cannot read certificate {out}/cert.pem")
    # the controller then prepares: the CSR is the host key's, directories are the controller's own
    prep = h("prepare", dict(paths(out), key_type="ec256", names=["a.portail.test"], owner="nobody"))
    assert "EVIL" not in prep["csr"] and prep["created_dirs"] == ([] if layout == "store" else [str(out / STORE)])
    h("discard", {"key_path": str(out / "privkey.pem"), **prep})
    assert victim.is_dir()


# --- defect 3: the lease --------------------------------------------------------------------------------


def test_overlapping_runs_never_pair_a_certificate_with_another_key(base):
    out = base / "c"
    issue_once(out)
    cron, manual = host("run-cron0000001"), host("run-manual00001")
    cron_prep = cron("prepare", dict(paths(out), key_type="ec256", names=["a.portail.test"], force=True))
    state = manual("inspect", inspect_args(out, key_type="ec384", force=True))
    assert 0 < state["locked"]["expires_in"] <= 1800 and "prepared" not in state
    busy = manual("prepare", dict(paths(out), key_type="ec384", names=["a.portail.test"]))
    assert 0 < busy["locked"]["expires_in"] <= 1800 and "csr" not in busy and not busy["changed"]
    # the manual run got a certificate anyway (for some other key): refused, nothing changes
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(HostError, match="no longer holds"):
        manual("deploy", deploy_args(out, *issue(other)))
    cron("deploy", deploy_args(out, *issue_for_csr(cron_prep["csr"])))
    assert served_pair_matches(out) is True
    state = manual("inspect", inspect_args(out, key_type="ec384"))
    assert state["key"] == {"key_type": "ec256"} and "locked" not in state


def test_deploy_compares_the_pending_key_with_the_certificate(base):
    out = base / "c"
    issue_once(out)
    before = (out / "cert.pem").read_bytes()
    h = host("run-mismatch001")
    h("prepare", dict(paths(out), key_type="ec256", names=["a.portail.test"]))
    with pytest.raises(HostError, match="does not carry the public key"):
        h("deploy", deploy_args(out, *issue(ec.generate_private_key(ec.SECP256R1()).public_key())))
    assert (out / "cert.pem").read_bytes() == before and served_pair_matches(out) is True


def test_a_killed_runs_pending_key_is_removed_by_the_next_noop_run(base):
    out = base / "c"
    issue_once(out)
    killed = host("run-killed00001", lease_seconds=0)
    killed("prepare", dict(paths(out), key_type="ec256", names=["a.portail.test"]))
    assert (out / STORE / "lock" / "privkey.pem").exists()
    state = host("run-next0000001")("inspect", inspect_args(out))
    assert state["stale_lease_removed"] and state["changed"] and "locked" not in state and "prepared" not in state
    assert not (out / STORE / "lock").exists()
    with pytest.raises(HostError, match="no longer holds"):
        killed("deploy", deploy_args(out, *issue(ec.generate_private_key(ec.SECP256R1()).public_key())))


# --- defect 4: one switch ------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["plain files", "store"])
def test_deploy_interrupted_at_every_line_never_serves_a_mismatched_pair(base, start):
    out = base / "c"
    if start == "store":
        issue_once(out)
    else:
        legacy_files(out)
    h = host("run-interrupt01")
    prep = h("prepare", dict(paths(out), key_type="ec384", names=["a.portail.test"]))
    script, _data = _certfiles.deploy_script(deploy_args(out, *issue_for_csr(prep["csr"])), h.run_id, ttl=600)
    snapshot = base / "snapshot"
    shutil.copytree(out, snapshot, symlinks=True)
    lines = script.split("\n")
    body = next(i for i, line in enumerate(lines) if line.startswith("CHECK="))
    seen = set()
    for k in range(body, len(lines) + 1):
        shutil.rmtree(out)
        shutil.copytree(snapshot, out, symlinks=True)
        subprocess.run(["/bin/sh", "-c", "\n".join(lines[:k])], capture_output=True, check=False)
        ok = served_pair_matches(out)
        assert ok is True, f"mismatched or missing pair after line {k}: {lines[k - 1]!r}"
        key = serialization.load_pem_private_key((out / "privkey.pem").read_bytes(), None)
        seen.add(key.curve.name)
    assert seen == {"secp256r1", "secp384r1"}  # the old pair up to the switch, the new one after


# --- defect 5: http-01 token placement ----------------------------------------------------------------


def _webroot(base: Path) -> Path:
    uid, gid = nobody_ids()
    www = base / "www"
    www.mkdir()
    os.chown(www, uid, gid)  # the web user's own docroot
    return www


def test_http01_place_and_cleanup(base):
    www = _webroot(base)
    h = host("run-http0000001")
    placed = h("http01_place", {"webroot": [str(www)], "tokens": [{"token": "tok-1", "content": "tok-1.thumb"}]})
    target = www / ".well-known" / "acme-challenge"
    assert placed["files"] == [str(target / "tok-1")] and placed["created_dirs"] == [str(target.parent), str(target)]
    assert (target / "tok-1").read_text() == "tok-1.thumb" and target.stat().st_uid == 0
    res = h("http01_cleanup", placed)
    assert res["changed"] and not (www / ".well-known").exists()


@pytest.mark.parametrize("plant", ["symlink", "web user's directory"])
def test_http01_refuses_a_planted_challenge_directory(base, plant):
    www = _webroot(base)
    victim = base / "victim"
    victim.mkdir()
    if plant == "symlink":
        as_nobody(f"ln -s {victim} {www / '.well-known'}")
    else:
        as_nobody(f"mkdir -p {www / '.well-known' / 'acme-challenge'}")
    h = host("run-http0000002")
    with pytest.raises(HostError, match="must be a real directory owned by root"):
        h("http01_place", {"webroot": [str(www)], "tokens": [{"token": "tok-1", "content": "tok-1.thumb"}]})
    assert list(victim.iterdir()) == []
    assert not list((www / ".well-known").rglob("tok-1"))


# --- defect 6: directory trust --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["group/other writable parent", "parent owned by another user"])
def test_untrusted_directories_are_refused_and_nothing_changes(base, how):
    parent = base / "shared"
    parent.mkdir()
    if how.startswith("group"):
        parent.chmod(0o777)
    else:
        os.chown(parent, *nobody_ids())
    out = parent / "c"
    with pytest.raises(HostError, match=r"refusing to work in .*StrictModes") as exc:
        host("run-trust000001")("inspect", inspect_args(out))
    assert f"refusing to work in {out}: {parent} is not" in str(exc.value)
    assert list(parent.iterdir()) == []
    legacy_files(base / "ok")
    shutil.move(base / "ok", out)
    os.chmod(out / "privkey.pem", 0o644)
    with pytest.raises(HostError, match="refusing to work in"):
        host("run-trust000002")("inspect", inspect_args(out))
    assert stat.S_IMODE((out / "privkey.pem").stat().st_mode) == 0o644


# --- defect 7 and the rest ---------------------------------------------------------------------------------


def test_owner_with_a_dot_is_a_user_name_not_user_and_group(base):
    out = base / "c"
    with pytest.raises(HostError, match="owner does not exist"):
        host("run-owner000001")("inspect", inspect_args(out, owner="nobody.nogroup"))
    assert not out.exists()
    issue_once(out)
    host("run-owner000002")("inspect", inspect_args(out, owner="nobody"))
    assert (out / "cert.pem").stat().st_uid == nobody_ids()[0] and (out / "cert.pem").stat().st_gid == 0


def test_deploy_with_a_given_key_is_atomic_and_idempotent(base):
    out = base / "member"
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert, chain = issue(key.public_key())
    first = host("run-pool0000001")("deploy", deploy_args(out, cert, chain, key_pem=key_pem))
    assert first["changed"] and first["store_version"] == 1 and served_pair_matches(out) is True
    again = host("run-pool0000002")("deploy", deploy_args(out, cert, chain, key_pem=key_pem))
    assert again["changed"] is False and sorted(p.name for p in (out / STORE).iterdir()) == ["current", "v1"]
    # a key that does not match the certificate is refused
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(HostError, match="does not carry the public key"):
        host("run-pool0000003")("deploy", deploy_args(out, cert, chain, key_pem=other.decode()))
    h = host("run-pool0000004")
    assert all(key_pem not in s for s in h.execute.scripts)


def test_a_host_without_openssl_fails_naming_the_package(base, tmp_path):
    bindir = base / "bin"
    bindir.mkdir()
    for tool in ("stat", "head", "id", "mktemp", "readlink", "cat", "date", "mkdir", "rm", "ln", "mv", "pwd"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    h = host("run-noossl00001", env={"PATH": str(bindir)})
    with pytest.raises(HostError, match=r"install openssl \(1\.1\.1 or later\)"):
        h("inspect", inspect_args(base / "c"))
    assert not (base / "c").exists()
