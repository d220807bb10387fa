# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ACME transport: directory, nonce pool, signed requests, retries. Thread-safe.

One :class:`AcmeClient` serves many threads: connections are kept alive per thread, nonces are
pooled (every Replay-Nonce the CA sends is kept for the next request, newNonce is only asked when
the pool is empty), badNonce is retried transparently, 429/503 are retried after Retry-After when
that fits into the deadline, and every request is counted (``client.requests``).
"""

from __future__ import annotations

import collections
import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Sequence
from typing import Any, Optional, Union

from .errors import (
    AcmeError,
    BadNonce,
    ProblemError,
    RateLimited,
    TransportError,
    UnsupportedError,
    parse_problem,
    problem_error,
)
from .keys import AccountKey
from .proxy import Proxy, proxy_for
from .utils import Deadline, parse_links, parse_retry_after

USER_AGENT = "portail.https-acme/1.0"
DEFAULT_TIMEOUT = 30.0


class Response:
    """An HTTP response from the CA."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes, url: str) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name)

    @property
    def location(self) -> Optional[str]:
        loc = self.headers.get("Location")
        return urllib.parse.urljoin(self.url, loc) if loc else None

    @property
    def retry_after(self) -> Optional[float]:
        return parse_retry_after(self.headers.get("Retry-After"))

    def links(self, rel: str) -> list[str]:
        values = self.headers.get_all("Link") or []
        return [urllib.parse.urljoin(self.url, u) for u, p in parse_links(values) if rel in p.get("rel", "").split()]

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise TransportError(f"{self.url}: the CA did not answer JSON (HTTP {self.status})") from None


class Directory:
    """The CA's directory object (RFC 8555 section 7.1.1)."""

    def __init__(self, url: str, data: dict[str, Any]) -> None:
        self.url = url
        self.data = data
        meta = data.get("meta") or {}
        self.meta: dict[str, Any] = meta if isinstance(meta, dict) else {}

    def __getitem__(self, name: str) -> str:
        value = self.data.get(name)
        if not value:
            raise UnsupportedError(f"the CA's directory {self.url} has no {name} resource")
        return str(value)

    def get(self, name: str) -> Optional[str]:
        value = self.data.get(name)
        return str(value) if value else None

    @property
    def terms_of_service(self) -> Optional[str]:
        return self.meta.get("termsOfService")

    @property
    def external_account_required(self) -> bool:
        return bool(self.meta.get("externalAccountRequired"))

    @property
    def profiles(self) -> dict[str, str]:
        profiles = self.meta.get("profiles") or {}
        return {str(k): str(v) for k, v in profiles.items()} if isinstance(profiles, dict) else {}

    @property
    def renewal_info(self) -> Optional[str]:
        return self.get("renewalInfo")


class _NoncePool:
    def __init__(self, limit: int = 512) -> None:
        self._lock = threading.Lock()
        self._nonces: collections.deque[str] = collections.deque(maxlen=limit)

    def put(self, nonce: Optional[str]) -> None:
        if nonce:
            with self._lock:
                self._nonces.append(nonce)

    def take(self) -> Optional[str]:
        with self._lock:
            return self._nonces.pop() if self._nonces else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._nonces)


