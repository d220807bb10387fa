"""The execution environment definition (execution-environment.yml, version 3) is accepted by
``ansible-builder create`` (no container engine needed), and what it and the collection's metadata ask
for is the controller's needs only: never a managed-host package (nginx, nftables, ...)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from .harness import BIN, REPO, ansible_env

MANAGED_HOST_ONLY = ("nginx", "apache", "httpd", "nftables", "iptables", "ufw", "firewalld", "openssl")


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_builder_create_makes_a_build_context(tmp_path):
    context = tmp_path / "context"
    _run(str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "--context", str(context))
    files = {p.name for p in context.iterdir()}
    build_file = context / ("Containerfile" if "Containerfile" in files else "Dockerfile")
    text = build_file.read_text()
    assert 'EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in text
    assert "ansible-core>=2.19.0,<2.22" in text
    build = context / "_build"
    python = (build / "requirements.txt").read_text()
    assert "cryptography>=" in python and "dnspython>=" in python
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    assert "portail.https" in {c["name"] for c in galaxy["collections"]}
    system = (build / "bindep.txt").read_text()
    assert "openssh-clients [platform:rpm]" in system
    packages = [line.split()[0] for line in system.splitlines() if line.strip() and not line.startswith("#")]
    assert not [p for p in packages if p.startswith(MANAGED_HOST_ONLY)], packages


def test_collection_metadata_is_read_by_introspection():
    out = _run(str(BIN / "ansible-builder"), "introspect", "--sanitize", str(REPO / "build" / "collections"))
    data = yaml.safe_load(out.split("\n", 1)[1])
    ours = [line for line in data["python"] + data["system"] if "portail.https" in line]
    assert any(line.startswith("cryptography") for line in ours)
    assert any(line.startswith("dnspython") for line in ours)
    assert not [line for line in ours if line.startswith(MANAGED_HOST_ONLY)], ours


def test_definition_and_metadata_agree():
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    for key in ("python", "system"):
        assert definition["dependencies"][key] == meta["dependencies"][key]
    assert shutil.which("ssh")  # the controller side this describes is what the tests use
