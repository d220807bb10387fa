# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which firewall does this host really run, and iptables persistence (Python >= 3.9, stdlib only).

Detection order (the first that matches wins):
1. firewalld running (``firewall-cmd --state``);
2. ufw active (``ufw status``; its incoming default is reported too, from /etc/default/ufw);
3. our own earlier work: the nftables table, or the iptables chain, we created;
4. a native nftables ruleset (any table that is not one of iptables-nft's ip/ip6 compatibility tables);
5. iptables rules (legacy first, then nft variant): any rule, or a built-in chain whose policy is not ACCEPT;
6. nothing at all: the fallback (nftables when ``nft`` exists, iptables otherwise).
firewalld and ufw come first because they program nftables/iptables themselves.
"""

from __future__ import annotations

import json
import os
import re
import typing as t

Runner = t.Callable[[list[str]], tuple[int, str, str]]
Which = t.Callable[[str], t.Optional[str]]
XT_TABLES = {"filter", "nat", "mangle", "raw", "security"}


def iptables_has_rules(save_output: str, own_chain: t.Optional[str] = None) -> tuple[bool, bool]:
    """(any rule or non-ACCEPT built-in policy, our chain exists) in an iptables-save listing."""
    rules = False
    own = False
    for line in save_output.splitlines():
        if line.startswith("-A "):
            rules = True
        elif line.startswith(":"):
            name, _sep, rest = line[1:].partition(" ")
            if own_chain and name == own_chain:
                own = True
            if rest.split(" ")[0] not in ("ACCEPT", "-"):
                rules = True
    return rules, own


def native_nft_tables(nft_json: str) -> list[tuple[str, str]]:
    tables = []
    for item in json.loads(nft_json or "{}").get("nftables", []):
        table = item.get("table")
        if not table:
            continue
        family, name = table.get("family"), table.get("name")
        if family in ("ip", "ip6") and name in XT_TABLES:
            continue
        tables.append((family, name))
    return tables


def ufw_incoming_policy(path: str = "/etc/default/ufw") -> str:
    """ufw's default for incoming traffic (DEFAULT_INPUT_POLICY: drop, reject or accept), as ufw reads it."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return "drop"  # ufw's own default
    found = re.findall(r'^DEFAULT_INPUT_POLICY="?([A-Za-z]+)"?\s*$', text, re.M)
    policy = found[-1].lower() if found else "drop"
    return policy if policy in ("drop", "reject", "accept") else "drop"


def detect(
    run: Runner,
    which: Which,
    nft_table: tuple[str, str] = ("inet", "portail_https"),
    iptables_chain: str = "PORTAIL-HTTPS",
    fallback: str = "nftables",
    ufw_defaults: str = "/etc/default/ufw",
) -> dict[str, t.Any]:
    facts: dict[str, t.Any] = {"evidence": []}
    ev: list[str] = facts["evidence"]

    def decide(backend: str, why: str) -> dict[str, t.Any]:
        facts["backend"] = backend
        ev.append(why)
        return facts

    if which("firewall-cmd"):
        rc, out, _err = run([t.cast(str, which("firewall-cmd")), "--state"])
        if rc == 0 and "running" in out:
            return decide("firewalld", "firewall-cmd --state: running")
    if which("ufw"):
        rc, out, _err = run([t.cast(str, which("ufw")), "status"])
        facts["ufw_active"] = rc == 0 and bool(re.search(r"^Status: active", out, re.M))
        facts["ufw_incoming"] = ufw_incoming_policy(ufw_defaults)
        if facts["ufw_active"]:
            return decide("ufw", "ufw status: active")

    native: list[tuple[str, str]] = []
    nft = which("nft")
    if nft:
        rc, out, _err = run([nft, "-j", "list", "tables"])
        if rc == 0:
            native = native_nft_tables(out)
    facts["nft_tables"] = [" ".join(x) for x in native]

    variants: dict[str, tuple[bool, bool]] = {}
    for variant in ("legacy", "nft"):
        has_rules, own = False, False
        for family in ("iptables", "ip6tables"):
            binary = which(f"{family}-{variant}-save")
            if not binary:
                continue
            rc, out, _err = run([binary])
            if rc == 0:
                r, o = iptables_has_rules(out, iptables_chain)
                has_rules, own = has_rules or r, own or o
        variants[variant] = (has_rules, own)
    alternative = which("iptables")
    facts["iptables_alternative"] = "legacy" if alternative and "legacy" in os.path.realpath(alternative) else "nft"

    if tuple(nft_table) in native:
        return decide("nftables", f"our table {' '.join(nft_table)} exists")
    for variant, (_rules, own) in variants.items():
        if own:
            facts["iptables_variant"] = variant
            return decide("iptables", f"our chain {iptables_chain} exists (iptables-{variant})")
    if native:
        return decide("nftables", f"nftables tables: {', '.join(facts['nft_tables'])}")
    for variant, (rules, _own) in variants.items():
        if rules:
            facts["iptables_variant"] = variant
            return decide("iptables", f"iptables-{variant} has rules")
    if fallback == "nftables" and not nft:
        fallback = "iptables"
    return decide(fallback, "no firewall in use; fallback")