class AcmeClient:
    """Talks to one ACME CA with one account key. Safe to share between threads.

    :param directory_url: the CA's directory (``https://``; ``http://`` is accepted for test CAs).
    :param key: the account key.
    :param account_url: the account URL (JWS ``kid``) when already known; saves a lookup.
    :param ca_bundle: PEM file to verify the CA's TLS certificate against (system store otherwise).
    :param validate_certs: verify the CA's TLS certificate.
    :param timeout: seconds for each HTTP request.
    :param proxy: an HTTP proxy URL for every request (replaces the environment's HTTPS_PROXY etc.).
    :param use_proxy: honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment (see ``proxy.py``).
    """

    def __init__(
        self,
        directory_url: str,
        key: AccountKey,
        *,
        account_url: Optional[str] = None,
        ca_bundle: Optional[str] = None,
        validate_certs: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        bad_nonce_retries: int = 20,
        user_agent: str = USER_AGENT,
        proxy: Optional[str] = None,
        use_proxy: bool = True,
    ) -> None:
        parsed = urllib.parse.urlsplit(directory_url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise AcmeError(f"invalid ACME directory URL {directory_url!r}")
        self.directory_url = directory_url
        self.key = key
        self.account_url = account_url
        self.timeout = timeout
        self.bad_nonce_retries = bad_nonce_retries
        self.user_agent = user_agent
        self._ssl = self._ssl_context(ca_bundle, validate_certs)
        self._proxy_url = proxy or None
        self._use_proxy = use_proxy
        proxy_for(directory_url, self._proxy_url, use_proxy)  # a bad proxy URL fails here, before any request
        self._local = threading.local()
        self._nonces = _NoncePool()
        self._lock = threading.Lock()
        self._dir_lock = threading.Lock()
        self._directory: Optional[Directory] = None
        self.requests = 0
        self.bad_nonce_retried = 0
        self.bad_nonce_by_kind: collections.Counter[str] = collections.Counter()
        self.requests_by_kind: collections.Counter[str] = collections.Counter()

    # --- transport ------------------------------------------------------------------------------

    @staticmethod
    def _ssl_context(ca_bundle: Optional[str], validate_certs: bool) -> ssl.SSLContext:
        if not validate_certs:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        try:
            return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
        except (OSError, ssl.SSLError) as exc:
            raise AcmeError(f"cannot load CA bundle {ca_bundle}: {exc}") from None

    def _connection(self, scheme: str, netloc: str, fresh: bool, proxy: Optional[Proxy]) -> http.client.HTTPConnection:
        conns: dict[tuple[str, str], http.client.HTTPConnection] = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        key = (scheme, netloc)
        conn = conns.get(key)
        if conn is not None and fresh:
            conn.close()
            conn = None
        if conn is None:
            if proxy is not None and scheme == "https":
                # CONNECT through the proxy; TLS (and the check of the CA's name and certificate) is then
                # negotiated with the CA itself inside the tunnel: the proxy only sees ciphertext.
                conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=self.timeout, context=self._ssl)
                target = urllib.parse.urlsplit(f"https://{netloc}")
                conn.set_tunnel(target.hostname or "", target.port or 443, headers=proxy.headers())
            elif proxy is not None:
                conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=self.timeout)
            elif scheme == "https":
                conn = http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(netloc, timeout=self.timeout)
            conns[key] = conn
        return conn

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in (getattr(self._local, "conns", None) or {}).values():
            conn.close()
        self._local.conns = {}

    def _count(self, kind: str) -> None:
        with self._lock:
            self.requests += 1
            self.requests_by_kind[kind] += 1

    def http(
        self,
        method: str,
        url: str,
        body: Optional[bytes] = None,
        headers: Optional[dict[str, str]] = None,
        kind: str = "",
    ) -> Response:
        """One HTTP exchange (no ACME semantics); reconnects once if a kept-alive connection died."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http"):
            raise TransportError(f"refusing to fetch {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        hdrs = {"User-Agent": self.user_agent, "Accept-Language": "en"}
        if body is not None:
            hdrs["Content-Type"] = "application/jose+json"
        hdrs.update(headers or {})
        proxy = proxy_for(url, self._proxy_url, self._use_proxy)
        via = f" (through the proxy {proxy.display})" if proxy is not None else ""
        if proxy is not None and parts.scheme == "http":
            path = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
            hdrs.update(proxy.headers())
        self._count(kind or method)
        for attempt in (0, 1):
            conn = self._connection(parts.scheme, parts.netloc, fresh=attempt > 0, proxy=proxy)
            reused = getattr(conn, "sock", None) is not None
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise TransportError(f"{method} {url}{via}: connection failed: {exc}") from None
            except (OSError, http.client.HTTPException, socket.timeout) as exc:
                conn.close()
                raise TransportError(f"{method} {url}{via}: {exc}") from None
            if resp.will_close:
                conn.close()
            return Response(resp.status, resp.headers, data, url)
        raise TransportError(f"{method} {url}: connection failed")  # pragma: no cover

    # --- directory and nonces ----------------------------------------------------------------

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            with self._dir_lock:
                return self._load_directory()
        return self._directory

    def _load_directory(self) -> Directory:
        if self._directory is None:
            resp = self.http("GET", self.directory_url, kind="directory")
            if resp.status != 200:
                raise self._error(resp, context=f"cannot read the ACME directory {self.directory_url}")
            data = resp.json()
            if not isinstance(data, dict) or "newNonce" not in data:
                raise TransportError(f"{self.directory_url} is not an ACME directory")
            self._nonces.put(resp.header("Replay-Nonce"))
            self._directory = Directory(self.directory_url, data)
        return self._directory

    def nonce(self) -> str:
        nonce = self._nonces.take()
        if nonce:
            return nonce
        resp = self.http("HEAD", self.directory["newNonce"], kind="newNonce")
        nonce = resp.header("Replay-Nonce")
        if resp.status >= 400 or not nonce:
            raise self._error(resp, context="cannot get a nonce from the CA")
        return nonce

    # --- signed requests ---------------------------------------------------------------------

    def _error(self, resp: Response, **kwargs: Any) -> ProblemError:
        problem = parse_problem(resp.body, resp.header("Content-Type") or "", resp.status)
        return problem_error(problem, status=resp.status, url=resp.url, retry_after=resp.retry_after, **kwargs)

    def post(
        self,
        url: str,
        payload: Optional[Any],
        *,
        kind: str = "",
        use_jwk: bool = False,
        key: Optional[AccountKey] = None,
        accept: Optional[str] = None,
        deadline: Optional[Deadline] = None,
        context: Optional[str] = None,
        raw_jws: Optional[Any] = None,
    ) -> Response:
        """Signed POST (payload None = POST-as-GET). Raises a ProblemError subclass on error.

        badNonce is retried with the fresh nonce the error carried; 429 and 503 are retried when
        the CA's Retry-After fits into the deadline (at most three times).
        """
        signer = key or self.key
        if not use_jwk and not self.account_url:
            raise AcmeError("no ACME account: register or look up the account first")
        kid = None if use_jwk else self.account_url
        headers = {"Accept": accept} if accept else None
        deadline = deadline or Deadline(max(self.timeout * 4, 60), "ACME request")
        bad_nonces = 0
        busy = 0
        while True:
            nonce = self.nonce()
            if raw_jws is not None:
                body_obj = raw_jws(nonce)
                body = json.dumps(body_obj).encode("utf-8")
            else:
                body = signer.jws(url, payload, nonce, kid)
            resp = self.http("POST", url, body, headers, kind=kind or "post")
            self._nonces.put(resp.header("Replay-Nonce"))
            if resp.status < 400:
                return resp
            err = self._error(resp, context=context)
            if isinstance(err, BadNonce) and bad_nonces < self.bad_nonce_retries:
                bad_nonces += 1
                with self._lock:
                    self.bad_nonce_retried += 1
                    self.bad_nonce_by_kind[kind or "post"] += 1
                continue
            if resp.status in (429, 503) or isinstance(err, RateLimited):
                wait = resp.retry_after
                if wait is not None and busy < 3 and wait < deadline.remaining():
                    busy += 1
                    deadline.sleep(wait)
                    continue
            raise err

    def get_json(self, url: str, kind: str = "get", deadline: Optional[Deadline] = None) -> tuple[Any, Response]:
        """POST-as-GET a JSON resource."""
        resp = self.post(url, None, kind=kind, deadline=deadline)
        return resp.json(), resp

    # --- conveniences over the object model -----------------------------------------------------

    def account(self) -> Any:
        from .account import Account

        return Account(self)

    def new_order(
        self,
        identifiers: Sequence[Union[str, dict[str, str]]],
        profile: Optional[str] = None,
        replaces: Optional[str] = None,
        not_after: Optional[str] = None,
    ) -> Any:
        from .order import Order

        return Order.create(self, identifiers, profile=profile, replaces=replaces, not_after=not_after)

    def order(self, url: str) -> Any:
        from .order import Order

        return Order.load(self, url)

    def answer(self, challenge: Any) -> None:
        """Tell the CA a challenge is ready to be validated."""
        challenge.respond()

    @property
    def ari(self) -> Any:
        from .ari import Ari

        return Ari(self)

    def revoke(self, cert_pem_or_der: Union[bytes, str], reason: Optional[int] = None, cert_key: Any = None) -> None:
        from .revoke import revoke

        revoke(self, cert_pem_or_der, reason=reason, cert_key=cert_key)

    @property
    def nonce_pool_size(self) -> int:
        return len(self._nonces)
