#!/usr/bin/env bash
# The whole test suite, in order, with a summary. Called by `make test` (and so by .ci/run).
# `tests/run-all.sh --quick` (make test-quick) runs the same steps but leaves out the tests marked slow.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BIN=.venv/bin
tier="make test"
select=()
if [ "${1:-}" = "--quick" ]; then
  shift
  tier="make test-quick"
  select=(-m "not slow")
fi
declare -a names=() results=()
step() {
  local name=$1; shift
  echo "==== $name: $*"
  local t0=$SECONDS
  if "$@"; then results+=("PASS"); else results+=("FAIL"); fi
  names+=("$name ($((SECONDS - t0))s)")
}
step ruff            "$BIN/ruff" check .
step ruff-format     "$BIN/ruff" format --check .
step mypy            bash tests/mypy.sh
step ansible-lint    "$BIN/ansible-lint" --profile production
step changelog-lint  "$BIN/antsibull-changelog" lint
step sanity          bash tests/sanity/run.sh
step pytest          "$BIN/pytest" -p no:cacheprovider -rfEs "${select[@]}" "$@"
echo "==== summary"
failed=0; passed=0
for i in "${!names[@]}"; do
  printf '  %-28s %s\n' "${names[$i]}" "${results[$i]}"
  if [ "${results[$i]}" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "$tier: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
