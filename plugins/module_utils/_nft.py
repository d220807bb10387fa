# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One nftables table, owned whole by us, managed idempotently (runs on Python >= 3.9, stdlib only).

The desired table is rendered as text in the form ``nft list table`` prints, compared with the live
table (whitespace-normalised), and applied in a single ``nft -f`` transaction that deletes and re-adds
*our table only*; ``nft -c -f`` validates the same script first. Nothing outside our table is touched.

When a rule is written in a form nft prints differently (``tcp dport 80-80`` ...), the text comparison
would never match; a small state file remembers the hash of what we asked for and of what nft then
listed, so such a table is still reported unchanged until either side really changes.

Note on nftables semantics: a packet must be accepted by *every* base chain on a hook. An ``accept`` in
our table does not override a ``drop`` in another table's input chain; ``foreign_input_chains`` in the
result lists the other input base chains so the caller can warn about them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import typing as t

from ansible_collections.portail.https.plugins.module_utils._hostfiles import read_file, write_file

FAMILIES = ("inet", "ip", "ip6", "arp", "bridge", "netdev")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
HEADER = "# Managed by portail.https: table {family} {name}. Changes here are overwritten."

Runner = t.Callable[[list[str]], tuple[int, str, str]]


class NftError(Exception):
    """A failure with the nft command, carrying its output."""


class Chain:
    def __init__(
        self,
        name: str,
        rules: t.Sequence[str] = (),
        type: t.Optional[str] = None,
        hook: t.Optional[str] = None,
        priority: t.Union[str, int, None] = None,
        policy: t.Optional[str] = None,
    ) -> None:
        self.name = name
        self.rules = [r.strip() for r in rules if r and r.strip()]
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any]) -> Chain:
        return cls(
            name=str(data["name"]),
            rules=list(data.get("rules") or []),
            type=data.get("type"),
            hook=data.get("hook"),
            priority=data.get("priority"),
            policy=data.get("policy"),
        )

    def validate(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"invalid chain name {self.name!r}")
        if self.hook and not self.type:
            raise ValueError(f"chain {self.name}: a hook needs a type (filter, nat, route)")
        if self.policy and not self.hook:
            raise ValueError(f"chain {self.name}: only base chains (with a hook) have a policy")
        if self.policy not in (None, "accept", "drop"):
            raise ValueError(f"chain {self.name}: policy must be accept or drop")
        for rule in self.rules:
            if "\n" in rule or ";" in rule:
                raise ValueError(f"chain {self.name}: one rule per item, no newlines or ';': {rule!r}")

    def render(self) -> str:
        lines = [f"\tchain {self.name} {{"]
        if self.hook:
            prio = self.priority if self.priority is not None else "filter"
            base = f"\t\ttype {self.type} hook {self.hook} priority {prio};"
            if self.policy:
                base += f" policy {self.policy};"
            lines.append(base)
        lines.extend(f"\t\t{rule}" for rule in self.rules)
        lines.append("\t}")
        return "\n".join(lines)


def render_table(family: str, name: str, chains: t.Sequence[Chain]) -> str:
    """The table as `nft list table` prints it (chains separated by a blank line)."""
    body = "\n\n".join(c.render() for c in chains)
    return f"table {family} {name} {{\n{body}\n}}\n" if chains else f"table {family} {name} {{\n}}\n"


def normalize(text: str) -> str:
    """Whitespace-insensitive form of a table listing, without handles or comment lines."""
    out = []
    for raw in text.splitlines():
        line = re.sub(r"\s+# handle \d+$", "", raw).strip()
        if not line or line.startswith("#"):
            continue
        out.append(re.sub(r"\s+", " ", line))
    return "\n".join(out)


