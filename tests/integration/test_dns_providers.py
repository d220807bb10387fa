"""Every DNS-01 provider against real servers: rfc2136 (the rig's BIND), pdns (the rig's PowerDNS
through its HTTP API) and command (a hook script that calls nsupdate against the rig's BIND).

The contract tests run once per provider: two values on one name, CNAME followed, stale values
purged, preflight before any change, lagging servers named. What each server really serves is
checked with direct, non-recursive queries; every test removes what it added.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import socketserver
import stat
import threading
import time
import typing as t
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdataclass
import dns.rdatatype
import pytest
from ansible_collections.portail.https.plugins.module_utils._dns.base import DnsProvider, deadline_after
from ansible_collections.portail.https.plugins.module_utils._dns.errors import (
    DnsAuthError,
    DnsConfigError,
    DnsPropagationTimeout,
    DnsRefusedError,
    DnsUnreachableError,
    DnsUpdateError,
)
from ansible_collections.portail.https.plugins.module_utils._dns.names import challenge_name
from ansible_collections.portail.https.plugins.module_utils._dns.providers import make_provider

pytestmark = pytest.mark.rig
WAIT = 30.0
KINDS = ["rfc2136", "pdns", "command"]

# The hook a user would write around nsupdate: present|cleanup <fqdn> <value> <zone>.
HOOK = """#!/bin/sh
set -eu
action=$1 fqdn=$2 value=$3 zone=$4
printf '%s %s %s %s\\n' "$action" "$fqdn" "$value" "$zone" >> "$HOOK_LOG"
case "$value" in fail-*) echo "hook refuses $value; key is $HOOK_SECRET" >&2; exit 3 ;; esac
case "$action" in
  present) line="update add $fqdn 60 TXT \\"$value\\"" ;;
  cleanup) line="update delete $fqdn TXT \\"$value\\"" ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
