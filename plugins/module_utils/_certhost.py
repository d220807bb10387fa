# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Managed-host side of portail.https.acme_certificate that needs Python: the tls-alpn-01 responder.

Every other host step is a POSIX sh + openssl script built on the controller (plugin_utils/_hoststeps).
Standard library only.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing as t


class CertHostError(Exception):
    """A failure to report to the controller with a clear message."""


def _write_private(path: str, data: bytes) -> None:
    """Write a new file readable by its owner only (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------------------
# tls-alpn-01 responder (RFC 8737): a detached, self-contained Python process

RESPONDER_SOURCE = r"""
import json, os, shutil, signal, socket, ssl, sys, threading, time

def main():
    state = sys.argv[1]
    with open(os.path.join(state, "config.json")) as f:
        cfg = json.load(f)
    contexts = {}
    for i, item in enumerate(cfg["certs"]):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["acme-tls/1"])
        ctx.load_cert_chain(os.path.join(state, "c%d.pem" % i), os.path.join(state, "k%d.pem" % i))
        contexts[item["sni"].lower().rstrip(".")] = ctx
    first = next(iter(contexts.values()))
    front = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    front.minimum_version = ssl.TLSVersion.TLSv1_2
    front.set_alpn_protocols(["acme-tls/1"])
    front.load_cert_chain(os.path.join(state, "c0.pem"), os.path.join(state, "k0.pem"))

    def choose(sock, server_name, _ctx):
        ctx = contexts.get((server_name or "").lower().rstrip("."))
        if ctx is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sock.context = ctx
        return None

    front.sni_callback = choose
    address = cfg["address"]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((address, cfg["port"]))
    srv.listen(64)
    srv.settimeout(0.25)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_a: stop.append(1))
    with open(os.path.join(state, "ready.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(state, "ready.tmp"), os.path.join(state, "ready"))

    def read_exactly(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed inside a PROXY protocol header")
            data += chunk
        return data

    def skip_proxy_header(conn):
        # An ALPN router in front (nginx stream with proxy_protocol on) sends a PROXY protocol header
        # before the ClientHello. A TLS record starts with 0x16, so the first byte tells them apart.
        first = conn.recv(1, socket.MSG_PEEK)
        if first == b"P":  # v1: "PROXY TCP4 src dst sport dport\r\n", at most 107 bytes
            line = b""
            while not line.endswith(b"\r\n"):
                line += read_exactly(conn, 1)
                if len(line) > 107:
                    raise ValueError("PROXY v1 header too long")
            if not line.startswith(b"PROXY "):
                raise ValueError("not a PROXY v1 header")
        elif first == b"\r":  # v2: 12-byte signature, version/command, family, 2-byte length
            head = read_exactly(conn, 16)
            if head[:12] != b"\r\n\r\n\x00\r\nQUIT\n" or head[12] >> 4 != 2:
                raise ValueError("not a PROXY v2 header")
            read_exactly(conn, int.from_bytes(head[14:16], "big"))

    def answer(conn):
        conn.settimeout(10)
        try:
            skip_proxy_header(conn)
            tls = front.wrap_socket(conn, server_side=True)
            tls.close()
        except Exception:
            pass
        finally:
            conn.close()

    deadline = time.monotonic() + cfg["lifetime"]
    while not stop and time.monotonic() < deadline:
        try:
            conn, _peer = srv.accept()
        except (socket.timeout, InterruptedError):
            continue
        except OSError:
            break
        threading.Thread(target=answer, args=(conn,), daemon=True).start()
    srv.close()
    if not stop:
        shutil.rmtree(state, ignore_errors=True)

main()
"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def alpn_start(
    *, address: str, port: int, certs: list[dict[str, str]], lifetime: int, startup_timeout: float = 15.0
) -> dict[str, t.Any]:
    """Start the responder; ``certs`` items: sni (name or reverse-DNS name), cert (PEM), key (PEM)."""
    if not certs:
        raise CertHostError("tls-alpn-01: no challenge certificate to serve")
    state = tempfile.mkdtemp(prefix="portail-alpn-")
    try:
        os.chmod(state, 0o700)
        for i, item in enumerate(certs):
            with open(os.path.join(state, f"c{i}.pem"), "w", encoding="ascii") as f:
                f.write(item["cert"])
            _write_private(os.path.join(state, f"k{i}.pem"), item["key"].encode("ascii"))
        config = {"address": address, "port": port, "lifetime": lifetime, "certs": [{"sni": c["sni"]} for c in certs]}
        with open(os.path.join(state, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)
        script = os.path.join(state, "responder.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(RESPONDER_SOURCE)
        log_path = os.path.join(state, "responder.log")
        with open(log_path, "wb") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(
                [sys.executable, script, state],
                stdin=devnull,
                stdout=log,
                stderr=log,
                close_fds=True,
                start_new_session=True,
                cwd=state,
            )
        end = time.monotonic() + startup_timeout
        while time.monotonic() < end:
            if os.path.exists(os.path.join(state, "ready")):
                return {"changed": True, "responder": state, "pid": proc.pid, "address": address, "port": port}
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = [line for line in f.read().strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else "no output"
        hint = ""
        if "Address already in use" in detail or "[Errno 98]" in detail:
            hint = " (another server listens there: free the port or route acme-tls/1 by ALPN, see the docs)"
        elif "Permission denied" in detail or "[Errno 13]" in detail:
            hint = " (binding a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
        raise CertHostError(f"tls-alpn-01 responder could not listen on {address}:{port}: {detail}{hint}")
    except BaseException:
        shutil.rmtree(state, ignore_errors=True)
        raise


def alpn_stop(*, responder: str) -> dict[str, t.Any]:
    """Stop a responder started by alpn_start (identified by its private state directory)."""
    base = os.path.basename(os.path.normpath(responder))
    if not base.startswith("portail-alpn-") or os.path.dirname(os.path.normpath(responder)) != os.path.normpath(
        tempfile.gettempdir()
    ):
        raise CertHostError(f"{responder} is not a tls-alpn-01 responder directory")
    if not os.path.isdir(responder):
        return {"changed": False}
    pid = None
    try:
        with open(os.path.join(responder, "ready"), encoding="ascii") as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _is_our_responder(pid, responder):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        end = time.monotonic() + 5
        while time.monotonic() < end and _pid_alive(pid) and _is_our_responder(pid, responder):
            time.sleep(0.05)
        if _pid_alive(pid) and _is_our_responder(pid, responder):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(responder, ignore_errors=True)
    return {"changed": True}


def _is_our_responder(pid: int, state: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        return True  # no /proc: trust the pid file
    # A zombie has an empty command line: it is ours but already gone.
    return os.fsencode(state) in cmdline
