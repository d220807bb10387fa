#!/usr/bin/env bash
# mypy over plugins/, the way Ansible imports them (ansible_collections.portail.https.*).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
mkdir -p build/collections/ansible_collections/portail
[ -e build/collections/ansible_collections/portail/https ] || ln -s "$REPO" build/collections/ansible_collections/portail/https
cd build/collections
exec "$REPO/.venv/bin/mypy" --namespace-packages --explicit-package-bases --ignore-missing-imports \
  --python-version 3.11 --cache-dir "$REPO/build/mypy-cache" ansible_collections/portail/https/plugins
