"""A fleet of test hosts on this machine, reached by Ansible over real SSH.

Each host fleetN is:
- a network namespace `pfleetN` with 198.18.1.N/24 and 2001:2:0:1::N/64 (RFC 2544 / RFC 5180
  benchmarking ranges), wired to the bridge `pfleet0` (198.18.1.254, 2001:2:0:1::fe) in the root namespace;
- a private mount namespace with overlays on /etc and /var and a fresh tmpfs on /run, so nginx/apache
  configuration, logs, pid files and firewall persistence files are per host;
- its own UTS namespace (hostname fleetN);
- an sshd listening on its addresses, root login with the fleet key only.

BIND (tests/rig) resolves fleetN.portail.test to 198.18.1.N, so Pebble in the root namespace reaches
port 80/443 of each host across the bridge.

Options (additions; the defaults are the behaviour above): `up(..., ssh_port=2222)` makes sshd listen on
another port, `up(..., sudo_user="deploy")` adds a non-root login user (home under /var, in the host's
overlay) allowed to run everything through sudo (Debian's default sudoers, env_reset kept, plus one
NOPASSWD drop-in); `host_vars` then connects as that user with `become: true`. The options of a host are
kept in `build/fleet/fleetN/options.json`.

Usage as a script: fleet.py up N [FIRST] [--ssh-port=P] [--sudo-user=NAME] | down | inventory PATH N [FIRST] | status
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("PORTAIL_FLEET_DIR", REPO / "build" / "fleet")).resolve()
BRIDGE = "pfleet0"
BRIDGE_V4 = "198.18.1.254"
BRIDGE_V6 = "2001:2:0:1::fe"
PYTHON = str(REPO / ".venv" / "bin" / "python")
# Private copies of the machine's /etc, the default lower layer of each host's /etc (see etc_lower()).
SNAPSHOTS = REPO / "build" / "fleet-etc"
PACKAGES = Path("/var/lib/dpkg/status")
# Bump when _scrub_etc() changes, so that older snapshots are made again.
SNAPSHOT_FORMAT = "1"


@dataclass(frozen=True)
class Host:
    index: int

    @property
    def name(self) -> str:
        return f"fleet{self.index}"

    @property
    def ns(self) -> str:
        return f"pfleet{self.index}"

    @property
    def ipv4(self) -> str:
        return f"198.18.1.{self.index}"

    @property
    def ipv6(self) -> str:
        return f"2001:2:0:1::{self.index:x}"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.portail.test"

    @property
    def dir(self) -> Path:
        return STATE / self.name


def sh(argv: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kw)  # type: ignore[call-overload]


def _keys() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    if not (STATE / "id_ed25519").exists():
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(STATE / "id_ed25519"), "-C", "portail-fleet"])
    if not (STATE / "ssh_host_ed25519_key").exists():
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(STATE / "ssh_host_ed25519_key")])
    shutil.copy(STATE / "id_ed25519.pub", STATE / "authorized_keys")


def _bridge() -> None:
    if sh(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
        sh(["ip", "link", "add", BRIDGE, "type", "bridge"])
        sh(["ip", "addr", "add", f"{BRIDGE_V4}/24", "dev", BRIDGE])
        sh(["ip", "-6", "addr", "add", f"{BRIDGE_V6}/64", "dev", BRIDGE, "nodad"])
        sh(["ip", "link", "set", BRIDGE, "up"])


def _scrub_etc(etc: str) -> str:
    """Shell lines that remove this collection's state from an /etc tree (a `make demo` run, the web role
    tests on this machine): a new host has none of it, whatever the machine has."""
    return f"""rm -rf {etc}/ssl/portail {etc}/ansible/facts.d/portail_https.fact {etc}/nftables.d/portail_https.nft
for d in {etc}/nginx {etc}/apache2 {etc}/httpd; do
  if [ -d "$d" ]; then find "$d" -depth -name '*portail*' -exec rm -rf {{}} +; fi
