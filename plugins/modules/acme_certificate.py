#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: acme_certificate
short_description: One task from nothing to a deployed ACME certificate (HTTP-01, DNS-01, TLS-ALPN-01)
version_added: 0.1.0
description:
  - Issues, renews and deploys certificates from an ACME CA (RFC 8555) in a single task. It is an action
    plugin. The ACME protocol and the DNS updates run on the controller, where the account key and the DNS
    credentials stay; the managed host runs one POSIX shell script per step, as root, with C(openssl)
    (1.1.1 or later; the certificate role installs it). Only TLS-ALPN-01 runs Python on the host
    (M(portail.https.acme_certificate_host), standard library).
  - An HTTP-01 issuance costs the host three shell commands. The first reads the certificate and the public
    half of the key, fixes drifted modes and owners, and on a first issuance also makes the key and the CSR;
    the second writes the token files; the third installs the new version and removes the token files. A
    certificate that is still good costs one shell command.
  - The certificate's private key is generated on the managed host (mode 0600) and never leaves it; only
    the CSR travels. Files live in a versioned store next to the key,
    C(<dir of key_path>/.portail-<key file name>.d/v<N>/), and O(key_path), O(cert_path), O(chain_path) and
    O(fullchain_path) are symlinks to C(.../current/<file>); C(current -> v<N>) is swapped by one rename, so
    the key and certificate a web server loads always match, even when a run is killed mid-way. Plain files
    left by earlier versions are taken over without a window where they do not match.
  - 'Everything the host holds is treated as hostile: the directories that hold keys and certificates (and
    every directory above them) must belong to root and be writable by root only, as with OpenSSH
    StrictModes (a root-owned sticky directory such as C(/tmp) is accepted above them); symlinks are never
    followed to change a file; C(owner) and C(group) are resolved to numbers on the host; http-01 token
    files are written only into C(.well-known/acme-challenge) directories that belong to root. Nothing a
    file contains can change how the host''s answer is read.'
  - A per-certificate lock (a lease directory in the store, holding the run's id, its expiry and the
    pending key) covers key generation to deployment. A second run meanwhile is told that the
    certificate is locked; a killed run's lease and pending key are removed by the next run once it has
    expired. The new certificate's public key is compared with the key right before the switch.
  - 'Decides per certificate and reports why (RV(reason)): V(missing), V(names_changed), V(key_type_changed),
    V(key_mismatch), V(expiring) (less than O(renew_remaining_fraction) of the lifetime left; certificates
    living under 10 days renew at half their lifetime), V(ari_window) or V(forced); V(valid) when nothing
    is done.'
  - 'ARI (RFC 9773): for a certificate that is still good, the CA''s suggested renewal window is asked for, and
    the certificate is renewed once a point picked at random inside the window has passed (the point is the
    same at every run for the same window, so a fleet spreads its renewals over the window). No request is
    made when the CA that issued the certificate has no ARI. When the CA cannot be reached, a certificate
    that is not due by the lifetime rule stays ok (with a warning). Renewals send C(replaces).'
  - Every failure names the certificate, the identifier, the step (C(step) in each entry of RV(certificates))
    and the CA's problem type and detail (or the network error), with what to do; the CA's problem document is returned
    whole in its C(problem). Challenge files, DNS records (stale values left by an earlier run
    included) and the TLS-ALPN-01 responder are removed after success and after failure, and a failed run
    reports C(changed) only if something on the host really changed.
  - Input is checked before the CA is contacted, malformed names, wildcards without dns-01, IP addresses
    with dns-01, modes given as numbers, missing webroots and unknown options fail with a clear message and
    change nothing.
  - With O(certificates), several certificates for the same host are handled in one task, concurrently,
    sharing one ACME client.
  - B(tls-alpn-01 and a running web server.) The responder must own the address and port the CA connects
    to (port 443 of the address the name resolves to). Either give it a free port 443, or route by ALPN in
    front of the web server (the nginx role of this collection can do it), and set O(alpn_address) and
    O(alpn_port) to the internal address the route sends C(acme-tls/1) to. If the port is taken, the task
    fails before the challenge is answered and says so.
