"""The certificate role's bookkeeping: plan, fact entries, the record command, metrics, summary, report rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.portail.https.plugins.plugin_utils import _renew_state as rs
from ansible_collections.portail.https.plugins.plugin_utils import _systemd
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[4]
NOW = "2026-06-01T00:00:00Z"
DEFAULTS = {"dir": "/etc/ssl/portail", "key_type": "ec256", "challenge": "http-01", "dns": {"server": "ns1"}}


def _plan(items, host="h1", groups=None):
    return rs.plan(items, host=host, groups=groups or {}, defaults=DEFAULTS)


def test_plan_passes_dns_merged_and_profile_per_certificate():
    p = _plan(
        [
            {"name": "www", "names": ["www.example.org"], "dns": {"key_name": "k"}, "profile": "tlsserver"},
            {"name": "ip", "names": ["192.0.2.1"]},
        ]
    )
    www, ip = p["own"]
    assert www["dns"] == {"server": "ns1", "key_name": "k"}
    assert www["profile"] == "tlsserver"
    assert www["key_path"] == "/etc/ssl/portail/www/privkey.pem"
    assert "dns" not in ip
    assert len(p["warnings"]) == 1 and "ip" in p["warnings"][0] and "profile" in p["warnings"][0]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"name": "../x", "names": ["a.example"]}], "name must be"),
        ([{"name": "a", "names": []}], "non-empty list"),
        ([{"name": "a", "names": ["a.example"], "dns": "x"}], "dns must be a dictionary"),
        ([{"name": "a", "names": ["a.example"], "key_type": "dsa"}], "key_type"),
        ([{"name": "a", "names": ["x"]}, {"name": "a", "names": ["y"]}], "listed twice"),
        ([{"name": "a", "names": ["x"], "pool": "nope"}], "not an inventory group"),
        ("www", "must be a list"),
    ],
)
def test_plan_refuses_bad_input(items, message):
    with pytest.raises(rs.RenewStateError, match=message):
        _plan(items)


def test_plan_pool_leader_issues_members_copy():
    items = [{"name": "shop", "names": ["shop.example"], "pool": "p"}]
    groups = {"p": ["a", "b"]}
    assert len(_plan(items, "a", groups)["own"]) == 1
    member = _plan(items, "b", groups)
    assert member["own"] == [] and member["copied"][0]["leader"] == "a"
    assert _plan(items, "c", groups) == {"own": [], "copied": [], "warnings": []}


def _result(**kw):
    base = {
        "name": "www",
        "changed": False,
        "reason": "valid",
        "reason_msg": "60 days left",
        "names": ["www.example.org"],
        "serial": "0abc",
        "not_before": "2026-04-01T00:00:00+00:00",
        "not_after": "2026-06-30T00:00:00+00:00",
        "issuer": "CN=Test CA",
        "key_type": "ec256",
    }
    base.update(kw)
    return {"certificates": [base]}


OWN = [{"name": "www", "names": ["www.example.org"], "key_type": "ec256"}]


def test_noop_entry_does_not_depend_on_the_run_time_and_keeps_the_state():
    a = rs.facts(OWN, _result(), now=NOW)
    b = rs.facts(OWN, _result(reason_msg="59 days left"), now="2026-06-02T00:00:00Z")
    assert a == b
    assert a["www"]["last_result"] == "valid"
    assert a["www"]["renewal_source"] == "lifetime"
    assert a["www"]["renew_after"] == "2026-05-31T00:43:12Z"  # 0.333 of 90 days before not_after
    assert rs.fact_document(a)[1] == rs.fact_document(b)[1]


def test_ari_window_and_renew_at_are_used_when_present():
    r = _result(renewal_window={"start": "2026-06-10T00:00:00Z", "end": "2026-06-12T00:00:00Z"})
    e = rs.facts(OWN, r, now=NOW)["www"]
    assert (e["window_start"], e["window_end"]) == ("2026-06-10T00:00:00Z", "2026-06-12T00:00:00Z")
    assert e["renewal_source"] == "ari"
    e2 = rs.facts(OWN, _result(renew_at="2026-06-11T05:00:00Z"), now=NOW)["www"]
    assert e2["renew_after"] == "2026-06-11T05:00:00Z"


def test_renewal_entry_and_state_prefix_changes():
    before = rs.facts(OWN, _result(), now=NOW)
    after = rs.facts(OWN, _result(changed=True, reason="expiring", serial="0def"), now=NOW)
    assert after["www"]["last_result"] == "renewed"
    assert after["www"]["last_run"] == "2026-06-01T00:00:00Z"
    assert rs.fact_document(before)[1] != rs.fact_document(after)[1]
    issued = rs.facts(OWN, _result(changed=True, reason="missing"), now=NOW)
    assert issued["www"]["last_result"] == "issued"


def test_failure_keeps_the_previous_certificate_and_says_whether_it_is_overdue():
    previous = rs.facts(OWN, _result(), now=NOW)
    failed = {"certificates": [{"name": "www", "failed": True, "msg": "CA said no", "serial": None}]}
    early = rs.facts(OWN, failed, previous=previous, failed_msg="x", now="2026-05-01T00:00:00Z")["www"]
    assert early["serial"] == "0abc" and early["last_result"] == "failed" and early["last_reason"] == "CA said no"
    assert early["overdue"] is False
    late = rs.facts(OWN, failed, previous=previous, failed_msg="x", now="2026-06-05T00:00:00Z")["www"]
    assert late["overdue"] is True
    first = rs.facts(OWN, {}, failed_msg="connection refused", now=NOW)["www"]
    assert first["serial"] == "" and first["overdue"] is True and first["last_reason"] == "connection refused"
    # the failed state differs from the ok state, so the next good run rewrites the file
    assert rs.fact_document(previous)[1] != rs.fact_document({"www": early})[1]


def test_window_passed_is_overdue():
    e = rs.facts(OWN, _result(renewal_window={"start": "2026-05-01T00:00:00Z", "end": "2026-05-03T00:00:00Z"}))["www"]
    assert rs.overdue(e, rs.now_utc("2026-05-04T00:00:00Z"), 0.333)
    assert not rs.overdue(e, rs.now_utc("2026-05-02T00:00:00Z"), 0.333)


def test_metrics_parse_with_the_prometheus_rules():
    entries = rs.facts(OWN, _result(renewal_window={"start": "2026-06-10T00:00:00Z", "end": "2026-06-12T00:00:00Z"}))
    entries['we"ird\\name'] = dict(entries["www"], last_result="failed", served_serial="ffff")
    text = rs.metrics(entries, now=NOW)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    na = {s.labels["certificate"]: s.value for s in families["portail_https_certificate_not_after_seconds"].samples}
    assert na["www"] == 1782777600.0
    ok = {s.labels["certificate"]: s.value for s in families["portail_https_certificate_last_renewal_success"].samples}
    assert ok == {"www": 1.0, 'we"ird\\name': 0.0}
    # what is observed at each run (the served certificate) lives in the check file, filled in by the host
    assert "portail_https_certificate_served_matches" not in families
    start = families["portail_https_certificate_renewal_window_start_seconds"].samples[0]
    assert start.value == 1781049600.0
    # the check time lives in its own file (the host adds its clock): this one only moves with the certificates
    assert "portail_https_certificate_last_check_timestamp_seconds" not in families
    assert rs.metrics(entries, now="2027-01-01T00:00:00Z") == text
    template = rs.check_metrics([{"name": "www", "names": ["a", "b"]}, {"name": 'we"ird', "names": []}], served=True)
    filled = []
    for line in template.splitlines():  # what the host does (tests/unit/.../test_hoststeps_record.py runs it)
        if line.startswith("#?"):
            filled.append("#" + line[2:])
        elif line.startswith("#"):
            filled.append(line)
        elif line.endswith(rs.CLOCK_MARK):
            filled.append(line[: -len(rs.CLOCK_MARK)] + " 1780272000")
        else:
            head, _sep, k = line.rpartition(rs.SERVED_MARK)
            filled.append(f"{head} {k}")
    families = {f.name: f for f in text_string_to_metric_families("\n".join(filled) + "\n")}
    check = families[rs.CHECK_METRIC[0]].samples
    assert [(c.labels["certificate"], c.labels["names"], c.value) for c in check] == [
        ('we"ird', "", 1780272000.0),
        ("www", "a,b", 1780272000.0),
    ]
    # the served sample of each certificate carries its index in the list the host probes
    assert [(c.labels["certificate"], c.value) for c in families[rs.SERVED_METRIC[0]].samples] == [
        ('we"ird', 1.0),
        ("www", 0.0),
    ]


def test_record_command_is_empty_when_the_host_already_records_this_state():
    entries = rs.facts(OWN, _result(), now=NOW)
    _text, prefix = rs.fact_document(entries)
    seen = {"head": prefix, "metrics": "present", "check": "written", "served": {}}
    args = {"fact_file": "/etc/ansible/facts.d/portail_https.fact", "metrics_dir": "/var/lib/node"}
    assert rs.record_command(entries, recorded=seen, **args) == ""
    assert rs.record_command(entries, recorded=dict(seen, metrics="absent", check="absent"), **args) == ""
    assert rs.record_command(entries, recorded=dict(seen, metrics="missing"), **args) != ""
    assert rs.record_command(entries, recorded=dict(seen, check="untrusted", metrics="untrusted"), **args) != ""
    assert rs.record_command(entries, recorded=dict(seen, head=prefix[:-1] + "x"), **args) != ""
    assert rs.record_command(entries, recorded=None, **args) != ""
    # after a failure the role always writes
    assert rs.record_command(entries, recorded=seen, keep_when_unchanged=False, **args) != ""
    # without metrics only the fact file matters
    assert rs.record_command(entries, recorded=dict(seen, metrics="", check=""), fact_file=args["fact_file"]) == ""
    # a different ARI point changes the state
    moved = rs.facts(OWN, _result(renew_at="2026-06-20T00:00:00Z"), now=NOW)
    assert rs.record_command(moved, recorded=seen, **args) != ""


@pytest.fixture
def trusted_dir():
    """A directory whose every parent is root's and not writable by others (the record step insists)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (directories must be owned by root)")
    base = REPO / "build" / "unit-record"
    for parent in [base, *base.parents]:
        if parent.exists() and (parent.stat().st_uid != 0 or parent.stat().st_mode & 0o022):
            pytest.skip(f"{parent} is not a trusted directory on this machine")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True, mode=0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _run(cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=False)