done
sed -i '/portail_https/d' {etc}/nftables.conf 2>/dev/null || true
if [ -e {etc}/nginx/sites-available/default ] && [ ! -L {etc}/nginx/sites-enabled/default ] \\
  && [ ! -e {etc}/nginx/sites-enabled/default ]; then
  ln -s /etc/nginx/sites-available/default {etc}/nginx/sites-enabled/default
fi
"""


def _mount_options() -> str:
    """The mount tables of every mount namespace on the machine, as one text (to find a lower dir in use)."""
    seen: set[str] = set()
    tables: list[str] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ns = os.readlink(proc / "ns" / "mnt")
            if ns in seen:
                continue
            tables.append((proc / "mountinfo").read_text())
            seen.add(ns)
        except OSError:  # the process went away meanwhile
            continue
    return "\n".join(tables)


def etc_snapshot(root: Path | None = None) -> Path:
    """A private copy of the machine's /etc, without this collection's state, taken once per package set.

    The copy is keyed to the installed packages (dpkg's status file): a package installed or removed makes a
    new one at the next call. It is made under a lock (several pytest processes may start fleets at once) in a
    temporary directory and renamed into place, so a copy that exists is whole. Copies of other package sets
    go away then, unless a host still has one as its lower layer."""
    root = root or SNAPSHOTS
    digest = hashlib.sha256(SNAPSHOT_FORMAT.encode())
    if PACKAGES.exists():
        digest.update(PACKAGES.read_bytes())
    snap = root / f"etc-{digest.hexdigest()[:16]}"
    if snap.is_dir():
        return snap
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if snap.is_dir():  # made by another process while this one waited
            return snap
        for stale in root.glob(".tmp-*"):  # left by a process killed mid-copy (only the lock holder makes them)
            shutil.rmtree(stale)
        tmp = root / f".tmp-{os.getpid()}"
        sh(["cp", "-a", "--", "/etc", str(tmp)])
        sh(["sh", "-ec", _scrub_etc(str(tmp))])
        os.rename(tmp, snap)
        in_use = _mount_options()
        for old in root.glob("etc-*"):
            if old != snap and str(old) not in in_use:
                shutil.rmtree(old)
    return snap


def etc_lower() -> str:
    """The lower layer of each host's /etc: PORTAIL_FLEET_ETC_LOWER if set (`/etc` for the machine's live one),
    else a private snapshot (etc_snapshot()), so that what a test changes in the machine's /etc meanwhile (the web
    role tests do) does not show up in the hosts (nor trips overlayfs, which does not follow such changes)."""
    return os.environ.get("PORTAIL_FLEET_ETC_LOWER") or str(etc_snapshot())


def sshd_pid(host: Host) -> int | None:
    pidf = host.dir / "sshd.pid"
    if not pidf.exists():
        return None
    pid = int(pidf.read_text().strip() or 0)
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def options(host: Host) -> dict[str, object]:
    """The non-default options the host was made with ({} for a default host)."""
    path = host.dir / "options.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def ssh_port(host: Host) -> int:
    return int(options(host).get("ssh_port", 22))  # type: ignore[call-overload]


def _sshd_config(host: Host, port: int = 22) -> Path:
    cfg = host.dir / "sshd_config"
    cfg.write_text(
        f"""ListenAddress {host.ipv4}
