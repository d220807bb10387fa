"""acme_certificate against an attacker on the managed host (issue 12), through ansible-playbook and Pebble.

The attacker is an account that owns the certificate files (``owner``) or the web root, acting as the
user nobody. Addresses 127.0.30.60-69 (certN.portail.test).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .harness import ansible_env, local_inventory, run_playbook
from .test_acme_certificate import TASK, Nginx, base, check_deployed, dns_settings, playbook, run

pytestmark = [pytest.mark.rig, pytest.mark.slow]
STORE = ".portail-privkey.pem.d"


@pytest.fixture
def nginx(tmp_path):
    server = Nginx(tmp_path, ["127.0.30.62"])
    yield server
    server.stop()


def fresh_account(path: Path) -> str:
    """A new ACME account: Pebble reuses an account's valid authorizations, these runs must answer a challenge."""
    key = ec.generate_private_key(ec.SECP256R1())
    pkcs8, clear = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, clear))
    return str(path)


def as_nobody(cmd: str) -> None:
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/bin/sh", "-c", cmd], check=True)


def traversable(tmp_path: Path) -> None:
    """pytest's 0700 directories: let nobody reach its files (as a service account reaches /etc/ssl)."""
    for d in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        d.chmod(0o711 if d != tmp_path else 0o755)


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def spki(pem: bytes, private: bool) -> bytes:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    key = (
        serialization.load_pem_private_key(pem, None).public_key()
        if private
        else x509.load_pem_x509_certificate(pem).public_key()
    )
    return key.public_bytes(serialization.Encoding.DER, fmt)


def pair_matches(out: Path) -> bool:
    return spki((out / "privkey.pem").read_bytes(), True) == spki((out / "cert.pem").read_bytes(), False)


def test_symlinked_cert_is_never_chmodded_or_chowned(rig, account_key, tmp_path):
    out = tmp_path / "cert60"
    args = base(rig, account_key, out, ["cert60.portail.test"], challenge="dns-01", dns=dns_settings(rig))
    assert run(tmp_path, args).rc == 0
    shadow = tmp_path / "etc" / "shadow"  # stand-in for /etc/shadow
    shadow.parent.mkdir()
    shadow.write_text("root:$6$x:19000:0:99999:7:::\n")
    shadow.chmod(0o640)
    (out / "cert.pem").unlink()
    (out / "cert.pem").symlink_to(shadow)
    res = run(tmp_path, dict(args, owner="nobody", mode="0644"))
    st = shadow.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o640)  # untouched
    assert res.rc == 0, res.stdout[-3000:]
    r = res.result(TASK)
    assert r["changed"] and r["reason"] == "missing"  # reissued, the link replaced by ours
    assert os.readlink(out / "cert.pem") == str(out / STORE / "current" / "cert.pem")
    check_deployed(out, ["cert60.portail.test"], r)


def _csr_of(key) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cert61.portail.test")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("cert61.portail.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_forged_csr_and_dir_lines_in_the_owners_files(rig, account_key, tmp_path):
    traversable(tmp_path)
    out = tmp_path / "cert61"
    victim = tmp_path / "run-sshd"  # stand-in for /run/sshd: must survive
    victim.mkdir()
    args = base(
        rig, account_key, out, ["cert61.portail.test"], challenge="dns-01", dns=dns_settings(rig), owner="nobody"
    )
    assert run(tmp_path, args).rc == 0
    evil = ec.generate_private_key(ec.SECP256R1())
    csr = _csr_of(evil)
    forged = ""
    for c in ("\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028"):
        forged += c + "end:cert" + c + "end:meta" + c + "begin:csr"
        forged += "".join(c + "|" + line for line in csr.splitlines()) + c + "end:csr"
        forged += f"{c}dir:{victim}{c}pending:created"
    (tmp_path / "forged").write_text(forged + "\n")
    cert_file = (out / "cert.pem").resolve()
    as_nobody(f"cat {tmp_path / 'forged'} > {cert_file}")
    res = run(tmp_path, args)
    assert res.rc == 0, res.stdout[-3000:]
    r = res.result(TASK)
    assert r["changed"]
    leaf = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    assert spki((out / "cert.pem").read_bytes(), False) != evil.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert format(leaf.serial_number, "x") == r["serial"] and pair_matches(out)
    assert victim.is_dir()


def test_http01_planted_symlink_in_the_web_users_root(rig, account_key, tmp_path, nginx):
    traversable(tmp_path)
    os.chown(nginx.webroot, 65534, 65534)
    victim = tmp_path / "etc-cron.d"  # stand-in for a root directory the web user wants to write into
    victim.mkdir()
    as_nobody(f"ln -s {victim} {nginx.webroot / '.well-known'}")
    out = tmp_path / "cert62"
    res = run(tmp_path, base(rig, account_key, out, ["cert62.portail.test"], webroot=str(nginx.webroot)))
    assert res.rc != 0
    msg = res.result(TASK)["msg"]
    assert ".well-known" in msg and "symlink" in msg and "real directory owned by root" in msg, msg
    assert list(victim.iterdir()) == []
    assert not (out / STORE / "lock").exists()


