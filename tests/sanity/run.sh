#!/usr/bin/env bash
# ansible-test sanity, offline: copy the collection to build/sanity/ansible_collections/portail/https
# (ansible-test wants that path and a git repository), give ansible-test a pip bootstrap that does not
# download anything, and run every sanity test with no ignore file.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
SANITY_ROOT=${PORTAIL_SANITY_DIR:-build/sanity}
DEST=$SANITY_ROOT/ansible_collections/portail/https
rm -rf "$SANITY_ROOT"
mkdir -p "$DEST"
git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$DEST/"
(cd "$DEST" && git init -q && git add -A)

# ansible-test bootstraps pip in each sanity venv from a downloaded get-pip-<ver>.py; stand in for it.
cache=~/.ansible/test/cache
mkdir -p "$cache"
for ver in $("$REPO/.venv/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(" ".join(sorted(set(re.findall(r"pip='([0-9.]+)'", src.read_text())))))
PY
); do
  cat > "$cache/get_pip_${ver//./_}.py" <<'PY'
"""Offline stand-in for get-pip.py: ensurepip, then pip install with the same arguments."""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if any(not a.startswith("-") for a in args):
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
done
cd "$DEST"
PATH="$REPO/.venv/bin:$PATH" "$REPO/.venv/bin/ansible-test" sanity --local --python 3.11 --color no "$@"
