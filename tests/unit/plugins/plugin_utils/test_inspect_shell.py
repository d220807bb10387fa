"""The inspect/prepare script, run by a real /bin/sh with the real openssl on temporary files.

Each state it produces is compared with what the module's inspect step returns for the same files.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import stat
import subprocess
import typing as t

import pytest
from ansible_collections.portail.https.plugins.module_utils import _certhost as ch
from ansible_collections.portail.https.plugins.plugin_utils import _inspect_shell as ins
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def run(args: dict[str, t.Any], prepare: int = ins.IF_MISSING, check: bool = False, env=None) -> dict[str, t.Any]:
    script = ins.build_script(args, prepare=prepare, check_mode=check)
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False, env=env)
    raw = ins.parse_output(proc.stdout)
    raw["rc"] = proc.returncode
    return raw


def _pem_key(key: t.Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(key: t.Any, names: list[str], days: int = 90) -> bytes:
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def args(tmp_path) -> dict[str, t.Any]:
    web = tmp_path / "www"
    web.mkdir()
    d = tmp_path / "ssl" / "site"
    return {
        "key_path": str(d / "privkey.pem"),
        "cert_path": str(d / "cert.pem"),
        "chain_path": str(d / "chain.pem"),
        "fullchain_path": str(d / "fullchain.pem"),
        "webroot": [str(web)],
        "challenge_dir": [],
        "names": ["www.example.org", "example.org"],
        "key_type": "ec256",
        "mode": "0644",
        "key_mode": "0600",
        "owner": None,
        "group": None,
    }


def deployed(args: dict[str, t.Any], key: t.Any = None, cert_key: t.Any = None, names=None) -> None:
    """Files as a deploy leaves them: key 0600, certificate files 0644, the .acme.json record."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    cert = _cert(cert_key or key, names or args["names"])
    os.makedirs(os.path.dirname(args["key_path"]), exist_ok=True)
    for path, data, mode in (
        (args["key_path"], _pem_key(key), 0o600),
        (args["cert_path"], cert, 0o644),
        (args["chain_path"], cert, 0o644),
        (args["fullchain_path"], cert, 0o644),
        (args["cert_path"] + ch.META_SUFFIX, json.dumps({"directory": "https://ca/dir", "ari": False}).encode(), 0o644),
    ):
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)


def module_view(args: dict[str, t.Any]) -> dict[str, t.Any]:
    return ch.inspect(
        key_path=args["key_path"],
        cert_path=args["cert_path"],
        chain_path=args["chain_path"],
        fullchain_path=args["fullchain_path"],
        webroots=args["webroot"] + args["challenge_dir"],
    )


def comparable(state: dict[str, t.Any]) -> dict[str, t.Any]:
    keys = ("cert", "key", "missing_files", "meta", "problems", "missing_webroots", "key_dir_exists")
    return {k: state.get(k) for k in keys}


def test_first_run_makes_a_pending_key_and_its_csr(args):
    raw = run(args)
    assert raw["rc"] == 0 and raw["error"] is None
    state = ins.state_from(raw, args)
    pending = args["key_path"] + ch.PENDING_SUFFIX
    assert stat.S_IMODE(os.stat(pending).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(pending)).st_mode) == 0o755
    prepared = state["prepared"]
    assert prepared["pending_created"] is True and state["changed"] is True
    assert prepared["created_dirs"] == [os.path.dirname(os.path.dirname(pending)), os.path.dirname(pending)]
    csr = x509.load_pem_x509_csr(prepared["csr"].encode())
    key = ch.load_key(pending)
    assert ch._public_der(csr.public_key()) == ch._public_der(key.public_key())
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.org", "example.org"]
    assert csr.subject.rfc4514_string() == "CN=www.example.org"
    # the same facts as the module (which runs after the script made the pending key)
    assert comparable(state) == comparable(module_view(args))
    # the key never appears in the output
    assert "PRIVATE KEY" not in ins.build_script(args, prepare=ins.IF_MISSING, check_mode=False)


def test_second_prepare_reuses_the_pending_key(args):
    first = ins.state_from(run(args), args)["prepared"]
    again = ins.state_from(run(args, prepare=ins.ALWAYS), args)["prepared"]
    assert again["pending_created"] is False and again["created_dirs"] == []
    one = x509.load_pem_x509_csr(first["csr"].encode()).public_key()
    two = x509.load_pem_x509_csr(again["csr"].encode()).public_key()
    assert ch._public_der(one) == ch._public_der(two)


@pytest.mark.parametrize("key_type", ["ec384", "rsa2048"])
def test_key_types(args, key_type):
    args["key_type"] = key_type
    state = ins.state_from(run(args), args)
    assert ins.csr_key_type(state["prepared"]["csr"]) == key_type


def test_ip_and_long_names(args):
    long_name = ("a" * 60) + ".example.org"
    args["names"] = [long_name, "192.0.2.7", "2001:db8::7"]
    state = ins.state_from(run(args), args)
    csr = x509.load_pem_x509_csr(state["prepared"]["csr"].encode())
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [long_name]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.7", "2001:db8::7"]
    assert csr.subject.rfc4514_string() == ""


