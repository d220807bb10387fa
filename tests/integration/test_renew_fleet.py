"""The renew playbook, its schedule and the report over a real inventory of namespaced SSH hosts.

fleet150 and fleet151 have a site each plus a pool certificate (leader fleet150), all DNS-01 on the
rig's BIND with a per-certificate `dns` option (the key is given per site, the server globally);
fleet152 has no sites; fleet153 has a site whose DNS key is wrong, so its first issuance fails.
Pebble is the CA. Nothing here is mocked: real ansible-playbook runs over SSH.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from tests.fleet import fleet

from .harness import REPO, ansible_env, run_playbook

pytestmark = [pytest.mark.rig, pytest.mark.slow]

GOOD, POOLED, NOSITE, BAD = 150, 151, 152, 153
FACTS = "/etc/ansible/facts.d/portail_https.fact"
METRICS_DIR = "/var/lib/prometheus/node-exporter"


def _sh(host: fleet.Host, script: str) -> str:
    res = fleet.exec_in(host, ["sh", "-c", script])
    assert res.returncode == 0, res.stderr
    return res.stdout


def _facts(host: fleet.Host) -> dict:
    return json.loads(_sh(host, f"cat {FACTS}"))


@pytest.fixture(scope="module")
def renew_fleet(fleet_factory, rig, tmp_path_factory):
    work = tmp_path_factory.mktemp("renew-fleet")
    hosts = {h.index: h for h in fleet_factory([GOOD, POOLED, NOSITE, BAD])}
    account = work / "account.key"
    key = ec.generate_private_key(ec.SECP256R1())
    account.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    account.chmod(0o600)
    good_key = {"key_name": rig["PORTAIL_TSIG_ACME_NAME"], "key_secret": rig["PORTAIL_TSIG_ACME_SECRET"]}
    inv = fleet.inventory(hosts.values(), {"renewpool": [hosts[GOOD], hosts[POOLED]]})
    hv = inv["all"]["hosts"]
    for i in (GOOD, POOLED):
        hv[f"fleet{i}"]["portail_sites"] = [
            {"name": "main", "server_names": [hosts[i].fqdn], "challenge": "dns-01", "dns": good_key},
            {
                "name": "pool",
                "server_names": ["renewpool.portail.test"],
                "challenge": "dns-01",
                "dns": good_key,
                "pool": "renewpool",
                "owner": "www-data",
            },
        ]
    hv[f"fleet{BAD}"]["portail_sites"] = [
        {
            "name": "bad",
            "server_names": [hosts[BAD].fqdn],
            "challenge": "dns-01",
            "dns": {"key_name": rig["PORTAIL_TSIG_ACME_NAME"], "key_secret": "d3Jvbmcgc2VjcmV0IQ=="},
        }
    ]
    inv["all"]["vars"] = {
        "certificate_acme_directory": rig["PORTAIL_ACME_DIRECTORY"],
        "certificate_acme_ca_bundle": rig["PORTAIL_ACME_CA_BUNDLE"],
        "certificate_account_key_src": str(account),
        "certificate_terms_agreed": True,
        "certificate_dns": {"server": rig["PORTAIL_DNS_PRIMARY"], "key_algorithm": rig["PORTAIL_TSIG_ALGORITHM"]},
    }
    inventory = work / "inventory.json"
    inventory.write_text(json.dumps(inv, indent=2))
    for h in hosts.values():
        _sh(h, f"rm -rf /etc/ssl/portail {FACTS} {METRICS_DIR}")
    _sh(hosts[GOOD], f"mkdir -p {METRICS_DIR}")
    return {"work": work, "inventory": inventory, "hosts": hosts, "good_key": good_key}


def _renew(ctx, target: str, **kw):
    extra = dict(kw.pop("extra_vars", {}), portail_target=target)
    kw.setdefault("env", {"ANSIBLE_SHOW_CUSTOM_STATS": "true"})
    return run_playbook(
        REPO / "playbooks" / "renew.yml", ctx["work"], inventory=ctx["inventory"], extra_vars=extra, **kw
    )


def _summary(res) -> list[str]:
    return res.result("One line per certificate that changed or failed")["msg"]


def test_renew_over_an_inventory_issues_skips_and_then_does_nothing(renew_fleet):
    ctx = renew_fleet
    hosts = ctx["hosts"]
    good, pooled = hosts[GOOD], hosts[POOLED]
    target = f"fleet{GOOD}:fleet{POOLED}:fleet{NOSITE}"
    first = _renew(ctx, target)
    assert first.rc == 0, first.failures()
    assert first.failed() == 0
    lines = _summary(first)
    assert any(line.startswith(f"fleet{GOOD} main: issued serial") for line in lines), lines
    assert any(line.startswith(f"fleet{GOOD} pool: issued serial") for line in lines), lines
    assert any(line.startswith(f"fleet{POOLED} main: issued serial") for line in lines), lines
    stats = first.data["global_custom_stats"]["portail_https_renew"]
    assert stats["counts"]["changed"] == 3 and stats["counts"]["failed"] == 0
    assert stats["hosts_without_certificates"] == [f"fleet{NOSITE}"]
    assert first.stats.get(f"fleet{NOSITE}", {}).get("failures", 0) == 0

    facts = _facts(good)["certificates"]
    issued = {c["name"]: c for c in first.results("Issue or renew certificates")[f"fleet{GOOD}"]["certificates"]}
    assert facts["main"]["serial"] == issued["main"]["serial"]
    assert facts["main"]["last_result"] == "issued"
    assert _facts(pooled)["certificates"]["pool"]["issued_by"] == f"fleet{GOOD}"
    # the pool member's directory is root's and not writable by others; only the files get the owner
    assert _sh(pooled, "stat -c '%U:%G:%a' /etc/ssl/portail/pool").strip() == "root:root:755"
    assert set(_sh(pooled, "stat -L -c '%U' /etc/ssl/portail/pool/*").split()) == {"www-data"}

    prom = _sh(good, f"cat {METRICS_DIR}/portail_https.prom")
    families = {f.name: f for f in text_string_to_metric_families(prom)}
    not_after = {
        s.labels["certificate"]: s.value for s in families["portail_https_certificate_not_after_seconds"].samples
    }
    assert set(not_after) == {"main", "pool"}
    from datetime import datetime

    assert not_after["main"] == datetime.fromisoformat(facts["main"]["not_after"]).timestamp()
    success = families["portail_https_certificate_last_renewal_success"].samples
    assert {s.value for s in success} == {1.0}
    assert "portail_https_certificate_last_check_timestamp_seconds" not in families
    check_file = f"{METRICS_DIR}/portail_https_check.prom"
    checked = text_string_to_metric_families(_sh(good, f"cat {check_file}"))
    check_before = {s.labels["certificate"]: s.value for f in checked for s in f.samples}
    assert set(check_before) == {"main", "pool"}
    assert _sh(pooled, f"ls {METRICS_DIR} 2>/dev/null || echo none").strip() == "none"  # not created

    before = _sh(good, f"stat -c '%i %Y' {FACTS} {METRICS_DIR}/portail_https.prom")
    time.sleep(1.1)  # the check time has a one-second resolution
    second = _renew(ctx, target)
    assert second.rc == 0, second.failures()
    assert second.changed() == 0, {h: s for h, s in second.stats.items() if s.get("changed")}
    assert _summary(second) == ["nothing renewed, nothing failed"]
    assert _sh(good, f"stat -c '%i %Y' {FACTS} {METRICS_DIR}/portail_https.prom") == before  # not rewritten
    # nothing to write: the record step was not even sent, the check time moved in acme_certificate's round trip
    assert second.results("Record the certificate facts and metrics")[f"fleet{GOOD}"].get("skipped") is True
    checked = text_string_to_metric_families(_sh(good, f"cat {check_file}"))
    check_after = {s.labels["certificate"]: s.value for f in checked for s in f.samples}
    assert all(check_after[name] > check_before[name] for name in check_before)
    # what a no-op costs a host: one SSH execution (acme_certificate's inspect of both its certificates) and
    # no Python (counted from -vvv, as bench/renew_fleet.py does)
    traced = _renew(ctx, f"fleet{GOOD}", verbosity=3, json_output=False)
    assert traced.rc == 0, traced.stdout[-3000:]
    execs = [line for line in traced.stdout.splitlines() if "SSH: EXEC" in line]
    assert len(execs) == 1 and "python" not in execs[0], "\n\n".join(e[:120] + " ... " + e[-200:] for e in execs)

    # a removed fact file and a pool file whose owner drifted are noticed and repaired
    _sh(pooled, f"rm {FACTS}; chown root /etc/ssl/portail/pool/cert.pem")
    third = _renew(ctx, target)
    assert third.rc == 0, third.failures()
    assert third.changed(f"fleet{GOOD}") == 0
    assert third.changed(f"fleet{POOLED}") > 0
    assert _facts(pooled)["certificates"]["main"]["serial"]
    assert _sh(pooled, "stat -L -c '%U' /etc/ssl/portail/pool/cert.pem").strip() == "www-data"

    check = _renew(ctx, target, check=True)
    assert check.rc == 0, check.failures()
    assert check.changed() == 0


def test_renew_exit_status_follows_what_is_overdue(renew_fleet):
    ctx = renew_fleet
    hosts = ctx["hosts"]
    # a first issuance that fails: no certificate at all, overdue, non-zero exit
    bad = _renew(ctx, f"fleet{BAD}")
    assert bad.rc != 0
    lines = _summary(bad)
    assert len(lines) == 1 and lines[0].startswith(f"fleet{BAD} bad: FAILED (OVERDUE)"), lines
    entry = _facts(hosts[BAD])["certificates"]["bad"]
    assert entry["last_result"] == "failed" and entry["serial"] == "" and entry["overdue"] is True

    # a renewal that fails long before the certificate is due: reported, recorded, exit status zero
    good = hosts[GOOD]
    serial = _facts(good)["certificates"]["main"]["serial"]
    # a name never validated before (no authorization to reuse) behind a wrong DNS key: the order fails
    broken = [
        {
            "name": "main",
            "server_names": [good.fqdn, f"x{os.getpid()}-{int(time.time())}.portail.test"],
            "challenge": "dns-01",
            "dns": {"key_name": ctx["good_key"]["key_name"], "key_secret": "d3JvbmcgYWdhaW4h"},
        }
    ]
    early = _renew(ctx, good.name, extra_vars={"portail_sites": broken})
    assert early.rc == 0, early.failures()
    assert _summary(early)[0].startswith(f"fleet{GOOD} main: FAILED (not yet due)")
    entry = _facts(good)["certificates"]["main"]
    assert entry["last_result"] == "failed" and entry["serial"] == serial and entry["overdue"] is False
    prom = _sh(good, f"cat {METRICS_DIR}/portail_https.prom")
    success = {
        s.labels["certificate"]: s.value
        for f in text_string_to_metric_families(prom)
        if f.name == "portail_https_certificate_last_renewal_success"
        for s in f.samples
    }
    assert success["main"] == 0.0

    # the next normal run clears the failure (the record changes, the certificate does not)
    healed = _renew(ctx, good.name)
    assert healed.rc == 0, healed.failures()
    entry = _facts(good)["certificates"]["main"]
    assert entry["last_result"] == "valid" and entry["serial"] == serial


def _unit_settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def _unquote(value: str) -> list[str]:
    """systemd command line -> argv (double quotes, backslash escapes, %% and $$)."""
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]


def test_timer_is_installed_enabled_and_its_run_renews_what_is_due(renew_fleet, tmp_path):
    ctx = renew_fleet
    pooled = ctx["hosts"][POOLED]
    root = tmp_path / "root"
    lock = tmp_path / "renew.lock"
    playbook = f"""
