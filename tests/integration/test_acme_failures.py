"""portail.https.acme_certificate when the CA or the DNS fails (issue 19): what the operator is told.

Faults are injected the way a real CA and network fail: a proxy in front of the rig's Pebble or
acme2certifier (faultproxy.py) drops connections, answers problem documents or refuses everything,
and DNS servers are cut by an nft rule that only the run under test sees (netcut.py). Everything not
injected is the real CA and the real BIND.

The contract asserted here (the result shape of every failure):

* ``acme_requests`` (int) is always at the top level of the task result, also when it failed;
* a failed certificate (its entry in ``certificates``, and the top level for the ``names:`` form) has
  ``failed: true``, ``step`` (one of STEPS), a ``msg`` naming the certificate, the identifier when there
  is one, the step, and the CA's problem short type and detail (or the network error), and
  ``problem: {type, detail, status, identifier, subproblems}`` when the CA sent a problem document;
* ``changed`` is false when the run failed before anything changed on the host;
* a valid certificate that is not due stays ok (changed false) when the CA cannot be reached, with a
  warning that the CA's renewal information could not be read.

Addresses 127.0.30.200-230 (cert200..cert230.portail.test) belong to this file.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from pathlib import Path

import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from . import test_acme_certificate as tac
from .faultproxy import FaultProxy
from .harness import PlaybookResult, finish_playbook, start_playbook
from .netcut import NetCut

pytestmark = pytest.mark.rig

TASK = tac.TASK
STEPS = {
    "inspect",
    "lock",
    "account",
    "renewal-info",
    "order",
    "authorization",
    "challenge",
    "validation",
    "finalize",
    "download",
    "deploy",
    "cleanup",
}
PROBLEM_KEYS = {"type", "detail", "status", "identifier", "subproblems"}
ACME_ERROR = "urn:ietf:params:acme:error:"
CONTACT = ["mailto:faults@portail.test"]  # acme2certifier refuses accounts without one

nginx_factory = tac.nginx_factory  # the same small nginx the acme_certificate tests use for http-01


@pytest.fixture
def pebble_proxy(rig):
    """The fault proxy in front of the rig's Pebble, terminating TLS with the rig's listener certificate."""
    tls = Path(rig["PORTAIL_ACME_CA_BUNDLE"]).parent
    upstream = urllib.parse.urlsplit(rig["PORTAIL_ACME_DIRECTORY"])
    with FaultProxy(
        f"https://{upstream.netloc}",
        tls_cert=tls / "listener.pem",
        tls_key=tls / "listener.key",
        upstream_ca=Path(rig["PORTAIL_ACME_CA_BUNDLE"]),
    ) as proxy:
        proxy.directory = proxy.url(upstream.path)
        yield proxy


@pytest.fixture
def a2c_proxy(rig):
    """The fault proxy in front of acme2certifier (plain HTTP, as the rig serves it; it offers ARI)."""
    url = rig.get("PORTAIL_A2C_DIRECTORY")
    if not url:
        pytest.skip("the rig runs no acme2certifier (tests/rig/a2c.py)")
    upstream = urllib.parse.urlsplit(url)
    with FaultProxy(f"http://{upstream.netloc}") as proxy:
        proxy.directory = proxy.url(upstream.path)
        yield proxy


@pytest.fixture
def netcut():
    with NetCut() as cut:
        yield cut


def args_for(rig, account_key: Path, out: Path, names: list[str], directory: str, **extra) -> dict:
    args = tac.base(rig, account_key, out, names, **extra)
    args["acme_directory"] = directory
    args.setdefault("timeout", 60)
    return args


def start(tmp: Path, args: dict, **kw):
    return start_playbook(tac.playbook(args), tmp, **kw)


def run(tmp: Path, args: dict, **kw) -> PlaybookResult:
    return finish_playbook(start(tmp, args, **kw), timeout=300)


def warnings_text(res: PlaybookResult) -> str:
    """The warnings of the task (as the JSON callback records them) and any Ansible printed on stderr."""
    r = res.result(TASK)
    return json.dumps(r.get("warnings", [])) + res.stderr


def serial_of(out: Path) -> int:
    from cryptography import x509

    return x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number


def assert_failure(res: PlaybookResult, name: str, step: str | set[str], *fragments: str) -> dict:
    """The failure contract for the single-certificate form; returns the task result."""
    assert res.rc != 0, res.stdout[-3000:]
    r = res.result(TASK)
    assert isinstance(r.get("acme_requests"), int), f"no acme_requests in the failed result: {r}"
    assert r.get("failed") is True, r
    steps = {step} if isinstance(step, str) else step
    assert r.get("step") in steps, f"step {r.get('step')!r}, expected one of {sorted(steps)}: {r.get('msg')}"
    assert r["step"] in STEPS
    msg = r["msg"]
    assert name in msg, msg
    assert r["step"] in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return r


def assert_problem(r: dict, short: str, detail: str, status: int) -> dict:
    problem = r.get("problem")
    assert isinstance(problem, dict), f"no problem document in {r}"
    assert PROBLEM_KEYS <= set(problem), problem
    assert problem["type"] == ACME_ERROR + short
    assert problem["detail"] == detail
    assert problem["status"] == status
    return problem


def problem_doc(short: str, detail: str, status: int, subproblems: list[dict] | None = None) -> dict:
    doc = {"type": ACME_ERROR + short, "detail": detail, "status": status}
    if subproblems:
        doc["subproblems"] = subproblems
    return doc


def clear_txt(rig, record: str) -> None:
    """Start from no TXT at record (a value left there by an earlier run of this file is not this run's)."""
    keyring = dns.tsigkeyring.from_text({rig["PORTAIL_TSIG_NAME"]: rig["PORTAIL_TSIG_SECRET"]})
    update = dns.update.UpdateMessage(
        rig["PORTAIL_DNS_ZONE"], keyring=keyring, keyalgorithm=rig["PORTAIL_TSIG_ALGORITHM"]
    )
    update.delete(record + ".", "TXT")
    response = dns.query.tcp(update, rig["PORTAIL_DNS_PRIMARY"], timeout=5)
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())
    tac.assert_no_txt(rig, record)


