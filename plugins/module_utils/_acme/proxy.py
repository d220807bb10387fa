# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which HTTP proxy, if any, a request to the CA goes through.

The rules are the ones Python's ``urllib`` (and so ``ansible.module_utils.urls``) applies:
``https_proxy`` / ``HTTPS_PROXY`` for ``https://`` URLs, ``http_proxy`` / ``HTTP_PROXY`` for
``http://`` ones, ``no_proxy`` / ``NO_PROXY`` for the hosts to reach directly (the decision is made
by ``urllib.request.proxy_bypass_environment``). An explicit proxy URL replaces the environment.

``https://`` URLs go through the proxy with ``CONNECT`` (the TLS session, and the check of the CA's
certificate, stay end to end between us and the CA); ``http://`` URLs (test CAs) are sent to the
proxy with their absolute URI. Only plain-HTTP proxies (``http://host:port``) are supported.
"""

from __future__ import annotations

import base64
import urllib.parse
import urllib.request
from typing import Optional

from .errors import AcmeError


class Proxy:
    """An HTTP proxy: where it listens and the Proxy-Authorization header, if it needs one."""

    def __init__(self, host: str, port: int, authorization: Optional[str] = None) -> None:
        self.host = host
        self.port = port
        self.authorization = authorization

    @property
    def display(self) -> str:
        """The proxy's address without its credentials (for messages)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Proxy-Authorization": self.authorization} if self.authorization else {}

    def __repr__(self) -> str:
        return f"Proxy({self.display!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Proxy) and (self.host, self.port, self.authorization) == (
            other.host,
            other.port,
            other.authorization,
        )

    def __hash__(self) -> int:
        return hash((self.host, self.port))


def parse_proxy(url: str) -> Proxy:
    """``http://[user:password@]host[:port]`` (the scheme may be left out; the port defaults to 80)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise AcmeError("the proxy URL is not valid (expected http://host:port)") from None
    if parts.scheme.lower() != "http":
        raise AcmeError(f"only http:// proxy URLs are supported (CONNECT over plain HTTP), not {parts.scheme}://")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise AcmeError("the proxy URL is not valid (expected http://host:port)")
    authorization = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    return Proxy(parts.hostname, port or 80, authorization)


def proxy_for(
    url: str,
    explicit: Optional[str] = None,
    use_proxy: bool = True,
) -> Optional[Proxy]:
    """The proxy to use for ``url``, or None for a direct connection.

    :param explicit: a proxy URL that replaces the environment (used for every URL).
    :param use_proxy: False ignores the environment (an explicit proxy is still used).
    """
    if explicit:
        return parse_proxy(explicit)
    if not use_proxy:
        return None
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get(scheme)
    if not chosen or not parts.hostname:
        return None
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 - public, but not in typeshed
    if "no" in proxies and bypass(parts.netloc, proxies):
        return None
    return parse_proxy(chosen)
