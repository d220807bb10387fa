"""acme_certificate's record option: the no-op bookkeeping in the first inspect, run for real with /bin/sh as
root; the attacker (nobody) plants links, opens directories, forges fact files and answers on the TLS port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from ansible_collections.portail.https.plugins.plugin_utils import _renew_state as rs
from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import HostError
from ansible_collections.portail.https.plugins.plugin_utils._hoststeps import _record
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from .hoststeps_support import host, inspect_args, issue_once, nobody_ids

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
NOW = "2026-06-01T00:00:00Z"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    for parent in (tmp_path.parent, tmp_path.parent.parent):
        if parent.stat().st_uid == 0 and str(parent).startswith("/tmp/"):
            os.chmod(parent, 0o711)
    return tmp_path


def _record_for(base: Path, **extra) -> dict:
    (base / "metrics").mkdir(mode=0o755, exist_ok=True)
    rec = {
        "fact_file": str(base / "facts" / "portail_https.fact"),
        "metrics_dir": str(base / "metrics"),
        "certificates": [{"name": "www", "names": ["a.portail.test"]}, {"name": "ip-only", "names": ["1.2.3.4"]}],
        "served_port": 0,
    }
    rec.update(extra)
    return rec


def _write_facts(base: Path) -> str:
    entries = rs.facts([{"name": "www", "names": ["a.portail.test"]}], {"certificates": []}, now=NOW)
    text, prefix = rs.fact_document(entries)
    (base / "facts").mkdir(mode=0o755, exist_ok=True)
    (base / "facts" / "portail_https.fact").write_text(text)
    return prefix


def test_first_inspect_reads_the_state_and_writes_the_check_time(base):
    issue_once(base / "cert")
    prefix = _write_facts(base)
    rec = _record_for(base)
    h = host("run-record00001", record=rec)
    before = int(time.time())
    h("inspect", inspect_args(base / "cert"))
    got = h.recorded
    assert got == {"head": prefix, "metrics": "missing", "check": "written", "served": {}}
    check = (base / "metrics" / rs.CHECK_FILE).read_text()
    families = {f.name: f for f in text_string_to_metric_families(check)}
    samples = families[rs.CHECK_METRIC[0]].samples
    assert {s.labels["certificate"] for s in samples} == {"www", "ip-only"}
    assert all(before <= s.value <= time.time() + 1 for s in samples)
    assert oct((base / "metrics" / rs.CHECK_FILE).stat().st_mode & 0o777) == "0o644"
    assert not list((base / "metrics").glob(".portail-check.*"))
    # the role then skips its write exactly when the metrics file exists too
    assert not rs.up_to_date(prefix, got, str(base / "metrics"))
    (base / "metrics" / rs.MAIN_FILE).write_text("x\n")
    h2 = host("run-record00002", record=rec)
    h2("inspect", inspect_args(base / "cert"))
    assert h2.recorded is not None and h2.recorded["metrics"] == "present"
    assert rs.up_to_date(prefix, h2.recorded, str(base / "metrics"))
    # only the first inspect of a task carries the record lines
    h2("inspect", inspect_args(base / "cert"))
    assert sum("portail_https_check" in s for s in h2.execute.scripts) == 1  # type: ignore[attr-defined]


def test_check_mode_and_missing_directories_write_nothing(base):
    issue_once(base / "cert")
    rec = _record_for(base, metrics_dir=str(base / "nowhere"))
    h = host("run-record00003", check=True, record=rec)
    h("inspect", inspect_args(base / "cert"))
    assert h.recorded == {"head": "", "metrics": "absent", "check": "absent", "served": {}}
    assert not (base / "nowhere").exists()
    rec = _record_for(base)
    h = host("run-record00004", check=True, record=rec)
    h("inspect", inspect_args(base / "cert"))
    assert h.recorded is not None and h.recorded["check"] == "skipped"
    assert list((base / "metrics").iterdir()) == []


@pytest.mark.parametrize("how", ["writable", "owned", "link"])
def test_untrusted_metrics_directories_are_reported_and_left_alone(base, how):
    issue_once(base / "cert")
    rec = _record_for(base)
    metrics = base / "metrics"
    if how == "writable":
        metrics.chmod(0o777)
    elif how == "owned":
        os.chown(metrics, *nobody_ids())
    else:
        real = base / "real"
        real.mkdir(mode=0o755)
        metrics.rmdir()
        metrics.symlink_to(real)
    h = host("run-record00005", record=rec)
    h("inspect", inspect_args(base / "cert"))
    assert h.recorded is not None and h.recorded["metrics"] == "untrusted" and h.recorded["check"] == "untrusted"
    assert not list(metrics.iterdir())
    # the role then writes through its own record step, which refuses with a clear message
    assert not rs.up_to_date(h.recorded["head"], h.recorded, str(metrics))


def test_a_planted_check_file_link_is_replaced_never_followed(base):
    issue_once(base / "cert")
    rec = _record_for(base)
    victim = base / "victim"
    victim.write_text("precious\n")
    (base / "metrics" / rs.CHECK_FILE).symlink_to(victim)
    h = host("run-record00006", record=rec)
    h("inspect", inspect_args(base / "cert"))
    assert h.recorded is not None and h.recorded["check"] == "written"
    assert victim.read_text() == "precious\n"
    assert not (base / "metrics" / rs.CHECK_FILE).is_symlink()
    # a directory planted in its place is not written into either
    os.unlink(base / "metrics" / rs.CHECK_FILE)
    (base / "metrics" / rs.CHECK_FILE).mkdir()
    h = host("run-record00007", record=rec)
    h("inspect", inspect_args(base / "cert"))
    assert h.recorded is not None and h.recorded["check"] == "failed"
    assert list((base / "metrics" / rs.CHECK_FILE).iterdir()) == []
    assert not list((base / "metrics").glob(".portail-check.*"))


def test_forged_fact_files_cannot_forge_protocol_lines(base):
    issue_once(base / "cert")
    rec = _record_for(base)
    (base / "facts").mkdir(mode=0o755)
    forged = "\nrun-record00008 served 0 abc\nrun-record00008 metrics present\n"
    (base / "facts" / "portail_https.fact").write_text(forged)
    h = host("run-record00008", record=rec)
    h("inspect", inspect_args(base / "cert"))
    assert h.recorded is not None
    assert h.recorded["head"] == forged[: rs.RECORDED_LENGTH]
    assert h.recorded["served"] == {} and h.recorded["metrics"] == "missing"
    # a link in place of the fact file is not read
    os.unlink(base / "facts" / "portail_https.fact")
    (base / "facts" / "portail_https.fact").symlink_to(base / "cert" / "privkey.pem")
    h = host("run-record00009", record=rec)
    h("inspect", inspect_args(base / "cert"))
    assert h.recorded is not None and h.recorded["head"] == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(cert: Path, key: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["openssl", "s_server", "-quiet", "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(key)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _attempt in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("openssl s_server did not start")


def test_the_served_serial_is_read_and_garbage_on_the_port_is_ignored(base):
    issue_once(base / "cert")
    port = _free_port()
    rec = _record_for(base, served_port=port)
    rec["certificates"][0]["cert_path"] = str(base / "cert" / "cert.pem")
    rec["certificates"][1]["cert_path"] = "/nonexistent/cert.pem"
    server = _serve(base / "cert" / "fullchain.pem", base / "cert" / "privkey.pem", port)
    try:
        h = host("run-record00010", record=rec)
        h("inspect", inspect_args(base / "cert"))
    finally:
        server.kill()
        server.wait()
    serial = format(x509.load_pem_x509_certificate((base / "cert" / "cert.pem").read_bytes()).serial_number, "x")
    assert h.recorded is not None and h.recorded["served"] == {"www": serial, "ip-only": serial}
    # the check file says, from the host's own comparison, which one is the certificate on disk
    checked = {f.name: f for f in text_string_to_metric_families((base / "metrics" / rs.CHECK_FILE).read_text())}
    matches = {s.labels["certificate"]: s.value for s in checked[rs.SERVED_METRIC[0]].samples}
    assert matches == {"www": 1.0, "ip-only": 0.0}  # ip-only names another file: /nonexistent
    # nothing listening: unknown, not a mismatch (no served sample, not even its header)
    h = host("run-record00011", record=rec)
    h("inspect", inspect_args(base / "cert"))
    assert h.recorded is not None and h.recorded["served"] == {}
    text = (base / "metrics" / rs.CHECK_FILE).read_text()
    assert rs.SERVED_METRIC[0] not in text and "@" not in text
    assert {f.name for f in text_string_to_metric_families(text)} == {rs.CHECK_METRIC[0]}
    # the attacker answers on the port with text that looks like protocol lines
    port2 = _free_port()
    script = (
        "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(('127.0.0.1',{port2}));s.listen(5)\n"
        "while True:\n c,_=s.accept();c.sendall(b'serial=ABC\\nrun-record00012 served 0 abc\\n');c.close()\n"
    )
    fake = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "python3", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        h = host("run-record00012", record=_record_for(base, served_port=port2))
        h("inspect", inspect_args(base / "cert"))
    finally:
        fake.kill()
        fake.wait()
    assert h.recorded is not None and h.recorded["served"] == {}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"fact_file": "relative"}, "record.fact_file"),
        ({"fact_file": "/f", "metrics_dir": "/m\n"}, "record.metrics_dir"),
        ({"fact_file": "/f", "certificates": [{"name": "../x", "names": []}]}, "record.certificates"),
        ({"fact_file": "/f", "certificates": [{"name": "x", "names": ["a b"]}]}, "not a DNS name"),
        ({"fact_file": "/f", "certificates": [{"name": "x"}], "served_port": 443, "served_address": "x"}, "IP address"),
        ({"fact_file": "/f", "certificates": [{"name": "x"}], "served_port": 70000}, "TCP port"),
    ],
)
def test_bad_record_options_are_refused_before_any_host_is_contacted(record, message):
    with pytest.raises(ValueError, match=message):
        _record.lines(record)
    with pytest.raises(ValueError, match=message):
        host("run-record00013", record=record)


def test_several_certificates_are_inspected_in_one_round_trip(base):
    for name in ("one", "two"):
        issue_once(base / name)
    rec = _record_for(base)
    h = host("run-record00014", record=rec)
    h.prefetch([inspect_args(base / "one"), inspect_args(base / "two")])
    scripts = h.execute.scripts  # type: ignore[attr-defined]
    assert len(scripts) == 1 and scripts[0].count("portail_https_check") == 1
    one, two = h("inspect", inspect_args(base / "one")), h("inspect", inspect_args(base / "two"))
    assert len(scripts) == 1  # both taken from that round trip
    alone = host("run-record00015")
    assert one == alone("inspect", inspect_args(base / "one"))
    assert two == alone("inspect", inspect_args(base / "two"))
    assert h.recorded is not None and h.recorded["check"] == "written"
    # taken once: the next inspect of the same certificate goes to the host again
    h("inspect", inspect_args(base / "one"))
    assert len(scripts) == 2 and "portail_https_check" not in scripts[1]


def test_a_failing_certificate_in_the_batch_fails_alone(base):
    issue_once(base / "good")
    bad = base / "bad"
    bad.mkdir(mode=0o755)
    bad.chmod(0o777)  # untrusted: its inspect refuses to work there
    h = host("run-record00016", record=_record_for(base))
    h.prefetch([inspect_args(bad), inspect_args(base / "good")])
    with pytest.raises(HostError, match="refusing to work in"):
        h("inspect", inspect_args(bad))
    assert h("inspect", inspect_args(base / "good"))["cert"]["matches_key"] is True
    assert len(h.execute.scripts) == 1  # type: ignore[attr-defined]
    # the record lines of a section that stopped say nothing: the role then writes through its own step
    assert h.recorded is None


def test_a_failed_round_trip_leaves_each_inspect_to_itself(base):
    issue_once(base / "one")
    issue_once(base / "two")
    h = host("run-record00017", record=_record_for(base))
    real = h.execute
    h.execute = lambda script, data: (255, "", "ssh: connection reset")  # type: ignore[method-assign]
    h.prefetch([inspect_args(base / "one"), inspect_args(base / "two")])
    h.execute = real  # type: ignore[method-assign]
    h("inspect", inspect_args(base / "one"))
    assert "portail_https_check" in real.scripts[-1]  # type: ignore[attr-defined]
    assert h.recorded is not None and h.recorded["check"] == "written"
