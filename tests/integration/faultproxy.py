"""A fault-injecting HTTP(S) proxy to put in front of the rig's real ACME servers.

It is the network that fails, not a mock of the CA: every request that no rule matches is forwarded
unchanged to the real server (Pebble over TLS, or acme2certifier over plain HTTP) with the Host header
as the client sent it, so the URLs the CA builds from it (Pebble and acme2certifier both do) point back
at the proxy and every later request of the client passes through it too.

A test steers it with rules, checked in the order they were added; the first one whose method, path
(and optionally JWS payload) match and whose turn it is decides:

* ``drop``: read the request, then close the connection without answering (a connection cut mid-way);
* ``respond``: answer with a status and an RFC 7807 problem document (e.g. rateLimited on newOrder);
* ``hold``: keep the request until the test calls :meth:`FaultProxy.release` (or a safety timeout),
  then forward it: lets a test act (cut DNS, start a second run, kill a run) at an exact point;
* :meth:`FaultProxy.refuse_all`: close every connection at once, before TLS (the CA is down).

``nth`` makes a rule fire from the nth matching request on and ``limit`` caps how often it fires, so
``drop(..., nth=3, limit=1)`` drops the third match only and ``drop(...)`` drops all of them.
Every request is logged (method, path, what happened) for assertions such as "one newOrder only".

Started by a pytest fixture (``fault_proxy`` in test_acme_failures.py), never by the rig.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import ssl
import threading
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# hop-by-hop headers (RFC 9110 7.6.1) are not forwarded in either direction
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade")
)

ACTIONS = ("drop", "respond", "hold")


@dataclass
class Rule:
    """One fault: which requests it matches, from which match on it fires, and what it does."""

    action: str
    method: str = ".*"
    path: str = ".*"
    payload: t.Optional[str] = None
    nth: int = 1
    limit: t.Optional[int] = None
    status: int = 500
    problem: t.Optional[dict[str, t.Any]] = None
    headers: dict[str, str] = field(default_factory=dict)
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r} (one of {', '.join(ACTIONS)})")
        if self.nth < 1 or (self.limit is not None and self.limit < 1):
            raise ValueError("nth and limit count from 1")
        self._method = re.compile(self.method, re.IGNORECASE)
        self._path = re.compile(self.path)
        self._payload = re.compile(self.payload) if self.payload is not None else None

    def matches(self, method: str, path: str, body: bytes) -> bool:
        if not (self._method.fullmatch(method) and self._path.search(path)):
            return False
        if self._payload is None:
            return True
        return self._payload.search(jws_payload(body)) is not None

    def take(self, method: str, path: str, body: bytes) -> bool:
        """Count a matching request; True when the rule fires for it."""
        if not self.matches(method, path, body):
            return False
        self.seen += 1
        if self.seen < self.nth or (self.limit is not None and self.fired >= self.limit):
            return False
        self.fired += 1
        return True


def jws_payload(body: bytes) -> str:
    """The decoded payload of a flattened JWS request body ('' when the body is not one)."""
    try:
        data = json.loads(body or b"{}")
        raw = data.get("payload", "") if isinstance(data, dict) else ""
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8", "replace")
    except (ValueError, TypeError):
        return ""


@dataclass
class Seen:
    method: str
    path: str
    action: str  # forward, drop, respond, hold, refuse, upstream-error
    status: int = 0  # the real server's answer, for forwarded requests


class Rules:
    """The rule table and the request log; thread-safe (the proxy serves each connection in a thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self.refusing = False
        self.log: list[Seen] = []

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def reset(self) -> None:
        """Forget every rule and stop refusing (the log is kept)."""
        with self._lock:
            self._rules = []
            self.refusing = False

    def decide(self, method: str, path: str, body: bytes) -> t.Optional[Rule]:
        with self._lock:
            for rule in self._rules:
                if rule.take(method, path, body):
                    return rule
        return None

    def record(self, method: str, path: str, action: str, status: int = 0) -> None:
        with self._lock:
            self.log.append(Seen(method, path, action, status))

    def count(
        self, method: str = ".*", path: str = ".*", action: str = "forward", status: t.Optional[int] = None
    ) -> int:
        """How many logged requests match (action 'forward' = reached the real server; status: its answer)."""
        m, p = re.compile(method, re.IGNORECASE), re.compile(path)
        with self._lock:
            return sum(
                1
                for s in self.log
                if m.fullmatch(s.method)
                and p.search(s.path)
                and s.action == action
                and (status is None or s.status == status)
            )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    proxy: FaultProxy

    def verify_request(self, request: t.Any, client_address: t.Any) -> bool:
        if self.proxy.rules.refusing:
            self.proxy.rules.record("-", "-", "refuse")
            return False  # closed at once, before any TLS byte: the CA is down
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a CA does: the client's reconnect-once logic is exercised
    server: _Server

    def setup(self) -> None:
        ctx = self.server.proxy.server_context
        if ctx is not None:
            self.request.settimeout(30)
            try:
                self.request = ctx.wrap_socket(self.request, server_side=True)
            except (OSError, ssl.SSLError):
                self.request.close()
                raise
        super().setup()

    def log_message(self, format: str, *args: t.Any) -> None:
        return

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def _serve(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if proxy.rules.refusing:
            proxy.rules.record(self.command, self.path, "refuse")
            self._cut()
            return
        rule = proxy.rules.decide(self.command, self.path, body)
        if rule is not None and rule.action == "drop":
            proxy.rules.record(self.command, self.path, "drop")
            self._cut()
            return
        if rule is not None and rule.action == "respond":
            proxy.rules.record(self.command, self.path, "respond")
            self._answer(rule)
            return
        if rule is not None and rule.action == "hold":
            proxy.rules.record(self.command, self.path, "hold")
            if proxy.hold_and_wait():
                self._cut()
                return
        self._forward(body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _answer(self, rule: Rule) -> None:
        data = json.dumps(rule.problem or {}).encode()
        self.send_response(rule.status)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in rule.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _forward(self, body: bytes) -> None:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            conn = proxy.upstream_connection()
            try:
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            proxy.rules.record(self.command, self.path, "upstream-error")
            self.send_error(502, f"fault proxy: upstream failed: {exc}")
            return
        proxy.rules.record(self.command, self.path, "forward", resp.status)
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class FaultProxy:
    """The proxy on 127.0.0.1 (a free port) in front of ``upstream`` (scheme://host:port).

    ``tls_cert``/``tls_key``: the listener certificate to terminate TLS with (the rig's, which the client
    trusts through PORTAIL_ACME_CA_BUNDLE); None serves plain HTTP. ``upstream_ca``: the bundle to check
    an https upstream against.
    """

    def __init__(
        self,
        upstream: str,
        *,
        tls_cert: t.Optional[Path] = None,
        tls_key: t.Optional[Path] = None,
        upstream_ca: t.Optional[Path] = None,
        hold_timeout: float = 60.0,
    ) -> None:
        scheme, _sep, netloc = upstream.partition("://")
        if scheme not in ("http", "https") or not netloc:
            raise ValueError(f"upstream must be http(s)://host:port, got {upstream!r}")
        self.upstream_scheme, self.upstream_netloc = scheme, netloc.rstrip("/")
        self.rules = Rules()
        self.directory = ""  # the ACME directory URL through the proxy (set by the test's fixture)
        self.hold_timeout = hold_timeout
        self._held = threading.Condition()
        self._holding = 0
        self._release_epoch = 0
        self.server_context: t.Optional[ssl.SSLContext] = None
        if tls_cert is not None:
            self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.server_context.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)
        self._client_context = ssl.create_default_context(cafile=str(upstream_ca) if upstream_ca else None)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"{'https' if self.server_context else 'http'}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def upstream_connection(self) -> http.client.HTTPConnection:
        if self.upstream_scheme == "https":
            return http.client.HTTPSConnection(self.upstream_netloc, timeout=30, context=self._client_context)
        return http.client.HTTPConnection(self.upstream_netloc, timeout=30)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    # --- rules -------------------------------------------------------------------------------------

    def drop(self, method: str = ".*", path: str = ".*", **kw: t.Any) -> Rule:
        return self.rules.add(Rule("drop", method, path, **kw))

    def respond(self, method: str, path: str, status: int, problem: dict[str, t.Any], **kw: t.Any) -> Rule:
        return self.rules.add(Rule("respond", method, path, status=status, problem=problem, **kw))

    def hold(self, method: str = ".*", path: str = ".*", **kw: t.Any) -> Rule:
        return self.rules.add(Rule("hold", method, path, **kw))

    def refuse_all(self) -> None:
        self.rules.refusing = True

    def reset(self) -> None:
        self.rules.reset()

    # --- holding -----------------------------------------------------------------------------------

    def hold_and_wait(self) -> bool:
        """Block a request until released; True when it must then be cut (the proxy refuses by then)."""
        with self._held:
            epoch = self._release_epoch
            self._holding += 1
            self._held.notify_all()
            self._held.wait_for(lambda: self._release_epoch != epoch, timeout=self.hold_timeout)
            cut = self.rules.refusing  # decided before release() returns: a later reset() cannot race it
            self._holding -= 1
            self._held.notify_all()
            return cut

    def wait_held(self, count: int = 1, timeout: float = 120.0) -> bool:
        """Wait until ``count`` requests are being held; False if that did not happen in time."""
        with self._held:
            return self._held.wait_for(lambda: self._holding >= count, timeout=timeout)

    def release(self, timeout: float = 30.0) -> None:
        """Let every held request go on (to the real server, or cut when refusing); wait until they left."""
        with self._held:
            self._release_epoch += 1
            self._held.notify_all()
            self._held.wait_for(lambda: self._holding == 0, timeout=timeout)
