"""The playbooks users run, timed against Ansible's own floor, on the same namespaced fleet in one run.

For each N (default 10 and 50) it brings up N fleet hosts (nginx, nftables, one site each, Pebble from
the rig as the CA) and times, with the same inventory and forks=N:

  raw        `ansible all -m raw -a true`   the floor of any Ansible run (one SSH execution per host)
  ping       `ansible all -m ping`          one Python module start per host
  site-1st   playbooks/site.yml, first run (firewall, nginx, certificate, 443, verification)
  bare-1st   then one bare acme_certificate task issuing a second certificate on every host (nginx up)
  bare       the same task again, no-op
  site-noop  playbooks/site.yml again (changed=0), median of --repeat runs
  renew-noop playbooks/renew.yml (changed=0), median of --repeat runs

then prints the ratios the project tracks (site no-op / ping, renew no-op / raw, site first run / bare
rollout) and, from one -vvv run of each no-op playbook, the SSH executions and Python module starts per
host (for N <= 10, or every N with --counts). Nothing here is asserted anywhere: it is a measurement.

Hosts are fleet indices FIRST .. FIRST+N-1 (default 30, the benchmark area of tests/README.md: N = 50
uses 30-79); every N reuses them. Hold the bench lock so that benches never overlap:

  flock /tmp/portail-bench.lock .venv/bin/python bench/playbooks.py [--first 30] [--repeat 3] [--counts]
      [--profile] [N ...]

(needs the rig: `make rig`, or PORTAIL_RIG_DIR pointing at a running one)
"""

from __future__ import annotations

import argparse
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

from tests import conftest  # noqa: E402  (links build/collections to this checkout, as pytest does)
from tests.fleet import fleet  # noqa: E402
from tests.integration.harness import ansible_env, rig_facts  # noqa: E402

WORK = REPO / "build" / "bench-playbooks"
BIN = REPO / ".venv" / "bin"

BARE = """
- name: bare acme_certificate task
  hosts: all
  gather_facts: false
  tasks:
    - name: Certificate
      portail.https.acme_certificate:
        names: ["{{ portail_fleet_fqdn }}"]
        acme_directory: "{{ certificate_acme_directory }}"
        acme_ca_bundle: "{{ certificate_acme_ca_bundle }}"
        account_key_src: "{{ certificate_account_key_src }}"
        terms_agreed: true
        challenge_dir: /var/www/portail/acme-challenge
        preflight_resolvers: ["{{ bench_resolver }}"]
        key_path: /etc/ssl/bench-bare/privkey.pem
        cert_path: /etc/ssl/bench-bare/cert.pem
        fullchain_path: /etc/ssl/bench-bare/fullchain.pem
"""


def inventory(hosts: list[fleet.Host], rig: dict[str, str], account: Path) -> Path:
    inv = fleet.inventory(hosts)
    for h in hosts:
        inv["all"]["hosts"][h.name]["portail_sites"] = [  # type: ignore[index]
            {"name": "main", "server_names": [h.fqdn], "root": "/var/www/main"}
        ]
    inv["all"]["vars"] = {  # type: ignore[index]
        "portail_webserver": "nginx",
        "portail_manage_firewall": True,
        "certificate_acme_directory": rig["PORTAIL_ACME_DIRECTORY"],
        "certificate_acme_ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "certificate_account_key_src": str(account),
        "certificate_terms_agreed": True,
        "portail_verify_ca_file": rig["PORTAIL_PEBBLE_ROOTS"],
        "bench_resolver": rig["PORTAIL_DNS_PRIMARY"],
    }
    path = WORK / f"inventory-{len(hosts)}.json"
    path.write_text(json.dumps(inv, indent=2))
    return path


PROFILE: dict[str, str] = {}


def timed(argv: list[str], forks: int, verbose: bool = False) -> tuple[float, str]:
    env = ansible_env({"ANSIBLE_FORKS": str(forks), "ANSIBLE_STDOUT_CALLBACK": "default", **PROFILE})
    if verbose:
        argv = [*argv, "-vvv"]
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=WORK, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit(f"failed: {' '.join(argv)}")
    return wall, proc.stdout


def counts(output: str, n: int) -> tuple[float, float]:
    """(SSH executions, Python module starts) per host, from -vvv output."""
    ssh = len(re.findall(r"^<[^>]+> SSH: EXEC ssh ", output, re.M))
    python = len(re.findall(r"^<[^>]+> SSH: EXEC ssh .*(python|AnsiballZ)", output, re.M))
    return ssh / n, python / n


def changed_total(output: str) -> int:
    return sum(int(c) for c in re.findall(r"changed=(\d+)", output))


