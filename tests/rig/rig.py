"""Local test rig: Pebble (three instances), two BIND9 servers, a PowerDNS Authoritative server
with its HTTP API, and the facts tests need.

Usage: rig.py start|stop|status|env

Everything listens on loopback only. State, configs and logs live under $PORTAIL_RIG_DIR
(default: <repo>/build/rig); tests read $PORTAIL_RIG_DIR/rig.json or source env.sh.
Start is idempotent (a service that answers is left alone), stop kills what start started.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
RIG = Path(os.environ.get("PORTAIL_RIG_DIR", REPO / "build" / "rig")).resolve()
LOGS = RIG / "logs"

DNS_PRIMARY = "127.53.0.1"
DNS_SECONDARY = "127.53.0.2"
# What Pebble asks: a resolver that follows CNAMEs across our zones, like a CA's recursive resolver,
# and knows nothing else (a local empty root zone: no query ever leaves this machine).
DNS_RESOLVER = "127.53.0.3"
ZONE = "portail.test"
ZONE2 = "validation.test"
# PowerDNS Authoritative (sqlite3 backend, HTTP API): serves PDNS_ZONE, delegated from ZONE.
PDNS_ADDRESS = "127.53.0.4"
PDNS_API_PORT = 8081
PDNS_ZONE = f"pdns.{ZONE}"
TSIG_NAME = "portail-tsig"
TSIG_ACME_NAME = "portail-acme"
TSIG_ALGO = "hmac-sha256"

# name, directory port, management port, extra environment, extra config
PEBBLES: list[tuple[str, int, int, dict[str, str], dict[str, object]]] = [
    ("pebble", 14000, 15000, {"PEBBLE_ALTERNATE_ROOTS": "2"}, {}),
    ("pebble-eab", 14001, 15001, {}, {"externalAccountBindingRequired": True}),
    ("pebble-nonce", 14002, 15002, {"PEBBLE_WFE_NONCEREJECT": "50"}, {}),
]

# Loopback ranges handed out to test areas (see tests/README.md).
ZONE_GENERATE = [
    ("acme", "127.0.10"),
    ("web", "127.0.20"),
    ("cert", "127.0.30"),
    ("demo", "127.0.40"),
    ("fleet", "198.18.1"),
]


def log(msg: str) -> None:
    print(f"rig: {msg}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, what: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise SystemExit(f"rig: {what} did not come up on {host}:{port}; see {LOGS}")


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    logf = (LOGS / f"{name}.log").open("ab")
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(
        argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env, start_new_session=True
    )
    (RIG / f"{name}.pid").write_text(str(proc.pid))


def pid_alive(name: str) -> int | None:
    pidf = RIG / f"{name}.pid"
    if not pidf.exists():
        return None
    pid = int(pidf.read_text())
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


# --- TLS material for Pebble's listener -------------------------------------------------------


def make_listener_tls() -> None:
    ca_crt, ca_key, crt, key = (RIG / "tls" / n for n in ("ca.pem", "ca.key", "listener.pem", "listener.key"))
    if crt.exists():
        return
    crt.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    cakey = ec.generate_private_key(ec.SECP256R1())
    caname = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portail rig listener CA")])
    cacert = (
        x509.CertificateBuilder()
        .subject_name(caname)
        .issuer_name(caname)
        .public_key(cakey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(cakey, hashes.SHA256())
    )
    lkey = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    lcert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(caname)
        .public_key(lkey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("acme.portail.test"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(cakey, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pk8 = serialization.PrivateFormat.PKCS8
    nope = serialization.NoEncryption()
    ca_key.write_bytes(cakey.private_bytes(pem, pk8, nope))
    ca_key.chmod(0o600)
    ca_crt.write_bytes(cacert.public_bytes(pem))
    key.write_bytes(lkey.private_bytes(pem, pk8, nope))
    key.chmod(0o600)
    crt.write_bytes(lcert.public_bytes(pem))


# --- BIND9 -------------------------------------------------------------------------------------


def secrets_file() -> dict[str, str]:
    path = RIG / "secrets.json"
    if path.exists():
        data = json.loads(path.read_text())
        if "pdns_api_key" not in data:  # a rig made before PowerDNS joined it
            data["pdns_api_key"] = secrets.token_urlsafe(24)
            path.write_text(json.dumps(data))
            path.chmod(0o600)
        return data
    data = {
        "pdns_api_key": secrets.token_urlsafe(24),
        "tsig_secret": base64.b64encode(secrets.token_bytes(32)).decode(),
        "tsig_acme_secret": base64.b64encode(secrets.token_bytes(32)).decode(),
        "eab_kid": "portail-kid-1",
        "eab_hmac_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
    }
    RIG.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return data


def zone_text(zone: str, generate: bool) -> str:
    lines = [
        "$TTL 30",
        f"@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 30 10 600 5",
        f"@ IN NS ns1.{ZONE}.",
        f"@ IN NS ns2.{ZONE}.",
    ]
    if generate:
        lines += [f"ns1 IN A {DNS_PRIMARY}", f"ns2 IN A {DNS_SECONDARY}", "@ IN A 127.0.40.1", "acme IN A 127.0.0.1"]
        lines += [f"$GENERATE 1-254 {prefix}$ A {net}.$" for prefix, net in ZONE_GENERATE]
        # CNAME delegation of a challenge name into the second zone
        lines.append(f"_acme-challenge.delegated IN CNAME delegated.{ZONE2}.")
        lines.append("delegated IN A 127.0.30.250")
    return "\n".join(lines) + "\n"


def named_conf(role: str, workdir: Path, sec: dict[str, str]) -> str:
    addr = DNS_PRIMARY if role == "primary" else DNS_SECONDARY
    keys = (
        f'key "{TSIG_NAME}" {{ algorithm {TSIG_ALGO}; secret "{sec["tsig_secret"]}"; }};\n'
        f'key "{TSIG_ACME_NAME}" {{ algorithm {TSIG_ALGO}; secret "{sec["tsig_acme_secret"]}"; }};\n'
    )
    opts = f"""options {{
  directory "{workdir}";
  pid-file "{workdir}/named.pid";
  session-keyfile "{workdir}/session.key";
  listen-on port 53 {{ {addr}; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify-source {addr};
  transfer-source {addr};
  allow-transfer {{ {DNS_SECONDARY}; 127.0.0.1; }};
  also-notify {{ {DNS_SECONDARY}; }};
  notify explicit;
  notify-delay 0;
  minimal-responses yes;
}};
controls {{ }};
"""
    zones = ""
    for zone in (ZONE, ZONE2):
        if role == "primary":
            zones += (
                f'zone "{zone}" {{ type primary; file "{zone}.db"; '
                f"update-policy {{ grant {TSIG_NAME} zonesub ANY; grant {TSIG_ACME_NAME} zonesub TXT; }}; }};\n"
            )
        else:
            zones += f'zone "{zone}" {{ type secondary; file "{zone}.sec"; primaries {{ {DNS_PRIMARY}; }}; }};\n'
    return keys + opts + zones


def ensure_loopback_addresses() -> None:
    """named only listens on addresses an interface really has: put ours on lo."""
    have = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True).stdout
    for addr in (DNS_PRIMARY, DNS_SECONDARY, DNS_RESOLVER, PDNS_ADDRESS):
        if f"{addr}/" not in have:
            subprocess.run(["ip", "addr", "add", f"{addr}/32", "dev", "lo"], check=True)


def resolver_conf(workdir: Path) -> str:
    return f"""options {{
  directory "{workdir}";
  pid-file "{workdir}/named.pid";
  session-keyfile "{workdir}/session.key";
  listen-on port 53 {{ {DNS_RESOLVER}; }};
  listen-on-v6 {{ none; }};
  recursion yes;
  allow-recursion {{ 127.0.0.0/8; 198.18.0.0/15; }};
  allow-query {{ 127.0.0.0/8; 198.18.0.0/15; }};
  dnssec-validation no;
  max-cache-ttl 1;
  max-ncache-ttl 1;
  qname-minimization off;
}};
controls {{ }};
zone "." {{ type primary; file "root.db"; }};
"""


def start_resolver() -> None:
    name = "named-resolver"
    if pid_alive(name) and port_open(DNS_RESOLVER, 53):
        return
    workdir = RIG / "named" / "resolver"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "root.db").write_text(
        "$TTL 60\n@ IN SOA localhost. hostmaster.localhost. 1 60 60 600 60\n@ IN NS localhost.\n"
        "localhost. IN A 127.0.0.1\n"
        + "".join(f"{z}. IN NS ns1.{ZONE}.\n{z}. IN NS ns2.{ZONE}.\n" for z in (ZONE, ZONE2))
        + f"ns1.{ZONE}. IN A {DNS_PRIMARY}\nns2.{ZONE}. IN A {DNS_SECONDARY}\n"
    )
    conf = workdir / "named.conf"
    conf.write_text(resolver_conf(workdir))
    subprocess.run(["named-checkconf", str(conf)], check=True)
    spawn(name, ["/usr/sbin/named", "-g", "-c", str(conf), "-u", "root", "-n", "1"])
    wait_port(DNS_RESOLVER, 53, name)


def start_named(sec: dict[str, str]) -> None:
    ensure_loopback_addresses()
    for role, addr in (("primary", DNS_PRIMARY), ("secondary", DNS_SECONDARY)):
        name = f"named-{role}"
        if pid_alive(name) and port_open(addr, 53):
            continue
        workdir = RIG / "named" / role
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "named.conf"
        conf.write_text(named_conf(role, workdir, sec))
        if role == "primary":
            for zone in (ZONE, ZONE2):
                (workdir / f"{zone}.db").write_text(zone_text(zone, zone == ZONE))
                jnl = workdir / f"{zone}.db.jnl"
                if jnl.exists():
                    jnl.unlink()
        else:
            for f in workdir.glob("*.sec*"):
                f.unlink()
        subprocess.run(["named-checkconf", str(conf)], check=True)
        spawn(name, ["/usr/sbin/named", "-g", "-c", str(conf), "-u", "root", "-n", "1"])
        wait_port(addr, 53, name)
    # wait until the secondary has the zones
    end = time.monotonic() + 20
    while time.monotonic() < end:
        out = subprocess.run(
            ["dig", "+short", "+norec", f"@{DNS_SECONDARY}", ZONE2, "SOA"], capture_output=True, text=True, check=False
        ).stdout
        out1 = subprocess.run(
            ["dig", "+short", "+norec", f"@{DNS_SECONDARY}", ZONE, "SOA"], capture_output=True, text=True, check=False
        ).stdout
        if out.strip() and out1.strip():
            return
        time.sleep(0.2)
    raise SystemExit("rig: secondary BIND did not load the zones; see logs")


# --- PowerDNS Authoritative -------------------------------------------------------------------

PDNS_SCHEMA = Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql")


def pdns_api(sec: dict[str, str], method: str, path: str, body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://{PDNS_ADDRESS}:{PDNS_API_PORT}/api/v1/servers/localhost{path}",
        data=data,
        method=method,
        headers={"X-API-Key": sec["pdns_api_key"], "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    with opener.open(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def start_pdns(sec: dict[str, str]) -> None:
    """pdns_server on PDNS_ADDRESS:53 with its API on :PDNS_API_PORT, serving PDNS_ZONE."""
    import sqlite3

    name = "pdns"
    workdir = RIG / "pdns"
    if not (pid_alive(name) and port_open(PDNS_ADDRESS, 53) and port_open(PDNS_ADDRESS, PDNS_API_PORT)):
        workdir.mkdir(parents=True, exist_ok=True)
        db = workdir / "pdns.sqlite3"
        if db.exists():
            db.unlink()
        if not PDNS_SCHEMA.is_file():  # images that drop /usr/share/doc (dpkg path-exclude) lack it
            raise SystemExit(f"rig: {PDNS_SCHEMA} is missing: reinstall pdns-backend-sqlite3 with its docs")
        with sqlite3.connect(db) as conn:
            conn.executescript(PDNS_SCHEMA.read_text())
        conf = workdir / "pdns.conf"
        conf.write_text(
            "\n".join(
                [
                    "launch=gsqlite3",
                    f"gsqlite3-database={db}",
                    f"local-address={PDNS_ADDRESS}",
                    "local-port=53",
                    "api=yes",
                    f"api-key={sec['pdns_api_key']}",
                    "webserver=yes",
                    f"webserver-address={PDNS_ADDRESS}",
                    f"webserver-port={PDNS_API_PORT}",
                    "webserver-allow-from=127.0.0.0/8",
                    f"socket-dir={workdir}",
                    "guardian=no",
                    "daemon=no",
                    "disable-syslog=yes",
                    "log-timestamp=yes",
                    "security-poll-suffix=",  # no query to powerdns.com
                    # answers follow API changes at once: no caches
                    "cache-ttl=0",
                    "negquery-cache-ttl=0",
                    "query-cache-ttl=0",
                    "zone-cache-refresh-interval=0",
                    "",
                ]
            )
        )
        conf.chmod(0o600)  # holds the API key
        spawn(name, ["/usr/sbin/pdns_server", f"--config-dir={workdir}"])
        wait_port(PDNS_ADDRESS, 53, name)
        wait_port(PDNS_ADDRESS, PDNS_API_PORT, name)
    zones = pdns_api(sec, "GET", "/zones")
    if not any(z["name"] == PDNS_ZONE + "." for z in zones):  # type: ignore[union-attr]
        pdns_api(
            sec,
            "POST",
            "/zones",
            {
                "name": PDNS_ZONE + ".",
                "kind": "Native",
                "nameservers": [f"ns1.{PDNS_ZONE}."],
                "rrsets": [
                    {
                        "name": f"ns1.{PDNS_ZONE}.",
                        "type": "A",
                        "ttl": 30,
                        "changetype": "REPLACE",
                        "records": [{"content": PDNS_ADDRESS, "disabled": False}],
                    },
                    {  # a CNAME out of this server's zones: the provider must refuse it clearly
                        "name": f"_acme-challenge.delegated.{PDNS_ZONE}.",
                        "type": "CNAME",
                        "ttl": 30,
                        "changetype": "REPLACE",
                        "records": [{"content": f"delegated.{ZONE2}.", "disabled": False}],
                    },
                ],
            },
        )
    ensure_pdns_delegation(sec)


def ensure_pdns_delegation(sec: dict[str, str]) -> None:
    """NS + glue for PDNS_ZONE in ZONE, and a challenge name of ZONE delegated by CNAME into PDNS_ZONE
    (idempotent: an UPDATE adding what is there changes nothing)."""
    script = (
        f"server {DNS_PRIMARY}\nzone {ZONE}\n"
        f"update add {PDNS_ZONE}. 30 IN NS ns1.{PDNS_ZONE}.\n"
        f"update add ns1.{PDNS_ZONE}. 30 IN A {PDNS_ADDRESS}\n"
        f"update add _acme-challenge.to-pdns.{ZONE}. 30 IN CNAME to-pdns.{PDNS_ZONE}.\nsend\n"
    )
    subprocess.run(
        ["nsupdate", "-y", f"{TSIG_ALGO}:{TSIG_NAME}:{sec['tsig_secret']}"],
        input=script,
        text=True,
        check=True,
        capture_output=True,
    )


# --- Pebble ------------------------------------------------------------------------------------


def start_pebbles(sec: dict[str, str]) -> None:
    for name, port, mport, extra_env, extra_cfg in PEBBLES:
        if pid_alive(name) and port_open("127.0.0.1", port):
            continue
        cfg: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{mport}",
            "certificate": str(RIG / "tls" / "listener.pem"),
            "privateKey": str(RIG / "tls" / "listener.key"),
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": 7776000,
        }
        cfg.update(extra_cfg)
        if cfg["externalAccountBindingRequired"]:
            cfg["externalAccountMACKeys"] = {sec["eab_kid"]: sec["eab_hmac_key"]}
        path = RIG / f"{name}.json"
        path.write_text(json.dumps({"pebble": cfg}, indent=2))
        env = {"PEBBLE_VA_NOSLEEP": "1"}
        env.update(extra_env)
        spawn(name, ["/usr/bin/pebble", "-config", str(path), "-dnsserver", f"{DNS_RESOLVER}:53"], env)
        wait_port("127.0.0.1", port, name)
        wait_port("127.0.0.1", mport, name)
        # Pebble makes a new CA at every start: save the roots (all chains) for tests to trust.
        fetch_roots(name, mport)


def fetch_roots(name: str, mport: int) -> None:
    ctx = ssl.create_default_context(cafile=str(RIG / "tls" / "ca.pem"))
    roots = []
    for i in range(3):
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{mport}/roots/{i}", context=ctx, timeout=5) as resp:
                roots.append(resp.read().decode())
        except Exception:
            break
    (RIG / f"{name}-roots.pem").write_text("".join(roots))


# --- optional acme2certifier (ARI and profiles) ------------------------------------------------


def a2c_module():
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import a2c  # type: ignore[import-not-found]
    except ImportError:
        return None
    return a2c


# --- facts for tests ---------------------------------------------------------------------------


def facts(sec: dict[str, str], a2c_facts: dict[str, str] | None) -> dict[str, str]:
    f = {
        "PORTAIL_RIG_DIR": str(RIG),
        "PORTAIL_RIG_LOGS": str(LOGS),
        "PORTAIL_ACME_DIRECTORY": "https://127.0.0.1:14000/dir",
        "PORTAIL_ACME_EAB_DIRECTORY": "https://127.0.0.1:14001/dir",
        "PORTAIL_ACME_NONCE_DIRECTORY": "https://127.0.0.1:14002/dir",
        "PORTAIL_ACME_CA_BUNDLE": str(RIG / "tls" / "ca.pem"),
        "PORTAIL_PEBBLE_MGMT": "https://127.0.0.1:15000",
        "PORTAIL_PEBBLE_ROOTS": str(RIG / "pebble-roots.pem"),
        "PORTAIL_PEBBLE_EAB_ROOTS": str(RIG / "pebble-eab-roots.pem"),
        "PORTAIL_PEBBLE_NONCE_ROOTS": str(RIG / "pebble-nonce-roots.pem"),
        "PORTAIL_EAB_KID": sec["eab_kid"],
        "PORTAIL_EAB_HMAC_KEY": sec["eab_hmac_key"],
        "PORTAIL_DNS_PRIMARY": DNS_PRIMARY,
        "PORTAIL_DNS_SECONDARY": DNS_SECONDARY,
        "PORTAIL_DNS_RESOLVER": DNS_RESOLVER,
        "PORTAIL_DNS_ZONE": ZONE,
        "PORTAIL_DNS_ZONE2": ZONE2,
        "PORTAIL_TSIG_NAME": TSIG_NAME,
        "PORTAIL_TSIG_ALGORITHM": TSIG_ALGO,
        "PORTAIL_TSIG_SECRET": sec["tsig_secret"],
        "PORTAIL_TSIG_ACME_NAME": TSIG_ACME_NAME,
        "PORTAIL_TSIG_ACME_SECRET": sec["tsig_acme_secret"],
        "PORTAIL_PDNS_ADDRESS": PDNS_ADDRESS,
        "PORTAIL_PDNS_API_URL": f"http://{PDNS_ADDRESS}:{PDNS_API_PORT}",
        "PORTAIL_PDNS_API_KEY": sec["pdns_api_key"],
        "PORTAIL_PDNS_ZONE": PDNS_ZONE,
    }
    if a2c_facts:
        f.update(a2c_facts)
    return f


def write_facts(f: dict[str, str]) -> None:
    (RIG / "rig.json").write_text(json.dumps(f, indent=2))
    (RIG / "rig.json").chmod(0o600)
    (RIG / "env.sh").write_text("".join(f"export {k}='{v}'\n" for k, v in sorted(f.items())))
    (RIG / "env.sh").chmod(0o600)


def start() -> None:
    RIG.mkdir(parents=True, exist_ok=True)
    sec = secrets_file()
    make_listener_tls()
    start_named(sec)
    start_resolver()
    start_pdns(sec)
    start_pebbles(sec)
    a2c_facts = None
    mod = a2c_module()
    if mod is not None:
        a2c_facts = mod.start(RIG, LOGS)
    write_facts(facts(sec, a2c_facts))
    log(f"up; facts in {RIG / 'rig.json'} and {RIG / 'env.sh'}, logs in {LOGS}")


def stop() -> None:
    mod = a2c_module()
    if mod is not None:
        mod.stop(RIG)
    for pidf in sorted(RIG.glob("*.pid")):
        name = pidf.stem
        pid = pid_alive(name)
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                os.kill(pid, signal.SIGTERM)
            for _attempt in range(50):
                if not pid_alive(name):
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
        pidf.unlink()
    log("stopped")


def status() -> int:
    bad = 0
    checks = [(n, "127.0.0.1", p) for n, p, _m, _e, _c in PEBBLES]
    checks += [("named-primary", DNS_PRIMARY, 53), ("named-secondary", DNS_SECONDARY, 53)]
    checks += [("named-resolver", DNS_RESOLVER, 53)]
    checks += [("pdns", PDNS_ADDRESS, 53), ("pdns-api", PDNS_ADDRESS, PDNS_API_PORT)]
    for name, host, port in checks:
        ok = port_open(host, port)
        bad += not ok
        print(f"{name:18} {host}:{port:<6} {'up' if ok else 'DOWN'}")
    return 1 if bad else 0


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "status"
    if cmd == "start":
        start()
        return status()
    if cmd == "stop":
        stop()
        return 0
    if cmd == "restart":
        stop()
        start()
        return status()
    if cmd == "env":
        print((RIG / "env.sh").read_text(), end="")
        return 0
    return status()


if __name__ == "__main__":
    raise SystemExit(main())
