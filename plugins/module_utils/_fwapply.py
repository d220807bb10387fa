# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall role's change, as one step per host (runs on Python >= 3.9, stdlib only).

``apply`` finds the SSH port of the session Ansible really uses, computes the complete wanted state of
what we own (nftables: our table, policy included, our file and the include line; iptables: our chain,
the jump to it at the top of INPUT and, with default deny, the INPUT policy), and when it differs from
the live state it arms the rollback job (_fwrollback) and applies everything in ONE atomic step right
after: one ``nft -f`` transaction, or one ``iptables-restore --noflush`` per family. Nothing runs
between the arm and the apply, so the time the controller needs for other hosts or tasks can never eat
the rollback window. The caller then reconnects and confirms (action plugin firewall_apply).

What we do not own is never rewritten: other nftables tables are not touched; in iptables only our
chain, our jump and the INPUT policy are named in the restore scripts (``--noflush``), so fail2ban's or
Docker's chains and rules, even ones added during the rollback window, stay as they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
import typing as t

from ansible_collections.portail.https.plugins.module_utils import _fwrollback, _nft
from ansible_collections.portail.https.plugins.module_utils._hostfiles import read_file, write_file

Runner = t.Callable[[list[str]], tuple[int, str, str]]
SSHD_NAMES = ("sshd", "sshd-session")
COMMENT_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CHAIN_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,27}$")
TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"
DHCPV6_NFT = "ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept"
DHCPV6_XT = "-s fe80::/10 -p udp -m udp --sport 547 --dport 546 -j ACCEPT"


class ApplyError(Exception):
    pass


# --- the SSH port of this session ----------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def ancestors(proc: str = "/proc", pid: t.Optional[int] = None) -> list[tuple[int, str]]:
    """(pid, command name) of this process and its parents, nearest first."""
    chain: list[tuple[int, str]] = []
    current = pid if pid is not None else os.getpid()
    seen: set[int] = set()
    while current > 0 and current not in seen and len(chain) < 64:
        seen.add(current)
        stat_text = _read(f"{proc}/{current}/stat")
        if not stat_text:
            break
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'
        head, _sep, rest = stat_text.rpartition(")")
        comm = head.partition("(")[2]
        fields = rest.split()
        chain.append((current, comm))
        current = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    return chain


def socket_inodes(proc: str, pid: int) -> set[int]:
    found: set[int] = set()
    fd_dir = f"{proc}/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        match = re.match(r"^socket:\[(\d+)\]$", target)
        if match:
            found.add(int(match.group(1)))
    return found


def tcp_sockets(proc: str, pid: int) -> list[tuple[int, str, int]]:
    """(local port, state, inode) of every TCP socket in the network namespace of `pid`."""
    out = []
    for name in ("tcp", "tcp6"):
        for line in _read(f"{proc}/{pid}/net/{name}").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or ":" not in fields[1] or not fields[9].isdigit():
                continue
            try:
                port = int(fields[1].rpartition(":")[2], 16)
            except ValueError:
                continue
            out.append((port, fields[3].upper(), int(fields[9])))
    return out


def ssh_session_ports(proc: str = "/proc", pid: t.Optional[int] = None) -> list[int]:
    """Server port(s) of the SSH connection this process runs under, from the sockets of the sshd that
    owns it (the nearest sshd ancestor). Works under sudo, where SSH_CONNECTION is gone. Only
    established sockets whose local port is also a listening port count: the inbound connection,
    not a forwarded outbound one."""
    for ancestor, comm in ancestors(proc, pid):
        if comm not in SSHD_NAMES:
            continue
        inodes = socket_inodes(proc, ancestor)
        if not inodes:
            continue
        table = tcp_sockets(proc, ancestor)
        listening = {port for port, state, _inode in table if state == TCP_LISTEN}
        ports = sorted(
            {port for port, state, inode in table if inode in inodes and state == TCP_ESTABLISHED and port in listening}
        )
        if ports:
            return ports
    return []


def ssh_port_from_env(env: t.Mapping[str, str]) -> t.Optional[int]:
    """Server port of the SSH connection from SSH_CONNECTION's 4th field (gone under sudo's env_reset)."""
    fields = env.get("SSH_CONNECTION", "").split()
    if len(fields) == 4 and fields[3].isdigit():
        return int(fields[3])
    return None