printf 'server %s\\nzone %s\\n%s\\nsend\\n' "$DNS_SERVER" "$zone" "$line" | nsupdate -y "$HOOK_SECRET"
"""


def value() -> str:
    return secrets.token_urlsafe(32)[:43]


def label() -> str:
    return f"dns-{secrets.token_hex(4)}"


def served(server: str, name: str) -> set[str]:
    query = dns.message.make_query(name, dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, server, timeout=3)
    rrset = response.get_rrset(response.answer, dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.TXT)
    return {b"".join(rd.strings).decode() for rd in rrset} if rrset is not None else set()


def wait_gone(servers: list[str], name: str, values: set[str]) -> None:
    """Until no server serves any of ``values`` (a secondary follows its primary by IXFR)."""
    deadline = deadline_after(WAIT)
    while any(served(s, name) & values for s in servers):
        assert time.monotonic() < deadline, f"{values} still served at {name}"
        time.sleep(0.1)


def write_hook(directory: Path) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    hook = directory / "hook.sh"
    hook.write_text(HOOK)
    hook.chmod(0o700)
    return hook


class Setup(t.NamedTuple):
    kind: str
    options: dict[str, t.Any]
    zone: str  # where random names go
    servers: list[str]  # every authoritative server of that zone
    delegated: str  # an identifier whose _acme-challenge is a CNAME
    delegated_target: str
    delegated_servers: list[str]


@pytest.fixture
def hook_log(tmp_path: Path) -> Path:
    return tmp_path / "hook.log"


def setup_for(kind: str, rig: dict[str, str], tmp_path: Path, hook_log: Path) -> Setup:
    bind = [rig["PORTAIL_DNS_PRIMARY"], rig["PORTAIL_DNS_SECONDARY"]]
    zone, zone2 = rig["PORTAIL_DNS_ZONE"], rig["PORTAIL_DNS_ZONE2"]
    if kind == "rfc2136":
        options: dict[str, t.Any] = {
            "server": rig["PORTAIL_DNS_PRIMARY"],
            "key_name": rig["PORTAIL_TSIG_NAME"],
            "key_secret": rig["PORTAIL_TSIG_SECRET"],
            "key_algorithm": rig["PORTAIL_TSIG_ALGORITHM"],
            "timeout": 2,
        }
        return Setup(kind, options, zone, bind, f"delegated.{zone}", f"delegated.{zone2}.", bind)
    if kind == "pdns":
        options = {
            "api_url": rig["PORTAIL_PDNS_API_URL"],
            "api_key": rig["PORTAIL_PDNS_API_KEY"],
            # the authoritative servers, not the recursive resolver Pebble shares: a lookup of the
            # challenge name there before the record exists would leave Pebble a cached NXDOMAIN
            "resolvers": [rig["PORTAIL_PDNS_ADDRESS"], rig["PORTAIL_DNS_PRIMARY"]],
            "timeout": 5,
        }
        pdns = [rig["PORTAIL_PDNS_ADDRESS"]]
        pzone = rig["PORTAIL_PDNS_ZONE"]
        return Setup(kind, options, pzone, pdns, f"to-pdns.{zone}", f"to-pdns.{pzone}.", pdns)
    hook = write_hook(tmp_path / "hooks")
    options = {
        "command": str(hook),
        "command_env": {
            "DNS_SERVER": rig["PORTAIL_DNS_PRIMARY"],
            "HOOK_SECRET": f"{rig['PORTAIL_TSIG_ALGORITHM']}:{rig['PORTAIL_TSIG_NAME']}:{rig['PORTAIL_TSIG_SECRET']}",
            "HOOK_LOG": str(hook_log),
        },
        "resolvers": [rig["PORTAIL_DNS_PRIMARY"]],  # authoritative, as for pdns above
        "timeout": 20,
    }
    return Setup(kind, options, zone, bind, f"delegated.{zone}", f"delegated.{zone2}.", bind)


@pytest.fixture(params=KINDS)
def setup(request: pytest.FixtureRequest, rig: dict[str, str], tmp_path: Path, hook_log: Path) -> Setup:
    return setup_for(request.param, rig, tmp_path, hook_log)


def provider_of(setup: Setup, **extra: t.Any) -> DnsProvider:
    return make_provider(setup.kind, {**setup.options, **extra})


# --- the contract, for every provider ----------------------------------------------------------


def test_apex_and_wildcard_values_coexist_and_cleanup_removes_only_ours(setup: Setup) -> None:
    provider = provider_of(setup)
    base = f"{label()}.{setup.zone}"
    apex, wildcard = challenge_name(base), challenge_name(f"*.{base}")
    v_apex, v_wild, foreign = value(), value(), "not-ours v=1"
    records = [(apex, v_apex), (wildcard, v_wild)]
    provider.add_txt(apex, foreign)
    try:
        placed = provider.add_txt_records(records)
        assert [(r.name, r.target, r.zone) for r in placed] == [(apex, apex, setup.zone + ".")] * 2
        provider.wait_visible_records(records, deadline_after(WAIT))
        for server in setup.servers:
            assert served(server, apex) == {v_apex, v_wild, foreign}, server
        assert provider.cleanup(records) == []
        assert provider.cleanup(records) == []  # twice: nothing left to remove is not an error
        assert served(setup.servers[0], apex) == {foreign}
    finally:
        provider.cleanup([*records, (apex, foreign)])
    assert served(setup.servers[0], apex) == set()


def test_cname_of_the_challenge_name_is_followed(setup: Setup) -> None:
    provider = provider_of(setup)
    name = challenge_name(setup.delegated)
    [pre] = provider.preflight([name])
    assert (pre.target, pre.cname_chain) == (setup.delegated_target, (name, setup.delegated_target))
    val = value()
    try:
        [rec] = provider.add_txt_records([(name, val)])
        assert rec.target == setup.delegated_target
        provider.wait_visible_records([(name, val)], deadline_after(WAIT))
        for server in setup.delegated_servers:
            assert val in served(server, setup.delegated_target), server
    finally:
        assert provider.cleanup([(name, val)]) == []
    assert val not in served(setup.delegated_servers[0], setup.delegated_target)


def test_stale_values_of_an_earlier_run_are_purged_and_others_kept(setup: Setup) -> None:
    provider = provider_of(setup)
    name = challenge_name(f"{label()}.{setup.zone}")
    stale1, stale2, keep, foreign = value(), value(), value(), "site-verification=abc"
    provider.add_txt_records([(name, stale1), (name, stale2), (name, foreign)])  # a run that died
    try:
        provider.wait_visible_records([(name, stale1), (name, stale2)], deadline_after(WAIT))
        removed = provider.purge_stale([name], [keep])
        assert sorted(r.value for r in removed) == sorted([stale1, stale2])
        provider.add_txt(name, keep)
        provider.wait_visible_records([(name, keep)], deadline_after(WAIT))
        wait_gone(setup.servers, name, {stale1, stale2})
        for server in setup.servers:
            assert served(server, name) == {keep, foreign}, server
        assert provider.purge_stale([name], [keep]) == []  # nothing stale any more
    finally:
        provider.cleanup([(name, v) for v in (stale1, stale2, keep, foreign)])
    assert served(setup.servers[0], name) == set()


def test_wait_names_every_lagging_server_and_how_long_it_was_asked(setup: Setup) -> None:
    provider = provider_of(setup)
    name = challenge_name(f"{label()}.{setup.zone}")
    with pytest.raises(DnsPropagationTimeout) as info:
        provider.wait_visible_records([(name, value())], deadline_after(0.5))
    assert len(info.value.lagging) == len(setup.servers)
    for server, line in zip(sorted(setup.servers), info.value.lagging, strict=True):
        assert name in line and f"({server})" in line and "missing 1 of 1 values" in line
        assert "times over" in line


# --- PowerDNS specifics ------------------------------------------------------------------------


@pytest.fixture
def pdns(rig: dict[str, str], tmp_path: Path, hook_log: Path) -> Setup:
    return setup_for("pdns", rig, tmp_path, hook_log)


def test_pdns_wrong_api_key_is_refused_by_preflight_without_showing_it(pdns: Setup) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    provider = provider_of(pdns, api_key=wrong)
    assert wrong not in repr(provider)
    with pytest.raises(DnsAuthError) as info:
        provider.preflight([challenge_name(f"{label()}.{pdns.zone}")])
    assert "refused the API key" in str(info.value) and "HTTP 401" in str(info.value)
    assert wrong not in str(info.value) and pdns.options["api_key"] not in str(info.value)


def test_pdns_cname_out_of_its_zones_is_refused_before_any_change(pdns: Setup, rig: dict[str, str]) -> None:
    provider = provider_of(pdns)
    name = challenge_name(f"delegated.{pdns.zone}")  # CNAME into validation.test, a BIND zone
    with pytest.raises(DnsRefusedError, match=r"no zone on PowerDNS server 'localhost'.*delegated\.validation\.test"):
        provider.add_txt(name, value())


def test_pdns_unreachable_api_is_a_clear_error(pdns: Setup) -> None:
    provider = provider_of(pdns, api_url="http://127.53.0.4:9", timeout=2)
    with pytest.raises(DnsUnreachableError, match=r"cannot reach the API at http://127.53.0.4:9/api/v1"):
        provider.preflight([challenge_name(f"{label()}.{pdns.zone}")])


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A forward HTTP proxy (absolute-URI requests) that records what it relays."""

    seen: t.ClassVar[list[tuple[str, str, bool]]] = []

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection", "connection")}
        self.seen.append((self.command, self.path, "X-API-Key" in self.headers))
        req = urllib.request.Request(self.path, data=body, method=self.command, headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            resp = opener.open(req, timeout=10)
            status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, data, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = _relay

    def log_message(self, format: str, *args: t.Any) -> None:
        pass


def test_pdns_client_goes_through_the_http_proxy_of_the_environment(
    pdns: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Proxy)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Proxy.seen.clear()
    try:
        for var in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.server_address[1]}")
        provider = provider_of(pdns)
        name = challenge_name(f"{label()}.{pdns.zone}")
        val = value()
        try:
            provider.add_txt(name, val)
            assert served(pdns.servers[0], name) == {val}
        finally:
            assert provider.cleanup([(name, val)]) == []
    finally:
        server.shutdown()
        server.server_close()
    methods = {m for m, _p, _k in _Proxy.seen}
    assert {"GET", "PATCH"} <= methods
    assert all(p.startswith(pdns.options["api_url"] + "/api/v1/servers/localhost/") for _m, p, _k in _Proxy.seen)
    assert all(k for _m, _p, k in _Proxy.seen)
    assert served(pdns.servers[0], name) == set()


