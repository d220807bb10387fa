from __future__ import annotations

from pathlib import Path

import pytest

from .harness import rig_facts


@pytest.fixture(scope="session")
def rig() -> dict[str, str]:
    """Facts of the running rig (directory URLs, CA bundle, DNS servers, TSIG key)."""
    return rig_facts()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
