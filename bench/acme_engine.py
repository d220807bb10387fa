"""ACME engine benchmark against the rig's Pebble: request counts per order type, 100 concurrent orders.

Usage: .venv/bin/python bench/acme_engine.py [--orders 100] [--workers 25]
Uses acme100-acme219.portail.test (127.0.10.100-219) for http-01 and acme220.portail.test (TXT) for dns-01.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.conftest import _link_collection  # noqa: E402

_link_collection()

from ansible_collections.portail.https.plugins.module_utils._acme import AccountKey, AcmeClient, issue  # noqa: E402

from tests.integration.acme_support import Http01Responder, acme_addr, acme_name, make_csr  # noqa: E402
from tests.integration.harness import rig_facts  # noqa: E402


def dns_txt(rig, name, value, delete=False):
    """RFC 2136 UPDATE of the dns-01 TXT record on the rig's primary (TSIG key restricted to TXT)."""
    import dns.query
    import dns.tsigkeyring
    import dns.update

    keyring = dns.tsigkeyring.from_text({rig["PORTAIL_TSIG_ACME_NAME"]: rig["PORTAIL_TSIG_ACME_SECRET"]})
    upd = dns.update.UpdateMessage(rig["PORTAIL_DNS_ZONE"], keyring=keyring, keyalgorithm=rig["PORTAIL_TSIG_ALGORITHM"])
    if delete:
        upd.delete(name + ".", "TXT", f'"{value}"')
    else:
        upd.add(name + ".", 30, "TXT", f'"{value}"')
    if dns.query.tcp(upd, rig["PORTAIL_DNS_PRIMARY"], timeout=5).rcode() != 0:
        raise RuntimeError(f"DNS update of {name} refused")
    if not delete:
        wait_served(rig, name, value)


def wait_served(rig, name, value, timeout=20.0):
    """Wait until both authoritative servers serve the value (the CA's resolver may ask either)."""
    import dns.message
    import dns.query

    deadline = time.monotonic() + timeout
    for server in (rig["PORTAIL_DNS_PRIMARY"], rig["PORTAIL_DNS_SECONDARY"]):
        while True:
            answer = dns.query.udp(dns.message.make_query(name + ".", "TXT"), server, timeout=2)
            if value in {b"".join(rd.strings).decode() for rrset in answer.answer for rd in rrset}:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} TXT not served by {server}")
            time.sleep(0.05)


def count_dns01(rig, label, names):
    c = fresh(rig, account(rig))
    csr, _csr_key = make_csr(names)
    published = []

    def publish(ch):
        dns_txt(rig, ch.dns_name, ch.dns_value)
        published.append(ch)

    t = time.monotonic()
    try:
        issue(c, names, csr, publish, challenge_type="dns-01", deadline=60)
    finally:
        for ch in published:
            dns_txt(rig, ch.dns_name, ch.dns_value, delete=True)
    dt = time.monotonic() - t
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(c.requests_by_kind.items()))
    print(f"{label:46} {c.requests:3} requests  {dt * 1000:6.0f} ms  badNonce retries {c.bad_nonce_retried}  ({kinds})")


def fresh(rig, c, directory=None):
    return AcmeClient(
        directory or c.directory_url, c.key, account_url=c.account_url, ca_bundle=rig["PORTAIL_ACME_CA_BUNDLE"]
    )


def account(rig, directory_key="PORTAIL_ACME_DIRECTORY"):
    c = AcmeClient(rig[directory_key], AccountKey.generate(), ca_bundle=rig["PORTAIL_ACME_CA_BUNDLE"])
    c.account().create(contact=["mailto:bench@portail.test"], terms_agreed=True)
    return c


def count(rig, responder, label, names, directory_key="PORTAIL_ACME_DIRECTORY"):
    c = fresh(rig, account(rig, directory_key))
    csr, _csr_key = make_csr(names)
    t = time.monotonic()
    issue(c, names, csr, responder.publish, cleanup=responder.cleanup)
    dt = time.monotonic() - t
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(c.requests_by_kind.items()))
    print(f"{label:46} {c.requests:3} requests  {dt * 1000:6.0f} ms  badNonce retries {c.bad_nonce_retried}  ({kinds})")
    return c.requests


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--workers", type=int, default=25)
    args = ap.parse_args()
    rig = rig_facts()
    idx = list(range(100, 100 + max(args.orders, 20)))
    with Http01Responder([acme_addr(n) for n in idx]) as responder:
        print("request counts, known account, fresh client (directory + newNonce included):")
        count(rig, responder, "1 dns name, http-01", [acme_name(100)])
        count(rig, responder, "1 ip address, http-01", [acme_addr(101)])
        count(rig, responder, "3 names (2 dns + 1 ip), http-01", [acme_name(102), acme_name(103), acme_addr(104)])
        count_dns01(rig, "wildcard + apex, dns-01 (RFC 2136)", ["*.acme220.portail.test", "acme220.portail.test"])
        count(
            rig,
            responder,
            "1 dns name, http-01, nonce-rejecting Pebble",
            [acme_name(105)],
            "PORTAIL_ACME_NONCE_DIRECTORY",
        )
        c = fresh(rig, account(rig))
        csr, _csr_key = make_csr([acme_name(106)])
        issue(c, [acme_name(106)], csr, responder.publish, cleanup=responder.cleanup)
        before = c.requests
        csr, _csr_key = make_csr([acme_name(107)])
        issue(c, [acme_name(107)], csr, responder.publish, cleanup=responder.cleanup)
        print(f"{'1 dns name, http-01, warm client (2nd order)':46} {c.requests - before:3} requests")

        c = account(rig)
        c = fresh(rig, c)
        names = [acme_name(n) for n in idx[: args.orders]]
        csrs = {n: make_csr([n])[0] for n in names}

        def one(name):
            return issue(c, [name], csrs[name], responder.publish, cleanup=responder.cleanup, deadline=60)[1]

        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
            chains = list(pool.map(one, names))
        dt = time.monotonic() - t
        assert len({ch.leaf.serial_number for ch in chains}) == len(names)
        print(
            f"{args.orders} concurrent single-name http-01 orders, one client, {args.workers} threads: "
            f"{dt:.2f} s wall, {c.requests} requests ({c.requests / args.orders:.2f}/order), "
            f"newNonce {c.requests_by_kind['newNonce']}, badNonce retries {c.bad_nonce_retried}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