# --- command specifics -------------------------------------------------------------------------


@pytest.fixture
def command(rig: dict[str, str], tmp_path: Path, hook_log: Path) -> Setup:
    return setup_for("command", rig, tmp_path, hook_log)


def test_command_is_called_as_present_cleanup_fqdn_value_zone(command: Setup, hook_log: Path) -> None:
    provider = provider_of(command)
    name = challenge_name(command.delegated)
    val = value()
    provider.add_txt(name, val)
    provider.wait_visible_records([(name, val)], deadline_after(WAIT))
    assert provider.cleanup([(name, val)]) == []
    zone2 = command.delegated_target.split(".", 1)[1]
    assert hook_log.read_text().splitlines() == [
        f"present {command.delegated_target} {val} {zone2}",
        f"cleanup {command.delegated_target} {val} {zone2}",
    ]


def test_command_failure_rolls_back_and_masks_the_secret(command: Setup, hook_log: Path) -> None:
    provider = provider_of(command)
    name = challenge_name(f"{label()}.{command.zone}")
    good = value()
    with pytest.raises(DnsUpdateError) as info:
        provider.add_txt_records([(name, good), (name, "fail-" + value()[:20])])
    text = str(info.value)
    assert "exited with status 3" in text and "hook refuses fail-" in text
    secret = command.options["command_env"]["HOOK_SECRET"]
    assert secret not in text and "********" in text
    assert secret not in repr(provider)
    assert served(command.servers[0], name) == set()  # the first value was removed again
    assert [line.split()[0] for line in hook_log.read_text().splitlines()] == ["present", "present", "cleanup"]