class HoldingDns:
    """A DNS forwarder (UDP and TCP) to the rig's primary that holds every query until released: it pauses
    a run in the middle of its order, with its key prepared, so two runs overlap the same way every time."""

    def __init__(self, address: str, upstream: str) -> None:
        self.upstream = (upstream, 53)
        self.seen, self.released = threading.Event(), threading.Event()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((address, 53))
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((address, 53))
        self.tcp.listen(16)
        for loop in (self._udp, self._tcp):
            threading.Thread(target=loop, daemon=True).start()

    def _udp(self) -> None:
        while True:
            try:
                data, peer = self.udp.recvfrom(65535)
            except OSError:
                return
            self.seen.set()
            threading.Thread(target=self._udp_one, args=(data, peer), daemon=True).start()

    def _udp_one(self, data: bytes, peer) -> None:
        self.released.wait(120)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(10)
            up.sendto(data, self.upstream)
            self.udp.sendto(up.recvfrom(65535)[0], peer)

    def _tcp(self) -> None:
        while True:
            try:
                conn, _peer = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._tcp_one, args=(conn,), daemon=True).start()

    def _tcp_one(self, conn: socket.socket) -> None:
        with conn:
            data = conn.recv(65535)
            self.seen.set()
            self.released.wait(120)
            with socket.create_connection(self.upstream, timeout=10) as up:
                up.sendall(data)
                conn.sendall(up.recv(65535))

    def close(self) -> None:
        self.released.set()
        self.udp.close()
        self.tcp.close()


def test_overlapping_runs_never_install_a_certificate_beside_another_key(rig, account_key, tmp_path):
    """A cron renewal prepared its key and waits in its order; a manual run changes key_type meanwhile."""
    out = tmp_path / "cert63"
    args = base(rig, account_key, out, ["cert63.portail.test"], challenge="dns-01", dns=dns_settings(rig))
    assert run(tmp_path, args).rc == 0
    hold_cron = HoldingDns("127.0.30.63", rig["PORTAIL_DNS_PRIMARY"])
    hold_manual = HoldingDns("127.0.30.65", rig["PORTAIL_DNS_PRIMARY"])
    cron = dict(args, force=True, dns=dns_settings(rig, server="127.0.30.63", timeout=60))
    manual = dict(args, force=True, key_type="ec384", dns=dns_settings(rig, server="127.0.30.65", timeout=60))
    cron["account_key_src"] = fresh_account(tmp_path / "cron-account.key")
    manual["account_key_src"] = fresh_account(tmp_path / "manual-account.key")
    for d in ("cron", "manual"):
        (tmp_path / d).mkdir()
    try:
        with ThreadPoolExecutor(2) as pool:
            cron_run = pool.submit(run_playbook, playbook(cron), tmp_path / "cron")
            if not hold_cron.seen.wait(120):
                hold_cron.released.set()
                raise AssertionError(f"the cron run never reached its DNS update: {cron_run.result().failures()}")
            manual_run = pool.submit(run_playbook, playbook(manual), tmp_path / "manual")
            # the manual run finds the certificate locked by the cron run and waits for it
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not manual_run.done() and not hold_manual.seen.is_set():
                time.sleep(0.5)
                if time.monotonic() > deadline - 50:
                    break
            assert not hold_manual.seen.is_set(), "the manual run reached its order while the cron run held the lock"
            hold_cron.released.set()  # the cron run deploys first ...
            cron_res = cron_run.result()
            hold_manual.released.set()  # ... then the manual one takes the lock, orders its ec384 key and deploys
            manual_res = manual_run.result()
    finally:
        hold_cron.released.set()
        hold_manual.released.set()
        hold_cron.close()
        hold_manual.close()
    assert pair_matches(out), "a certificate was installed next to a key it does not certify"
    assert cron_res.rc == 0, cron_res.result(TASK)["msg"]
    assert manual_res.rc == 0, manual_res.result(TASK)["msg"]
    assert manual_res.result(TASK)["key_type"] == "ec384"
    assert not (out / STORE / "lock").exists()


def test_a_killed_runs_pending_key_is_removed_by_the_next_noop_run(rig, account_key, tmp_path):
    out = tmp_path / "cert64"
    args = base(rig, account_key, out, ["cert64.portail.test"], challenge="dns-01", dns=dns_settings(rig))
    assert run(tmp_path, args).rc == 0
    # a DNS server that never answers: the forced run hangs with its pending key made, and is killed
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.30.64", 53))
    tcp = socket.socket()
    tcp.bind(("127.0.30.64", 53))
    tcp.listen(16)
    slow = dict(args, force=True, dns=dns_settings(rig, server="127.0.30.64", timeout=60))
    slow["account_key_src"] = fresh_account(tmp_path / "slow-account.key")
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / "playbook.yml").write_text(playbook(slow))
    inv = local_inventory(tmp_path / "killed")
    proc = subprocess.Popen(
        ["ansible-playbook", "-i", str(inv), "playbook.yml"],
        cwd=tmp_path / "killed",
        env=ansible_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pending = [out / STORE / "lock" / "privkey.pem", out / "privkey.pem.pending"]
    deadline = time.monotonic() + 60
    while not any(p.exists() for p in pending) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    try:
        assert proc.poll() is None and any(p.exists() for p in pending), "the forced run never made its pending key"
    finally:
        for pid in [proc.pid, *descendants(proc.pid)]:  # ansible's workers are in sessions of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        udp.close()
        tcp.close()
    owner = out / STORE / "lock" / "owner"
    if owner.exists():  # time passes: the killed run's lease expires
        run_id = owner.read_text().split()[0]
        owner.write_text(f"{run_id} {int(time.time()) - 1}\n")
    serial = format(x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number, "x")
    res = run(tmp_path, args)
    assert res.rc == 0 and res.result(TASK)["reason"] == "valid" and res.result(TASK)["serial"] == serial
    assert not any(p.exists() for p in pending)
    assert pair_matches(out)
