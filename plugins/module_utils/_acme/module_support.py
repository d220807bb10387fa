# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between AnsibleModule parameters (doc fragment portail.https.acme) and the engine."""

from __future__ import annotations

from typing import Any, Optional

from .client import AcmeClient
from .errors import AcmeError
from .keys import AccountKey


def acme_argument_spec() -> dict[str, Any]:
    return {
        "acme_directory": {"type": "str", "required": True},
        "account_key_src": {"type": "path", "no_log": False},
        "account_key_content": {"type": "str", "no_log": True},
        "account_key_passphrase": {"type": "str", "no_log": True},
        "account_uri": {"type": "str"},
        "validate_certs": {"type": "bool", "default": True},
        "acme_ca_bundle": {"type": "path", "aliases": ["ca_bundle"]},
        "request_timeout": {"type": "float", "default": 30},
        "acme_proxy": {"type": "str", "no_log": True},
        "use_proxy": {"type": "bool", "default": True},
    }


def load_key(src: Optional[str], content: Optional[str], passphrase: Optional[str], what: str) -> AccountKey:
    if content:
        data = content.encode("utf-8")
    elif src:
        try:
            with open(src, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise AcmeError(f"cannot read the {what} {src}: {exc.strerror}") from None
    else:
        raise AcmeError(f"the {what} is missing")
    try:
        return AccountKey.from_pem(data, passphrase.encode("utf-8") if passphrase else None)
    except AcmeError as exc:
        raise AcmeError(f"{what}: {exc}") from None


def client_from_params(params: dict[str, Any], key: Optional[AccountKey] = None) -> AcmeClient:
    if key is None:
        key = load_key(
            params.get("account_key_src"),
            params.get("account_key_content"),
            params.get("account_key_passphrase"),
            "account key",
        )
    return AcmeClient(
        params["acme_directory"],
        key,
        account_url=params.get("account_uri") or None,
        ca_bundle=params.get("acme_ca_bundle") or params.get("ca_bundle"),
        validate_certs=params.get("validate_certs", True),
        timeout=float(params.get("request_timeout") or 30),
        proxy=params.get("acme_proxy") or None,
        use_proxy=params.get("use_proxy", True),
    )
