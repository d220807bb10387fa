"""The deploy script, run by a real /bin/sh on temporary files."""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest
from ansible_collections.portail.https.plugins.plugin_utils import _deploy_shell as ds
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _cert(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def run(script: str) -> tuple[int, dict]:
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
    return proc.returncode, ds.parse_output(proc.stdout)


@pytest.fixture
def layout(tmp_path):
    d = tmp_path / "ssl"
    d.mkdir()
    (d / "key.pem.pending").write_text("NEW KEY")
    return {
        "key_path": str(d / "key.pem"),
        "cert_path": str(d / "cert.pem"),
        "chain_path": str(d / "chain.pem"),
        "fullchain_path": str(d / "fullchain.pem"),
        "cert_pem": _cert("leaf") + _cert("intermediate"),
        "chain_pem": _cert("intermediate").rstrip("\n"),
        "mode": "0644",
        "key_mode": "0600",
        "backup": True,
        "meta": {"directory": "https://ca.example/dir", "ari": False},
    }


def test_first_deploy_writes_everything_and_moves_the_key(layout):
    rc, out = run(ds.build_script(layout))
    assert rc == 0 and out["error"] is None, out
    leaf, chain = ds.contents(layout["cert_pem"], layout["chain_pem"])
    assert open(layout["cert_path"]).read() == leaf
    assert open(layout["chain_path"]).read() == chain and chain.endswith("\n")
    assert open(layout["fullchain_path"]).read() == leaf + chain
    assert open(layout["key_path"]).read() == "NEW KEY"
    assert not os.path.exists(layout["key_path"] + ".pending")
    assert json.load(open(layout["cert_path"] + ".acme.json")) == layout["meta"]
    assert oct(os.stat(layout["cert_path"]).st_mode & 0o777) == "0o644"
    assert oct(os.stat(layout["key_path"]).st_mode & 0o777) == "0o600"
    assert out["written"][-1] == layout["key_path"] and out["backups"] == []
    assert not [f for f in os.listdir(os.path.dirname(layout["key_path"])) if f.startswith(".portail-")]


def test_second_deploy_keeps_backups(layout):
    assert run(ds.build_script(layout))[0] == 0
    first = open(layout["cert_path"]).read()
    with open(layout["key_path"] + ".pending", "w") as f:
        f.write("NEWER KEY")
    layout["cert_pem"] = _cert("renewed")
    rc, out = run(ds.build_script(layout))
    assert rc == 0, out
    assert open(layout["cert_path"] + ".bak").read() == first
    assert open(layout["key_path"] + ".bak").read() == "NEW KEY"
    assert open(layout["key_path"]).read() == "NEWER KEY"
    assert layout["key_path"] + ".bak" in out["backups"]


def test_missing_pending_key_changes_nothing(layout):
    os.unlink(layout["key_path"] + ".pending")
    rc, out = run(ds.build_script(layout))
    assert rc == 3 and "no pending key" in out["error"]
    assert sorted(os.listdir(os.path.dirname(layout["key_path"]))) == []


def test_a_directory_in_the_way_stops_before_any_rename(layout):
    os.mkdir(layout["fullchain_path"])
    rc, out = run(ds.build_script(layout))
    assert rc == 3 and "is a directory" in out["error"]
    assert not os.path.exists(layout["cert_path"]) and os.path.exists(layout["key_path"] + ".pending")


def test_unknown_owner_fails_and_cleans_its_temporary_files(layout):
    layout["owner"] = "no-such-user-portail"
    rc, out = run(ds.build_script(layout))
    assert rc == 3 and "owner" in out["error"]
    names = os.listdir(os.path.dirname(layout["key_path"]))
    assert names == ["key.pem.pending"]


def test_token_files_removed_in_the_same_run(layout, tmp_path):
    challenge = tmp_path / "www" / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "tok").write_text("x")
    layout["files"] = [str(challenge / "tok")]
    layout["created_dirs"] = [str(challenge.parent), str(challenge)]
    rc, _out = run(ds.build_script(layout))
    assert rc == 0
    assert not (tmp_path / "www" / ".well-known").exists()


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("mode", "0640", True),
        ("mode", 0o640, True),
        ("mode", "u=rw,g=r", False),
        ("owner", "www-data", True),
        ("owner", "a b", False),
        ("group", "$(id)", False),
        ("cert_path", "relative.pem", False),
    ],
)
def test_eligibility(layout, key, value, ok):
    layout[key] = value
    assert ds.eligible(layout) is ok