def digest(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


def replace_script(family: str, name: str, table_text: t.Optional[str]) -> str:
    """One transaction: create-if-missing, delete, then (optionally) the new table definition."""
    script = f"table {family} {name} {{\n}}\ndelete table {family} {name}\n"
    if table_text is not None:
        script += table_text
    return script


def persist_text(family: str, name: str, table_text: str) -> str:
    header = HEADER.format(family=family, name=name)
    return f"#!/usr/sbin/nft -f\n{header}\n{replace_script(family, name, table_text)}"


class Nft:
    """Thin wrapper around the nft binary; `run` returns (rc, stdout, stderr)."""

    def __init__(self, binary: str, run: Runner) -> None:
        self.binary = binary
        self.run = run

    def list_table(self, family: str, name: str) -> t.Optional[str]:
        rc, out, err = self.run([self.binary, "list", "table", family, name])
        if rc == 0:
            return out
        if "No such file or directory" in err or "does not exist" in err:
            return None
        raise NftError(f"nft list table {family} {name} failed: {err.strip()}")

    def base_chains(self) -> list[dict[str, t.Any]]:
        rc, out, err = self.run([self.binary, "-j", "list", "chains"])
        if rc != 0:
            raise NftError(f"nft -j list chains failed: {err.strip()}")
        chains = []
        for item in json.loads(out or "{}").get("nftables", []):
            chain = item.get("chain")
            if chain and chain.get("hook"):
                chains.append(chain)
        return chains

    def _file(self, args: list[str], script: str) -> tuple[int, str, str]:
        fd, path = tempfile.mkstemp(prefix="portail-nft-", suffix=".nft")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(script)
            return self.run([self.binary, *args, "-f", path])
        finally:
            os.unlink(path)

    def check(self, script: str) -> None:
        rc, _out, err = self._file(["-c"], script)
        if rc != 0:
            raise NftError(f"nft -c rejected the table definition: {err.strip()}")

    def apply(self, script: str) -> None:
        rc, _out, err = self._file([], script)
        if rc != 0:
            raise NftError(f"nft -f failed (nothing was changed: one transaction): {err.strip()}")


def _read(path: t.Optional[str]) -> t.Optional[str]:
    return read_file(path) if path else None


def _unlink(path: t.Optional[str]) -> bool:
    if path and os.path.exists(path):
        os.unlink(path)
        return True
    return False


def manage_table(
    nft: Nft,
    family: str,
    name: str,
    chains: t.Sequence[Chain],
    state: str = "present",
    persist_path: t.Optional[str] = None,
    state_dir: t.Optional[str] = "/var/lib/portail-https/nft",
    check_mode: bool = False,
) -> dict[str, t.Any]:
    """Bring table `family name` to `chains` (state=present) or remove it (state=absent)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}")
    if not NAME_RE.match(name):
        raise ValueError(f"invalid table name {name!r}")
    seen = set()
    for chain in chains:
        chain.validate()
        if chain.name in seen:
            raise ValueError(f"chain {chain.name} is listed twice")
        seen.add(chain.name)

    live = nft.list_table(family, name)
    state_file = os.path.join(state_dir, f"{family}-{name}.json") if state_dir else None
    result: dict[str, t.Any] = {"changed": False, "table": f"{family} {name}"}
    before_file = _read(persist_path)

    if state == "absent":
        desired = None
        ruleset_changed = live is not None
        file_changed = before_file is not None
        if ruleset_changed and not check_mode:
            nft.apply(replace_script(family, name, None))
        if not check_mode:
            _unlink(persist_path)
            _unlink(state_file)
        result.update(changed=ruleset_changed or file_changed, rendered="")
        result["diff"] = {"before": live or "", "after": "", "before_header": f"table {family} {name}"}
        result["foreign_input_chains"] = _foreign_input(nft, family, name)
        return result

    desired = render_table(family, name, chains)
    ruleset_changed = live is None or normalize(live) != normalize(desired)
    if ruleset_changed and live is not None and state_file:
        saved = _read(state_file)
        if saved:
            try:
                marks = json.loads(saved)
            except ValueError:
                marks = {}
            if marks.get("desired") == digest(desired) and marks.get("live") == digest(live):
                ruleset_changed = False

    script = replace_script(family, name, desired)
    nft.check(script)  # always validate, also in check mode and when nothing changes
    wanted_file = persist_text(family, name, desired) if persist_path else None
    file_changed = bool(persist_path) and before_file != wanted_file

    after = live if not ruleset_changed and live is not None else desired
    if not check_mode:
        if ruleset_changed:
            nft.apply(script)
            after = nft.list_table(family, name) or ""
        if persist_path and file_changed:
            write_file(persist_path, t.cast(str, wanted_file), 0o644)
        if state_file and (ruleset_changed or not os.path.exists(state_file)):
            write_file(state_file, json.dumps({"desired": digest(desired), "live": digest(after)}) + "\n", 0o600)

    result.update(changed=ruleset_changed or file_changed, rendered=desired)
    result["diff"] = {
        "before": live or "",
        "after": desired if ruleset_changed else (live or ""),
        "before_header": f"table {family} {name} (live)",
        "after_header": f"table {family} {name} (wanted)",
    }
    result["foreign_input_chains"] = _foreign_input(nft, family, name)
    return result


def _foreign_input(nft: Nft, family: str, name: str) -> list[dict[str, t.Any]]:
    """Input base chains of other tables: their drops win over our accepts."""
    found = []
    for chain in nft.base_chains():
        if chain.get("hook") != "input" or (chain.get("family"), chain.get("table")) == (family, name):
            continue
        found.append(
            {
                "family": chain.get("family"),
                "table": chain.get("table"),
                "chain": chain.get("name"),
                "policy": chain.get("policy", "accept"),
            }
        )
    return found