def issue(tmp: Path, args: dict) -> dict:
    res = run(tmp, args)
    assert res.rc == 0, res.failures()
    r = res.result(TASK)
    assert r["changed"] is True
    return r


# --- 1. the CA refuses the order: its problem document reaches the operator ---------------------------


NEW_ORDER_PROBLEMS = [
    pytest.param(
        "cert200.portail.test",
        "rateLimited",
        429,
        "too many new orders (5) for cert200.portail.test in the last 3 hours, retry after 2026-12-02T12:00:00Z",
        {"Retry-After": "86400"},
        False,
        id="rateLimited",
    ),
    pytest.param(
        "cert201.portail.test",
        "rejectedIdentifier",
        400,
        "Error creating new order :: Cannot issue for cert201.portail.test: the domain is on a block list",
        {},
        True,
        id="rejectedIdentifier",
    ),
]


@pytest.mark.parametrize(("name", "short", "status", "detail", "headers", "with_sub"), NEW_ORDER_PROBLEMS)
def test_new_order_problem_on_first_issuance(
    rig, account_key, tmp_path, pebble_proxy, name, short, status, detail, headers, with_sub
):
    """Point 1: the CA's problem, not a Python error; nothing changed, nothing left on the host."""
    subproblems = None
    if with_sub:
        subproblems = [
            {
                "type": ACME_ERROR + short,
                "detail": f"{name} is on a block list",
                "identifier": {"type": "dns", "value": name},
            }
        ]
    pebble_proxy.respond(
        "POST", r"^/order-plz", status, problem_doc(short, detail, status, subproblems), headers=headers
    )
    out = tmp_path / "out"
    webroot = tmp_path / "www"
    webroot.mkdir()
    res = run(tmp_path, args_for(rig, account_key, out, [name], pebble_proxy.directory, webroot=str(webroot)))
    assert pebble_proxy.rules.count("POST", r"^/order-plz", action="respond") == 1  # the fault was injected
    r = assert_failure(res, name, "order", short, detail)
    problem = assert_problem(r, short, detail, status)
    if with_sub:
        # the identifier as the CA sent it, or just its value
        assert problem["subproblems"][0]["identifier"] in ({"type": "dns", "value": name}, name)
        assert problem["subproblems"][0]["type"] == ACME_ERROR + short
    assert r["changed"] is False
    assert r["acme_requests"] >= 1
    assert not (out / "privkey.pem.pending").exists() and not (out / "privkey.pem").exists()
    assert list(webroot.iterdir()) == []


