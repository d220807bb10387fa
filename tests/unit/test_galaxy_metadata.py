"""Galaxy hygiene: what the collection claims matches what is tested and released."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())


def _tested_core() -> Version:
    text = (REPO / "tests" / "requirements.txt").read_text()
    return Version(re.search(r"^ansible-core==(\S+)$", text, re.M).group(1))


def test_requires_ansible_is_what_make_test_runs():
    claim = SpecifierSet(yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"])
    tested = _tested_core()
    assert tested in claim
    lowest = Version(f"{tested.major}.{tested.minor}.0")
    # every minor the claim admits is tested: none below the tested one, none above it
    assert Version(f"{tested.major}.{tested.minor - 1}.99") not in claim
    assert lowest in claim
    assert Version(f"{tested.major}.{tested.minor + 1}.0") not in claim


def _version_added(text: str) -> list[str]:
    return re.findall(r"^\s*version_added:\s*['\"]?([0-9][^'\"\s]*)", text, re.M)


def test_version_added_is_never_after_this_release():
    release = Version(GALAXY["version"])
    files = [*(REPO / "plugins").rglob("*.py"), *(REPO / "plugins").rglob("*.yml")]
    found = {str(f.relative_to(REPO)): _version_added(f.read_text()) for f in files}
    late = {f: v for f, vs in found.items() for v in vs if Version(v) > release}
    assert not late
    assert any(found.values())


def test_changelog_has_a_release_summary():
    fragments = [yaml.safe_load(p.read_text()) for p in (REPO / "changelogs" / "fragments").glob("*.yml")]
    changes = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())
    released = [r.get("changes", {}) for r in (changes.get("releases") or {}).values()]
    assert any("release_summary" in f for f in fragments + released)


def test_internal_host_module_says_so():
    text = (REPO / "plugins" / "modules" / "acme_certificate_host.py").read_text()
    assert re.search(r"^\s+- Internal helper", text, re.M)