def ssh_ports(
    env: t.Mapping[str, str], extra: t.Sequence[int], connection: str, required: bool, proc: str = "/proc"
) -> tuple[list[int], list[str]]:
    """Every SSH port to keep and how each session port was found; raises when it must be known and is not."""
    evidence = []
    session = ssh_session_ports(proc)
    if session:
        evidence.append(f"sockets of the sshd owning this session: {', '.join(map(str, session))}")
    env_port = ssh_port_from_env(env)
    if env_port:
        session = sorted(set(session) | {env_port})
        evidence.append(f"SSH_CONNECTION: {env_port}")
    if not session and required and connection not in ("local",):
        raise ApplyError(
            "default deny refused: the SSH port of this connection cannot be found on the host (no sshd among "
            "the parents of the module, no SSH_CONNECTION). Without it the change could lock you out. Run "
            "without firewall_default_deny, or over a connection whose sshd process is visible in /proc."
        )
    return sorted(set(session) | {int(p) for p in extra}), evidence


# --- nftables -----------------------------------------------------------------------------------


def nft_rules(tcp: t.Sequence[int], udp: t.Sequence[int], default_deny: bool) -> list[str]:
    def ports(values: t.Sequence[int]) -> str:
        return str(values[0]) if len(values) == 1 else "{ " + ", ".join(map(str, values)) + " }"

    rules = []
    if default_deny:
        rules = [
            'iifname "lo" accept',
            # what keeps the host's addresses: ICMP (IPv6 neighbour discovery, router advertisements)
            # and DHCPv6 replies, which answer a multicast request and are never "established"
            "meta l4proto { icmp, ipv6-icmp } accept",
            DHCPV6_NFT,
            "ct state established,related accept",
            "ct state invalid drop",
        ]
    if tcp:
        rules.append(f"tcp dport {ports(sorted(tcp))} accept")
    if udp:
        rules.append(f"udp dport {ports(sorted(udp))} accept")
    return rules


def nft_table_steps(nft: _nft.Nft, family: str, table: str) -> list[_fwrollback.Step]:
    """Restore steps that put table `family table` back as it is now (or remove it if absent), in one transaction."""
    live = nft.list_table(family, table)
    return [_fwrollback.Step([nft.binary, "-f", "/dev/stdin"], _nft.replace_script(family, table, live))]


def glob_include(path: str) -> str:
    """An nft include that loads `path` when it exists and is skipped (not an error) when it does not:
    a bracket around the last character makes it a glob that may match nothing."""
    return f'include "{path[:-1]}[{path[-1]}]"'


INCLUDE_COMMENT = "# portail.https: a glob, so that a missing file is skipped instead of failing the boot"


def nftables_conf(current: t.Optional[str], path: str) -> str:
    """/etc/nftables.conf with our (glob) include of `path`, without the plain include earlier versions wrote."""
    wanted = glob_include(path)
    old = f'include "{path}"'
    lines = (current or "#!/usr/sbin/nft -f\n").splitlines()
    kept = [line for line in lines if line.strip() not in (old, wanted, INCLUDE_COMMENT)]
    return "\n".join([*kept, INCLUDE_COMMENT, wanted]) + "\n"


# --- iptables -----------------------------------------------------------------------------------


class XtFilter:
    """The filter table of an ``iptables-save`` listing: built-in policies, user chains, rules in order."""

    def __init__(self, text: str) -> None:
        self.policies: dict[str, str] = {}
        self.chains: list[str] = []
        self.rules: list[tuple[str, str]] = []
        table = None
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("*"):
                table = line[1:]
            elif table != "filter" or not line or line.startswith("#") or line == "COMMIT":
                continue
            elif line.startswith(":"):
                name, _sep, rest = line[1:].partition(" ")
                policy = rest.split(" ")[0]
                if policy == "-":
                    self.chains.append(name)
                else:
                    self.policies[name] = policy
            elif line.startswith("-A "):
                chain = line.split(" ", 2)[1]
                self.rules.append((chain, line))

    def chain_rules(self, chain: str) -> list[str]:
        return [line for name, line in self.rules if name == chain]