@pytest.mark.parametrize("weak", ["file", "directory"])
def test_command_others_can_write_is_refused_before_running(command: Setup, tmp_path: Path, weak: str) -> None:
    hook = Path(command.options["command"])
    if weak == "file":
        hook.chmod(0o777)
    else:
        hook.parent.chmod(0o777)  # no sticky bit: anyone could swap the hook
    provider = provider_of(command)
    name = challenge_name(f"{label()}.{command.zone}")
    with pytest.raises(DnsConfigError, match=r"refusing .*others can write"):
        provider.add_txt(name, value())
    with pytest.raises(DnsConfigError, match="others can write"):
        provider.preflight([name])
    assert not Path(command.options["command_env"]["HOOK_LOG"]).exists()
    assert served(command.servers[0], name) == set()
    assert stat.S_IMODE(os.stat(hook).st_mode) in (0o777, 0o700)


def test_secret_options_can_come_from_flat_variables(rig: dict[str, str], pdns: Setup) -> None:
    from ansible_collections.portail.https.plugins.module_utils._dns.providers import merge_secret_variables

    options = {k: v for k, v in pdns.options.items() if k != "api_key"}
    merged = merge_secret_variables(options, {"certificate_dns_api_key": rig["PORTAIL_PDNS_API_KEY"]})
    provider = make_provider("pdns", merged)
    [rec] = provider.preflight([challenge_name(f"{label()}.{pdns.zone}")])
    assert rec.zone == pdns.zone + "."
    assert json.dumps(sorted(merged)) == json.dumps(sorted(pdns.options))
