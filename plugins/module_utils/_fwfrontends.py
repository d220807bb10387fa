# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ufw and firewalld as one change of the firewall role (runs on Python >= 3.9, stdlib only).

Both are driven through their own command line (``ufw``, ``firewall-cmd``), which persists the change the
tool's own way, inside the same module run that armed the rollback (_fwapply.apply): nothing from the
controller runs between the arm and the change. The rollback puts back the files the tool keeps its
configuration in and makes the tool re-read them (``ufw reload`` / ``ufw disable``,
``firewall-cmd --reload``).

What we own, and only that, is made exact:

- ufw: the allow rules carrying our comment (ufw stores it, hex-encoded, in /etc/ufw/user*.rules). A wanted
  port that another rule already allows is left to that rule; a rule of ours no longer wanted is deleted.
  The incoming default is ours only when we changed it: its previous value is recorded in a state file and
  put back when default deny is turned off.
- firewalld: the zone's ports recorded in a state file as added by us (a port the zone had before is not
  ours and is never removed). Other ports, services and rich rules of the zone are never touched, and no
  ``--reload`` is needed, so runtime-only rules of others (fail2ban) stay.
"""

from __future__ import annotations

import json
import os
import re
import typing as t

from ansible_collections.portail.https.plugins.module_utils import _firewall, _fwrollback
from ansible_collections.portail.https.plugins.module_utils._fwapply import (
    COMMENT_RE,
    ApplyError,
    Change,
    Runner,
)
from ansible_collections.portail.https.plugins.module_utils._hostfiles import read_file, write_file

Port = tuple[int, str]  # (port, "tcp" | "udp")
UFW_RULES = "/etc/ufw/user.rules"
UFW_RULES6 = "/etc/ufw/user6.rules"
UFW_CONF = "/etc/ufw/ufw.conf"
UFW_DEFAULTS = "/etc/default/ufw"
TUPLE_RE = re.compile(r"^### tuple ### (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)(?: comment=([0-9a-fA-F]*))?\s*$")
ANYWHERE = ("0.0.0.0/0", "::/0")
ZONE_RE = re.compile(r"^[A-Za-z0-9_-]{1,17}$")
# ufw's command-line names for the policies /etc/default/ufw stores as DROP / REJECT / ACCEPT
UFW_POLICY_WORD = {"drop": "deny", "reject": "reject", "accept": "allow"}


def port_name(port: Port) -> str:
    return f"{port[0]}/{port[1]}"


def ufw_tuples(text: str) -> list[tuple[Port, t.Optional[str]]]:
    """The plain allow rules (a port, from anywhere to anywhere, incoming, no interface) of a ufw user
    rules file, with their comment. Other rules (a source, an interface, a range) are never ours."""
    found: list[tuple[Port, t.Optional[str]]] = []
    for line in text.splitlines():
        match = TUPLE_RE.match(line.strip())
        if not match:
            continue
        action, proto, dport, dst, sport, src, direction, hex_comment = match.groups()
        if action != "allow" or proto not in ("tcp", "udp") or not dport.isdigit() or sport != "any":
            continue
        if direction != "in" or dst not in ANYWHERE or src not in ANYWHERE:
            continue
        comment = None
        if hex_comment:
            try:
                comment = bytes.fromhex(hex_comment).decode("utf-8", "replace")
            except ValueError:
                comment = hex_comment
        found.append(((int(dport), proto), comment))
    return found


def ufw_ipv6(defaults: t.Optional[str]) -> bool:
    found = re.findall(r'^IPV6="?([A-Za-z]+)"?\s*$', defaults or "", re.M)
    return not found or found[-1].lower() == "yes"


def _state(path: str) -> dict[str, t.Any]:
    saved = json.loads(read_file(path) or "{}")
    return dict(saved) if isinstance(saved, dict) else {}


class UfwChange(Change):
    """Our allow rules, the incoming default when we set it, ufw enabled; through the ``ufw`` command."""

    def __init__(
        self,
        run: Runner,
        ufw: str,
        comment: str,
        wanted: t.Sequence[Port],
        default_deny: bool,
        state_file: str,
        rules_files: tuple[str, str] = (UFW_RULES, UFW_RULES6),
        conf_file: str = UFW_CONF,
        defaults_file: str = UFW_DEFAULTS,
    ) -> None:
        super().__init__()
        if not COMMENT_RE.match(comment):
            raise ApplyError(f"invalid comment {comment!r}")
        self.run, self.state_file = run, state_file
        rc, out, err = run([ufw, "status"])
        if rc != 0:
            raise ApplyError(f"ufw status failed: {err.strip() or out.strip()}")
        active = bool(re.search(r"^Status: active", out, re.M))
        incoming = _firewall.ufw_incoming_policy(defaults_file)
        ipv6 = ufw_ipv6(read_file(defaults_file))
        families = [ufw_tuples(read_file(rules_files[0]) or "")]
        if ipv6:
            families.append(ufw_tuples(read_file(rules_files[1]) or ""))
        ours = [{p for p, c in rules if c == comment} for rules in families]
        anyone = [{p for p, _c in rules} for rules in families]
        owned = sorted(set().union(*ours))
        wanted_set = set(wanted)

        self.state_before = _state(state_file)
        self.state_after = dict(self.state_before)
        effective = incoming if active else "accept"  # an inactive ufw lets everything in
        target: t.Optional[str] = None
        if default_deny:
            if incoming == "accept":
                target = "deny"
            if effective == "accept" and "incoming" not in self.state_after:
                self.state_after["incoming"] = "allow"  # what turning default deny off goes back to
        else:
            previous = self.state_after.pop("incoming", None)
            if previous in ("allow", "deny", "reject") and UFW_POLICY_WORD[incoming] != previous:
                target = previous
            elif not active and incoming != "accept":
                target = "allow"  # enabling ufw without default deny must not drop what was open

        self.commands: list[list[str]] = []
        for port in sorted(wanted_set):
            if not all(port in family for family in anyone):
                self.commands.append([ufw, "allow", port_name(port), "comment", comment])
        for port in owned:
            if port not in wanted_set:
                self.commands.append([ufw, "delete", "allow", port_name(port)])
        if target:
            self.commands.append([ufw, "default", target, "incoming"])
        if not active:
            self.commands.append([ufw, "--force", "enable"])

        def show(is_active: bool, policy: str, rules: t.Iterable[Port]) -> str:
            state = "active" if is_active else "inactive"
            lines = [f"# ufw {state}, incoming {policy}; allow rules with comment {comment}:"]
            return "\n".join(lines + [f"allow {port_name(p)}" for p in sorted(rules)])

        self.before = [show(active, UFW_POLICY_WORD[incoming], owned)]
        kept_by_others = {p for p in wanted_set if all(p in family for family in anyone) and p not in owned}
        self.after = [show(True, target or UFW_POLICY_WORD[incoming], wanted_set - kept_by_others)]
        self.changed = bool(self.commands) or self.state_after != self.state_before
        if self.changed:
            self.files = [*rules_files, conf_file, defaults_file, state_file]
            self.undo_after = [_fwrollback.Step([ufw, "reload"] if active else [ufw, "disable"])]

    def apply(self) -> None:
        for argv in self.commands:
            rc, out, err = self.run(argv)
            if rc != 0:
                raise ApplyError(f"{' '.join(argv)} failed: {err.strip() or out.strip()}")
        if self.state_after != self.state_before:
            write_file(self.state_file, json.dumps(self.state_after, sort_keys=True) + "\n", 0o600)


class FirewalldChange(Change):
    """The ports we added to a zone, runtime and permanent, through ``firewall-cmd``."""

    def __init__(
        self,
        run: Runner,
        cmd: str,
        zone: str,
        wanted: t.Sequence[Port],
        state_file: str,
        zones_dir: str = "/etc/firewalld/zones",
    ) -> None:
        super().__init__()
        self.run, self.state_file = run, state_file
        if not zone:
            zone = self._out([cmd, "--get-default-zone"]).strip()
        if not ZONE_RE.match(zone):
            raise ApplyError(f"invalid firewalld zone name {zone!r}")
        runtime = set(self._out([cmd, f"--zone={zone}", "--list-ports"]).split())
        permanent = set(self._out([cmd, "--permanent", f"--zone={zone}", "--list-ports"]).split())
        self.state_before = _state(state_file)
        zones = self.state_before.get("zones")
        owned = set(zones.get(zone, [])) if isinstance(zones, dict) else set()
        wanted_names = {port_name(p) for p in wanted}
        # ours: what we own already and still want, and what we add to the permanent zone now
        owned_after = (owned & wanted_names) | (wanted_names - permanent)
        gone = owned - wanted_names

        self.commands: list[list[str]] = []
        for scope, live in (([], runtime), (["--permanent"], permanent)):
            add = sorted(wanted_names - live)
            remove = sorted(gone & live)
            if add:
                self.commands.append([cmd, *scope, f"--zone={zone}", *(f"--add-port={p}" for p in add)])
            if remove:
                self.commands.append([cmd, *scope, f"--zone={zone}", *(f"--remove-port={p}" for p in remove)])
        self.state_after = dict(self.state_before)
        new_zones = {k: v for k, v in zones.items() if k != zone} if isinstance(zones, dict) else {}
        if owned_after:
            new_zones[zone] = sorted(owned_after)
        if new_zones or "zones" in self.state_before:
            self.state_after["zones"] = new_zones

        def show(ports: t.Iterable[str], mine: t.Iterable[str]) -> str:
            mine = set(mine)
            lines = [f"# firewalld zone {zone}, ports (permanent); (ours) = added by portail.https"]
            return "\n".join(lines + [p + (" (ours)" if p in mine else "") for p in sorted(ports)])

        self.before = [show(permanent, owned)]
        self.after = [show((permanent - gone) | wanted_names, owned_after)]
        self.changed = bool(self.commands) or self.state_after != self.state_before
        self.extra["zone"] = zone
        if self.changed:
            xml = os.path.join(zones_dir, f"{zone}.xml")
            self.files = [xml, f"{xml}.old", state_file]
            self.undo_after = [_fwrollback.Step([cmd, "--reload"])]

    def _out(self, argv: list[str]) -> str:
        rc, out, err = self.run(argv)
        if rc != 0:
            raise ApplyError(f"{' '.join(argv)} failed: {err.strip() or out.strip()}")
        return out

    def apply(self) -> None:
        for argv in self.commands:
            self._out(argv)
        if self.state_after != self.state_before:
            write_file(self.state_file, json.dumps(self.state_after, sort_keys=True) + "\n", 0o600)
