# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate chains as downloaded from the CA and the preferred-chain choice."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID
except ImportError:  # reported by require_cryptography() (keys.py)
    pass

_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.S)


def split_pem(data: bytes) -> list[bytes]:
    return [m.group(0) + b"\n" for m in _PEM_RE.finditer(data)]


def _cn(name: x509.Name) -> Optional[str]:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


class Chain:
    """One PEM chain: the leaf first, then the issuers the CA sent."""

    def __init__(self, pem: bytes, url: str = "") -> None:
        self.pem = pem
        self.url = url
        self.pems = split_pem(pem)
        if not self.pems:
            raise ValueError(f"no certificate in the CA's answer {url}")
        self.certificates = [x509.load_pem_x509_certificate(p) for p in self.pems]

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def cert_pem(self) -> bytes:
        return self.pems[0]

    @property
    def chain_pem(self) -> bytes:
        """The issuers without the leaf."""
        return b"".join(self.pems[1:])

    @property
    def fullchain_pem(self) -> bytes:
        return b"".join(self.pems)

    @property
    def root_name(self) -> Optional[str]:
        """CN of the top of the chain: its issuer (the root), as the chain usually stops below it."""
        return _cn(self.certificates[-1].issuer)

    def names(self) -> list[str]:
        """CNs of every issuer and subject above the leaf, and the top issuer."""
        names = []
        for cert in self.certificates[1:]:
            for n in (_cn(cert.subject), _cn(cert.issuer)):
                if n and n not in names:
                    names.append(n)
        top = _cn(self.leaf.issuer) if len(self.certificates) == 1 else None
        if top and top not in names:
            names.append(top)
        return names

    def matches(self, preferred: str) -> bool:
        """True if preferred is the CN of the chain's root (top issuer) or of any issuer in it."""
        return preferred == self.root_name or preferred in self.names()

    def der(self) -> bytes:
        return self.leaf.public_bytes(serialization.Encoding.DER)


def choose_chain(chains: Sequence[Chain], preferred: Optional[str]) -> Chain:
    """The first chain whose root CN is preferred, else one with preferred anywhere above the leaf, else the first."""
    if preferred:
        for chain in chains:
            if chain.root_name == preferred:
                return chain
        for chain in chains:
            if chain.matches(preferred):
                return chain
    return chains[0]
