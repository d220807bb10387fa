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
    description:
      - Passphrase of an encrypted account key (PKCS#8 C(ENCRYPTED PRIVATE KEY) or a traditional encrypted PEM),
        given with O(account_key_src) or O(account_key_content). Never logged.
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
  acme_proxy:
    description:
      - URL of an HTTP proxy (V(http://proxy.example.org:3128), optionally with C(user:password@)) through which
        every request to the CA goes. It replaces the environment's proxy variables.
        Never logged (it may hold a password).
      - C(https://) requests go through the proxy with C(CONNECT), and TLS runs between the module and the CA, so the
        CA's certificate is still checked against O(acme_ca_bundle) or the system store.
      - When not set, the C(https_proxy) / C(HTTPS_PROXY) and C(http_proxy) / C(HTTP_PROXY) environment variables
        of the process that runs the module are used, and C(no_proxy) / C(NO_PROXY) names the hosts reached
        directly (the rules of Python's C(urllib)); set them with the task's C(environment) keyword.
    type: str
    version_added: 0.1.0
  use_proxy:
    description:
      - Set to V(false) to ignore the proxy environment variables and reach the CA directly.
        An O(acme_proxy) is used either way.
    type: bool
    default: true
    version_added: 0.1.0
notes:
  - The ACME engine is the collection's own RFC 8555 client; it needs the Python C(cryptography) library
    on the host that runs the module.
requirements:
  - cryptography >= 3.4
"""