def bench(
    n: int, first: int, repeat: int, rig: dict[str, str], account: Path, counts_always: bool = False
) -> dict[str, float]:
    hosts = fleet.up(range(first, first + n))
    inv = inventory(hosts, rig, account)

    def playbook(name: str) -> list[str]:
        return [str(BIN / "ansible-playbook"), "-i", str(inv), str(REPO / "playbooks" / name)]

    def adhoc(*a: str) -> list[str]:
        return [str(BIN / "ansible"), "all", "-i", str(inv), *a]

    bare_pb = WORK / "bare.yml"
    bare_pb.write_text(BARE)
    out: dict[str, float] = {}
    try:
        out["raw"] = statistics.median(timed(adhoc("-m", "raw", "-a", "true"), n)[0] for _i in range(repeat))
        out["ping"] = statistics.median(timed(adhoc("-m", "ping"), n)[0] for _i in range(repeat))
        out["site-1st"], text = timed(playbook("site.yml"), n)
        (WORK / f"site-1st-{n}.txt").write_text(text)
        # the bare task on the same hosts, nginx now serving the challenge directory on port 80
        out["bare-1st"] = timed([str(BIN / "ansible-playbook"), "-i", str(inv), str(bare_pb)], n)[0]
        out["bare"] = statistics.median(
            timed([str(BIN / "ansible-playbook"), "-i", str(inv), str(bare_pb)], n)[0] for _i in range(repeat)
        )
        runs = [timed(playbook("site.yml"), n) for _i in range(repeat)]
        out["site-noop"] = statistics.median(w for w, _out in runs)
        out["site-noop-changed"] = float(changed_total(runs[-1][1]))
        (WORK / f"site-noop-{n}.txt").write_text(runs[-1][1])
        runs = [timed(playbook("renew.yml"), n) for _i in range(repeat)]
        out["renew-noop"] = statistics.median(w for w, _out in runs)
        out["renew-noop-changed"] = float(changed_total(runs[-1][1]))
        if n <= 10 or counts_always:
            _wall, text = timed(playbook("site.yml"), n, verbose=True)
            out["site-ssh/host"], out["site-python/host"] = counts(text, n)
            _wall, text = timed(playbook("renew.yml"), n, verbose=True)
            out["renew-ssh/host"], out["renew-python/host"] = counts(text, n)
    finally:
        fleet.down(hosts)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10, 50])
    parser.add_argument("--first", type=int, default=30, help="first fleet index (tests/README.md lists the areas)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--counts", action="store_true", help="count SSH executions and Python starts for every N")
    parser.add_argument(
        "--profile", action="store_true", help="profile_tasks on every run; print the site runs' top tasks"
    )
    opts = parser.parse_args()
    if opts.profile:
        PROFILE.update(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="12")
    WORK.mkdir(parents=True, exist_ok=True)
    if not (conftest.COLLECTIONS / "ansible_collections" / "portail" / "https").is_dir():
        raise SystemExit(f"the collection is not linked under {conftest.COLLECTIONS}")
    os.environ.setdefault("PORTAIL_RIG_DIR", str(REPO / "build" / "rig"))
    rig = rig_facts()
    account = WORK / "account.key"
    if not account.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        account.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        account.chmod(0o600)
    for n in opts.sizes:
        r = bench(n, opts.first, opts.repeat, rig, account, opts.counts)
        print(f"\nN = {n} hosts, forks = {n}, medians of {opts.repeat}")
        for key in ("raw", "ping", "bare-1st", "bare", "site-1st", "site-noop", "renew-noop"):
            print(f"  {key:<11} {r[key]:7.1f} s")
        print(f"  site no-op  / ping        {r['site-noop'] / r['ping']:5.1f}x   (target <= 5x)")
        print(f"  renew no-op / raw         {r['renew-noop'] / r['raw']:5.1f}x   (target <= 2x)")
        print(f"  site first  / bare 1st    {r['site-1st'] / r['bare-1st']:5.1f}x   (target <= 3x + web server start)")
        print(f"  changed in no-op runs: site {r['site-noop-changed']:.0f}, renew {r['renew-noop-changed']:.0f}")
        if "site-ssh/host" in r:
            site = f"site no-op {r['site-ssh/host']:.0f} SSH executions, {r['site-python/host']:.0f} Python starts"
            renew = f"renew no-op {r['renew-ssh/host']:.0f} SSH executions, {r['renew-python/host']:.0f} Python starts"
            print(f"  per host: {site}; {renew}")
        if opts.profile:
            for run in ("site-1st", "site-noop"):
                text = (WORK / f"{run}-{n}.txt").read_text()
                top = [x for x in text.split("TASKS RECAP")[-1].splitlines() if x.rstrip().endswith("s")][:12]
                print(f"  {run} top tasks (profile_tasks, summed over hosts' wall clock):")
                for line in top:
                    print("    " + line.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
