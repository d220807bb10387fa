"""Run real ansible-playbook / ansible commands from pytest and read their results.

Every integration test goes through here so that they all use the same collection path,
interpreter, callback and rig facts. Nothing here fakes a result: it runs Ansible.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "build" / "collections"
RIG_DIR = Path(os.environ.get("PORTAIL_RIG_DIR", REPO / "build" / "rig"))
PYTHON = sys.executable
BIN = Path(sys.executable).parent


def rig_facts() -> dict[str, str]:
    path = RIG_DIR / "rig.json"
    if not path.exists():
        raise RuntimeError(f"the rig is not running (no {path}); run `make rig` first")
    return json.loads(path.read_text())


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "True",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_LOCAL_TEMP": str(REPO / "build" / "ansible-tmp"),
            "PATH": f"{BIN}:{env.get('PATH', '')}",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return self.data.get("stats", {})

    def changed(self, host: str | None = None) -> int:
        hosts = [host] if host else list(self.stats)
        return sum(self.stats[h].get("changed", 0) for h in hosts)

    def failed(self, host: str | None = None) -> int:
        hosts = [host] if host else list(self.stats)
        return sum(self.stats[h].get("failures", 0) + self.stats[h].get("unreachable", 0) for h in hosts)

    def failures(self) -> list[str]:
        """'host: task: message' for every failed or unreachable task result, to put in assert messages."""
        out = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    if res.get("failed") or res.get("unreachable"):
                        msg = res.get("msg", "")
                        items = [r.get("msg", "") for r in res.get("results", []) if r.get("failed")]
                        if items:
                            msg = f"{msg}: {'; '.join(items)}"
                        out.append(f"{host}: {task['task']['name']}: {msg}"[:1500])
        return out or [self.stderr[-3000:]]

    def results(self, task_name: str) -> dict[str, dict[str, Any]]:
        """host -> result of the (last) task with that name."""
        found: dict[str, dict[str, Any]] = {}
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                name = task["task"]["name"]
                if name == task_name or name.endswith(f" : {task_name}"):
                    found.update(task["hosts"])
        if not found:
            raise KeyError(f"no task named {task_name!r} ran")
        return found

    def result(self, task_name: str, host: str = "localhost") -> dict[str, Any]:
        return self.results(task_name)[host]


def local_inventory(tmp: Path, hosts: dict[str, dict[str, Any]] | None = None) -> Path:
    hosts = hosts or {"localhost": {}}
    inv = {"all": {"hosts": {}}}
    for name, hv in hosts.items():
        v = {"ansible_connection": "local", "ansible_python_interpreter": PYTHON}
        v.update(hv)
        inv["all"]["hosts"][name] = v
    path = tmp / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def _playbook_command(
    playbook: str | Path,
    tmp: Path,
    inventory: Path | None,
    extra_vars: dict[str, Any] | None,
    check: bool,
    diff: bool,
    verbosity: int,
    json_output: bool,
    env: dict[str, str] | None,
) -> tuple[list[str], dict[str, str]]:
    if isinstance(playbook, str) and "\n" in playbook:
        pb = tmp / f"playbook-{len(list(tmp.glob('playbook-*.yml')))}.yml"
        pb.write_text(playbook)
    else:
        pb = Path(playbook)
    inv = inventory or local_inventory(tmp)
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inv), str(pb)]
    if extra_vars:
        ev = tmp / f"extra-vars-{len(list(tmp.glob('extra-vars-*.json')))}.json"
        ev.write_text(json.dumps(extra_vars))
        cmd += ["-e", f"@{ev}"]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    extra_env = dict(env or {})
    if json_output:
        extra_env.setdefault("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
    return cmd, ansible_env(extra_env)


def _parse(rc: int, stdout: str, stderr: str, json_output: bool) -> PlaybookResult:
    data: dict[str, Any] = {}
    if json_output:
        start = stdout.find("{")
        if start >= 0:
            try:
                data = json.loads(stdout[start:])
            except json.JSONDecodeError:
                data = {}
    return PlaybookResult(rc, stdout, stderr, data)


def run_playbook(
    playbook: str | Path,
    tmp: Path,
    *,
    inventory: Path | None = None,
    extra_vars: dict[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
    verbosity: int = 0,
    json_output: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> PlaybookResult:
    """Run a playbook (a path, or YAML text written into tmp) and parse its JSON callback output."""
    cmd, full_env = _playbook_command(playbook, tmp, inventory, extra_vars, check, diff, verbosity, json_output, env)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, check=False, cwd=str(tmp))
    return _parse(proc.returncode, proc.stdout, proc.stderr, json_output)


def start_playbook(
    playbook: str | Path,
    tmp: Path,
    *,
    inventory: Path | None = None,
    extra_vars: dict[str, Any] | None = None,
    json_output: bool = True,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[str]:
    """Start a run in the background, in its own process group (a test may kill the whole run).

    ``preexec_fn`` runs in the child before exec (e.g. to enter a cgroup that a firewall rule matches).
    Read the result with :func:`finish_playbook`.
    """
    cmd, full_env = _playbook_command(playbook, tmp, inventory, extra_vars, False, False, 0, json_output, env)
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=str(tmp),
        start_new_session=True,
        preexec_fn=preexec_fn,
    )


def finish_playbook(proc: subprocess.Popen[str], *, json_output: bool = True, timeout: float = 900) -> PlaybookResult:
    """Wait for a run started by :func:`start_playbook` (killing its group on timeout) and parse its output."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return _parse(proc.returncode, stdout, stderr, json_output)