- name: Schedule renewals on this controller
  hosts: localhost
  gather_facts: false
  roles:
    - role: portail.https.renew_timer
      vars:
        renew_timer_inventory: "{ctx["inventory"]}"
        renew_timer_root: "{root}"
        renew_timer_lock_file: "{lock}"
        renew_timer_extra_args: ["-e", "portail_target=fleet{GOOD}:fleet{POOLED}:fleet{NOSITE}"]
        renew_timer_environment:
          ANSIBLE_COLLECTIONS_PATH: "{REPO / "build" / "collections"}"
          ANSIBLE_HOST_KEY_CHECKING: "False"
          ANSIBLE_LOCAL_TEMP: "{REPO / "build" / "ansible-tmp"}"
"""
    first = run_playbook(playbook, tmp_path)
    assert first.rc == 0, first.failures()
    again = run_playbook(playbook, tmp_path)
    assert again.changed() == 0
    units = root / "etc" / "systemd" / "system"
    enabled = subprocess.run(
        ["systemctl", f"--root={root}", "is-enabled", "portail-renew.timer"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert enabled.stdout.strip() == "enabled"
    assert (units / "timers.target.wants" / "portail-renew.timer").is_symlink()
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(units / "portail-renew.service"), str(units / "portail-renew.timer")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    timer = _unit_settings(units / "portail-renew.timer")
    assert timer["Persistent"] == ["true"] and timer["RandomizedDelaySec"] == ["1h"]

    # make a certificate due (its files are gone), then do what systemd does when the timer fires
    serial = _facts(pooled)["certificates"]["main"]["serial"]
    _sh(pooled, "rm -f /etc/ssl/portail/main/cert.pem /etc/ssl/portail/main/fullchain.pem")
    service = _unit_settings(units / "portail-renew.service")
    argv = _unquote(service["ExecStart"][0])
    assert argv[:5] == ["/usr/bin/flock", "--nonblock", "--conflict-exit-code", "75", str(lock)]
    env = ansible_env(dict(_unquote(e)[0].split("=", 1) for e in service.get("Environment", [])))
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    # while another run holds the lock, a triggered run exits 75 (SuccessExitStatus) and does nothing
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        blocked = subprocess.run(
            argv, env=env, cwd=service["WorkingDirectory"][0], capture_output=True, text=True, check=False
        )
        assert blocked.returncode == 75
        fcntl.flock(held, fcntl.LOCK_UN)
    run = subprocess.run(argv, env=env, cwd=service["WorkingDirectory"][0], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"fleet{POOLED} main: issued serial" in run.stdout
    entry = _facts(pooled)["certificates"]["main"]
    assert entry["serial"] and entry["serial"] != serial and entry["last_result"] == "issued"


def test_report_lists_every_host_flags_problems_and_renders(renew_fleet, tmp_path):
    ctx = renew_fleet
    good = ctx["hosts"][GOOD]
    # fleet150 serves its certificate on 443 (openssl s_server), the others serve nothing
    pid = _sh(
        good,
        "cd /etc/ssl/portail/main && nohup openssl s_server -quiet -accept 443 -cert fullchain.pem"
        " -key privkey.pem -www >/dev/null 2>&1 & echo $!",
    ).strip()
    try:
        # a renew run reads what is served (in acme_certificate's round trip) and records it
        renewed = _renew(ctx, f"fleet{GOOD}")
        assert renewed.rc == 0, renewed.failures()
        assert renewed.changed() == 0  # an observation, not a change: the fact file stays as it is
        prom = text_string_to_metric_families(_sh(good, f"cat {METRICS_DIR}/portail_https_check.prom"))
        matches = {
            s.labels["certificate"]: s.value
            for f in prom
            if f.name == "portail_https_certificate_served_matches"
            for s in f.samples
        }
        # s_server answers every name with main's certificate: right for main, wrong for pool
        assert matches == {"main": 1.0, "pool": 0.0}
        # the report role from a playbook in tmp_path: the default destination is next to the playbook
        playbook = tmp_path / "report.yml"
        playbook.write_text(
            "- name: Report\n  hosts: all\n  gather_facts: false\n  roles:\n    - role: portail.https.report\n"
        )
        res = run_playbook(playbook, ctx["work"], inventory=ctx["inventory"])
        assert res.rc == 0, res.failures()
    finally:
        os.kill(int(pid), 15)
    out = tmp_path / "portail-report"
    rows = {(r["host"], r["certificate"]): r for r in json.loads((out / "report.json").read_text())["certificates"]}
    assert rows[(good.name, "main")]["served"] == "match"
    assert rows[(good.name, "main")]["status"] == "ok"
    assert rows[(good.name, "pool")]["served"] == "mismatch"  # nothing answers for that name
    assert rows[(f"fleet{NOSITE}", "")]["status"] == "nodata"
    bad = rows[(f"fleet{BAD}", "bad")]
    assert bad["status"] == "overdue" and bad["days_left"] is None and bad["last_result"] == "failed"
    assert 80 < rows[(f"fleet{POOLED}", "main")]["days_left"] <= 90

    html = out / "report.html"
    profile = tmp_path / "chromium"
    base = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1400,900", html.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.stat().st_size > 10_000
    dom = subprocess.run(
        [*base, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120, check=False
    ).stdout
    assert f'data-host="fleet{BAD}" data-certificate="bad" data-status="overdue"' in dom
    assert f'data-host="fleet{NOSITE}" data-certificate="" data-status="nodata"' in dom
    assert f'data-host="{good.name}" data-certificate="main" data-status="ok"' in dom
    assert dom.count("<tr class=") == len(rows)
    keep = os.environ.get("PORTAIL_KEEP_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(shot.read_bytes())
