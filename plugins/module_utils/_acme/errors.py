# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors of the ACME engine.

RFC 7807 problem documents (with RFC 8555 subproblems) become :class:`ProblemError` subclasses
chosen by the problem type; their message names the identifier, the challenge type and the CA's
own detail, so a failed task tells the user what the CA said about which name.
"""

from __future__ import annotations

import json
from typing import Any, Optional

ACME_ERROR_PREFIX = "urn:ietf:params:acme:error:"


class AcmeError(Exception):
    """Base class of every error raised by the ACME engine."""


class TransportError(AcmeError):
    """The CA could not be reached or answered something that is not HTTP/ACME."""


class AcmeTimeout(AcmeError):
    """An overall deadline expired while waiting on the CA."""


class UnsupportedError(AcmeError):
    """The CA does not offer what was asked for (profile, ARI, key change, ...)."""


class ChainNotFound(AcmeError):
    """No certificate chain matched."""


class Subproblem:
    """One entry of a problem document's ``subproblems`` list."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.type: str = str(data.get("type") or "about:blank")
        self.detail: str = str(data.get("detail") or "")
        ident = data.get("identifier") or {}
        self.identifier: Optional[str] = ident.get("value") if isinstance(ident, dict) else None

    @property
    def short_type(self) -> str:
        return short_type(self.type)

    def __str__(self) -> str:
        who = f"{self.identifier}: " if self.identifier else ""
        return f"{who}{self.short_type}: {self.detail}".rstrip(": ")


def short_type(problem_type: str) -> str:
    if problem_type.startswith(ACME_ERROR_PREFIX):
        return problem_type[len(ACME_ERROR_PREFIX) :]
    return problem_type


class ProblemError(AcmeError):
    """The CA answered with a problem document (or an HTTP error without one)."""

    def __init__(
        self,
        problem: dict[str, Any],
        *,
        status: Optional[int] = None,
        url: Optional[str] = None,
        identifier: Optional[str] = None,
        challenge_type: Optional[str] = None,
        retry_after: Optional[float] = None,
        context: Optional[str] = None,
    ) -> None:
        self.problem = dict(problem)
        self.type: str = str(problem.get("type") or "about:blank")
        self.detail: str = str(problem.get("detail") or problem.get("title") or "")
        self.status = status if status is not None else problem.get("status")
        self.url = url
        ident = problem.get("identifier") or {}
        self.identifier = identifier or (ident.get("value") if isinstance(ident, dict) else None)
        self.challenge_type = challenge_type
        self.retry_after = retry_after
        self.context = context
        subs = problem.get("subproblems") or []
        self.subproblems = [Subproblem(s) for s in subs if isinstance(s, dict)]
        super().__init__(self._message())

    @property
    def short_type(self) -> str:
        return short_type(self.type)

    def _message(self) -> str:
        parts = []
        if self.context:
            parts.append(self.context)
        where = []
        if self.identifier:
            where.append(f"identifier {self.identifier}")
        if self.challenge_type:
            where.append(f"challenge {self.challenge_type}")
        if where:
            parts.append(", ".join(where))
        ca = f"CA error {self.short_type}"
        if self.status:
            ca += f" (HTTP {self.status})"
        if self.detail:
            ca += f": {self.detail}"
        parts.append(ca)
        msg = "; ".join(parts)
        if self.subproblems:
            msg += " [" + "; ".join(str(s) for s in self.subproblems) + "]"
        return msg

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "detail": self.detail,
            "status": self.status,
            "identifier": self.identifier,
            "challenge_type": self.challenge_type,
            "subproblems": [{"type": s.type, "detail": s.detail, "identifier": s.identifier} for s in self.subproblems],
        }


class BadNonce(ProblemError):
    pass


class RateLimited(ProblemError):
    pass


class Unauthorized(ProblemError):
    pass


class AccountDoesNotExist(ProblemError):
    pass


class OrderNotReady(ProblemError):
    pass


class Malformed(ProblemError):
    pass


class ExternalAccountRequired(ProblemError):
    pass


class AlreadyReplaced(ProblemError):
    pass


class AlreadyRevoked(ProblemError):
    pass


class ValidationFailed(ProblemError):
    """A challenge or authorization ended invalid."""


class ServerError(ProblemError):
    pass


_BY_TYPE: dict[str, type[ProblemError]] = {
    "badNonce": BadNonce,
    "rateLimited": RateLimited,
    "unauthorized": Unauthorized,
    "accountDoesNotExist": AccountDoesNotExist,
    "orderNotReady": OrderNotReady,
    "malformed": Malformed,
    "externalAccountRequired": ExternalAccountRequired,
    "alreadyReplaced": AlreadyReplaced,
    "alreadyRevoked": AlreadyRevoked,
    "serverInternal": ServerError,
    "connection": ValidationFailed,
    "dns": ValidationFailed,
    "incorrectResponse": ValidationFailed,
    "tls": ValidationFailed,
    "caa": ValidationFailed,
    "rejectedIdentifier": ValidationFailed,
}


def problem_class(problem_type: str) -> type[ProblemError]:
    return _BY_TYPE.get(short_type(problem_type), ProblemError)


def parse_problem(body: bytes, content_type: str = "", status: Optional[int] = None) -> dict[str, Any]:
    """Return a problem document from an HTTP error body (a synthetic one if the body is not JSON)."""
    data: Any = None
    if body:
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            data = None
    if isinstance(data, dict) and ("type" in data or "detail" in data):
        return data
    text = body.decode("utf-8", "replace").strip()[:300] if body else ""
    return {"type": "about:blank", "detail": text or f"HTTP {status}", "status": status}


def problem_error(
    problem: dict[str, Any],
    *,
    status: Optional[int] = None,
    url: Optional[str] = None,
    identifier: Optional[str] = None,
    challenge_type: Optional[str] = None,
    retry_after: Optional[float] = None,
    context: Optional[str] = None,
) -> ProblemError:
    """Build the typed exception for a problem document."""
    cls = problem_class(str(problem.get("type") or ""))
    return cls(
        problem,
        status=status,
        url=url,
        identifier=identifier,
        challenge_type=challenge_type,
        retry_after=retry_after,
        context=context,
    )
