# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter portail.https.acme_thumbprint: the RFC 7638 JWK thumbprint of a PEM key or certificate.

Documentation: acme_thumbprint.yml next to this file.
"""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes

try:
    from ansible_collections.portail.https.plugins.module_utils._acme.errors import AcmeError
    from ansible_collections.portail.https.plugins.module_utils._acme.keys import thumbprint_from_pem
except ImportError as exc:  # cryptography missing on the controller
    IMPORT_ERROR: t.Optional[ImportError] = exc
else:
    IMPORT_ERROR = None


def acme_thumbprint(pem: t.Any, passphrase: t.Any = None) -> str:
    if IMPORT_ERROR is not None:
        raise AnsibleFilterError(f"acme_thumbprint needs the Python cryptography library: {IMPORT_ERROR}")
    if not isinstance(pem, (str, bytes)) or not pem:
        raise AnsibleFilterError("acme_thumbprint expects PEM text (a key or a certificate)")
    if passphrase is not None and not isinstance(passphrase, (str, bytes)):
        raise AnsibleFilterError("acme_thumbprint: the passphrase must be a string")
    try:
        return thumbprint_from_pem(to_bytes(pem), to_bytes(passphrase) if passphrase else None)
    except AcmeError as exc:
        raise AnsibleFilterError(f"acme_thumbprint: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"acme_thumbprint": acme_thumbprint}