def test_record_command_writes_keeps_and_repairs(trusted_dir):
    facts_path = trusted_dir / "facts.d" / "portail_https.fact"
    metrics_dir = trusted_dir / "textfile"
    entries = rs.facts(OWN, _result(), now=NOW)
    cmd = rs.record_command(entries, fact_file=str(facts_path), metrics_dir=str(metrics_dir), now=NOW)
    first = _run(cmd)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["written:facts", "absent:metrics"]
    assert json.loads(facts_path.read_text())["certificates"]["www"]["serial"] == "0abc"
    assert oct(facts_path.stat().st_mode & 0o777) == "0o644"
    inode = facts_path.stat().st_ino
    metrics_dir.mkdir(mode=0o755)
    again = _run(cmd)
    assert again.stdout.split() == ["kept:facts", "written:metrics"]
    assert facts_path.stat().st_ino == inode
    assert "portail_https_certificate_not_after_seconds" in (metrics_dir / "portail_https.prom").read_text()
    # a later run with an unchanged state but other volatile fields keeps the file
    later = rs.facts(OWN, _result(reason_msg="other"), now="2026-06-03T00:00:00Z")
    assert _run(rs.record_command(later, fact_file=str(facts_path))).stdout.split() == ["kept:facts"]
    # tampered or removed: rewritten
    facts_path.write_text('{"state": "forged", "certificates": {}}')
    assert _run(cmd).stdout.split()[0] == "written:facts"
    facts_path.unlink()
    assert _run(cmd).stdout.split()[0] == "written:facts"
    assert not list(facts_path.parent.glob(".portail-record.*"))


