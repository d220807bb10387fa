"""`make demo` works on its own namespaced hosts and leaves this machine as it was; `make demo-clean` removes it.

The demo runs with the machine's /etc/nginx, /etc/apache2, /etc/ssl and /var/www mounted read-only for it
(so a write there fails it), and these and the nftables ruleset are also recorded before the demo (every
path, type, mode, owner, symlink target and content hash) and compared after it. The demo's own printout
is checked for each proof it claims, and its second site run for changed=0 (demo/run.sh fails otherwise).
Uses fleet indices 240-243 and build/demo/ (a demo left running is replaced). Tests that configure this
machine's own nginx or Apache must not run meanwhile (make test runs tests one after the other).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import dns.resolver
import pytest

from .harness import BIN, REPO

pytestmark = [pytest.mark.rig, pytest.mark.slow]

WATCHED = ("/etc/nginx", "/etc/apache2", "/etc/ssl", "/var/www")
INDICES = (240, 241, 242, 243)


def machine_state() -> dict[str, str]:
    state: dict[str, str] = {}
    for root in WATCHED:
        base = Path(root)
        if not base.exists():
            state[root] = "absent"
            continue
        for path in [base, *sorted(base.rglob("*"))]:
            st = path.lstat()
            if path.is_symlink():
                what = "link " + os.readlink(path)
            elif path.is_file():
                what = "file " + hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = "dir" if path.is_dir() else "other"
            state[str(path)] = f"{what} {st.st_mode:o} {st.st_uid}:{st.st_gid}"
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    state["nft ruleset"] = ruleset
    return state


def _netns() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split())


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PORTAIL_RIG_DIR=os.environ.get("PORTAIL_RIG_DIR", str(REPO / "build" / "rig")))
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False)


def test_demo_proves_https_and_leaves_the_machine_as_it_was(rig):
    clean = _demo(str(BIN / "python"), "demo/demo.py", "down")
    assert clean.returncode == 0, clean.stderr
    before = machine_state()

    # The demo runs with the watched directories read-only (in a mount namespace of its own): a write there
    # fails the demo, whatever else happens on this machine meanwhile.
    binds = " && ".join(f"mount --bind {d} {d} && mount -o remount,bind,ro {d}" for d in WATCHED if Path(d).is_dir())
    script = f"{binds} && exec bash demo/run.sh"
    run = _demo("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    out = run.stdout
    after = machine_state()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the demo changed the machine: {changed}"

    # the proof, read from the live servers
    for name in ("fleet240.portail.test", "fleet241.portail.test"):
        assert f"301 -> https://{name}/some/page?x=1" in out, out
    assert out.count("verified against the CA, HSTS: max-age=") == 2, out
    assert out.count("issuer CN=Pebble Intermediate") == 2, out
    assert out.count("TLS 1.1  : refused") == 2, out
    assert "(one certificate on every member)" in out, out
    assert (REPO / "build" / "demo" / "report" / "report.html").is_file()
    assert not run.stderr.strip(), run.stderr  # only the demo's own output

    # make demo-clean takes it all away
    clean = _demo("make", "--no-print-directory", "demo-clean")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not {f"pfleet{i}" for i in INDICES} & _netns()
    assert not (REPO / "build" / "demo").exists()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [rig["PORTAIL_DNS_PRIMARY"]]
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("demo-pool.portail.test", "A")
    final = machine_state()
    assert not sorted(k for k in before.keys() | final.keys() if before.get(k) != final.get(k))
