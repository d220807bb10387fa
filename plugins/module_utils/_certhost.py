# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Managed-host side of portail.https.acme_certificate (runs on Python >= 3.9, stdlib + cryptography).

The controller never sees the certificate's private key: this module generates it on the host as a
*pending* key (``<key_path>.pending``, mode 0600), builds the CSR from it, and at deploy time moves the
pending key into place in the same step as the new certificate files, so a failed order never leaves a
key that does not match the served certificate.

Steps (``run_step``): inspect, prepare, deploy, discard, http01_place, http01_cleanup, alpn_start, alpn_stop.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing as t

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtensionOID, NameOID
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: t.Optional[ImportError] = exc
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
PENDING_SUFFIX = ".pending"
BACKUP_SUFFIX = ".bak"
META_SUFFIX = ".acme.json"
CHALLENGE_DIR = (".well-known", "acme-challenge")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_KEYAUTH_RE = re.compile(r"^[A-Za-z0-9_.-]{1,1024}$")


class CertHostError(Exception):
    """A failure to report to the controller with a clear message."""


# ---------------------------------------------------------------------------------------------------------
# keys and CSR


def generate_key(key_type: str) -> t.Any:
    if key_type == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    raise CertHostError(f"unsupported key_type {key_type!r}; use one of {', '.join(KEY_TYPES)}")


def key_type_of(public_key: t.Any) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ec256", "secp384r1": "ec384"}.get(public_key.curve.name, f"ec-{public_key.curve.name}")
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa{public_key.key_size}"
    return type(public_key).__name__


def load_key(path: str) -> t.Any:
    """Load a PEM private key; errors never include the file content."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CertHostError(f"cannot read private key {path}: {exc.strerror}") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise CertHostError(f"{path} is not an unencrypted PEM private key") from None


def _write_private(path: str, data: bytes) -> None:
    """Write a new file readable by its owner only (created 0600, never wider)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".portail-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def ensure_pending_key(key_path: str, key_type: str) -> tuple[t.Any, bool]:
    """Return (key, created). Reuses a pending key of the right type left by an earlier failed run."""
    pending = key_path + PENDING_SUFFIX
    if os.path.exists(pending):
        try:
            key = load_key(pending)
        except CertHostError:
            key = None
        if key is not None and key_type_of(key.public_key()) == key_type:
            return key, False
    key = generate_key(key_type)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_private(pending, pem)
    return key, True


def split_names(names: list[str]) -> tuple[list[str], list[str]]:
    dns_names: list[str] = []
    ips: list[str] = []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns_names.append(name.lower().rstrip("."))
    return dns_names, ips


def build_csr(key: t.Any, names: list[str]) -> str:
    dns_names, ips = split_names(names)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = x509.CertificateSigningRequestBuilder()
    first = (dns_names or ips)[0]
    if len(first) <= 64:
        builder = builder.subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)]))
    else:
        builder = builder.subject_name(x509.Name([]))
    builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


# ---------------------------------------------------------------------------------------------------------
# reading certificates


