"""How long DNS-01 record handling takes against the rig's BIND (primary + secondary):
add (one UPDATE per zone) + wait until both authoritative servers serve every value + remove,
for 1 and 20 names. Run: .venv/bin/python bench/dns_propagation.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import COLLECTIONS  # noqa: E402  (importing it links the collection)

sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.portail.https.plugins.module_utils._dns.base import deadline_after  # noqa: E402
from ansible_collections.portail.https.plugins.module_utils._dns.names import challenge_name  # noqa: E402
from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider  # noqa: E402


def one_run(facts: dict[str, str], count: int) -> dict[str, float]:
    provider = make_provider(
        "rfc2136",
        {
            "server": facts["PORTAIL_DNS_PRIMARY"],
            "key_name": facts["PORTAIL_TSIG_NAME"],
            "key_secret": facts["PORTAIL_TSIG_SECRET"],
            "key_algorithm": facts["PORTAIL_TSIG_ALGORITHM"],
        },
    )
    tag = secrets.token_hex(3)
    records = [
        (challenge_name(f"bench-{tag}-{i}.{facts['PORTAIL_DNS_ZONE']}"), secrets.token_urlsafe(32)[:43])
        for i in range(count)
    ]
    t0 = time.monotonic()
    placed = provider.add_txt_records(records)
    t1 = time.monotonic()
    report = provider.wait_visible_records(placed, deadline_after(120))
    t2 = time.monotonic()
    provider.remove_txt_records(placed)
    t3 = time.monotonic()
    return {"add": t1 - t0, "wait": t2 - t1, "remove": t3 - t2, "total": t3 - t0, "rounds": report["rounds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    facts = json.loads((REPO / "build" / "rig" / "rig.json").read_text())
    head = f"{'names':>5} {'add s':>7} {'wait s':>7} {'remove s':>8} {'total s':>8} {'polls':>5}"
    print(f"{head}  (median of {args.rounds} runs)")
    for count in (1, 20):
        runs = [one_run(facts, count) for _round in range(args.rounds)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{count:>5} {med['add']:>7.3f} {med['wait']:>7.3f} {med['remove']:>8.3f} "
            f"{med['total']:>8.3f} {int(med['rounds']):>5}"
        )


if __name__ == "__main__":
    main()
