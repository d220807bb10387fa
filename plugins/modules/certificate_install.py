#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_install
short_description: Install a private key and its certificates on a host in one atomic switch
version_added: 0.1.0
description:
  - Installs a given private key with its certificate, chain and full chain, the way
    M(portail.https.acme_certificate) deploys (a versioned store next to the key, one rename switches
    every file at once, the key checked against the certificate on the host right before the switch,
    directories that others can write refused, no symlink followed). It is an action plugin that runs
    one POSIX shell command with C(openssl) on the host; the key travels on standard input, never on
    a command line.
  - The certificate role uses it to give the members of a pool the certificate their leader issued.
    Write your own copy with M(ansible.builtin.copy) and the files are switched one by one.
  - Nothing changes when the same certificate is already installed with a key that matches.
author:
  - portail.https contributors (@portail)
extends_documentation_fragment:
  - portail.https.attributes
  - portail.https.attributes.action
  - portail.https.attributes.platform
options:
  key_path:
    description: Path of the private key on the host.
    type: str
    required: true
  cert_path:
    description: Path of the certificate.
    type: str
    required: true
  chain_path:
    description: Path of the chain (intermediates).
    type: str
  fullchain_path:
    description: Path of the certificate followed by the chain.
    type: str
  key_content:
    description: The private key (PEM). Never logged.
    type: str
    required: true
  cert_content:
    description: The certificate (PEM).
    type: str
    required: true
  chain_content:
    description: The chain (PEM).
    type: str
    default: ""
  owner:
    description: Owner of the files (a name or uid; the directories stay root's).
    type: str
  group:
    description: Group of the files.
    type: str
  mode:
    description: Mode of the certificate files, a quoted octal string.
    type: str
    default: "0644"
  key_mode:
    description: Mode of the key, a quoted octal string; group read at most.
    type: str
    default: "0600"
seealso:
  - module: portail.https.acme_certificate
"""

EXAMPLES = r"""
- name: Give a pool member the leader's certificate
  portail.https.certificate_install:
    key_path: /etc/ssl/portail/pool/privkey.pem
    cert_path: /etc/ssl/portail/pool/cert.pem
    chain_path: /etc/ssl/portail/pool/chain.pem
    fullchain_path: /etc/ssl/portail/pool/fullchain.pem
    key_content: "{{ leader_key.content | b64decode }}"
    cert_content: "{{ leader_cert.content | b64decode }}"
    chain_content: "{{ leader_chain.content | b64decode }}"
  no_log: true
"""

RETURN = r"""
serial:
  description: Serial number (hexadecimal) of the installed certificate.
  returned: success
  type: str
"""