def test_list_form_names_the_refused_certificate(rig, account_key, tmp_path, pebble_proxy, nginx_factory):
    """Point 1, list form: the other certificate is issued, the refused one carries step and problem."""
    nginx = nginx_factory(["127.0.30.202"])
    detail = "Cannot issue for cert203.portail.test: the domain is on a block list"
    pebble_proxy.respond(
        "POST",
        r"^/order-plz",
        400,
        problem_doc("rejectedIdentifier", detail, 400),
        payload=r"cert203\.portail\.test",
    )
    out = tmp_path / "many"
    args = args_for(rig, account_key, out, [], pebble_proxy.directory, webroot=str(nginx.webroot))
    tac.list_form(args, out, (202, 203))
    res = run(tmp_path, args)
    assert res.rc != 0
    r = res.result(TASK)
    assert isinstance(r.get("acme_requests"), int), r
    assert r["changed"] is True  # c202 was deployed
    entries = {c["name"]: c for c in r["certificates"]}
    assert entries["c202"]["changed"] is True and not entries["c202"].get("failed")
    tac.check_deployed(out / "c202", ["cert202.portail.test"], entries["c202"])
    bad = entries["c203"]
    assert bad["failed"] is True and bad["step"] == "order"
    for fragment in ("c203", "cert203.portail.test", "order", "rejectedIdentifier", detail):
        assert fragment in bad["msg"], bad["msg"]
    assert_problem(bad, "rejectedIdentifier", detail, 400)
    assert "c203" in r["msg"]
    assert not (out / "c203" / "privkey.pem.pending").exists()


# --- 2. failures while fetching an authorization ------------------------------------------------------------


def test_authorization_fetch_cut(rig, account_key, tmp_path, pebble_proxy, nginx_factory):
    """Point 2: every authorization request cut: the certificate, the step and the network error are named."""
    nginx = nginx_factory(["127.0.30.204"])
    name = "cert204.portail.test"
    pebble_proxy.drop("POST", r"^/authZ/")
    out = tmp_path / "out"
    res = run(tmp_path, args_for(rig, account_key, out, [name], pebble_proxy.directory, webroot=str(nginx.webroot)))
    assert pebble_proxy.rules.count("POST", r"^/authZ/", action="drop") >= 1
    r = assert_failure(res, name, "authorization", "closed connection")
    assert not r.get("problem")  # a cut connection has no problem document
    assert r["changed"] is False
    assert not out.exists() or not (out / "privkey.pem.pending").exists()
    assert tac.challenge_files(nginx.webroot) == []


# --- 3. a CA outage never fails a certificate that is not due ------------------------------------------------


@pytest.mark.parametrize(
    ("address", "fault"),
    [("127.0.30.207", "ca-down"), ("127.0.30.208", "renewal-info-cut")],
    ids=["ca-down", "renewal-info-cut"],
)
@pytest.mark.slow
def test_not_due_certificate_stays_ok_when_the_ca_fails(
    rig, account_key, tmp_path, a2c_proxy, nginx_factory, address, fault
):
    """Points 2 and 3: with a CA that has ARI, a valid certificate that is not due stays ok with a warning."""
    n = address.rsplit(".", 1)[1]
    name = f"cert{n}.portail.test"
    nginx = nginx_factory([address])
    out = tmp_path / "out"
    args = args_for(rig, account_key, out, [name], a2c_proxy.directory, webroot=str(nginx.webroot), contact=CONTACT)
    first = issue(tmp_path, args)
    if fault == "ca-down":
        a2c_proxy.refuse_all()
    else:
        a2c_proxy.drop("GET", r"renewal-info")
    res = run(tmp_path, args)
    if fault == "ca-down":
        assert a2c_proxy.rules.count(action="refuse") >= 1  # the run did try the CA
    else:
        assert a2c_proxy.rules.count("GET", "renewal-info", action="drop") >= 1
    assert res.rc == 0, res.failures()
    r = res.result(TASK)
    assert r["changed"] is False and res.changed() == 0
    assert r["reason"] == "valid"
    assert isinstance(r.get("acme_requests"), int)
    assert r["serial"] == first["serial"]
    warned = warnings_text(res)
    assert "renewal information" in warned, warned[-2000:]
    assert name in warned or f"cert{n}" in warned