def test_deployed_files_read_like_the_module_and_nothing_changes(args):
    deployed(args)
    before = {p: os.stat(p) for p in (args["key_path"], args["cert_path"])}
    raw = run(args)
    state = ins.state_from(raw, args)
    assert state["changed"] is False and "prepared" not in state
    assert not os.path.exists(args["key_path"] + ch.PENDING_SUFFIX)
    assert state["cert"]["matches_key"] is True
    assert comparable(state) == comparable(module_view(args))
    assert {p: os.stat(p) for p in before} == before


def test_a_certificate_for_another_key_does_not_match(args):
    deployed(args, cert_key=ec.generate_private_key(ec.SECP256R1()))
    state = ins.state_from(run(args), args)
    assert state["cert"]["matches_key"] is False
    assert comparable(state) == comparable(module_view(args))


def test_drifted_modes_are_fixed_and_check_mode_only_reports(args):
    deployed(args)
    os.chmod(args["cert_path"], 0o600)
    os.chmod(args["key_path"], 0o644)
    raw = run(args, check=True)
    assert sorted(set(raw["fixed"])) == sorted([args["cert_path"], args["key_path"]])
    assert stat.S_IMODE(os.stat(args["key_path"]).st_mode) == 0o644
    raw = run(args)
    assert ins.state_from(raw, args)["changed"] is True
    assert stat.S_IMODE(os.stat(args["key_path"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(args["cert_path"]).st_mode) == 0o644
    assert ins.state_from(run(args), args)["changed"] is False


def test_owner_and_group_by_name_or_number_are_idempotent(args):
    import grp
    import pwd

    deployed(args)
    uid, gid = os.getuid(), os.getgid()
    args["owner"], args["group"] = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
    assert run(args)["fixed"] == []
    args["owner"], args["group"] = str(uid), str(gid)
    assert run(args)["fixed"] == []


def test_missing_webroot_is_reported_and_nothing_is_made(args):
    args["webroot"] = [args["webroot"][0] + "-absent"]
    state = ins.state_from(run(args), args)
    assert state["missing_webroots"] == args["webroot"]
    assert "prepared" not in state and state["changed"] is False
    assert not os.path.exists(os.path.dirname(args["key_path"]))


def test_check_mode_never_prepares(args):
    raw = run(args, check=True)
    assert ins.state_from(raw, args)["changed"] is False
    assert not os.path.exists(os.path.dirname(args["key_path"]))


def test_an_encrypted_key_is_a_problem_not_a_prompt(args):
    deployed(args)
    key = ec.generate_private_key(ec.SECP256R1())
    enc = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-pass"),
    )
    with open(args["key_path"], "wb") as f:
        f.write(enc)
    state = ins.state_from(run(args), args)
    assert state["problems"] == [f"{args['key_path']} is not an unencrypted PEM private key"]
    assert comparable(state) == comparable(module_view(args))


def test_file_content_cannot_pass_for_protocol_lines(args):
    deployed(args)
    with open(args["cert_path"], "a") as f:
        f.write("end:cert\nbegin:csr\nfixed:/etc/passwd\nerror:boom\n")
    raw = run(args)
    assert raw["error"] is None and raw["fixed"] == [] and "csr" not in raw["blocks"]
    assert ins.state_from(raw, args)["cert"]["matches_key"] is True


def test_without_openssl_nothing_is_touched(args, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("stat", "sed", "mkdir", "dirname", "mktemp", "chmod", "mv", "rm", "tail"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bindir / tool)
    raw = run(args, env={"PATH": str(bindir)})
    assert raw["unsupported"] == "openssl" and raw["stat"] == {}
    assert not os.path.exists(os.path.dirname(args["key_path"]))


def test_wrong_type_pending_key_is_detected(args):
    os.makedirs(os.path.dirname(args["key_path"]))
    with open(args["key_path"] + ch.PENDING_SUFFIX, "wb") as f:
        f.write(_pem_key(ec.generate_private_key(ec.SECP384R1())))
    state = ins.state_from(run(args), args)
    assert state["prepared"]["pending_created"] is False
    assert ins.csr_key_type(state["prepared"]["csr"]) == "ec384"  # the caller then asks the module


@pytest.mark.parametrize(
    "change",
    [
        {"names": ["x.example.org'; touch /tmp/pwned; '"]},
        {"names": ["$(id).example.org"]},
        {"cert_path": "/etc/ssl/a\nb.pem"},
        {"webroot": ["relative/www"]},
        {"owner": "root; id"},
        {"mode": "u=rw,go=r"},
    ],
)
def test_input_the_script_cannot_carry_goes_to_the_module(args, change):
    args.update(change)
    assert ins.eligible(args) is False
    with pytest.raises(ins.ShellInputError):
        ins.build_script(args, prepare=ins.IF_MISSING, check_mode=False)