ListenAddress [{host.ipv6}]
Port {port}
HostKey {STATE / "ssh_host_ed25519_key"}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile {STATE / "authorized_keys"}
StrictModes no
UsePAM no
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 50
LogLevel INFO
"""
    )
    return cfg


def _sudo_user_script(user: str) -> str:
    """Shell lines (run inside the host's namespaces) adding a login user with sudo rights."""
    if not user.isidentifier() or not user.islower():
        raise ValueError(f"invalid user name {user!r}")
    home = f"/var/lib/fleet-home/{user}"
    return f"""mkdir -p /var/lib/fleet-home
id -u {user} >/dev/null 2>&1 || useradd -m -d {home} -s /bin/sh -G sudo {user}
usermod -p '*' {user}
printf '%s\\n' '{user} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/portail-fleet
chmod 0440 /etc/sudoers.d/portail-fleet
"""


def up_host(host: Host, ssh_port: int = 22, sudo_user: str | None = None, etc: str | None = None) -> Host:
    if sshd_pid(host):
        return host
    host.dir.mkdir(parents=True, exist_ok=True)
    opts: dict[str, object] = {}
    if ssh_port != 22:
        opts["ssh_port"] = int(ssh_port)
    if sudo_user:
        opts["sudo_user"] = sudo_user
    if opts:
        (host.dir / "options.json").write_text(json.dumps(opts))
    else:
        (host.dir / "options.json").unlink(missing_ok=True)
    for d in ("etc", "var"):
        for part in ("upper", "work"):
            (host.dir / f"{d}-{part}").mkdir(exist_ok=True)
    if (
        sh(["ip", "netns", "list"]).stdout.find(host.ns + " ") < 0
        and host.ns not in sh(["ip", "netns", "list"]).stdout.split()
    ):
        sh(["ip", "netns", "add", host.ns])
    veth = f"pfv{host.index}"
    if sh(["ip", "link", "show", veth], check=False).returncode != 0:
        sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.ns])
        sh(["ip", "link", "set", veth, "master", BRIDGE, "up"])
        n = ["ip", "netns", "exec", host.ns]
        sh([*n, "ip", "link", "set", "lo", "up"])
        sh([*n, "ip", "addr", "add", f"{host.ipv4}/24", "dev", "eth0"])
        sh([*n, "ip", "-6", "addr", "add", f"{host.ipv6}/64", "dev", "eth0", "nodad"])
        sh([*n, "ip", "link", "set", "eth0", "up"])
        sh([*n, "ip", "route", "add", "default", "via", BRIDGE_V4])
    cfg = _sshd_config(host, ssh_port)
    d = host.dir
    script = f"""set -e
mount --make-rprivate /
mount -t overlay overlay -o lowerdir={etc or etc_lower()},upperdir={d}/etc-upper,workdir={d}/etc-work /etc
mount -t overlay overlay -o lowerdir=/var,upperdir={d}/var-upper,workdir={d}/var-work /var
mount -t tmpfs -o mode=755 tmpfs /run
# A snapshot has none of this collection's state; another lower layer (the live /etc) may: hide it in this
# host's upper layer only.
{_scrub_etc("/etc")}rm -rf /var/www/portail
mkdir -p /run/sshd /run/lock /run/nginx /run/apache2
hostname {host.name}
echo {host.name} > /etc/hostname
printf '127.0.0.1 localhost\\n{host.ipv4} {host.fqdn} {host.name}\\n::1 localhost\\n' > /etc/hosts
{_sudo_user_script(sudo_user) if sudo_user else ""}/usr/sbin/sshd -f {cfg} -E {d}/sshd.log
sleep 0.2
cat /run/sshd.pid > {d}/sshd.pid
"""
    # ip netns exec gives a new mount namespace; unshare makes it (and the UTS one) ours for good,
    # and sshd (daemonised) keeps it alive with every login forked from it.
    sh(["ip", "netns", "exec", host.ns, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script])
    # A host made again at an address that just went away: forget the failed neighbour entry.
    sh(["ip", "neigh", "flush", "to", host.ipv4], check=False)
    sh(["ip", "-6", "neigh", "flush", "to", host.ipv6], check=False)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            with socket.create_connection((host.ipv4, ssh_port), timeout=0.5):
                return host
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd of {host.name} did not come up; see {d}/sshd.log")


@contextlib.contextmanager
def _etc_held() -> Iterator[str]:
    """etc_lower(), kept from being removed (a shared lock against etc_snapshot's pruning) until the hosts
    that use it have mounted it (from then on their mount tables keep it)."""
    if os.environ.get("PORTAIL_FLEET_ETC_LOWER"):
        yield etc_lower()
        return
    while True:
        snap = etc_snapshot()
        with open(snap.parent / ".lock") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            if snap.is_dir():  # not pruned between etc_snapshot() and the lock
                yield str(snap)
                return