author:
  - portail.https contributors (@portail)
requirements:
  - cryptography on the controller
  - on the managed host, a POSIX shell, C(openssl) >= 1.1.1 and GNU coreutils (C(stat -c), C(mv -T));
    Python >= 3.9 for tls-alpn-01 only
  - dnspython >= 2.4 on the controller for dns-01
extends_documentation_fragment:
  - portail.https.attributes
  - portail.https.attributes.action
  - portail.https.attributes.platform
attributes:
  check_mode:
    details: Reports what would happen (and why) without creating orders or touching files.
  diff_mode:
    details: Names and expiry before and after.
options:
  names:
    description:
      - DNS names and IP addresses of the certificate (the first is the subject). A wildcard C(*.example.org)
        needs O(challenge=dns-01); an IP address needs http-01 or tls-alpn-01 (RFC 8738).
      - Mutually exclusive with O(certificates).
    type: list
    elements: str
  certificates:
    description:
      - Several certificates for this host, handled concurrently. Each item takes C(names) and optionally
        C(name) (a label for results), C(key_type), C(key_path), C(cert_path), C(chain_path),
        C(fullchain_path), C(owner), C(group), C(mode), C(key_mode), C(backup), C(challenge), C(webroot),
        C(challenge_dir), C(dns), C(alpn_address), C(alpn_port), C(profile), C(preferred_chain), C(force),
        C(renew_remaining_fraction); anything not given comes from the task's options of the same name.
    type: list
    elements: dict
  key_type:
    description: Type of the certificate's private key. Changing it renews the certificate with a new key.
    type: str
    choices: [ec256, ec384, rsa2048, rsa3072, rsa4096]
    default: ec256
  key_path:
    description: Path of the private key on the managed host (required unless every item of O(certificates) sets it).
    type: str
  cert_path:
    description: Path of the certificate (leaf only) on the managed host.
    type: str
  chain_path:
    description: Path of the intermediate chain on the managed host. Not written when omitted.
    type: str
  fullchain_path:
    description: Path of leaf plus chain on the managed host. Not written when omitted.
    type: str
  owner:
    description: Owner of the key and certificate files (a user name or uid; C(user.group) is refused).
    type: str
  group:
    description: Group of the key and certificate files.
    type: str
  mode:
    description:
      - Mode of the certificate, chain and full chain files, as a quoted octal string. Numbers are refused
        (YAML reads an unquoted V(644) as decimal).
    type: raw
    default: "0644"
  key_mode:
    description:
      - Mode of the private key, as a quoted octal string. Read access for the group (V(0640)) is the most
        it may grant.
    type: raw
    default: "0600"
  backup:
    description: Keep the previous version (key and certificates) in the store next to the key.
    type: bool
    default: true
  acme_directory:
    description: URL of the CA's ACME directory.
    type: str
    required: true
  acme_ca_bundle:
    description: PEM bundle on the controller to verify the ACME server's TLS certificate with.
    type: path
  validate_certs:
    description: Verify the ACME server's TLS certificate.
    type: bool
    default: true
  account_key_src:
    description: Path of the ACME account key on the controller (EC P-256/P-384/P-521 or RSA, PEM).
    type: path
  account_key_content:
    description: The ACME account key itself (PEM). Never logged.
    type: str
  contact:
    description: Account contact URLs (C(mailto:) is added to bare addresses).
    type: list
    elements: str
    default: []
  terms_agreed:
    description: Agree to the CA's terms of service when the account is created.
    type: bool
    default: false
  eab_kid:
    description: External account binding key identifier (for CAs that require it).
    type: str
  eab_hmac_key:
    description: External account binding MAC key (base64url). Never logged.
    type: str
  eab_alg:
    description: External account binding MAC algorithm.
    type: str
    choices: [HS256, HS384, HS512]
    default: HS256
  profile:
    description: Certificate profile to request (for CAs that offer profiles in their directory).
    type: str
  preferred_chain:
    description: Common name of an issuer in the chain to prefer among the alternates the CA offers.
    type: str
  challenge:
    description: How the CA checks control of the names.
    type: str
    choices: [http-01, dns-01, tls-alpn-01]
    default: http-01
  webroot:
    description:
      - For http-01, web roots on the managed host; the token file is written to
        C(<webroot>/.well-known/acme-challenge/<token>) in each. Must exist (checked before any order).
    type: list
    elements: str
    default: []
  challenge_dir:
    description:
      - For http-01, a directory on the managed host that the web server serves as C(/.well-known/acme-challenge/)
        (token files are written straight into it). Must exist.
    type: str
  dns:
    description:
      - For dns-01, how the TXT records are written, from the controller. Each provider takes its own
        options below; the CNAME of C(_acme-challenge) is followed and every authoritative server of the
        target zone must serve the values before the CA is asked. Values left by an earlier failed run are
        removed first. Access to the zones is checked before any order is created.
    type: dict
    suboptions:
      provider:
        description:
          - V(rfc2136) (TSIG-signed dynamic updates), V(pdns) (PowerDNS Authoritative HTTP API),
            V(command) (a controller-side executable called as C(<command> present|cleanup <fqdn> <value> <zone>),
            the shape of lego's exec and certbot's manual hooks) or V(external) (the playbook writes the
            records with any DNS module; see O(resume)).
        type: str
        choices: [rfc2136, pdns, command, external]
        default: rfc2136
      server:
        description: rfc2136 - primary server accepting updates (name or address, optionally C(host:port)).
        type: str
      port:
        description: rfc2136 - port of O(dns.server).
        type: int
      key_name:
        description: rfc2136 - TSIG key name.
        type: str
      key_secret:
        description: rfc2136 - TSIG secret (base64). Never logged.
        type: str
      key_algorithm:
        description: rfc2136 - TSIG algorithm, for example C(hmac-sha256).
        type: str
      api_url:
        description: pdns - base URL of the PowerDNS HTTP API, for example C(https://ns1.example.org:8081).
        type: str
      api_key:
        description: pdns - the API key (X-API-Key). Never logged.
        type: str
      server_id:
        description: pdns - the server id in the API path (C(localhost) when omitted).
        type: str
      api_validate_certs:
        description: pdns - verify the API's TLS certificate (default true).
        type: bool
      api_ca_path:
        description: pdns - CA bundle to verify the API's certificate against.
        type: path
      command:
        description: command - absolute path of the executable on the controller; it and its directories
          must be writable by no one but root or the user running Ansible.
        type: path
      command_env:
        description: command - environment variables for the executable (credentials). Never logged.
        type: dict
      timeout:
        description: Seconds per DNS query, update or API request.
        type: float
      ttl:
        description: TTL of the TXT records.
        type: int
      resolvers:
        description: Servers used for zone discovery, CNAME following and the CAA check.
        type: list
        elements: str
      nameserver_port:
        description: Port on which the zone's authoritative servers are asked.
        type: int
      propagation_timeout:
        description: Seconds to wait until every authoritative server serves the TXT values.
        type: float
  alpn_address:
    description: For tls-alpn-01, address the responder listens on, on the managed host.
    type: str
    default: "0.0.0.0"
  alpn_port:
    description: For tls-alpn-01, port the responder listens on (the CA connects to 443).
    type: int
    default: 443
  renew_remaining_fraction:
    description: Renew when less than this fraction of the certificate's lifetime is left.
    type: float
    default: 0.3333333333333333
  use_ari:
    description: Ask the CA's renewalInfo (ARI) whether to renew a certificate that is otherwise still good.
    type: bool
    default: true
  preflight:
    description:
      - Before the CA is asked to validate, fetch each http-01 token (or complete the acme-tls/1 handshake for
        tls-alpn-01) from the controller at every address the name resolves to (A and AAAA), so that a pool
        member or an address that would fail the CA's check stops the order before the CA records a failed
        authorization (CAs pause names after repeated failures).
      - An address the controller has no route to is only a warning. Switch this off when the controller
        cannot reach the hosts' ports 80/443 at all.
    type: bool
    default: true
  preflight_resolvers:
    description:
      - DNS servers (IP addresses) to resolve the names with for the pre-flight; the controller's resolver
        when empty. Give the resolvers the CA sees when the controller's view of DNS differs (split horizon).
    type: list
    elements: str
    default: []
  caa_check:
    description:
      - Before ordering, resolve the CAA records of every name as RFC 8659 climbs the tree and fail, naming
        the name, the record and what to add, when they would make the CA refuse (the CA is not among the
        C(issue)/C(issuewild) values, or RFC 8657 C(accounturi)/C(validationmethods) exclude this account or
        challenge). Only with CAs that publish C(caaIdentities) in their directory.
      - Resolved through O(dns.resolvers), else O(preflight_resolvers), else the controller's resolvers.
    type: bool
    default: true
  resume:
    description:
      - For dns-01 with O(dns.provider=external), the second run of the two; pass RV(resume) of the first run
        once the playbook has created RV(dns_records). The run waits until every authoritative server of each
        record's zone serves it, answers the CA, finalizes with the key made in the first run and deploys.
      - The certificate role does this for you around the task file you name.
    type: list
    elements: dict
  abort:
    description:
      - With O(resume), give back the pending key and the host's lock of the first run without ordering
        anything (after the playbook failed to create the records).
    type: bool
    default: false
  force:
    description: Issue a new certificate even when the current one is good.
    type: bool
    default: false
  timeout:
    description: Overall seconds for one order (validation, finalization, download).
    type: float
    default: 300
  concurrency:
    description: How many certificates of O(certificates) are processed at the same time.
    type: int
    default: 4
  record:
    description:
      - The bookkeeping of the P(portail.https.certificate#role) role, done in the first host round trip
        the task makes anyway, so that a run with nothing to change costs that single round trip.
      - Keys C(fact_file) (the role's fact file, required), C(metrics_dir) (node_exporter's textfile
        directory; empty for none), C(certificates) (a list of C(name), C(names) and C(cert_path), for the labels of the
        metrics, the SNI and the certificate on disk to compare with what is served),
        C(served_port) (where the web server answers TLS; V(0) to skip that probe) and C(served_address)
        (an IP address, default V(127.0.0.1)).
      - The task then reads the first 48 bytes of the fact file (the digest of the state it records), says
        whether the metrics file exists, rewrites C(portail_https_check.prom) in O(record) C(metrics_dir) with
        the host's clock and, for each certificate, whether the one served for its first DNS name is the one at
        C(cert_path) (not in check mode; the directory must belong to root and be writable by root only).
        See RV(record).
      - Not done in the second phase of O(resume).
    type: dict
notes:
  - The ACME account is looked up (or created) only when an order is needed.
  - Polling honours C(Retry-After) and stops at O(timeout).
seealso:
  - module: portail.https.https_verify
"""

EXAMPLES = r"""
- name: Certificate for www over http-01 into nginx's webroot
  portail.https.acme_certificate:
    names: [www.example.org, example.org]
    acme_directory: https://acme-v02.api.letsencrypt.org/directory
    account_key_src: acme-account.key        # on the controller: found like any file (files/, playbook dir)
    contact: [hostmaster@example.org]
    terms_agreed: true
    webroot: /var/www/html
    key_path: /etc/ssl/portail/www/privkey.pem
    cert_path: /etc/ssl/portail/www/cert.pem
    chain_path: /etc/ssl/portail/www/chain.pem
    fullchain_path: /etc/ssl/portail/www/fullchain.pem
  register: cert
  notify: Reload nginx

- name: Wildcard plus apex over dns-01 (RFC 2136 from the controller)
  portail.https.acme_certificate:
    names: ["*.example.org", example.org]
    challenge: dns-01
    dns:
      server: ns1.example.org
      key_name: acme-update
      key_secret: "{{ vault_tsig_secret }}"
      key_algorithm: hmac-sha256
    acme_directory: https://acme-v02.api.letsencrypt.org/directory
    account_key_content: "{{ vault_account_key }}"
    terms_agreed: true
    key_path: /etc/ssl/portail/wild/privkey.pem
    cert_path: /etc/ssl/portail/wild/cert.pem
    fullchain_path: /etc/ssl/portail/wild/fullchain.pem

- name: Two certificates at once, one of them on a short-lived profile
  portail.https.acme_certificate:
    acme_directory: https://acme-v02.api.letsencrypt.org/directory
    account_key_src: acme-account.key
    terms_agreed: true
    webroot: /var/www/html
    certificates:
      - {name: www, names: [www.example.org], key_path: /etc/ssl/www.key, cert_path: /etc/ssl/www.crt}
      - name: api
        names: [api.example.org, 192.0.2.10]
        profile: shortlived
        key_type: rsa2048
        key_path: /etc/ssl/api.key
        cert_path: /etc/ssl/api.crt
"""

RETURN = r"""
reason:
  description: Why the certificate was (or would be) issued, or V(valid). Single form only.
  returned: success, single form
  type: str
  sample: expiring
reason_msg:
  description: The reason in words.
  returned: success, single form
  type: str
  sample: 20.1 days left of 90, less than 33% of the lifetime (renew_remaining_fraction)
serial:
  description: Serial number (hexadecimal) of the certificate now deployed.
  returned: success, single form
  type: str
not_before:
  description: Start of validity (ISO 8601).
  returned: success, single form
  type: str
not_after:
  description: End of validity (ISO 8601).
  returned: success, single form
  type: str
names:
  description: Names in the certificate.
  returned: success, single form
  type: list
  elements: str
issuer:
  description: Issuer distinguished name.
  returned: success, single form
  type: str
key_type:
  description: Type of the certificate's key.
  returned: success, single form
  type: str
replaces:
  description: ARI certificate identifier sent as C(replaces) in the order.
  returned: when a renewal was ordered from a CA with ARI
  type: str
renew_at:
  description: When the certificate will be renewed at the latest (ISO 8601), by the lifetime rule or the
    point picked in the CA's ARI window.
  returned: when there is a certificate
  type: str
renewal_window:
  description: The CA's suggested renewal window (ARI), with C(start) and C(end) (ISO 8601).
  returned: when the CA was asked for it
  type: dict
step:
  description: 'The step that failed: V(inspect), V(lock), V(account), V(order), V(authorization),
    V(challenge), V(validation), V(finalize), V(download), V(deploy) or V(cleanup).'
  returned: failure, single form
  type: str
problem:
  description: The CA's problem document (RFC 7807) of the failure, with C(type), C(detail), C(status),
    C(identifier) and C(subproblems).
  returned: failure, when the CA sent one
  type: dict
resume:
  description: With O(dns.provider=external), what the second run needs (one entry per certificate that
    waits for its records). Hand it back unchanged as O(resume).
  returned: when records are to be created by the playbook
  type: list
  elements: dict
dns_records:
  description: With O(dns.provider=external), the TXT records to create, one entry per value, with C(name)
    (C(_acme-challenge.<name>)), C(target) (where the CNAME chain of C(name) ends, the name to write),
    C(zone) (the zone holding C(target)), C(value) and C(certificate).
  returned: when records are to be created by the playbook
  type: list
  elements: dict
certificates:
  description: One entry per certificate with the fields above plus C(name), C(changed), C(failed),
    C(msg), C(step), C(problem) and the paths.
  returned: always
  type: list
  elements: dict
acme_requests:
  description: HTTP requests sent to the CA by this task, retries included.
  returned: always
  type: int
  sample: 0
acme_retries:
  description: Of RV(acme_requests), those sent again because the CA rejected their nonce (C(badNonce), which
    RFC 8555 lets a CA do at any time; Pebble does it to 5% of requests by default).
  returned: always
  type: int
  sample: 0
record:
  description:
    - What the first host round trip found for O(record).
    - C(head) is the start of the fact file (empty when there is none), C(metrics) is V(present), V(missing),
      V(absent) (no such directory) or V(untrusted), C(check) is what became of C(portail_https_check.prom)
      (V(written), V(skipped) in check mode, V(absent), V(untrusted), V(failed)), and C(served) maps each
      certificate to the serial (lowercase hex) served on C(served_address:served_port), for the certificates
      this run did not change and for which something answered.
  returned: when O(record) is set and a host round trip was made
  type: dict
  sample:
    head: "{\n  \"state\": \"0f3c...\","
    metrics: present
    check: written
    served: {"www": "4a1f0c"}
"""