def xt_rules(chain: str, ipv6: bool, tcp: t.Sequence[int], udp: t.Sequence[int], default_deny: bool) -> list[str]:
    """Our chain's rules, written as iptables-save prints them (so that a second run compares equal)."""
    rules = []
    if default_deny:
        rules += ["-i lo -j ACCEPT"]
        rules += ["-p ipv6-icmp -j ACCEPT", DHCPV6_XT] if ipv6 else ["-p icmp -j ACCEPT"]
        rules += ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    rules += [f"-p tcp -m tcp --dport {p} -j ACCEPT" for p in sorted(tcp)]
    rules += [f"-p udp -m udp --dport {p} -j ACCEPT" for p in sorted(udp)]
    return [f"-A {chain} {rule}" for rule in rules]


def jump_rule(chain: str, comment: str) -> str:
    return f'-A INPUT -m comment --comment "{comment}" -j {chain}'


def xt_plan(
    live: XtFilter, chain: str, rules: t.Sequence[str], policy: t.Optional[str], comment: str
) -> tuple[t.Optional[str], str]:
    """(restore script that makes the live filter table what we want, or None if it already is;
    restore script that puts back what we own as it is now). Both for ``iptables-restore --noflush``."""
    if not CHAIN_RE.match(chain) or not COMMENT_RE.match(comment):
        raise ApplyError(f"invalid chain name {chain!r} or comment {comment!r}")
    jump = jump_rule(chain, comment)
    delete_jump = "-D" + jump[2:]
    input_rules = live.chain_rules("INPUT")
    jumps = input_rules.count(jump)
    exists = chain in live.chains
    current = live.chain_rules(chain)
    live_policy = live.policies.get("INPUT", "ACCEPT")
    target_policy = policy or live_policy
    at_top = jumps == 1 and input_rules[0] == jump
    changed = not exists or current != list(rules) or not at_top or target_policy != live_policy

    undo = ["*filter", f":INPUT {live_policy} [0:0]"]
    if exists:
        undo += [f":{chain} - [0:0]", *current]
        if jumps == 0:
            undo.append(delete_jump)
    else:
        undo += [delete_jump, f":{chain} - [0:0]", f"-X {chain}"]
    undo.append("COMMIT")
    if not changed:
        return None, "\n".join(undo) + "\n"
    do = ["*filter", f":INPUT {target_policy} [0:0]", f":{chain} - [0:0]", *rules]
    if not at_top:
        do += [delete_jump] * jumps + [f"-I INPUT 1{jump[len('-A INPUT') :]}"]
    do.append("COMMIT")
    return "\n".join(do) + "\n", "\n".join(undo) + "\n"


# --- files --------------------------------------------------------------------------------------


