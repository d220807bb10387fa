#!/usr/bin/env bash
# make demo: the site playbook over SSH against a small fleet of namespaced hosts, then the proof read
# from the live servers. Nothing is canned, and nothing on this machine changes outside build/ (the hosts
# are network + mount namespaces with their own /etc and /var). `make demo-clean` removes it all.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
export PORTAIL_RIG_DIR="${PORTAIL_RIG_DIR:-$REPO/build/rig}"
OUT=build/demo
PY=.venv/bin/python
PB=.venv/bin/ansible-playbook
export ANSIBLE_COLLECTIONS_PATH=$REPO/build/collections ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_NOCOLOR=1 \
  ANSIBLE_LOCAL_TEMP=$REPO/build/ansible-tmp ANSIBLE_DEPRECATION_WARNINGS=False ANSIBLE_RETRY_FILES_ENABLED=False
mkdir -p build/collections/ansible_collections/portail
[ -e build/collections/ansible_collections/portail/https ] || ln -s "$REPO" build/collections/ansible_collections/portail/https

recap() { # the PLAY RECAP lines of a run, indented; the whole output stays in build/demo/<name>.log
  sed -n '/^PLAY RECAP/,$p' "$1" | sed '1d;/^$/d;s/^/  /'
}
play() { # play NAME PLAYBOOK ARGS...: run it, keep its log, stop with the log's end if it fails
  local name=$1 book=$2
  shift 2
  if ! "$PB" -i "$OUT/inventory.json" "$book" "$@" >"$OUT/$name.log" 2>&1; then
    tail -n 40 "$OUT/$name.log"
    echo "demo: $book failed; the whole output is in $OUT/$name.log" >&2
    exit 1
  fi
}

echo "==== fleet: four hosts in network namespaces, each with its own sshd, /etc, /var and firewall"
"$PY" demo/demo.py up
echo "==== site playbook over SSH (firewall, web server, certificates from the local Pebble CA, checks)"
play site-1 playbooks/site.yml
recap "$OUT/site-1.log"
echo "==== site playbook again: nothing may change"
play site-2 playbooks/site.yml
recap "$OUT/site-2.log"
if grep -E '^[^ ].*changed=[1-9]' "$OUT/site-2.log" >/dev/null; then
  echo "demo: the second run changed something (see $OUT/site-2.log)" >&2
  exit 1
fi
play report playbooks/report.yml -e "report_dest_dir=$REPO/$OUT/report"
echo
echo "==== proof, read from the live servers"
"$PY" demo/demo.py proof
echo "report     : $REPO/$OUT/report/report.html"
echo "logs       : $REPO/$OUT/*.log     remove everything: make demo-clean"
