# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options shared by the modules that talk to an ACME CA.
    DOCUMENTATION = r"""
options:
  acme_directory:
    description:
      - URL of the ACME CA's directory, for example V(https://acme-v02.api.letsencrypt.org/directory).
      - C(http://) URLs are accepted for test CAs only.
    type: str
    required: true
  account_key_src:
    description:
      - Path to the ACME account's private key (PEM; EC P-256, EC P-384 or RSA of at least 2048 bits).
      - Mutually exclusive with O(account_key_content).
    type: path
  account_key_content:
    description:
      - The ACME account's private key as PEM text. Never logged.
      - Mutually exclusive with O(account_key_src).
    type: str
  account_key_passphrase:
    description: Passphrase of an encrypted account key.
    type: str
  account_uri:
    description:
      - The account URL when known. Saves one request; the module checks it belongs to the key otherwise.
    type: str
  validate_certs:
    description:
      - Verify the CA's TLS certificate. Only switch this off for test CAs.
    type: bool
    default: true
  acme_ca_bundle:
    description:
      - PEM file of CA certificates to verify the ACME server's TLS certificate against, instead of the
        system trust store.
      - The same option name as in P(portail.https.acme_certificate#module).
    type: path
    aliases: [ca_bundle]
  request_timeout:
    description: Seconds to wait for each HTTP answer of the CA.
    type: float
    default: 30
notes:
  - The ACME engine is the collection's own RFC 8555 client; it needs the Python C(cryptography) library
    on the host that runs the module.
requirements:
  - cryptography >= 3.4
"""