@pytest.mark.slow
def test_due_certificate_fails_clearly_when_the_ca_is_down(rig, account_key, tmp_path, pebble_proxy, nginx_factory):
    """Point 3, other side: a certificate that needs the CA fails, named, and the deployed one is untouched."""
    nginx = nginx_factory(["127.0.30.209"])
    name = "cert209.portail.test"
    out = tmp_path / "out"
    args = args_for(rig, account_key, out, [name], pebble_proxy.directory, webroot=str(nginx.webroot))
    issue(tmp_path, args)
    before = serial_of(out)
    pebble_proxy.refuse_all()
    res = run(tmp_path, dict(args, force=True))
    r = assert_failure(res, name, {"account", "renewal-info", "order"})
    assert r["changed"] is False
    assert serial_of(out) == before
    assert not (out / "privkey.pem.pending").exists()


# --- 4. wording of a poll failure; concurrent runs on one certificate -----------------------------------


def test_status_poll_cut_is_not_called_a_validation_failure(rig, account_key, tmp_path, pebble_proxy, nginx_factory):
    """Point 4: the first authorization fetch passes, every status poll after answering is cut."""
    nginx = nginx_factory(["127.0.30.205"])
    name = "cert205.portail.test"
    pebble_proxy.drop("POST", r"^/authZ/", nth=2)
    out = tmp_path / "out"
    res = run(tmp_path, args_for(rig, account_key, out, [name], pebble_proxy.directory, webroot=str(nginx.webroot)))
    assert pebble_proxy.rules.count("POST", r"^/chalZ/", action="forward") >= 1  # the challenge was answered
    assert pebble_proxy.rules.count("POST", r"^/authZ/", action="drop") >= 1
    r = assert_failure(res, name, {"validation", "challenge"}, "closed connection")
    msg = r["msg"]
    assert "polling" in msg or "status" in msg, msg
    assert not re.search(r"validation (of \S+ )?failed", msg), msg
    assert r["changed"] is False
    assert tac.challenge_files(nginx.webroot) == []
    assert not (out / "privkey.pem.pending").exists()


@pytest.mark.slow
def test_concurrent_runs_on_one_certificate(rig, account_key, tmp_path, pebble_proxy, nginx_factory):
    """Point 4: a second run arriving during an issuance waits for the first and ends ok, with no order of its own."""
    nginx = nginx_factory(["127.0.30.206"])
    name = "cert206.portail.test"
    out = tmp_path / "out"
    args = args_for(rig, account_key, out, [name], pebble_proxy.directory, webroot=str(nginx.webroot))
    pebble_proxy.hold("POST", r"^/order-plz", limit=1)  # the first run's newOrder waits at the proxy
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start(tmp_path / "a", args)
    second = None
    try:
        assert pebble_proxy.wait_held(1, timeout=120), "the first run never sent newOrder"
        second = start(tmp_path / "b", args)
        # give the second run time to start and reach the certificate (its own newOrder ends the wait early)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and second.poll() is None:
            if pebble_proxy.rules.count("POST", r"^/order-plz", action="forward"):
                break
            time.sleep(0.2)
    finally:
        pebble_proxy.release()
        res_a = finish_playbook(first, timeout=300)
        res_b = finish_playbook(second, timeout=300) if second else None
    assert res_b is not None
    assert res_a.rc == 0, res_a.failures()
    assert res_b.rc == 0, res_b.failures()
    ra, rb = res_a.result(TASK), res_b.result(TASK)
    assert ra["changed"] is True
    assert rb["changed"] is False and rb["reason"] == "valid"
    assert rb["serial"] == ra["serial"]
    # one order was created at the CA: the second run did not waste one (the held one was forwarded on release;
    # a newOrder that Pebble refused for its nonce, 5% of requests by default, is sent again and creates nothing)
    assert pebble_proxy.rules.count("POST", r"^/order-plz", action="forward", status=201) == 1
    # one finalize (the same order may be sent twice when Pebble rejects a nonce: count distinct orders)
    finalized = {s.path for s in pebble_proxy.rules.log if s.action == "forward" and "/finalize-order/" in s.path}
    assert len(finalized) == 1, finalized
    tac.check_deployed(out, [name], ra)


# --- 5. the DNS primary is cut at cleanup: the next run removes the stale TXT ------------------------------


