# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks a web server from the outside: redirect on 80, challenge path, certificate and TLS on 443, HSTS.

Pure standard library so it runs wherever Ansible runs (usually the controller, through delegate_to).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Any, Optional

from ansible_collections.portail.https.plugins.module_utils._probe import probe

PROTOCOLS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def probe_port(address: str, port: int, timeout: float) -> str:
    """open / refused / filtered / unreachable, as nc -z or telnet would tell (see _probe)."""
    return str(probe(address, port, timeout)["state"])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given address while sending the name in the Host header."""

    def __init__(self, name: str, address: str, port: int, timeout: float) -> None:
        super().__init__(name, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def http_get(name: str, address: str, port: int, path: str, timeout: float) -> dict[str, Any]:
    conn = _PinnedHTTPConnection(name, address, port, timeout)
    try:
        conn.request("GET", path, headers={"Host": name, "User-Agent": "portail.https-verify"})
        resp = conn.getresponse()
        body = resp.read(4096)
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return {"status": resp.status, "headers": headers, "body": body.decode("utf-8", "replace")}
    finally:
        conn.close()


def tls_handshake(
    name: str,
    address: str,
    port: int,
    timeout: float,
    version: Optional[str] = None,
    ca_file: Optional[str] = None,
) -> dict[str, Any]:
    """Handshake (only `version` if given); return the protocol, the peer certificate and verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        # Old protocols are disabled client-side by default: lower the floor so that a refusal
        # really comes from the server.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = PROTOCOLS[version]
        ctx.maximum_version = PROTOCOLS[version]
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                der = tls.getpeercert(binary_form=True) or b""
                result: dict[str, Any] = {
                    "ok": True,
                    "protocol": tls.version(),
                    "alpn": tls.selected_alpn_protocol(),
                    "cert_der": der,
                }
    except (ssl.SSLError, OSError) as exc:
        return {"ok": False, "error": str(exc)}
    result["verified"] = None
    if ca_file:
        vctx = ssl.create_default_context(cafile=ca_file)
        try:
            with socket.create_connection((address, port), timeout=timeout) as raw:
                with vctx.wrap_socket(raw, server_hostname=name):
                    result["verified"] = True
        except (ssl.SSLError, OSError) as exc:
            result["verified"] = False
            result["verify_error"] = str(exc)
    return result


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a given address with the name as SNI and Host header; no verification (checked apart)."""

    def __init__(self, name: str, address: str, port: int, timeout: float) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        super().__init__(name, port, timeout=timeout, context=ctx)
        self._address = address
        self._ctx = ctx

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(raw, server_hostname=self.host)


def https_get(name: str, address: str, port: int, path: str, timeout: float) -> dict[str, Any]:
    conn = _PinnedHTTPSConnection(name, address, port, timeout)
    try:
        conn.request("GET", path, headers={"Host": name, "User-Agent": "portail.https-verify"})
        resp = conn.getresponse()
        resp.read(4096)
        return {"status": resp.status, "headers": {k.lower(): v for k, v in resp.getheaders()}}
    finally:
        conn.close()


def _cert_summary(der: bytes) -> dict[str, Any]:
    from cryptography import x509  # imported here: only needed once a handshake succeeded

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return {
        "serial": format(cert.serial_number, "x"),
        "issuer": cert.issuer.rfc4514_string(),
        "names": names,
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def run_checks(
    *,
    name: str,
    address: str,
    http_port: int,
    https_port: int,
    timeout: float,
    redirect_codes: list[int],
    expected_serial: Optional[str],
    ca_file: Optional[str],
    require_hsts: bool,
    refused: list[str],
    accepted: list[str],
    probe_token: str,
) -> dict[str, Any]:
    checks: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {"address": address}
    checks["port_http"] = {"state": probe_port(address, http_port, timeout)}
    checks["port_https"] = {"state": probe_port(address, https_port, timeout)}
    for key in ("port_http", "port_https"):
        checks[key]["ok"] = checks[key]["state"] == "open"

    path = "/portail-verify/a?b=1"
    want = f"https://{name}{path}" if https_port == 443 else f"https://{name}:{https_port}{path}"
    if checks["port_http"]["ok"]:
        try:
            r = http_get(name, address, http_port, path, timeout)
            loc = r["headers"].get("location")
            checks["redirect"] = {"status": r["status"], "location": loc}
            checks["redirect"]["ok"] = r["status"] in redirect_codes and loc == want
            checks["no_hsts_on_http"] = {"value": r["headers"].get("strict-transport-security")}
            checks["no_hsts_on_http"]["ok"] = (not require_hsts) or checks["no_hsts_on_http"]["value"] is None
            c = http_get(name, address, http_port, f"/.well-known/acme-challenge/{probe_token}", timeout)
            # Served by the challenge location (404 for an unknown token, or 200 from a stateless
            # responder), never redirected away.
            checks["challenge_path"] = {"status": c["status"], "ok": c["status"] in (200, 404)}
        except (OSError, http.client.HTTPException) as exc:
            checks["redirect"] = {"ok": False, "error": str(exc)}

    if checks["port_https"]["ok"]:
        hs = tls_handshake(name, address, https_port, timeout, ca_file=ca_file)
        if hs["ok"]:
            cert = _cert_summary(hs.pop("cert_der"))
            out["certificate"] = cert
            ok = expected_serial is None or cert["serial"].lower().lstrip("0") == expected_serial.lower().lstrip("0")
            ok = ok and (hs["verified"] is not False)
            checks["certificate"] = dict(cert, ok=ok, verified=hs["verified"], protocol=hs["protocol"])
            if hs.get("verify_error"):
                checks["certificate"]["verify_error"] = hs["verify_error"]
            checks["http2"] = {"alpn": hs["alpn"], "ok": True}
        else:
            checks["certificate"] = {"ok": False, "error": hs["error"]}
        for version in refused:
            r = tls_handshake(name, address, https_port, timeout, version=version)
            checks[f"refuses_{version}"] = {"ok": not r["ok"], "accepted": r["ok"]}
        for version in accepted:
            r = tls_handshake(name, address, https_port, timeout, version=version)
            checks[f"accepts_{version}"] = {"ok": r["ok"], "error": r.get("error")}
        if require_hsts:
            try:
                r = https_get(name, address, https_port, "/", timeout)
                value = r["headers"].get("strict-transport-security")
                checks["hsts"] = {"value": value, "status": r["status"], "ok": bool(value and "max-age=" in value)}
            except (OSError, http.client.HTTPException) as exc:
                checks["hsts"] = {"ok": False, "error": str(exc)}
    failed = sorted(k for k, v in checks.items() if not v["ok"])
    out.update(ok=not failed, failed_checks=failed, checks=checks)
    return out
