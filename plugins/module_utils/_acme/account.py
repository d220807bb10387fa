# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACME accounts (RFC 8555 section 7.3): create, find, update, EAB, key rollover, deactivate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from .errors import AccountDoesNotExist, AcmeError
from .keys import AccountKey, eab_jws


class Account:
    """The account of an :class:`AcmeClient` (its key, its URL, its data)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.data: dict[str, Any] = {}

    @property
    def url(self) -> Optional[str]:
        return self.client.account_url

    @property
    def status(self) -> Optional[str]:
        return self.data.get("status")

    @property
    def contact(self) -> list[str]:
        return list(self.data.get("contact") or [])

    def _new_account(self, payload: dict[str, Any], context: str) -> tuple[bool, dict[str, Any]]:
        url = self.client.directory["newAccount"]
        resp = self.client.post(url, payload, kind="newAccount", use_jwk=True, context=context)
        if not resp.location:
            raise AcmeError("the CA did not return the account URL (Location)")
        self.client.account_url = resp.location
        data = resp.json() if resp.body else {}
        self.data = data if isinstance(data, dict) else {}
        return resp.status == 201, self.data

    def find(self) -> bool:
        """Look the account up by its key (onlyReturnExisting). True if it exists."""
        try:
            self._new_account({"onlyReturnExisting": True}, "looking up the ACME account")
        except AccountDoesNotExist:
            self.data = {}
            return False
        if not self.data or "status" not in self.data:
            self.refresh()
        return True

    def create(
        self,
        contact: Optional[Sequence[str]] = None,
        terms_agreed: bool = False,
        eab_kid: Optional[str] = None,
        eab_hmac_key: Optional[str] = None,
        eab_alg: str = "HS256",
    ) -> bool:
        """Create the account (or find it: the CA returns the existing one). True if it was created."""
        directory = self.client.directory
        payload: dict[str, Any] = {}
        if contact is not None:
            payload["contact"] = list(contact)
        if terms_agreed:
            payload["termsOfServiceAgreed"] = True
        if eab_kid or eab_hmac_key:
            if not (eab_kid and eab_hmac_key):
                raise AcmeError("external account binding needs both a key identifier and an HMAC key")
            payload["externalAccountBinding"] = eab_jws(
                self.client.key.jwk, eab_kid, eab_hmac_key, directory["newAccount"], eab_alg
            )
        elif directory.external_account_required:
            raise AcmeError(f"the CA {directory.url} requires external account binding (EAB key id and HMAC key)")
        created, _data = self._new_account(payload, "creating the ACME account")
        return created

    def refresh(self) -> dict[str, Any]:
        data, _resp = self.client.get_json(self._url(), kind="account")
        self.data = data if isinstance(data, dict) else {}
        return self.data

    def _url(self) -> str:
        if not self.client.account_url:
            raise AcmeError("no ACME account URL: find or create the account first")
        return str(self.client.account_url)

    def update(self, contact: Optional[Sequence[str]] = None, terms_agreed: bool = False) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if contact is not None:
            payload["contact"] = list(contact)
        if terms_agreed:
            payload["termsOfServiceAgreed"] = True
        resp = self.client.post(self._url(), payload, kind="account", context="updating the ACME account")
        data = resp.json()
        self.data = data if isinstance(data, dict) else {}
        return self.data

    def deactivate(self) -> dict[str, Any]:
        resp = self.client.post(
            self._url(), {"status": "deactivated"}, kind="account", context="deactivating the ACME account"
        )
        data = resp.json()
        self.data = data if isinstance(data, dict) else {}
        return self.data

    def rollover(self, new_key: AccountKey) -> None:
        """Replace the account key (RFC 8555 section 7.3.5); the client signs with new_key afterwards."""
        url = self.client.directory["keyChange"]
        account_url = self._url()
        old_key: AccountKey = self.client.key
        inner = new_key.jws_object(
            {"alg": new_key.alg, "jwk": new_key.jwk, "url": url}, {"account": account_url, "oldKey": old_key.jwk}
        )
        self.client.post(url, inner, kind="keyChange", context="rolling the ACME account key over")
        self.client.key = new_key

    def orders_url(self) -> Optional[str]:
        return self.data.get("orders")
