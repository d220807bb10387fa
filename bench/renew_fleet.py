"""Renew no-op benchmark: what a scheduled `portail.https.renew` costs when nothing is due.

Same fleet inventory (namespaced SSH hosts from tests/fleet), same forks, one run of this script. For
each N it first issues one DNS-01 certificate per host (the rig's Pebble and BIND; untimed), then
times, interleaved, `BENCH_REPEAT` times each:

  raw    ansible all -m raw -a true            (the floor of any Ansible run: one SSH execution per host)
  ping   ansible all -m ping                   (one Python module start per host)
  renew  ansible-playbook portail.https.renew  (nothing due: every certificate still good)
  play   ansible-playbook with one raw task      (the floor of any playbook: what ansible-playbook adds to raw)

and prints the medians and the ratios, plus SSH executions and Python module starts per host counted
from one extra -vvv run of each. Usage:
  PORTAIL_RIG_DIR=/work/main/build/rig .venv/bin/python bench/renew_fleet.py [N ...]   (default 10 50)
Environment: BENCH_FIRST_HOST (170), BENCH_REPEAT (3), BENCH_FORKS (N). Needs the rig (make rig).
No figure here is asserted anywhere: it is a measurement.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from tests.fleet import fleet  # noqa: E402

RIG = Path(os.environ.get("PORTAIL_RIG_DIR", REPO / "build" / "rig"))
WORK = REPO / "build" / "bench-renew"
BIN = REPO / ".venv" / "bin"
FIRST_HOST = int(os.environ.get("BENCH_FIRST_HOST", "170"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def env() -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
        ANSIBLE_LOCAL_TEMP=str(REPO / "build" / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
    )


def ensure_collection_link() -> None:
    link = REPO / "build" / "collections" / "ansible_collections" / "portail" / "https"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO, target_is_directory=True)


def inventory(n: int, hosts: list[fleet.Host]) -> Path:
    rig = json.loads((RIG / "rig.json").read_text())
    account = WORK / "account.key"
    if not account.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        account.write_bytes(pem)
        account.chmod(0o600)
    inv = fleet.inventory(hosts)
    for h in hosts:
        inv["all"]["hosts"][h.name]["portail_sites"] = [  # type: ignore[index]
            {"name": "main", "server_names": [h.fqdn], "challenge": "dns-01"}
        ]
    inv["all"]["vars"] = {  # type: ignore[index]
        "certificate_acme_directory": rig["PORTAIL_ACME_DIRECTORY"],
        "certificate_acme_ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "certificate_account_key_src": str(account),
        "certificate_terms_agreed": True,
        "certificate_dns": {
            "server": rig["PORTAIL_DNS_PRIMARY"],
            "key_name": rig["PORTAIL_TSIG_ACME_NAME"],
            "key_secret": rig["PORTAIL_TSIG_ACME_SECRET"],
            "key_algorithm": rig["PORTAIL_TSIG_ALGORITHM"],
        },
    }
    path = WORK / f"inventory-{n}.json"
    path.write_text(json.dumps(inv, indent=1))
    return path


FLOOR_PLAYBOOK = """- name: Floor
  hosts: all
  gather_facts: false
  tasks:
    - name: One command
      ansible.builtin.raw: 'true'
"""


def command(kind: str, inv: Path, forks: int) -> list[str]:
    if kind == "play":  # written once by main(), outside any timing
        return [str(BIN / "ansible-playbook"), "-i", str(inv), "-f", str(forks), str(WORK / "floor.yml")]
    if kind == "raw":
        return [str(BIN / "ansible"), "all", "-i", str(inv), "-f", str(forks), "-m", "raw", "-a", "true"]
    if kind == "ping":
        return [str(BIN / "ansible"), "all", "-i", str(inv), "-f", str(forks), "-m", "ping"]
    return [str(BIN / "ansible-playbook"), "-i", str(inv), "-f", str(forks), str(REPO / "playbooks" / "renew.yml")]


def timed(kind: str, inv: Path, forks: int) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(command(kind, inv, forks), env=env(), capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        (WORK / "last-failure.log").write_text(proc.stdout + proc.stderr)
        raise SystemExit(f"{kind} failed (rc={proc.returncode}); see {WORK / 'last-failure.log'}")
    if kind == "renew" and re.search(r"\| CHANGED", proc.stdout):
        raise SystemExit(f"the renew no-op changed something:\n{proc.stdout[-3000:]}")
    return wall


def counts(kind: str, inv: Path, forks: int, n: int) -> tuple[float, float]:
    """(SSH executions, Python module starts) per host, from one -vvv run."""
    proc = subprocess.run([*command(kind, inv, forks), "-vvv"], env=env(), capture_output=True, text=True, check=False)
    lines = proc.stdout.splitlines()
    execs = [ln for ln in lines if "SSH: EXEC" in ln]
    python = [ln for ln in execs if "python" in ln]
    return len(execs) / n, len(python) / n


def bench(n: int) -> dict[str, float]:
    forks = int(os.environ.get("BENCH_FORKS", str(n)))
    hosts = fleet.up(range(FIRST_HOST, FIRST_HOST + n))
    try:
        inv = inventory(n, hosts)
        t0 = time.monotonic()
        subprocess.run(command("renew", inv, forks), env=env(), capture_output=True, text=True, check=True)
        first = time.monotonic() - t0
        samples: dict[str, list[float]] = {"raw": [], "ping": [], "play": [], "renew": []}
        for _round in range(REPEAT):
            for kind in samples:
                samples[kind].append(timed(kind, inv, forks))
        out: dict[str, float] = {"first_issuance_s": first, "forks": forks}
        for kind, values in samples.items():
            out[f"{kind}_s"] = statistics.median(values)
        for kind in samples:
            ex, py = counts(kind, inv, forks, n)
            out[f"{kind}_ssh_per_host"] = ex
            out[f"{kind}_python_per_host"] = py
        return out
    finally:
        fleet.down(hosts)


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 50]
    ensure_collection_link()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "floor.yml").write_text(FLOOR_PLAYBOOK)
    table = {n: bench(n) for n in sizes}
    print(f"\nrenew with nothing due vs the Ansible floor, medians of {REPEAT}, forks = N")
    hdr = (
        f"{'N':>4} {'raw s':>7} {'ping s':>7} {'play s':>7} {'renew s':>8} {'renew/raw':>10} {'renew/ping':>11}"
        f" {'renew/play':>11} {'first issue s':>14}"
    )
    print(hdr)
    print("-" * len(hdr))
    for n, r in table.items():
        print(
            f"{n:>4} {r['raw_s']:>7.2f} {r['ping_s']:>7.2f} {r['play_s']:>7.2f} {r['renew_s']:>8.2f} "
            f"{r['renew_s'] / r['raw_s']:>9.2f}x {r['renew_s'] / r['ping_s']:>10.2f}x"
            f" {r['renew_s'] / r['play_s']:>10.2f}x {r['first_issuance_s']:>14.1f}"
        )
    print("\nper host, from one -vvv run: SSH executions / Python module starts")
    for n, r in table.items():
        print(
            f"{n:>4} raw {r['raw_ssh_per_host']:.1f}/{r['raw_python_per_host']:.1f}  "
            f"ping {r['ping_ssh_per_host']:.1f}/{r['ping_python_per_host']:.1f}  "
            f"renew {r['renew_ssh_per_host']:.1f}/{r['renew_python_per_host']:.1f}"
        )
    (WORK / "results.json").write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
