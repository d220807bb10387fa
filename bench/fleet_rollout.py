"""Fleet rollout benchmark: portail.https against community.crypto's documented ACME flow.

Same fleet (namespaced SSH hosts from tests/fleet), same CA (a dedicated Pebble instance reached by
controller and hosts at 198.18.1.254:14010, no nonce rejection, no authz reuse), same webroot
(Debian's default nginx site on port 80 of every host). For each flow and each N it measures:

  (a) rollout wall time: every host gets a new single-name HTTP-01 certificate;
  (b) no-op wall time: the same playbook again, nothing to do;
  (c) CA requests per certificate, counted from Pebble's own request log.

Prints a table with the ratios. Usage: .venv/bin/python bench/fleet_rollout.py [N ...]  (default 10 50)
Needs the rig (make rig). No figure here is asserted anywhere: it is a measurement.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from tests.fleet import fleet  # noqa: E402

RIG = REPO / "build" / "rig"
WORK = REPO / "build" / "bench-fleet"
PEBBLE_ADDR = "198.18.1.254"
PEBBLE_PORT = 14010
DIRECTORY = f"https://{PEBBLE_ADDR}:{PEBBLE_PORT}/dir"
FIRST_HOST = 30
BIN = REPO / ".venv" / "bin"

PORTAIL_PLAYBOOK = """
- name: portail.https rollout
  hosts: all
  gather_facts: false
  tasks:
    - name: Certificate
      portail.https.acme_certificate:
        names: ["{{ portail_fleet_fqdn }}"]
        acme_directory: "{{ bench_directory }}"
        acme_ca_bundle: "{{ bench_ca_bundle }}"
        account_key_src: "{{ bench_account_key }}"
        terms_agreed: true
        challenge: http-01
        webroot: /var/www/html
        key_path: /etc/ssl/bench/privkey.pem
        cert_path: /etc/ssl/bench/cert.pem
        chain_path: /etc/ssl/bench/chain.pem
        fullchain_path: /etc/ssl/bench/fullchain.pem
"""

# community.crypto's documented flow: private key, CSR, acme_certificate (creates the order and
# returns the challenge), copy the challenge file, acme_certificate again (validates, finalizes).
CC_PLAYBOOK = """
- name: community.crypto rollout
  hosts: all
  gather_facts: false
  tasks:
    - name: Private key
      community.crypto.openssl_privatekey:
        path: /etc/ssl/bench/privkey.pem
        type: ECC
        curve: secp256r1
        mode: "0600"
    - name: CSR
      community.crypto.openssl_csr:
        path: /etc/ssl/bench/cert.csr
        privatekey_path: /etc/ssl/bench/privkey.pem
        subject_alt_name: "DNS:{{ portail_fleet_fqdn }}"
    - name: Create the order and get the challenge
      community.crypto.acme_certificate:
        acme_version: 2
        acme_directory: "{{ bench_directory }}"
        account_key_content: "{{ bench_account_key_content }}"
        modify_account: true
        terms_agreed: true
        csr: /etc/ssl/bench/cert.csr
        dest: /etc/ssl/bench/cert.pem
        fullchain_dest: /etc/ssl/bench/fullchain.pem
        challenge: http-01
        remaining_days: 30
      environment:
        SSL_CERT_FILE: "{{ bench_ca_bundle }}"
      register: challenge
    - name: Place the challenge file
      ansible.builtin.copy:
        dest: "/var/www/html/{{ challenge['challenge_data'][portail_fleet_fqdn]['http-01']['resource'] }}"
        content: "{{ challenge['challenge_data'][portail_fleet_fqdn]['http-01']['resource_value'] }}"
        mode: "0644"
      when: challenge is changed and portail_fleet_fqdn in challenge['challenge_data']
    - name: Let the CA validate and get the certificate
      community.crypto.acme_certificate:
        acme_version: 2
        acme_directory: "{{ bench_directory }}"
        account_key_content: "{{ bench_account_key_content }}"
        modify_account: true
        terms_agreed: true
        csr: /etc/ssl/bench/cert.csr
        dest: /etc/ssl/bench/cert.pem
        fullchain_dest: /etc/ssl/bench/fullchain.pem
        challenge: http-01
        remaining_days: 30
        data: "{{ challenge }}"
      environment:
        SSL_CERT_FILE: "{{ bench_ca_bundle }}"
