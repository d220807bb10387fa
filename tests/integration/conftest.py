from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .harness import rig_facts


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on fleet hosts (namespaced SSH hosts, real Ansible over SSH) is slow, whoever writes it: one
    that takes the fleet_factory fixture, or any test of a module that imports tests.fleet."""
    from tests.fleet import fleet

    for item in items:
        module = getattr(item, "module", None)
        if "fleet_factory" in getattr(item, "fixturenames", ()) or getattr(module, "fleet", None) is fleet:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def rig() -> dict[str, str]:
    """Facts of the running rig (directory URLs, CA bundle, DNS servers, TSIG key)."""
    return rig_facts()


@pytest.fixture(scope="module")
def account_key(tmp_path_factory) -> Path:
    """A new ACME account key (EC P-256, PEM) for the test module (each module gets its own account)."""
    path = tmp_path_factory.mktemp("account") / "account.key"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def fleet_factory():
    """Create namespaced SSH hosts on demand: fleet_factory([3, 4]) -> [Host(3), Host(4)].

    Hosts are torn down at the end of the session. Each test area uses its own indices
    (see tests/README.md) so tests never share a host by accident.
    """
    from tests.fleet import fleet

    made: list[fleet.Host] = []

    def make(indices):
        hosts = fleet.up(indices)
        made.extend(h for h in hosts if h not in made)
        return hosts

    yield make
    fleet.down(made)
