#!/usr/bin/env bash
# make demo: the site playbook against this machine for demo1.portail.test, then the proof.
# Everything printed below is read from the live servers; nothing is canned.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
# shellcheck disable=SC1091
. build/rig/env.sh
OUT=build/demo
mkdir -p "$OUT"
NAME=demo1.portail.test
ADDR=127.0.40.1

if [ ! -f "$OUT/account.key" ]; then
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$OUT/account.key" 2>/dev/null)
fi
cat > "$OUT/inventory.yml" <<INV
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: $REPO/.venv/bin/python
INV
cat > "$OUT/vars.yml" <<VARS
portail_webserver: nginx
portail_sites:
  - name: demo
    server_names: [$NAME]
    root: /var/www/portail-demo
nginx_listen_addresses: ["$ADDR"]
certificate_acme_directory: $PORTAIL_ACME_DIRECTORY
certificate_acme_ca_bundle: $PORTAIL_ACME_CA_BUNDLE
certificate_account_key_src: $REPO/$OUT/account.key
certificate_contact: ["mailto:demo@portail.test"]
certificate_terms_agreed: true
portail_verify_address: $ADDR
portail_verify_ca_file: $PORTAIL_PEBBLE_ROOTS
firewall_backend: nftables
VARS
mkdir -p /var/www/portail-demo
[ -f /var/www/portail-demo/index.html ] || echo "<h1>portail.https demo</h1>" > /var/www/portail-demo/index.html

export ANSIBLE_COLLECTIONS_PATH=$REPO/build/collections ANSIBLE_HOST_KEY_CHECKING=False
mkdir -p build/collections/ansible_collections/portail
[ -e build/collections/ansible_collections/portail/https ] || ln -s "$REPO" build/collections/ansible_collections/portail/https
PB=.venv/bin/ansible-playbook

# Pebble makes a new root at every start: a certificate left by a demo against an earlier rig is not
# trusted by this one, so that (and only that) case renews it.
FORCE=()
CERT_DIR=/etc/ssl/portail/demo
if [ -f "$CERT_DIR/cert.pem" ] && ! openssl verify -CAfile "$PORTAIL_PEBBLE_ROOTS" -untrusted "$CERT_DIR/chain.pem" \
  "$CERT_DIR/cert.pem" >/dev/null 2>&1; then
  echo "(the certificate left by an earlier demo comes from an earlier Pebble: renewing it)"
  FORCE=(-e certificate_force=true)
fi
echo "==== site playbook (first run)"
$PB -i "$OUT/inventory.yml" -e "@$OUT/vars.yml" "${FORCE[@]}" playbooks/site.yml | tail -n 4
echo "==== site playbook again (must change nothing)"
$PB -i "$OUT/inventory.yml" -e "@$OUT/vars.yml" playbooks/site.yml | tail -n 2
echo "==== fleet report"
$PB -i "$OUT/inventory.yml" -e "@$OUT/vars.yml" -e "report_dest_dir=$REPO/$OUT/report" playbooks/report.yml >/dev/null

echo
echo "==== proof, read from the live server at $ADDR"
printf 'port 80   : '
curl -s -o /dev/null -D - --resolve "$NAME:80:$ADDR" "http://$NAME/some/page?x=1" | grep -iE '^(HTTP/|location:)' | tr -d '\r' | paste -sd ' '
printf 'port 443  : '
curl -s -o /dev/null -D - --cacert "$PORTAIL_PEBBLE_ROOTS" --resolve "$NAME:443:$ADDR" "https://$NAME/" | grep -iE '^(HTTP/|strict-transport-security:)' | tr -d '\r' | paste -sd ' '
printf 'cert      : '
echo | openssl s_client -connect "$ADDR:443" -servername "$NAME" 2>/dev/null | openssl x509 -noout -issuer -enddate -ext subjectAltName 2>/dev/null | tr '\n' ' ' | sed 's/  */ /g'
echo
printf 'TLS 1.1   : '
if echo | openssl s_client -connect "$ADDR:443" -servername "$NAME" -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' >/dev/null 2>&1; then echo accepted; else echo refused; fi
echo "report    : $REPO/$OUT/report/report.html"
