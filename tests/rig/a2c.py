"""acme2certifier in the rig: a real ACME server offering ARI (renewalInfo) and profiles.

``start(rig_dir, logs)`` installs acme2certifier==0.46.3 into its own venv under ``rig_dir/a2c``, makes
a local CA (openssl_ca_handler), writes the configuration and serves it with wsgiref on
127.0.0.1:14080 (plain HTTP). Idempotent: a running server is left alone. ``stop(rig_dir)`` stops
exactly the process ``start`` launched. Facts returned: PORTAIL_A2C_DIRECTORY, PORTAIL_A2C_ROOTS.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VERSION = "0.46.3"
HOST = "127.0.0.1"
PORT = 14080
RESOLVER = "127.53.0.3"
PROFILES = {"classic": "default profile, 90 days", "shortlived": "short-lived certificates"}

SERVE = '''"""Serve acme2certifier with wsgiref on one loopback address (written by tests/rig/a2c.py)."""
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

from acme2certifier.share.acme2certifier_wsgi import application, get_handler_cls


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


make_server(sys.argv[1], int(sys.argv[2]), application, server_class=Server,
            handler_class=get_handler_cls()).serve_forever()
'''


def _log(msg: str) -> None:
    print(f"a2c: {msg}", file=sys.stderr, flush=True)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _pid(base: Path) -> int | None:
    pidf = base / "a2c.pid"
    if not pidf.exists():
        return None
    try:
        pid = int(pidf.read_text().strip())
        os.kill(pid, 0)
    except (ValueError, OSError):
        return None
    return pid


def _install(base: Path) -> Path:
    venv = base / "venv"
    python = venv / "bin" / "python"
    marker = venv / f".acme2certifier-{VERSION}"
    if marker.exists():
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _log(f"installing acme2certifier=={VERSION} into {venv}")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"acme2certifier=={VERSION}"],
        check=True,
    )
    marker.write_text(VERSION)
    return python


def _make_ca(ca_dir: Path) -> None:
    key_path, cert_path = ca_dir / "ca.key", ca_dir / "ca.pem"
    if key_path.exists() and cert_path.exists():
        return
    ca_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portail rig acme2certifier CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _config(base: Path) -> Path:
    ca = base / "ca"
    (ca / "certs").mkdir(parents=True, exist_ok=True)
    cfg = f"""[DEFAULT]
debug: False
dns_server_list: ["{RESOLVER}"]

[Nonce]
nonce_check_disable: False

[Account]
contact_check_disable: False

[Directory]
supress_product_information: True

[CAhandler]
handler_module: acme2certifier.cahandlers.openssl_ca_handler
issuing_ca_key: {ca / "ca.key"}
issuing_ca_cert: {ca / "ca.pem"}
issuing_ca_crl: {ca / "crl.pem"}
cert_validity_days: 90
cert_save_path: {ca / "certs"}
ca_cert_chain_list: []

[DBhandler]
handler_module: acme2certifier.dbhandlers.wsgi_handler
dbfile: {base / "acme_srv.db"}

[Certificate]
revocation_reason_check_disable: False

[Challenge]
challenge_validation_disable: False
challenge_validation_timeout: 5

[Order]
tnauthlist_support: False
profiles: {json.dumps(PROFILES)}

[Renewalinfo]
renewal_force: False
renewalthreshold_pctg: 85
retry_after_timeout: 3600
"""
    path = base / "acme_srv.cfg"
    path.write_text(cfg)
    return path


def _wait_directory(url: str, timeout: float = 30.0) -> dict:
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return json.loads(resp.read().decode())
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"acme2certifier did not answer {url}: {last}")


def facts() -> dict[str, str]:
    return {"PORTAIL_A2C_DIRECTORY": f"http://{HOST}:{PORT}/directory"}


def start(rig_dir: Path, logs: Path) -> dict[str, str]:
    base = Path(rig_dir).resolve() / "a2c"
    base.mkdir(parents=True, exist_ok=True)
    out = facts()
    out["PORTAIL_A2C_ROOTS"] = str(base / "ca" / "ca.pem")
    if _pid(base) and _port_open(PORT):
        return out
    python = _install(base)
    _make_ca(base / "ca")
    cfg = _config(base)
    (base / "serve.py").write_text(SERVE)
    Path(logs).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ACME_SRV_CONFIGFILE=str(cfg))
    with open(Path(logs) / "a2c.log", "ab") as log:
        proc = subprocess.Popen(
            [str(python), str(base / "serve.py"), HOST, str(PORT)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(base),
            start_new_session=True,
        )
    (base / "a2c.pid").write_text(str(proc.pid))
    directory = _wait_directory(out["PORTAIL_A2C_DIRECTORY"])
    if "renewalInfo" not in directory:
        _log("warning: this acme2certifier offers no renewalInfo")
    _log(f"up on {out['PORTAIL_A2C_DIRECTORY']}")
    return out


def stop(rig_dir: Path) -> None:
    base = Path(rig_dir).resolve() / "a2c"
    pid = _pid(base)
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            os.kill(pid, signal.SIGTERM)
        for _attempt in range(50):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    (base / "a2c.pid").unlink(missing_ok=True)