def _iso(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.isoformat()


def _not_valid(cert: t.Any, which: str) -> datetime.datetime:
    utc = getattr(cert, f"not_valid_{which}_utc", None)
    if utc is not None:
        return t.cast(datetime.datetime, utc)
    return t.cast(datetime.datetime, getattr(cert, f"not_valid_{which}")).replace(tzinfo=datetime.timezone.utc)


def cert_names(cert: t.Any) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    names += [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    return names


def describe_cert(cert: t.Any) -> dict[str, t.Any]:
    try:
        aki = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    return {
        "names": cert_names(cert),
        "not_before": _iso(_not_valid(cert, "before")),
        "not_after": _iso(_not_valid(cert, "after")),
        "serial": format(cert.serial_number, "x"),
        "aki": aki.hex() if aki else None,
        "issuer": cert.issuer.rfc4514_string(),
        "key_type": key_type_of(cert.public_key()),
    }


def _public_der(public_key: t.Any) -> bytes:
    return t.cast(
        bytes, public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


# ---------------------------------------------------------------------------------------------------------
# local renewal rules (shared with the controller, which adds the CA's ARI opinion)

MISSING = "missing"
NAMES_CHANGED = "names_changed"
KEY_TYPE_CHANGED = "key_type_changed"
KEY_MISMATCH = "key_mismatch"
EXPIRING = "expiring"
FORCED = "forced"
VALID = "valid"


def parse_time(value: str) -> datetime.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # RFC 3339 with more than 6 fractional digits (Go servers) -> cut to microseconds
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def local_decision(
    state: t.Mapping[str, t.Any],
    *,
    names: list[str],
    key_type: str,
    fraction: float,
    force: bool,
    cert_path: str,
    key_path: str,
    now: datetime.datetime,
) -> tuple[str, str]:
    """(reason, message) from an inspect result; VALID means only the CA's ARI could still say renew."""
    if force:
        return FORCED, "force is set"
    cert = state.get("cert")
    if state.get("missing_files") or not cert:
        missing = ", ".join(state.get("missing_files") or [cert_path])
        return MISSING, f"no certificate yet (missing: {missing})"
    if state.get("problems"):
        return MISSING, "; ".join(state["problems"])
    have, want = set(cert.get("names") or []), set(names)
    if have != want:
        added, removed = sorted(want - have), sorted(have - want)
        parts = []
        if added:
            parts.append("adds " + ", ".join(added))
        if removed:
            parts.append("drops " + ", ".join(removed))
        return NAMES_CHANGED, "names changed: " + "; ".join(parts)
    key = state.get("key") or {}
    if key.get("key_type") != key_type:
        return KEY_TYPE_CHANGED, f"key type changed from {key.get('key_type')} to {key_type}"
    if not cert.get("matches_key"):
        return KEY_MISMATCH, f"{cert_path} does not match {key_path}"
    not_before, not_after = parse_time(cert["not_before"]), parse_time(cert["not_after"])
    lifetime = (not_after - not_before).total_seconds()
    remaining = (not_after - now).total_seconds()
    if lifetime <= 0 or remaining < fraction * lifetime:
        days = remaining / 86400
        return EXPIRING, (
            f"{days:.1f} days left of {lifetime / 86400:.0f}, less than "
            f"{fraction:.0%} of the lifetime (renew_remaining_fraction)"
        )
    return VALID, f"valid until {cert['not_after']}"


# ---------------------------------------------------------------------------------------------------------
# inspect / prepare


def describe_current(result: dict[str, t.Any], cert_pem: bytes, key_der: t.Optional[bytes], cert_path: str) -> None:
    """Fill result["cert"] (with matches_key) from the certificate file's bytes, or add a problem."""
    try:
        certs = list(x509.load_pem_x509_certificates(cert_pem))
        if not certs:
            raise ValueError("no certificate")
    except ValueError as exc:
        result["problems"].append(f"cannot read certificate {cert_path}: {exc}")
        return
    info = describe_cert(certs[0])
    info["matches_key"] = key_der is not None and _public_der(certs[0].public_key()) == key_der
    result["cert"] = info


def parse_meta(text: str) -> t.Optional[dict[str, t.Any]]:
    """The .acme.json record, or None when it is not a JSON object."""
    try:
        meta = json.loads(text)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def inspect(
    *,
    key_path: str,
    cert_path: str,
    chain_path: t.Optional[str],
    fullchain_path: t.Optional[str],
    webroots: list[str],
) -> dict[str, t.Any]:
    """Everything the controller needs to decide, without changing anything and without key material."""
    result: dict[str, t.Any] = {"cert": None, "key": None, "missing_files": [], "meta": None, "problems": []}
    for path in (key_path, cert_path, chain_path, fullchain_path):
        if path and not os.path.exists(path):
            result["missing_files"].append(path)
    key_der = None
    if os.path.exists(key_path):
        try:
            key = load_key(key_path)
        except CertHostError as exc:
            result["problems"].append(str(exc))
        else:
            result["key"] = {"key_type": key_type_of(key.public_key())}
            key_der = _public_der(key.public_key())
    if os.path.exists(cert_path):
        try:
            with open(cert_path, "rb") as f:
                data = f.read()
        except OSError as exc:
            result["problems"].append(f"cannot read certificate {cert_path}: {exc}")
        else:
            describe_current(result, data, key_der, cert_path)
    meta_path = cert_path + META_SUFFIX
    if os.path.exists(meta_path):
        try:
            with open(meta_path, encoding="utf-8") as f:
                result["meta"] = parse_meta(f.read())
        except (OSError, UnicodeError):
            pass
    result["missing_webroots"] = [w for w in webroots if not os.path.isdir(w)]
    result["key_dir_exists"] = os.path.isdir(os.path.dirname(key_path) or ".")
    return result


def _ensure_dir(path: str, mode: int, created: list[str]) -> None:
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        _ensure_dir(parent, mode, created)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    created.append(path)


def prepare(*, key_path: str, key_type: str, names: list[str], paths: list[str]) -> dict[str, t.Any]:
    """Ensure the pending key and return the CSR built from it (PEM)."""
    created_dirs: list[str] = []
    _ensure_dir(os.path.dirname(os.path.abspath(key_path)), 0o755, created_dirs)
    for path in paths:
        _ensure_dir(os.path.dirname(os.path.abspath(path)), 0o755, created_dirs)
    key, created = ensure_pending_key(key_path, key_type)
    return {"csr": build_csr(key, names), "pending_created": created, "created_dirs": created_dirs}


def discard(*, key_path: str, pending_created: bool, created_dirs: list[str]) -> dict[str, t.Any]:
    """Undo prepare after a failed order: the pending key this run made, and the directories it made."""
    removed: list[str] = []
    if pending_created and _unlink(key_path + PENDING_SUFFIX):
        removed.append(key_path + PENDING_SUFFIX)
    for d in sorted(created_dirs, key=len, reverse=True):
        try:
            os.rmdir(d)
            removed.append(d)
        except OSError:
            pass
    return {"changed": bool(removed), "removed": removed}


# ---------------------------------------------------------------------------------------------------------
# deploy


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _write_temp(path: str, data: bytes, mode: int) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".portail-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _backup(path: str) -> t.Optional[str]:
    """Keep the current file as <path>.bak (hard link when possible, copy otherwise)."""
    if not os.path.exists(path):
        return None
    dest = path + BACKUP_SUFFIX
    tmp = dest + ".tmp"
    _unlink(tmp)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copy2(path, tmp)
    os.replace(tmp, dest)
    return dest


def deploy(
    *,
    key_path: str,
    cert_path: str,
    chain_path: t.Optional[str],
    fullchain_path: t.Optional[str],
    cert_pem: str,
    chain_pem: str,
    mode: int,
    key_mode: int,
    backup: bool,
    meta: t.Optional[dict[str, t.Any]],
) -> dict[str, t.Any]:
    """Write cert/chain/fullchain and move the pending key into place, all or nothing."""
    pending = key_path + PENDING_SUFFIX
    if not os.path.exists(pending):
        raise CertHostError(f"no pending key {pending}: run the prepare step first")
    certs = list(x509.load_pem_x509_certificates(cert_pem.encode("ascii")))
    if not certs:
        raise CertHostError("the CA returned no certificate")
    key = load_key(pending)
    if _public_der(certs[0].public_key()) != _public_der(key.public_key()):
        raise CertHostError("the issued certificate does not match the pending key; nothing was deployed")
    leaf = certs[0].public_bytes(serialization.Encoding.PEM)
    chain = chain_pem.encode("ascii")
    if chain and not chain.endswith(b"\n"):
        chain += b"\n"
    files: list[tuple[str, bytes]] = [(cert_path, leaf)]
    if chain_path:
        files.append((chain_path, chain))
    if fullchain_path:
        files.append((fullchain_path, leaf + chain))
    if meta is not None:
        files.append((cert_path + META_SUFFIX, (json.dumps(meta, sort_keys=True) + "\n").encode("utf-8")))

    temps: list[tuple[str, str]] = []
    try:
        for path, data in files:
            temps.append((_write_temp(path, data, mode), path))
        os.chmod(pending, key_mode)
    except BaseException:
        for tmp, _path in temps:
            _unlink(tmp)
        raise

    backups: list[str] = []
    if backup:
        for path in [key_path] + [p for _d, p in temps]:
            b = _backup(path)
            if b:
                backups.append(b)
    # The switch: every rename back to back, the key last; roll back from the backups if one fails.
    done: list[str] = []
    try:
        for tmp, path in temps:
            os.replace(tmp, path)
            done.append(path)
        os.replace(pending, key_path)
        done.append(key_path)
    except OSError as exc:
        for path in done:
            if os.path.exists(path + BACKUP_SUFFIX):
                shutil.copy2(path + BACKUP_SUFFIX, path)
        for tmp, _path in temps:
            _unlink(tmp)
        raise CertHostError(f"deploying {cert_path} failed and was rolled back: {exc}") from None
    for path in done:
        _fsync_dir(path)
    return {"changed": True, "written": done, "backups": backups, "cert": describe_cert(certs[0])}


# ---------------------------------------------------------------------------------------------------------
# http-01


def _check_token(token: str, content: str) -> None:
    if not _TOKEN_RE.match(token):
        raise CertHostError(f"refusing http-01 token {token!r}: not base64url")
    if not _KEYAUTH_RE.match(content):
        raise CertHostError(f"refusing http-01 key authorization for token {token!r}: unexpected characters")


def http01_place(
    *, webroots: list[str], tokens: list[dict[str, str]], challenge_dirs: t.Optional[list[str]] = None
) -> dict[str, t.Any]:
    """Write each token file into every webroot (under .well-known/acme-challenge/) and every challenge
    directory (directly); returns what to remove afterwards."""
    challenge_dirs = challenge_dirs or []
    missing = [w for w in webroots + challenge_dirs if not os.path.isdir(w)]
    if missing:
        raise CertHostError(f"http-01 webroot does not exist: {', '.join(missing)}")
    files: list[str] = []
    created_dirs: list[str] = []
    try:
        targets = [os.path.join(w, *CHALLENGE_DIR) for w in webroots] + challenge_dirs
        for challenge_dir in targets:
            _ensure_dir(challenge_dir, 0o755, created_dirs)
            for item in tokens:
                _check_token(item["token"], item["content"])
                path = os.path.join(challenge_dir, item["token"])
                tmp = _write_temp(path, item["content"].encode("ascii"), 0o644)
                os.replace(tmp, path)
                files.append(path)
    except BaseException:
        http01_cleanup(files=files, created_dirs=created_dirs)
        raise
    return {"changed": True, "files": files, "created_dirs": created_dirs}


def http01_cleanup(*, files: list[str], created_dirs: list[str]) -> dict[str, t.Any]:
    removed = [f for f in files if _unlink(f)]
    for d in sorted(created_dirs, key=len, reverse=True):
        try:
            os.rmdir(d)
            removed.append(d)
        except OSError:
            pass
    return {"changed": bool(removed), "removed": removed}


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
