"""Wildcard + apex certificates from the rig's Pebble, the dns-01 records written by the pdns
provider (PowerDNS HTTP API) and by the command provider (a hook around nsupdate). Pebble resolves
through the rig's recursive resolver, which follows the delegation of pdns.portail.test to PowerDNS.

The ACME engine is driven directly (acme_certificate's option table is wired to the registry
elsewhere); the flow is the one CertificateRun follows: preflight, purge stale values, add, wait on
every authoritative server, answer, clean up.
"""

from __future__ import annotations

import secrets
import typing as t
from pathlib import Path

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme import AccountKey, AcmeClient, issue
from ansible_collections.portail.https.plugins.module_utils._dns.base import deadline_after
from ansible_collections.portail.https.plugins.module_utils._dns.names import challenge_name
from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider
from cryptography import x509

from .acme_support import make_csr
from .test_dns_providers import served, setup_for, wait_gone

pytestmark = pytest.mark.rig


def client(rig: dict[str, str]) -> AcmeClient:
    c = AcmeClient(rig["PORTAIL_ACME_DIRECTORY"], AccountKey.generate(), ca_bundle=rig["PORTAIL_ACME_CA_BUNDLE"])
    c.account().create(contact=["mailto:dns@portail.test"], terms_agreed=True)
    return c


@pytest.mark.parametrize("kind", ["pdns", "command"])
def test_wildcard_and_apex_issued_and_records_cleaned(kind: str, rig: dict[str, str], tmp_path: Path) -> None:
    setup = setup_for(kind, rig, tmp_path, tmp_path / "hook.log")
    provider = make_provider(kind, setup.options)
    base = f"iss-{secrets.token_hex(4)}.{setup.zone}"
    names = [base, f"*.{base}"]
    challenge = challenge_name(base)
    provider.preflight([challenge])
    stale = secrets.token_urlsafe(32)[:43]  # what a run that died before its cleanup left
    provider.add_txt(challenge, stale)
    c = client(rig)
    csr, _key = make_csr(names)
    placed: list[tuple[str, str]] = []

    def publish(ch: t.Any) -> None:
        if not placed:
            provider.purge_stale([ch.dns_name], [])
        placed.append((ch.dns_name, ch.dns_value))
        provider.add_txt_records([placed[-1]])
        provider.wait_visible_records(placed, deadline_after(30))

    try:
        order, chain = issue(c, names, csr, publish, challenge_type="dns-01")
    finally:
        errors = provider.cleanup([*placed, (challenge, stale)])
    assert errors == []
    assert order.status == "valid"
    ext = chain.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(ext.get_values_for_type(x509.DNSName)) == sorted(names)
    assert [n.rstrip(".") + "." for n, _v in placed] == [challenge, challenge]  # two values, one name
    wait_gone(setup.servers, challenge, {v for _n, v in placed} | {stale})  # a secondary follows by IXFR
    for server in setup.servers:
        assert served(server, challenge) == set(), server