def test_record_command_refuses_symlinks_and_writable_directories(trusted_dir):
    target = trusted_dir / "victim"
    target.write_text("precious\n")
    d = trusted_dir / "facts.d"
    d.mkdir(mode=0o755)
    link = d / "portail_https.fact"
    link.symlink_to(target)
    entries = rs.facts(OWN, _result(), now=NOW)
    res = _run(rs.record_command(entries, fact_file=str(link)))
    assert res.returncode == 3 and "not a regular file" in res.stderr
    assert target.read_text() == "precious\n"
    link.unlink()
    d.chmod(0o777)
    res = _run(rs.record_command(entries, fact_file=str(link)))
    assert res.returncode == 3 and "writable by others" in res.stderr
    assert not link.exists()
    d.chmod(0o755)
    os.chown(d, 65534, 65534)
    res = _run(rs.record_command(entries, fact_file=str(link)))
    assert res.returncode == 3 and "not owned by root" in res.stderr
    os.chown(d, 0, 0)
    linked_dir = trusted_dir / "linked"
    linked_dir.symlink_to(d)
    res = _run(rs.record_command(entries, fact_file=str(linked_dir / "x.fact")))
    assert res.returncode == 3 and "symbolic link" in res.stderr


def test_record_command_content_cannot_break_out_of_the_script(trusted_dir):
    entries = rs.facts(OWN, _result(issuer="CN=x'; touch /tmp/portail-pwned; echo '$(id)`id`\n\r"), now=NOW)
    path = trusted_dir / "f.fact"
    res = _run(rs.record_command(entries, fact_file=str(path)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["written:facts"]
    assert json.loads(path.read_text())["certificates"]["www"]["issuer"].startswith("CN=x'; touch")
    assert not Path("/tmp/portail-pwned").exists()


@pytest.mark.parametrize("bad", ["relative/path", "/etc/../x", "/etc/x\n", "/etc/dir/"])
def test_record_command_refuses_bad_paths(bad):
    with pytest.raises(rs.RenewStateError):
        rs.record_command({}, fact_file=bad)


def test_summary_lines_and_overdue():
    ok = rs.facts(OWN, _result(changed=True, reason="expiring", reason_msg="20 days left"), now=NOW)
    failed = rs.facts(OWN, {}, failed_msg="timeout", now=NOW)
    hv = {
        "a": {"__certificate_run": {"entries": ok, "changed": ["www"]}},
        "b": {"__certificate_run": {"entries": failed, "changed": []}},
        "c": {"__certificate_run": {"entries": rs.facts(OWN, _result(), now=NOW), "changed": []}},
        "d": {},
    }
    s = rs.summary(hv, ["a", "b", "c", "d"])
    assert s["lines"] == [
        "a www: renewed serial 0abc until 2026-06-30T00:00:00+00:00 (20 days left)",
        "b www: FAILED (OVERDUE): timeout",
    ]
    assert s["overdue"] == ["b www"]
    assert s["hosts_without_certificates"] == ["d"]
    assert s["counts"] == {"certificates": 3, "changed": 1, "failed": 1, "overdue": 1}


def test_report_rows_never_crash_and_list_every_host():
    good = rs.facts(OWN, _result(), now=NOW)
    first_failed = rs.facts(OWN, {}, failed_msg="no", now=NOW)
    late = rs.facts(OWN, _result(renewal_window={"start": "2026-05-01T00:00:00Z", "end": "2026-05-02T00:00:00Z"}))
    hv = {
        "a": {"ansible_local": {"portail_https": {"certificates": good}}},
        "b": {"ansible_local": {"portail_https": {"certificates": first_failed}}},
        "c": {},
        "d": {"ansible_local": {"portail_https": {"certificates": late}}},
        "e": {"ansible_local": {"portail_https": {"certificates": {"broken": "x"}}}},
        "f": {
            "ansible_local": {"portail_https": {"certificates": good}},
            "__report_served": {"results": [{"item": {"key": "www"}, "checks": {"certificate": {"serial": "abd"}}}]},
        },
    }
    rows = rs.report_rows(hv, list(hv), now=NOW, check_served=True)
    by = {(r["host"], r["certificate"]): r for r in rows}
    assert by[("a", "www")]["status"] == "ok" and by[("a", "www")]["days_left"] == 29.0
    assert by[("b", "www")]["status"] == "overdue" and by[("b", "www")]["days_left"] is None
    assert by[("c", "")]["status"] == "nodata"
    assert by[("d", "www")]["status"] == "overdue"
    assert by[("e", "broken")]["days_left"] is None
    assert by[("f", "www")]["served"] == "mismatch" and by[("f", "www")]["status"] == "mismatch"
    assert rows[0]["status"] == "overdue"
    hv["f"]["__report_served"]["results"][0]["checks"]["certificate"]["serial"] = "abc"
    assert {r["host"]: r for r in rs.report_rows(hv, ["f"], now=NOW, check_served=True)}["f"]["served"] == "match"


@pytest.mark.parametrize(
    ("value", "command", "quoted"),
    [
        ("/usr/bin/flock", True, "/usr/bin/flock"),
        ("a b", True, '"a b"'),
        ("100%", True, "100%%"),
        ("$HOME", True, '"$$HOME"'),
        ("X=$HOME", False, '"X=$HOME"'),
        ('say "hi"\\', True, '"say \\"hi\\"\\\\"'),
        ("", True, '""'),
        (";", True, '";"'),
    ],
)
def test_systemd_quote(value, command, quoted):
    assert _systemd.quote(value, command=command) == quoted


def test_systemd_quote_refuses_newlines():
    with pytest.raises(_systemd.SystemdQuoteError):
        _systemd.quote("a\nExecStartPost=/bin/evil")


def test_site_certificates_take_the_certificate_keys_of_each_site():
    sites = [
        {"name": "www", "server_names": ["a.test", "b.test"], "root": "/srv/www", "pool": "web", "dns": {"zone": "t"}},
        {"name": "api", "server_names": ["api.test"], "upstream": "http://127.0.0.1:8080", "profile": "shortlived"},
    ]
    assert rs.site_certificates(sites) == [
        {"name": "www", "names": ["a.test", "b.test"], "pool": "web", "dns": {"zone": "t"}},
        {"name": "api", "names": ["api.test"], "profile": "shortlived"},
    ]
    with pytest.raises(rs.RenewStateError, match="portail_sites must be a list"):
        rs.site_certificates({"name": "www"})
    with pytest.raises(rs.RenewStateError, match=r"portail_sites\[0\]"):
        rs.site_certificates(["www"])
    # what is wrong inside an entry is the plan's to say, before anything changes
    with pytest.raises(rs.RenewStateError, match="names must be a non-empty list"):
        rs.plan(rs.site_certificates([{"name": "x"}]), host="h", groups={}, defaults={})
