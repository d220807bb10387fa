"""Unit tests for the firewall module_utils: nft rendering/plan, detection, port probes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from ansible_collections.portail.https.plugins.module_utils import _firewall, _nft, _probe


class FakeNft:
    """Records nft invocations; `tables` maps 'family name' to its listing."""

    def __init__(self, tables: dict[str, str] | None = None) -> None:
        self.tables = dict(tables or {})
        self.calls: list[list[str]] = []
        self.applied: list[str] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        if argv[1:3] == ["list", "table"]:
            key = f"{argv[3]} {argv[4]}"
            if key in self.tables:
                return 0, self.tables[key], ""
            return 1, "", "Error: No such file or directory"
        if argv[1:4] == ["-j", "list", "chains"]:
            return (
                0,
                json.dumps(
                    {
                        "nftables": [
                            {
                                "chain": {
                                    "family": "inet",
                                    "table": "filter",
                                    "name": "input",
                                    "hook": "input",
                                    "policy": "drop",
                                }
                            }
                        ]
                    }
                ),
                "",
            )
        if argv[1] == "-c":
            return 0, "", ""
        if argv[1] == "-f":
            self.applied.append(Path(argv[2]).read_text())
            return 0, "", ""
        return 1, "", "unexpected"


def chains() -> list[_nft.Chain]:
    return [_nft.Chain("input", ["tcp dport { 22, 80, 443 } accept"], type="filter", hook="input", policy="drop")]


def test_render_is_what_nft_lists() -> None:
    text = _nft.render_table("inet", "t", chains())
    assert text == (
        "table inet t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
        "\t\ttcp dport { 22, 80, 443 } accept\n\t}\n}\n"
    )
    assert _nft.normalize(text + "\n# comment\n") == _nft.normalize(text.replace("\t", "    "))


def test_manage_table_creates_then_is_idempotent(tmp_path: Path) -> None:
    fake = FakeNft()
    nft = _nft.Nft("nft", fake)
    res = _nft.manage_table(nft, "inet", "t", chains(), persist_path=str(tmp_path / "t.nft"), state_dir=str(tmp_path))
    assert res["changed"] and len(fake.applied) == 1
    assert fake.applied[0].startswith("table inet t {\n}\ndelete table inet t\n")
    assert res["foreign_input_chains"] == [{"family": "inet", "table": "filter", "chain": "input", "policy": "drop"}]
    fake.tables["inet t"] = _nft.render_table("inet", "t", chains()).replace("\t", "  ")
    res = _nft.manage_table(nft, "inet", "t", chains(), persist_path=str(tmp_path / "t.nft"), state_dir=str(tmp_path))
    assert not res["changed"] and len(fake.applied) == 1


def test_manage_table_check_mode_changes_nothing(tmp_path: Path) -> None:
    fake = FakeNft()
    res = _nft.manage_table(
        _nft.Nft("nft", fake),
        "inet",
        "t",
        chains(),
        persist_path=str(tmp_path / "p"),
        state_dir=str(tmp_path / "s"),
        check_mode=True,
    )
    assert res["changed"] and fake.applied == [] and not (tmp_path / "p").exists()
    assert any(c[1] == "-c" for c in fake.calls)  # validated even in check mode


def test_state_file_accepts_non_canonical_rules(tmp_path: Path) -> None:
    fake = FakeNft()
    odd = [_nft.Chain("input", ["tcp dport 80-80 accept"], type="filter", hook="input")]
    nft = _nft.Nft("nft", fake)

    _nft.manage_table(nft, "inet", "t", odd, state_dir=str(tmp_path))
    # nft lists the rule differently; the state file was written from what nft listed after the apply
    fake.tables["inet t"] = _nft.render_table("inet", "t", odd).replace("80-80", "80")
    (tmp_path / "inet-t.json").write_text(
        json.dumps(
            {"desired": _nft.digest(_nft.render_table("inet", "t", odd)), "live": _nft.digest(fake.tables["inet t"])}
        )
    )
    res = _nft.manage_table(nft, "inet", "t", odd, state_dir=str(tmp_path))
    assert not res["changed"]


@pytest.mark.parametrize(
    "bad",
    [
        [_nft.Chain("bad name")],
        [_nft.Chain("c", policy="drop")],
        [_nft.Chain("c", ["accept; flush ruleset"])],
        [_nft.Chain("c"), _nft.Chain("c")],
    ],
)
def test_bad_chains_rejected(bad: list[_nft.Chain]) -> None:
    with pytest.raises(ValueError):
        _nft.manage_table(_nft.Nft("nft", FakeNft()), "inet", "t", bad, state_dir=None)


def test_native_tables_skip_iptables_nft_compat() -> None:
    data = {"nftables": [{"table": {"family": "ip", "name": "filter"}}, {"table": {"family": "inet", "name": "f2b"}}]}
    assert _firewall.native_nft_tables(json.dumps(data)) == [("inet", "f2b")]


def test_iptables_has_rules() -> None:
    assert _firewall.iptables_has_rules("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n") == (False, False)
    assert _firewall.iptables_has_rules("*filter\n:INPUT DROP [0:0]\nCOMMIT\n")[0]
    assert _firewall.iptables_has_rules(":PORTAIL-HTTPS - [0:0]\n-A INPUT -j PORTAIL-HTTPS\n", "PORTAIL-HTTPS") == (
        True,
        True,
    )


def test_detect_order() -> None:
    outputs = {
        ("firewall-cmd", "--state"): (252, "not running", ""),
        ("ufw", "status"): (0, "Status: inactive\n", ""),
        ("nft", "-j", "list", "tables"): (0, json.dumps({"nftables": []}), ""),
        ("iptables-legacy-save",): (0, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j f2b\nCOMMIT\n", ""),
    }

    def run(argv: list[str]) -> tuple[int, str, str]:
        return outputs.get(tuple(argv), (0, "", ""))

    facts = _firewall.detect(run, lambda name: name)
    assert facts["backend"] == "iptables" and facts["iptables_variant"] == "legacy"
    outputs[("ufw", "status")] = (0, "Status: active\n", "")
    assert _firewall.detect(run, lambda name: name)["backend"] == "ufw"


def test_probe_states() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    assert _probe.probe("127.0.0.1", port, 2)["state"] == "open"
    server.close()
    assert _probe.probe("127.0.0.1", port, 2)["state"] == "refused"
    assert _probe.mismatches({"80": {"state": "filtered"}}, {"80": ["open", "refused"]}) == [
        "port 80: filtered (expected open or refused)"
    ]