@contextlib.contextmanager
def host_lock(path: str, wait: float = 300.0) -> t.Iterator[None]:
    """Held while one run computes and applies its change, so two runs never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        end = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    raise ApplyError(f"another firewall run holds {path} for more than {int(wait)} s") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


# --- the change ---------------------------------------------------------------------------------


class Change:
    """What one backend will do: the diff, the atomic apply and its undo, the files it writes."""

    def __init__(self) -> None:
        self.changed = False
        self.before: list[str] = []
        self.after: list[str] = []
        self.undo: list[_fwrollback.Step] = []
        self.undo_after: list[_fwrollback.Step] = []  # run once the files are back (reload from them)
        self.files: list[str] = []
        self.extra: dict[str, t.Any] = {}

    def apply(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class NftChange(Change):
    def __init__(
        self,
        nft: _nft.Nft,
        table: str,
        rules: list[str],
        default_deny: bool,
        persist_path: t.Optional[str],
        conf_path: t.Optional[str],
        state_dir: str,
    ) -> None:
        super().__init__()
        self.nft, self.table, self.persist_path, self.conf_path, self.state_dir = (
            nft,
            table,
            persist_path,
            conf_path,
            state_dir,
        )
        policy = "drop" if default_deny else "accept"
        self.chains = [_nft.Chain("input", rules, type="filter", hook="input", priority="filter", policy=policy)]
        preview = _nft.manage_table(
            nft, "inet", table, self.chains, persist_path=persist_path, state_dir=state_dir, check_mode=True
        )
        self.conf_before = read_file(conf_path) if conf_path and persist_path else None
        self.conf_after = nftables_conf(self.conf_before, persist_path) if conf_path and persist_path else None
        self.changed = preview["changed"] or self.conf_after != self.conf_before
        self.before = [preview["diff"]["before"], self.conf_before or ""]
        self.after = [preview["diff"]["after"], self.conf_after or ""]
        self.extra["foreign_input_chains"] = preview["foreign_input_chains"]
        if self.changed:
            self.undo = nft_table_steps(nft, "inet", table)
            self.files = [p for p in (persist_path, conf_path if self.conf_after else None) if p]
            self.files.append(os.path.join(state_dir, f"inet-{table}.json"))

    def apply(self) -> None:
        _nft.manage_table(
            self.nft, "inet", self.table, self.chains, persist_path=self.persist_path, state_dir=self.state_dir
        )
        if self.conf_path and self.conf_after is not None and self.conf_after != self.conf_before:
            write_file(self.conf_path, self.conf_after, 0o755)


class XtChange(Change):
    def __init__(
        self,
        run: Runner,
        commands: t.Sequence[str],
        chain: str,
        comment: str,
        tcp: t.Sequence[int],
        udp: t.Sequence[int],
        default_deny: bool,
        state_file: str,
    ) -> None:
        super().__init__()
        self.run = run
        self.state_file = state_file
        saved = json.loads(read_file(state_file) or "{}")
        self.state_before = dict(saved) if isinstance(saved, dict) else {}
        self.state_after = dict(self.state_before)
        self.scripts: list[tuple[str, str]] = []
        for command in commands:
            rc, out, err = run([f"{command}-save", "-t", "filter"])
            if rc != 0:
                raise ApplyError(f"{command}-save failed: {err.strip()}")
            live = XtFilter(out)
            name = os.path.basename(command)
            live_policy = live.policies.get("INPUT", "ACCEPT")
            if default_deny:
                policy: t.Optional[str] = "DROP"
                if live_policy != "DROP" and name not in self.state_after:
                    self.state_after[name] = live_policy  # what to go back to when default deny is turned off
            else:
                policy = self.state_after.pop(name, None)  # the policy we changed, back; others' stay
            rules = xt_rules(chain, "6" in name, tcp, udp, default_deny)
            do, undo = xt_plan(live, chain, rules, policy, comment)
            self.before.append(f"# {name}: INPUT policy {live_policy}\n" + "\n".join(live.chain_rules(chain)))
            self.after.append(f"# {name}: INPUT policy {policy or live_policy}\n" + "\n".join(rules))
            if do is not None:
                self.scripts.append((command, do))
            self.undo.append(_fwrollback.Step([f"{command}-restore", "-w", "--noflush"], undo))
        state_changed = self.state_after != self.state_before
        self.changed = bool(self.scripts) or state_changed
        self.files = [state_file] if self.changed else []
        if not self.changed:
            self.undo = []

    def apply(self) -> None:
        for command, script in self.scripts:
            fd, path = tempfile.mkstemp(prefix="portail-xt-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(script)
                rc, _out, err = self.run([f"{command}-restore", "-w", "--noflush", path])
            finally:
                os.unlink(path)
            if rc != 0:
                raise ApplyError(f"{command}-restore refused the change (nothing applied for it): {err.strip()}")
        if self.state_after != self.state_before:
            write_file(self.state_file, json.dumps(self.state_after, sort_keys=True) + "\n", 0o600)


def apply(change: Change, timeout: int, check_mode: bool, base_dir: str = _fwrollback.BASE_DIR) -> dict[str, t.Any]:
    """Arm the rollback, then at once apply the change; a failure half-way is undone on the spot."""
    result: dict[str, t.Any] = {
        "changed": change.changed,
        "diff": {"before": "\n".join(change.before), "after": "\n".join(change.after)},
        **change.extra,
    }
    if not change.changed or check_mode:
        return result
    job = _fwrollback.Job(base_dir, timeout)
    job.prepare(change.undo, change.files, change.undo_after)
    result["rollback"] = job.start()
    try:
        with job.applying():
            change.apply()
    except Exception as exc:
        log = job.restore_now()
        raise ApplyError(f"{exc} (the previous state was restored: {log.strip()[-500:]})") from exc
    return result