def up(indices: Iterable[int], ssh_port: int = 22, sudo_user: str | None = None) -> list[Host]:
    _keys()
    _bridge()
    with _etc_held() as etc:
        return [up_host(Host(i), ssh_port=ssh_port, sudo_user=sudo_user, etc=etc) for i in indices]


def down_host(host: Host) -> None:
    if host.ns in sh(["ip", "netns", "list"]).stdout.split():
        pids = sh(["ip", "netns", "pids", host.ns], check=False).stdout.split()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(int(pid), sig)
                except OSError:
                    pass
            time.sleep(0.2)
            pids = sh(["ip", "netns", "pids", host.ns], check=False).stdout.split()
            if not pids:
                break
        sh(["ip", "netns", "del", host.ns], check=False)
    sh(["ip", "link", "del", f"pfv{host.index}"], check=False)
    sh(["ip", "neigh", "flush", "to", host.ipv4], check=False)
    shutil.rmtree(host.dir, ignore_errors=True)


def existing() -> list[Host]:
    if not STATE.exists():
        return []
    return sorted(
        (Host(int(p.name[5:])) for p in STATE.glob("fleet*") if p.is_dir() and p.name[5:].isdigit()),
        key=lambda h: h.index,
    )


def down(hosts: Iterable[Host] | None = None) -> None:
    for host in list(hosts) if hosts is not None else existing():
        down_host(host)


def exec_in(host: Host, argv: list[str], check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command inside the host's network, mount and UTS namespaces (as the host sees itself)."""
    pid = sshd_pid(host)
    if pid is None:
        raise RuntimeError(f"{host.name} is not up")
    return sh(["nsenter", "-t", str(pid), "-n", "-m", "-u", "--", *argv], check=check)


def host_vars(host: Host) -> dict[str, object]:
    opts = options(host)
    become: dict[str, object] = {}
    if opts.get("sudo_user"):
        become = {"ansible_become": True, "ansible_become_method": "sudo"}
    return {
        **become,
        "ansible_host": host.ipv4,
        "ansible_user": opts.get("sudo_user") or "root",
        "ansible_port": ssh_port(host),
        "ansible_python_interpreter": PYTHON,
        "ansible_ssh_private_key_file": str(STATE / "id_ed25519"),
        "ansible_ssh_common_args": (
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
            f"-o ControlMaster=auto -o ControlPersist=120s -o ControlPath={STATE}/cm-%C"
        ),
        "ansible_ssh_pipelining": True,
        "portail_fleet_fqdn": host.fqdn,
        "portail_fleet_ipv6": host.ipv6,
    }


def inventory(hosts: Iterable[Host], groups: dict[str, list[Host]] | None = None) -> dict[str, object]:
    hosts = list(hosts)
    inv: dict[str, dict[str, object]] = {"all": {"hosts": {h.name: host_vars(h) for h in hosts}, "children": {}}}
    for group, members in (groups or {}).items():
        inv["all"]["children"][group] = {"hosts": {m.name: {} for m in members}}  # type: ignore[index]
    return inv


def write_inventory(path: Path, hosts: Iterable[Host], groups: dict[str, list[Host]] | None = None) -> Path:
    path.write_text(json.dumps(inventory(hosts, groups), indent=2))
    return path


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "status"
    if cmd == "up":
        flags = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)
        args = [a for a in sys.argv[2:] if not a.startswith("--")]
        count = int(args[0])
        first = int(args[1]) if len(args) > 1 else 1
        port = int(flags.get("ssh-port", 22))
        for h in up(range(first, first + count), ssh_port=port, sudo_user=flags.get("sudo-user")):
            print(f"{h.name} {h.ipv4} {h.ipv6} up")
        return 0
    if cmd == "down":
        down()
        return 0
    if cmd == "inventory":
        count = int(sys.argv[3])
        first = int(sys.argv[4]) if len(sys.argv) > 4 else 1
        write_inventory(Path(sys.argv[2]), [Host(i) for i in range(first, first + count)])
        return 0
    for h in existing():
        print(f"{h.name} {h.ipv4} {'up' if sshd_pid(h) else 'DOWN'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