"""


def listener_cert() -> tuple[Path, Path]:
    """A TLS certificate for the bench Pebble's listener, signed by the rig's listener CA."""
    crt, key = WORK / "listener.pem", WORK / "listener.key"
    if crt.exists():
        return crt, key
    import ipaddress

    ca_key = serialization.load_pem_private_key((RIG / "tls" / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((RIG / "tls" / "ca.pem").read_bytes())
    k = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PEBBLE_ADDR)]))
        .issuer_name(ca.subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(PEBBLE_ADDR))]), False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return crt, key


class BenchPebble:
    def __init__(self) -> None:
        self.log = WORK / "pebble.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        crt, key = listener_cert()
        cfg = {
            "pebble": {
                "listenAddress": f"{PEBBLE_ADDR}:{PEBBLE_PORT}",
                "managementListenAddress": f"{PEBBLE_ADDR}:{PEBBLE_PORT + 1000}",
                "certificate": str(crt),
                "privateKey": str(key),
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": 7776000,
            }
        }
        (WORK / "pebble.json").write_text(json.dumps(cfg))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
        self.proc = subprocess.Popen(
            ["/usr/bin/pebble", "-config", str(WORK / "pebble.json"), "-dnsserver", "127.53.0.1:53"],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        import socket

        for _attempt in range(100):
            try:
                socket.create_connection((PEBBLE_ADDR, PEBBLE_PORT), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("bench pebble did not start")

    def requests(self) -> int:
        return sum(1 for line in self.log.read_text().splitlines() if "-> calling handler()" in line)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)


def run(playbook: str, inventory: Path, extra: dict[str, str], forks: int) -> float:
    pb = WORK / "playbook.yml"
    pb.write_text(playbook)
    ev = WORK / "vars.json"
    ev.write_text(json.dumps(extra))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
        ANSIBLE_DISPLAY_OK_HOSTS="False",
        ANSIBLE_DISPLAY_SKIPPED_HOSTS="False",
    )
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(forks), "-e", f"@{ev}", str(pb)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        (WORK / "last-failure.log").write_text(proc.stdout + proc.stderr)
        raise SystemExit(f"playbook failed (rc={proc.returncode}); see {WORK / 'last-failure.log'}")
    return wall


RESET = (
    "rm -rf /etc/ssl/bench /var/www/html/.well-known; mkdir -p /etc/ssl/bench /var/www/html/.well-known/acme-challenge"
)


def reset_hosts(hosts: list[fleet.Host]) -> None:
    for h in hosts:
        fleet.exec_in(h, ["sh", "-c", RESET])


def ensure_collection_link() -> None:
    link = REPO / "build" / "collections" / "ansible_collections" / "portail" / "https"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO, target_is_directory=True)


def bench(n: int, forks: int) -> dict[str, dict[str, float]]:
    hosts = fleet.up(range(FIRST_HOST, FIRST_HOST + n))
    for h in hosts:
        fleet.exec_in(h, ["sh", "-c", "nginx -t -q && (nginx -s reload 2>/dev/null || nginx)"], check=True)
    inv = fleet.write_inventory(WORK / f"inventory-{n}.json", hosts)
    account = WORK / "account.key"
    if not account.exists():
        k = ec.generate_private_key(ec.SECP256R1())
        account.write_bytes(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        account.chmod(0o600)
    extra = {
        "bench_directory": DIRECTORY,
        "bench_ca_bundle": str(RIG / "tls" / "ca.pem"),
        "bench_account_key": str(account),
        "bench_account_key_content": account.read_text(),
    }
    results: dict[str, dict[str, float]] = {}
    wanted = os.environ.get("BENCH_FLOWS", "community.crypto,portail.https").split(",")
    flows = [(f, p) for f, p in (("community.crypto", CC_PLAYBOOK), ("portail.https", PORTAIL_PLAYBOOK)) if f in wanted]
    for flow, playbook in flows:
        reset_hosts(hosts)
        pebble = BenchPebble()
        pebble.start()
        try:
            before = pebble.requests()
            rollout = run(playbook, inv, extra, forks)
            mid = pebble.requests()
            noop = run(playbook, inv, extra, forks)
            after = pebble.requests()
        finally:
            pebble.stop()
        results[flow] = {
            "rollout_s": rollout,
            "noop_s": noop,
            "requests_per_cert": (mid - before) / n,
            "noop_requests_per_cert": (after - mid) / n,
        }
    fleet.down(hosts)
    return results


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 50]
    ensure_collection_link()
    WORK.mkdir(parents=True, exist_ok=True)
    forks = int(os.environ.get("BENCH_FORKS", "10"))
    table = []
    for n in sizes:
        r = bench(n, forks)
        table.append((n, r))
    print(f"\nfleet rollout, HTTP-01, one new single-name certificate per host, forks={forks}")
    hdr = f"{'N':>4} {'metric':<26} {'community.crypto':>17} {'portail.https':>14} {'ratio':>8}"
    print(hdr)
    print("-" * len(hdr))
    for n, r in table:
        if len(r) < 2:
            print(n, json.dumps(r))
            continue
        cc, pt = r["community.crypto"], r["portail.https"]
        for key, label in (
            ("rollout_s", "rollout wall time (s)"),
            ("noop_s", "no-op rerun wall time (s)"),
            ("requests_per_cert", "CA requests / certificate"),
            ("noop_requests_per_cert", "CA requests / no-op cert"),
        ):
            ratio = f"{cc[key] / pt[key]:.1f}x" if pt[key] else "n/a"
            print(f"{n:>4} {label:<26} {cc[key]:>17.2f} {pt[key]:>14.2f} {ratio:>8}")
    (WORK / "results.json").write_text(json.dumps(dict(table), indent=2, default=str))
    shutil.rmtree(tempfile.gettempdir() + "/portail-bench", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