@pytest.mark.slow
def test_stale_txt_left_by_a_cut_primary_is_removed_by_the_next_run(rig, account_key, tmp_path, pebble_proxy, netcut):
    name = "cert210.portail.test"
    record = f"_acme-challenge.{name}"
    clear_txt(rig, record)
    out = tmp_path / "out"
    dns_args = tac.dns_settings(rig, timeout=2, propagation_timeout=30)
    args = args_for(rig, account_key, out, [name], pebble_proxy.directory, challenge="dns-01", dns=dns_args)
    # validation is over once the certificate is downloaded: cut the primary there, before the cleanup
    pebble_proxy.hold("POST", r"^/certZ/", limit=1)
    proc = start(tmp_path, args, preexec_fn=netcut.enter)
    try:
        assert pebble_proxy.wait_held(1, timeout=120), "the run never downloaded its certificate"
        assert tac.txt_values(rig["PORTAIL_DNS_PRIMARY"], record)  # the challenge record is in place
        netcut.cut(rig["PORTAIL_DNS_PRIMARY"])
    finally:
        pebble_proxy.release()
        first = finish_playbook(proc, timeout=300)
    netcut.restore()
    assert (out / "cert.pem").exists(), first.failures()
    # the fault happened: the cleanup could not reach the primary and the record stayed
    assert tac.txt_values(rig["PORTAIL_DNS_PRIMARY"], record), "the cleanup was not cut off"
    second = run(tmp_path, args)
    assert second.rc == 0, second.failures()
    assert second.result(TASK)["reason"] == "valid"
    tac.assert_no_txt(rig, record)


# --- 6. a run killed during a forced renewal leaves no pending key behind -----------------------------------


@pytest.mark.slow
def test_killed_forced_renewal_leaves_no_pending_key(rig, account_key, tmp_path, pebble_proxy, nginx_factory, netcut):
    nginx = nginx_factory(["127.0.30.211"])
    name = "cert211.portail.test"
    out = tmp_path / "out"
    args = args_for(rig, account_key, out, [name], pebble_proxy.directory, webroot=str(nginx.webroot))
    first = issue(tmp_path, args)
    # the host's key and CSR exist once the order is finalized: kill the forced run there
    pebble_proxy.hold("POST", r"^/finalize-order/", limit=1)
    # a short timeout: the host's lease of the killed run lasts timeout + 60 s
    proc = start(tmp_path, dict(args, force=True, timeout=20), preexec_fn=netcut.enter)
    try:
        assert pebble_proxy.wait_held(1, timeout=120), "the forced run never finalized"
        netcut.kill()  # the whole run, its setsid() workers included
        proc.communicate(timeout=60)
    finally:
        pebble_proxy.refuse_all()  # the held finalize is cut, never answered
        pebble_proxy.release()
        pebble_proxy.reset()
    pending = out / ".portail-privkey.pem.d" / "lock" / "privkey.pem"
    assert pending.exists(), "the killed run left no pending key: the fault did not happen"
    assert format(serial_of(out), "x") == first["serial"]
    # a no-op run while the lease is still live: ok, and it does not wait for the lease
    res = run(tmp_path, args)
    assert res.rc == 0 and res.result(TASK)["reason"] == "valid", res.failures()
    # once the lease has expired, the next no-op run removes it with its pending key
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and time.time() < pending.stat().st_mtime + 85:
        time.sleep(1)
    res = run(tmp_path, args)
    assert res.rc == 0, res.failures()
    r = res.result(TASK)
    assert r["reason"] == "valid" and r["serial"] == first["serial"]
    assert not pending.exists() and not pending.parent.exists()
    tac.check_deployed(out, [name], r)


# --- 7. a DNS-01 wait that times out names the server that lacked the record --------------------------------


@pytest.mark.slow
def test_dns_wait_timeout_names_the_lagging_server(rig, account_key, tmp_path, netcut):
    name = "cert212.portail.test"
    record = f"_acme-challenge.{name}"
    secondary = rig["PORTAIL_DNS_SECONDARY"]
    clear_txt(rig, record)
    out = tmp_path / "out"
    dns_args = tac.dns_settings(rig, timeout=2, propagation_timeout=4)
    args = args_for(rig, account_key, out, [name], rig["PORTAIL_ACME_DIRECTORY"], challenge="dns-01", dns=dns_args)
    netcut.cut(secondary)  # the primary takes the update, the secondary never answers this run
    res = run(tmp_path, args, preexec_fn=netcut.enter)
    r = assert_failure(res, name, {"challenge", "validation"}, secondary)
    assert re.search(r"\b\d+(\.\d+)?\s?s\b", r["msg"]), f"no duration in {r['msg']!r}"
    assert r["changed"] is False
    assert not out.exists() or not (out / "privkey.pem.pending").exists()
    netcut.restore()
    tac.assert_no_txt(rig, record)
