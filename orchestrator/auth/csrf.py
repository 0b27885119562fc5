"""CSRF protection for requests authenticated by the session cookie.

A browser sends the cookie with any request to the server, also one another site makes it send;
it cannot make it send a header with a value only the logged-in page knows. So a state-changing
request (not GET, HEAD or OPTIONS) that carries the session cookie and no ``Authorization``
header must carry ``X-CSRF-Token``: the token returned at login, an HMAC of the cookie's secret
(nothing more is stored), and when it names an ``Origin``, that must be the server's own or an
allowed one. SameSite=Strict on the cookie is the first line; this is the second.
Bearer-authenticated requests are exempt: a cross-site page cannot set their header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LABEL = b"orchestrator csrf v1"


class CsrfRefused(Exception):
    """A cookie-authenticated state-changing request failed the CSRF check (403)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def csrf_token(cookie: str) -> str:
    """The CSRF token of a session cookie value (``<id>.<secret>``)."""
    digest = hmac.new(cookie.encode(), _LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def needs_check(method: str, headers: Mapping[str, str], cookie: str | None) -> bool:
    """Whether a request must pass :func:`check`: state-changing, sent with the session cookie
    and without an Authorization header."""
    if method.upper() in SAFE_METHODS or cookie is None:
        return False
    return not any(name.lower() == "authorization" for name in headers)


def check(
    headers: Mapping[str, str], cookie: str, own_origin: str, allowed_origins: Iterable[str] = ()
) -> None:
    """Refuse (CsrfRefused) a foreign ``Origin`` or a missing or wrong ``X-CSRF-Token``."""
    origin = _get(headers, "Origin")
    if origin is not None and origin != own_origin and origin not in set(allowed_origins):
        raise CsrfRefused("csrf_origin", f"requests from {origin} may not use the session cookie")
    token = _get(headers, CSRF_HEADER)
    if token is None:
        raise CsrfRefused("csrf_token_missing", f"send the session's CSRF token in {CSRF_HEADER}")
    if not hmac.compare_digest(token.encode(), csrf_token(cookie).encode()):
        raise CsrfRefused("csrf_token_invalid", f"{CSRF_HEADER} does not match the session")


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value
