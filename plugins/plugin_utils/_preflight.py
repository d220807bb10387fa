# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pre-flight: check from the controller what the CA is about to check, before it is asked to.

A CA that fails an authorization counts it against the account and, with several vantage points, may pause
the name after repeated failures. So after the challenges are placed and before the CA is told to validate,
the controller fetches each http-01 token (or completes the acme-tls/1 handshake for tls-alpn-01) from every
address the name resolves to (A and AAAA): every member of a pool behind one name is reached this way. Any
wrong answer stops the order: the authorization stays unanswered and the CA records no failure.

A name that does not resolve from the controller, or an address it has no route to (no IPv6 on the
controller, say), is not proof of a fault on the host: it is reported as a warning, not a failure.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import ipaddress
import socket
import ssl
import typing as t

TIMEOUT = 5.0
_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}


class Unreachable(Exception):
    """The controller cannot reach the address at all (no route): not the host's fault."""


def addresses(name: str, resolvers: t.Sequence[str] = ()) -> list[str]:
    """A and AAAA addresses of a name (an IP identifier is its own address)."""
    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    found: list[str] = []
    if resolvers:
        import dns.exception
        import dns.resolver

        res = dns.resolver.Resolver(configure=False)
        res.nameservers = list(resolvers)
        res.lifetime = TIMEOUT
        for rdtype in ("A", "AAAA"):
            try:
                found += [r.to_text() for r in res.resolve(name, rdtype)]
            except dns.exception.DNSException:
                continue
        return found
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return []
    for info in infos:
        addr = str(info[4][0])
        if addr not in found:
            found.append(addr)
    return found


def _connect(addr: str, port: int) -> socket.socket:
    try:
        return socket.create_connection((addr, port), timeout=TIMEOUT)
    except OSError as exc:
        if exc.errno in _NO_ROUTE:
            raise Unreachable(f"no route from the controller to {addr}") from None
        raise


def fetch_http01(addr: str, name: str, token: str, port: int = 80) -> str:
    """The body served for the token at one address (raises OSError with what went wrong)."""
    sock = _connect(addr, port)
    conn = http.client.HTTPConnection(addr, port, timeout=TIMEOUT)
    conn.sock = sock
    try:
        conn.request(
            "GET", f"/.well-known/acme-challenge/{token}", headers={"Host": name, "User-Agent": "portail-preflight"}
        )
        resp = conn.getresponse()
        body = resp.read(4096).decode("utf-8", "replace").strip()
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status}")
        return body
    finally:
        conn.close()


def alpn_digest(addr: str, sni: str, port: int = 443) -> bytes:
    """The acmeIdentifier digest of the certificate served for acme-tls/1 at one address (RFC 8737)."""
    from cryptography import x509

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    sock = _connect(addr, port)
    with ctx.wrap_socket(sock, server_hostname=sni) as tls:
        if tls.selected_alpn_protocol() != "acme-tls/1":
            raise OSError("the server did not negotiate ALPN acme-tls/1")
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError("no certificate")
    cert = x509.load_der_x509_certificate(der)
    oid = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
    try:
        value = cert.extensions.get_extension_for_oid(oid).value.value  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        raise OSError("the certificate has no acmeIdentifier extension") from None
    return bytes(value)[-32:]


def check(
    challenge_type: str,
    challenges: t.Sequence[t.Any],
    resolvers: t.Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """(problems, warnings) for http-01 and tls-alpn-01 challenges, one line per address that failed."""
    problems: list[str] = []
    warnings: list[str] = []
    for ch in challenges:
        name = ch.identifier
        addrs = addresses(name, resolvers)
        if not addrs:
            # the controller's view of DNS may differ from the CA's (split horizon): not proof of a fault
            warnings.append(f"pre-flight of {name}: the name does not resolve from the controller; not checked")
            continue
        for addr in addrs:
            try:
                if challenge_type == "http-01":
                    body = fetch_http01(addr, name, ch.token)
                    if body != ch.key_authorization:
                        raise OSError("wrong content (not the key authorization of this order)")
                elif challenge_type == "tls-alpn-01":
                    want = hashlib.sha256(ch.key_authorization.encode("ascii")).digest()
                    if alpn_digest(addr, ch.tls_alpn_sni) != want:
                        raise OSError("the acme-tls/1 certificate carries another key authorization")
            except Unreachable as exc:
                warnings.append(f"pre-flight of {name}: {exc}; not checked")
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                port = 80 if challenge_type == "http-01" else 443
                problems.append(f"{name} at {addr} port {port}: {exc or type(exc).__name__}")
    return problems, warnings
