# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adapter from the ``AcmeSession`` protocol of ``_certificate_run`` to the collection's ACME engine
(plugins/module_utils/_acme/). No protocol code lives here: there is one ACME client in the collection.

Thread-safe: the list form of acme_certificate shares one session (one engine client) between threads.
"""

from __future__ import annotations

import threading
import time
import typing as t

from ansible_collections.portail.https.plugins.module_utils._acme.account import Account
from ansible_collections.portail.https.plugins.module_utils._acme.challenges import tls_alpn01_certificate
from ansible_collections.portail.https.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.portail.https.plugins.module_utils._acme.errors import AcmeError, UnsupportedError
from ansible_collections.portail.https.plugins.module_utils._acme.module_support import load_key
from ansible_collections.portail.https.plugins.module_utils._acme.order import Authorization, Order
from ansible_collections.portail.https.plugins.module_utils._acme.utils import Deadline
from ansible_collections.portail.https.plugins.plugin_utils._certificate_run import Challenge

__all__ = ["AcmeError", "EngineSession"]


def _deadline(monotonic_end: float, what: str) -> Deadline:
    """_certificate_run passes absolute time.monotonic() deadlines; the engine takes Deadline objects."""
    dl = Deadline(max(0.0, monotonic_end - time.monotonic()), what)
    dl.end = monotonic_end
    return dl


class EngineSession:
    def __init__(
        self,
        *,
        directory_url: str,
        account_key_pem: str,
        contact: t.Optional[list[str]] = None,
        terms_agreed: bool = False,
        eab_kid: t.Optional[str] = None,
        eab_hmac_key: t.Optional[str] = None,
        eab_alg: str = "HS256",
        ca_bundle: t.Optional[str] = None,
        validate_certs: bool = True,
        http_timeout: float = 20.0,
        account_key_passphrase: t.Optional[str] = None,
        proxy: t.Optional[str] = None,
        use_proxy: bool = True,
    ) -> None:
        self.directory_url = directory_url
        self.client = AcmeClient(
            directory_url,
            load_key(None, account_key_pem, account_key_passphrase, "account key"),
            ca_bundle=ca_bundle,
            validate_certs=validate_certs,
            timeout=http_timeout,
            proxy=proxy,
            use_proxy=use_proxy,
        )
        self._contact = [c if ":" in c else f"mailto:{c}" for c in (contact or [])]
        self._terms = terms_agreed
        self._eab = (eab_kid, eab_hmac_key, eab_alg) if eab_kid and eab_hmac_key else None
        self._account_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EngineSession({self.directory_url!r})"

    def request_count(self) -> int:
        return self.client.requests

    def retry_count(self) -> int:
        """Requests sent again because the CA rejected their nonce (badNonce), included in request_count."""
        return self.client.bad_nonce_retried

    def ensure_account(self) -> None:
        with self._account_lock:
            if self.client.account_url:
                return
            account = Account(self.client)
            if not account.find():
                kid, hmac_key, alg = self._eab or (None, None, "HS256")
                account.create(self._contact or None, self._terms, kid, hmac_key, alg)

    def has_ari(self) -> bool:
        return bool(self.client.directory.renewal_info)

    def renewal_info(self, cert_id: str) -> dict[str, t.Any]:
        """The CA's renewalInfo document for a certID (``_certificate_request.ari_says_renew`` decides)."""
        base = self.client.directory.renewal_info
        if not base:
            raise UnsupportedError(f"the CA {self.directory_url} does not offer renewal information (ARI)")
        resp = self.client.http("GET", base.rstrip("/") + "/" + cert_id, kind="renewalInfo")
        if resp.status != 200:
            raise self.client._error(resp, context="fetching renewal information")
        data = resp.json()
        return data if isinstance(data, dict) else {}

    def new_order(
        self, identifiers: list[dict[str, str]], profile: t.Optional[str], replaces: t.Optional[str]
    ) -> Order:
        return self.client.new_order(identifiers, profile=profile, replaces=replaces)

    def challenges(self, order: Order, challenge_type: str) -> list[Challenge]:
        return [
            Challenge(
                identifier=c.identifier,
                id_type=c.authz.identifier_type,
                wildcard=c.authz.wildcard,
                type=c.type,
                token=c.token,
                url=c.url,
                authz_url=c.authz.url,
                key_authorization=c.key_authorization,
            )
            for c in order.pending_challenges(challenge_type)
        ]

    def respond(self, challenge: Challenge) -> None:
        self.client.post(
            challenge.url, {}, kind="challenge", context=f"answering {challenge.type} for {challenge.identifier}"
        )

    def wait_valid(self, challenge: Challenge, deadline: float) -> None:
        ident = {"type": challenge.id_type, "value": challenge.identifier}
        authz = Authorization(
            self.client, challenge.authz_url, {"status": "pending", "identifier": ident, "wildcard": challenge.wildcard}
        )
        authz.wait_valid(_deadline(deadline, f"validation of {challenge.identifier}"))

    def finalize(self, order: Order, csr_pem: str, deadline: float) -> Order:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        der = x509.load_pem_x509_csr(csr_pem.encode("ascii")).public_bytes(serialization.Encoding.DER)
        order.finalize(der, _deadline(deadline, "waiting for the certificate"))
        return order

    def download(self, order: Order, preferred_chain: t.Optional[str]) -> tuple[str, str]:
        chain = order.download(preferred_chain)
        return chain.cert_pem.decode("ascii"), chain.chain_pem.decode("ascii")

    def alpn_certificate(self, challenge: Challenge) -> tuple[str, str]:
        cert_pem, key_pem = tls_alpn01_certificate(challenge.identifier, challenge.key_authorization)
        return cert_pem.decode("ascii"), key_pem.decode("ascii")
