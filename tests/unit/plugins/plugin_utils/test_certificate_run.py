"""CertificateRun with fakes of the host and of the ACME engine's objects: every decision and cleanup path."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.portail.https.plugins.module_utils._acme.ari import RenewalInfo
from ansible_collections.portail.https.plugins.module_utils._acme.errors import (
    AcmeError,
    ProblemError,
    TransportError,
    ValidationFailed,
    problem_error,
)
from ansible_collections.portail.https.plugins.plugin_utils import _certificate_run as cr
from ansible_collections.portail.https.plugins.plugin_utils._certificate_request import build_specs
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
KEY = ec.generate_private_key(ec.SECP256R1())


def csr_pem(names):
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    from cryptography.hazmat.primitives import serialization

    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def cert_state(days_left=60.0, lifetime=90.0):
    not_after = NOW + datetime.timedelta(days=days_left)
    return {
        "names": ["www.example.org"],
        "not_before": (not_after - datetime.timedelta(days=lifetime)).isoformat(),
        "not_after": not_after.isoformat(),
        "serial": "87654321",
        "aki": "69885b6b87464041e1b37b847ba0ae2cde01c8d4",
        "matches_key": True,
        "key_type": "ec256",
    }


class FakeHost:
    def __init__(self, states=None, fail=None, prepare_states=None):
        self.calls = []
        self.states = list(states or [])
        self.prepare_states = list(prepare_states or [])
        self.fail = fail or {}

    def __call__(self, step, args):
        self.calls.append((step, args))
        if step in self.fail:
            raise cr.HostError(self.fail[step])
        if step == "inspect":
            return self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if step == "prepare":
            if self.prepare_states:
                return self.prepare_states.pop(0)
            return {"csr": csr_pem(args["names"]), "pending_created": True}
        if step == "http01_place":
            return {
                "files": ["/srv/.well-known/acme-challenge/" + t["token"] for t in args["tokens"]],
                "created_dirs": [],
            }
        if step == "deploy":
            return {"cert": cert_state(90), "changed": True}
        if step == "alpn_start":
            return {"responder": "r1"}
        return {}

    def steps(self):
        return [s for s, _a in self.calls]


class FakeAuthz:
    def __init__(self, error=None):
        self.error = error

    def wait_valid(self, deadline):
        if self.error:
            raise self.error


class FakeChallenge:
    def __init__(self, identifier, typ, authz_error=None, respond_error=None):
        self.identifier, self.type = identifier, typ
        self.token = "tok-" + identifier.replace(".", "-")
        self.key_authorization = self.token + ".thumb"
        self.dns_name = "_acme-challenge." + identifier
        self.dns_value = "value-" + identifier
        self.tls_alpn_sni = identifier
        self.authz = FakeAuthz(authz_error)
        self.respond_error = respond_error
        self.responded = False

    def tls_alpn_certificate(self):
        return b"CERT", b"KEY"

    def respond(self):
        if self.respond_error:
            raise self.respond_error
        self.responded = True


class FakeChain:
    cert_pem = b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
    chain_pem = b""


class FakeOrder:
    def __init__(self, client, challenges, replaces):
        self.client, self.challenges, self.replaces_dropped = client, challenges, False
        self.finalized = None
        self.url = f"https://ca.example/order/{len(client.orders)}"

    def pending_challenges(self, typ):
        if self.client.authz_error:
            raise self.client.authz_error
        return self.challenges

    def finalize(self, csr_der, deadline):
        if self.client.finalize_error:
            raise self.client.finalize_error
        self.finalized = csr_der

    def download(self, preferred):
        return FakeChain()


class FakeDirectory:
    def __init__(self, ari, profiles=None):
        self.renewal_info = "https://ca.example/ari" if ari else None
        self.profiles = profiles or {}


class FakeAri:
    def __init__(self, client):
        self.client = client

    def fetch(self, cid):
        self.client.ari_calls += 1
        if self.client.ari_error:
            raise self.client.ari_error
        if self.client.ari_info is None:
            raise AcmeError("renewalInfo: HTTP 404 (the CA does not know this certificate yet)")
        return self.client.ari_info


class FakeClient:
    directory_url = "https://ca.example/dir"

    def __init__(self, ari=True, order_errors=(), challenge_type="http-01", **kw):
        self.account_url = "https://ca.example/acct/1"
        self._ari = ari
        self.order_errors = list(order_errors)
        self.orders = []
        self.ari_calls = 0
        self.ari_error = kw.get("ari_error")
        self.ari_info = kw.get("ari_info")
        self.authz_error = kw.get("authz_error")
        self.finalize_error = kw.get("finalize_error")
        self.challenge_kw = kw.get("challenge_kw", {})
        self.challenge_type = challenge_type
        self.ari = FakeAri(self)
        self.requests = 0

    @property
    def directory(self):
        if self.ari_error and isinstance(self.ari_error, TransportError) and self._ari == "down":
            raise self.ari_error
        return FakeDirectory(self._ari, getattr(self, "profiles", None))

    def new_order(self, identifiers, profile=None, replaces=None):
        self.orders.append((identifiers, profile, replaces))
        if self.order_errors:
            raise self.order_errors.pop(0)
        chs = [FakeChallenge(i["value"], self.challenge_type, **self.challenge_kw) for i in identifiers]
        self.last_order = FakeOrder(self, chs, replaces)
        return self.last_order

    def order(self, url):
        assert url == self.last_order.url
        return self.last_order


def run_one(host, client, check_mode=False, dns_factory=None, preflight=None, **spec_kw):
    base = {"names": ["www.example.org"], "key_path": "/k", "cert_path": "/c", "webroot": ["/srv"]}
    base.update(spec_kw)
    [spec] = build_specs(base)
    sleeps = []
    run = cr.CertificateRun(
        host,
        lambda: client,
        cr.Options(directory_url=client.directory_url, timeout=30, check_mode=check_mode),
        dns_factory=dns_factory,
        now=lambda: NOW,
        sleep=sleeps.append,
        preflight=preflight or (lambda *a: ([], [])),
    )
    out = run.process(spec)
    out.sleeps = sleeps
    return out


MISSING = {"missing_files": ["/c"], "cert": None, "changed": False}


def valid(**kw):
    return {"missing_files": [], "cert": cert_state(**kw), "key": {"key_type": "ec256"}, "changed": False}


def test_valid_certificate_costs_one_host_step_and_no_ca_request_without_ari():
    host, client = FakeHost([valid()]), FakeClient(ari=False)
    out = run_one(host, client)
    assert host.steps() == ["inspect"] and not out.changed and out.reason == "valid"
    assert client.orders == [] and out.renew_at


def test_first_issuance_three_host_steps():
    prepared = dict(MISSING, prepared={"csr": csr_pem(["www.example.org"]), "pending_created": True}, changed=True)
    host, client = FakeHost([prepared]), FakeClient()
    out = run_one(host, client)
    assert out.failure is None, out.error
    assert host.steps() == ["inspect", "http01_place", "deploy"]
    deploy = host.calls[-1][1]
    assert deploy["files"] == ["/srv/.well-known/acme-challenge/tok-www-example-org"]
    assert out.changed and out.reason == "missing" and client.orders[0][2] is None


def test_expiring_certificate_prepares_then_orders_with_replaces():
    host, client = FakeHost([valid(days_left=10)]), FakeClient(ari=True)
    out = run_one(host, client)
    assert out.failure is None, out.error
    assert host.steps() == ["inspect", "prepare", "http01_place", "deploy"]
    assert client.orders[0][2] == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE" and out.replaces


def test_ari_window_renews_a_valid_certificate():
    info = RenewalInfo.from_document(
        "x", {"suggestedWindow": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}}
    )
    host, client = FakeHost([valid()]), FakeClient(ari_info=info)
    out = run_one(host, client)
    assert out.reason == "ari_window" and out.changed and "prepare" in host.steps()
    assert out.renewal_window == {"start": info.start.isoformat(), "end": info.end.isoformat()}


def test_ari_outage_on_a_not_due_certificate_only_warns():
    host = FakeHost([valid()])
    client = FakeClient(ari_error=TransportError("GET https://ca.example/ari/x: connection refused"))
    out = run_one(host, client)
    assert out.failure is None and not out.changed and out.reason == "valid"
    assert any("renewal information could not be read" in w for w in out.warnings)
    assert host.steps() == ["inspect"]


def test_ari_skipped_when_the_issuing_ca_has_none():
    state = dict(valid(), meta={"directory": "https://ca.example/dir", "ari": False})
    client = FakeClient(ari=True)
    run_one(FakeHost([state]), client)
    assert client.ari_calls == 0


def test_new_order_refused_on_first_issuance_keeps_the_ca_problem():
    problem = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many certificates for example.org"}
    client = FakeClient(order_errors=[problem_error(problem, status=429, retry_after=3600)])
    host = FakeHost([MISSING])
    out = run_one(host, client)
    res = out.result()
    assert res["failed"] and res["step"] == "order" and res["problem"]["type"].endswith("rateLimited")
    assert "certificate www.example.org: order of www.example.org" in res["msg"]
    assert "rateLimited" in res["msg"] and "too many certificates" in res["msg"] and "3600" in res["msg"]
    assert not out.changed
    assert host.steps() == ["inspect", "prepare", "discard"]


def test_network_error_at_new_order_names_the_step():
    client = FakeClient(order_errors=[TransportError("POST https://ca.example/new-order: connection failed")])
    out = run_one(FakeHost([MISSING]), client)
    assert out.failure.step == "order" and "connection failed" in out.error and "could not be reached" in out.error


def test_authorization_fetch_failure_is_per_certificate():
    client = FakeClient(authz_error=TransportError("POST https://ca.example/authz/1: connection failed"))
    host = FakeHost([MISSING])
    out = run_one(host, client)
    assert out.failure.step == "authorization" and out.error.startswith("certificate www.example.org: authorization")
    assert host.steps()[-1] == "discard"


def test_failed_validation_cleans_tokens_and_pending_key():
    err = ValidationFailed(
        {"type": "urn:ietf:params:acme:error:unauthorized", "detail": "404"}, identifier="www.example.org"
    )
    client = FakeClient(challenge_kw={"authz_error": err})
    host = FakeHost([MISSING])
    out = run_one(host, client)
    assert out.failure.step == "validation" and "port 80" in out.error and out.result()["problem"]["detail"] == "404"
    assert host.steps() == ["inspect", "prepare", "http01_place", "http01_cleanup", "discard"]
    assert not out.changed


def test_status_poll_failure_is_not_called_a_failed_validation():
    client = FakeClient(challenge_kw={"authz_error": TransportError("GET authz: connection reset")})
    out = run_one(FakeHost([MISSING]), client)
    assert "polling the authorization status" in out.error and "validation failed" not in out.error


def test_challenge_answer_refused():
    err = ProblemError({"type": "urn:ietf:params:acme:error:malformed", "detail": "nope"}, status=400)
    out = run_one(FakeHost([MISSING]), FakeClient(challenge_kw={"respond_error": err}))
    assert out.failure.step == "challenge" and "malformed" in out.error


def test_deploy_failure_cleans_up():
    host = FakeHost([MISSING], fail={"deploy": "the pending key does not match the certificate"})
    out = run_one(host, FakeClient())
    assert out.failure.step == "deploy" and "does not match" in out.error
    assert host.steps()[-2:] == ["http01_cleanup", "discard"]


def test_finalize_failure():
    err = problem_error({"type": "urn:ietf:params:acme:error:badCSR", "detail": "key too small"}, status=400)
    out = run_one(FakeHost([MISSING]), FakeClient(finalize_error=err))
    assert out.failure.step == "finalize" and "key_type" in out.error


def test_csr_for_other_names_is_never_sent():
    host = FakeHost([MISSING], prepare_states=[{"csr": csr_pem(["evil.example.net"]), "pending_created": True}])
    client = FakeClient()
    out = run_one(host, client)
    assert out.failure.step == "finalize" and client.orders == []
    assert host.steps()[-1] == "discard"


def test_waits_for_another_runs_lock_then_finds_nothing_to_do():
    host = FakeHost([{"locked": {"expires_in": 30}}, {"locked": {"expires_in": 29}}, valid()])
    out = run_one(host, FakeClient(ari=False))
    assert out.failure is None and not out.changed and len(out.sleeps) == 2
    assert host.steps() == ["inspect"] * 3


def test_lock_held_past_the_timeout_fails_clearly():
    host = FakeHost([{"locked": {"expires_in": 600}}])
    [spec] = build_specs({"names": ["www.example.org"], "key_path": "/k", "cert_path": "/c", "webroot": ["/srv"]})
    run = cr.CertificateRun(
        host, FakeClient, cr.Options(timeout=0.5), now=lambda: NOW, sleep=lambda s: None, preflight=lambda *a: ([], [])
    )
    out = run.process(spec)
    assert out.failure.step == "lock" and "another run" in out.error


def test_prepare_locked_by_another_run_waits():
    host = FakeHost([valid(days_left=5)], prepare_states=[{"locked": {"expires_in": 5}}])
    out = run_one(host, FakeClient(ari=False))
    assert out.failure is None and out.sleeps
    assert host.steps() == ["inspect", "prepare", "inspect", "prepare", "http01_place", "deploy"]


def test_prepare_locked_then_the_other_run_renewed_it():
    host = FakeHost([valid(days_left=5), valid(days_left=89)], prepare_states=[{"locked": {"expires_in": 5}}])
    client = FakeClient(ari=False)
    out = run_one(host, client)
    assert out.failure is None and not out.changed and out.reason == "valid" and client.orders == []
    assert host.steps() == ["inspect", "prepare", "inspect"]


def test_a_lock_on_a_certificate_that_is_not_due_is_no_reason_to_wait():
    # a run killed while holding the lock: the next no-op run does not wait for the lease to expire
    host = FakeHost([dict(valid(), locked={"expires_in": 1700})])
    out = run_one(host, FakeClient(ari=False))
    assert out.failure is None and not out.sleeps and host.steps() == ["inspect"]


def test_check_mode_changes_nothing():
    host = FakeHost([valid(days_left=5)])
    client = FakeClient(ari=False)
    out = run_one(host, client, check_mode=True)
    assert out.changed and out.msg.startswith("would issue") and host.steps() == ["inspect"] and not client.orders
    assert host.calls[0][1]["prepare_if_due"] is False


def test_missing_webroot_fails_before_any_order():
    client = FakeClient()
    out = run_one(FakeHost([dict(MISSING, missing_webroots=["/srv"])]), client)
    assert out.failure.step == "inspect" and not client.orders


class FakeProvider:
    def __init__(self, wait_error=None, cleanup_errors=()):
        self.calls = []
        self.wait_error = wait_error
        self.cleanup_errors = list(cleanup_errors)

    def preflight(self, names):
        self.calls.append(("preflight", list(names)))
        if getattr(self, "preflight_error", None):
            raise self.preflight_error

    def purge_stale(self, names, keep_values):
        self.calls.append(("purge", list(names), list(keep_values)))
        return ["old"]

    def add_txt_records(self, records):
        self.calls.append(("add", list(records)))

        class R:
            def __init__(self, n, v):
                self.name, self.target, self.zone, self.value = n, None, "example.org.", v

        return [R(n, v) for n, v in records]

    def wait_visible_records(self, records, deadline):
        self.calls.append(("wait", list(records)))
        if self.wait_error:
            raise self.wait_error

    def cleanup(self, records):
        self.calls.append(("cleanup", list(records)))
        return self.cleanup_errors


def test_dns01_purges_stale_values_places_waits_and_cleans():
    provider = FakeProvider()
    client = FakeClient(challenge_type="dns-01")
    out = run_one(
        FakeHost([MISSING]),
        client,
        dns_factory=lambda o: provider,
        challenge="dns-01",
        webroot=[],
        dns={"server": "ns1.example.org"},
    )
    assert out.failure is None, out.error
    assert [c[0] for c in provider.calls] == ["preflight", "purge", "add", "wait", "cleanup"]
    assert provider.calls[1][1:] == (["_acme-challenge.www.example.org"], ["value-www.example.org"])
    assert any("stale" in w for w in out.warnings)
    assert out.dns_records[0]["name"] == "_acme-challenge.www.example.org"


def test_dns01_wait_timeout_removes_records_and_says_which_server():
    from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError

    provider = FakeProvider(wait_error=DnsError("127.53.0.2 did not serve the TXT record after 5.0 s"))
    host = FakeHost([MISSING])
    out = run_one(
        host,
        FakeClient(challenge_type="dns-01"),
        dns_factory=lambda o: provider,
        challenge="dns-01",
        webroot=[],
        dns={"server": "ns1.example.org"},
    )
    assert out.failure.step == "challenge" and "127.53.0.2" in out.error
    assert provider.calls[-1][0] == "cleanup" and host.steps()[-1] == "discard"


def test_dns01_cleanup_failure_is_a_warning_that_says_the_next_run_removes_it():
    provider = FakeProvider(cleanup_errors=["primary 127.53.0.1 unreachable"])
    host = FakeHost([MISSING])
    out = run_one(
        host,
        FakeClient(challenge_type="dns-01"),
        dns_factory=lambda o: provider,
        challenge="dns-01",
        webroot=[],
        dns={"server": "ns1.example.org"},
    )
    assert out.failure is None and any("next run removes" in w for w in out.warnings)
    deploy = next(a for st, a in host.calls if st == "deploy")
    assert deploy["meta"]["dns_leftovers"] == [
        {"name": "_acme-challenge.www.example.org", "value": "value-www.example.org"}
    ]
    # the cleanup ran before the deploy, once
    assert [c[0] for c in provider.calls].count("cleanup") == 1


def test_a_later_no_op_run_removes_recorded_dns_leftovers():
    provider = FakeProvider()
    leftovers = [{"name": "_acme-challenge.www.example.org", "value": "v1"}]
    state = dict(valid(), meta={"directory": "https://ca.example/dir", "ari": False, "dns_leftovers": leftovers})
    out = run_one(
        FakeHost([state]),
        FakeClient(ari=False),
        dns_factory=lambda o: provider,
        challenge="dns-01",
        webroot=[],
        dns={"server": "ns1.example.org"},
    )
    assert out.failure is None and not out.changed
    assert provider.calls == [("cleanup", [("_acme-challenge.www.example.org", "v1")])]


def test_tls_alpn01_responder_stopped_after_failure():
    err = ValidationFailed({"type": "urn:ietf:params:acme:error:tls", "detail": "no"}, identifier="www.example.org")
    host = FakeHost([MISSING])
    out = run_one(
        host,
        FakeClient(challenge_type="tls-alpn-01", challenge_kw={"authz_error": err}),
        challenge="tls-alpn-01",
        webroot=[],
    )
    assert out.failure.step == "validation" and "acme-tls/1" in out.error
    assert host.steps() == ["inspect", "prepare", "alpn_start", "alpn_stop", "discard"]


def test_programming_errors_are_not_reported_as_ca_errors():
    class Broken(FakeClient):
        def new_order(self, *a, **k):
            raise KeyError("bug")

    with pytest.raises(KeyError):
        run_one(FakeHost([MISSING]), Broken())


def test_account_failure():
    class NoAccount(FakeClient):
        def __init__(self):
            super().__init__()
            self.account_url = None

        @property
        def directory(self):
            raise AcmeError("GET https://ca.example/dir: connection failed")

    out = run_one(FakeHost([MISSING]), NoAccount())
    assert out.failure.step == "account" and "connection failed" in out.error


def test_preflight_failure_never_reaches_the_ca():
    client = FakeClient()
    host = FakeHost([MISSING])
    seen = []

    def preflight(typ, challenges, resolvers):
        seen.append((typ, [c.identifier for c in challenges]))
        return ["www.example.org at 192.0.2.7 port 80: HTTP 404"], ["pre-flight of www.example.org: no route"]

    out = run_one(host, client, preflight=preflight)
    assert out.failure.step == "preflight" and "192.0.2.7" in out.error and "no failed authorization" in out.error
    assert seen == [("http-01", ["www.example.org"])]
    order_challenges = client.orders and not any(getattr(c, "responded", False) for c in [])
    assert order_challenges
    assert host.steps() == ["inspect", "prepare", "http01_place", "http01_cleanup", "discard"]
    assert any("no route" in w for w in out.warnings)


def test_preflight_passes_then_the_challenge_is_answered():
    answered = []

    class Client(FakeClient):
        def new_order(self, *a, **k):
            order = super().new_order(*a, **k)
            answered.extend(order.challenges)
            return order

    out = run_one(FakeHost([MISSING]), Client(), preflight=lambda *a: ([], []))
    assert out.failure is None and all(c.responded for c in answered)


def test_ip_identifier_without_profile_at_a_ca_with_profiles_warns():
    client = FakeClient()
    client.profiles = {"classic": "90 days", "shortlived": "160 hours"}
    out = run_one(FakeHost([MISSING]), client, names=["192.0.2.10"])
    assert out.failure is None and any("shortlived" in w for w in out.warnings)
    client = FakeClient()
    client.profiles = {"shortlived": "160 hours"}
    out = run_one(FakeHost([MISSING]), client, names=["192.0.2.10"], profile="shortlived")
    assert not out.warnings and client.orders[0][1] == "shortlived"


def test_dns_provider_refusing_access_stops_before_any_order():
    from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError

    provider = FakeProvider()
    provider.preflight_error = DnsError("HTTP 401 from the PowerDNS API: wrong API key")
    client = FakeClient(challenge_type="dns-01")
    host = FakeHost([MISSING])
    out = run_one(
        host, client, dns_factory=lambda o: provider, challenge="dns-01", webroot=[], dns={"provider": "pdns"}
    )
    assert out.failure.step == "preflight" and "wrong API key" in out.error and "no order" in out.error
    assert client.orders == [] and host.steps()[-1] == "discard"


def test_caa_forbidding_the_ca_stops_before_any_order(monkeypatch):
    from ansible_collections.portail.https.plugins.plugin_utils import _caa

    class Resolver:
        def __init__(self, servers):
            self.servers = servers

        def __call__(self, name):
            if name == "example.org.":
                return [_caa.CaaRecord(0, "issue", "other-ca.example")]
            return []

    monkeypatch.setattr(_caa, "DnsCaaResolver", Resolver)
    client = FakeClient()
    client.meta = {"caaIdentities": ["ca.example"]}
    FakeDirectory.meta = property(lambda self: client.meta)
    try:
        out = run_one(FakeHost([MISSING]), client, preflight_resolvers=["192.0.2.53"])
    finally:
        del FakeDirectory.meta
    assert out.failure.step == "preflight" and "CAA" in out.error and "ca.example" in out.error
    assert client.orders == []


def test_external_dns_two_phases():
    provider = FakeProvider()
    client = FakeClient(challenge_type="dns-01")
    host = FakeHost([MISSING])
    kw = {"challenge": "dns-01", "webroot": [], "dns": {"provider": "external"}}
    out = run_one(host, client, dns_factory=lambda o: provider, **kw)
    assert out.failure is None and out.changed and out.resume
    assert host.steps() == ["inspect", "prepare"]  # the pending key and the lock stay for phase 2
    assert out.dns_records[0]["value"] == "value-www.example.org"
    assert [c[0] for c in provider.calls] == ["preflight", "add"]  # placement only: nothing written
    [spec] = build_specs({"names": ["www.example.org"], "key_path": "/k", "cert_path": "/c", **kw})
    run = cr.CertificateRun(
        host, lambda: client, cr.Options(timeout=30), dns_factory=lambda o: provider, now=lambda: NOW
    )
    done = run.resume(spec, out.resume)
    assert done.failure is None, done.error
    assert done.changed and host.steps()[-1] == "deploy"
    assert [c[0] for c in provider.calls][-2:] == ["preflight", "wait"]
    assert all(c.responded for c in client.last_order.challenges)


def test_external_dns_phase_two_failure_and_abort_give_back_the_key():
    provider = FakeProvider(wait_error=None)
    client = FakeClient(challenge_type="dns-01")
    host = FakeHost([MISSING])
    kw = {"challenge": "dns-01", "webroot": [], "dns": {"provider": "external"}}
    out = run_one(host, client, dns_factory=lambda o: provider, **kw)
    [spec] = build_specs({"names": ["www.example.org"], "key_path": "/k", "cert_path": "/c", **kw})
    run = cr.CertificateRun(
        host, lambda: client, cr.Options(timeout=30), dns_factory=lambda o: provider, now=lambda: NOW
    )
    aborted = run.resume(spec, out.resume, abort=True)
    assert aborted.failure is None and host.steps()[-1] == "discard" and client.last_order.finalized is None
    from ansible_collections.portail.https.plugins.module_utils._dns.errors import DnsError

    provider.wait_error = DnsError("ns2 (127.53.0.2) did not serve the value after 60 s")
    failed = run.resume(spec, out.resume)
    assert failed.failure.step == "challenge" and "127.53.0.2" in failed.error and host.steps()[-1] == "discard"


def test_a_new_certificate_reports_its_ari_window_at_once():
    info = RenewalInfo.from_document(
        "x", {"suggestedWindow": {"start": "2027-01-01T00:00:00Z", "end": "2027-01-03T00:00:00Z"}}
    )
    host, client = FakeHost([MISSING]), FakeClient(ari_info=info)
    out = run_one(host, client)
    assert out.failure is None and out.renewal_window == {"start": info.start.isoformat(), "end": info.end.isoformat()}
    assert out.renew_at == info.selected.isoformat()


class PrefetchingHost(FakeHost):
    def __init__(self, fail_with=None, **kw):
        super().__init__(**kw)
        self.prefetched = []
        self.fail_with = fail_with

    def prefetch(self, args_list):
        if self.fail_with:
            raise self.fail_with
        self.prefetched.append(args_list)


@pytest.mark.parametrize("fail_with", [None, cr.HostError("ssh: reset"), ValueError("bad path")])
def test_prefetch_asks_the_host_for_every_inspect_at_once(fail_with):
    specs = build_specs(
        {
            "certificates": [
                {"name": "a", "names": ["a.example.org"], "key_path": "/a/k", "cert_path": "/a/c"},
                {"name": "b", "names": ["b.example.org"], "key_path": "/b/k", "cert_path": "/b/c"},
            ],
            "webroot": ["/srv"],
        }
    )
    host = PrefetchingHost(fail_with=fail_with, states=[valid()])
    run = cr.CertificateRun(host, lambda: None, cr.Options(directory_url="https://ca/dir", timeout=30))
    run.prefetch(specs)  # a failure here is no failure: each inspect then goes on its own
    run.prefetch(specs[:1])  # one certificate: nothing to batch
    if fail_with is None:
        assert host.prefetched == [[run._inspect_args(s) for s in specs]]
        assert [a["key_path"] for a in host.prefetched[0]] == ["/a/k", "/b/k"]
    assert host.calls == []
