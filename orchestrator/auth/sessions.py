"""Browser sessions: an API key or token exchanged for a short-lived, revocable cookie.

The cookie holds ``<session id>.<secret>``; the store keeps only the SHA-256 of the secret, so a
copy of the store opens no session. A session acts as the principal that logged in, with the
roles it had then, until it expires (``ttl``) or is revoked (logout, or an admin by id). Its CSRF
token is an HMAC of the secret (:mod:`orchestrator.auth.csrf`), so nothing more is stored.

:class:`SessionAuthenticator` reads the cookie. A request that carries an ``Authorization``
header is never authenticated by its cookie: the header decides, which is what lets bearer
requests skip the CSRF check safely.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from orchestrator.auth.csrf import csrf_token
from orchestrator.auth.principal import AuthenticationFailed, Principal, PrincipalKind
from orchestrator.ports import SessionStore, StoredSession

SESSION_COOKIE = "orchestrator_session"
ID_BYTES = 16
SECRET_BYTES = 32
MAX_COOKIE_LENGTH = 256


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new session: ``cookie`` is shown to the browser once, never stored."""

    session_id: str
    cookie: str
    csrf_token: str
    principal: Principal
    stored: StoredSession


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def split_cookie(value: str) -> tuple[str, str] | None:
    """(session id, secret) of a well-formed cookie value, else None."""
    session_id, dot, secret = value.partition(".")
    if not dot or len(value) > MAX_COOKIE_LENGTH or len(session_id) != 2 * ID_BYTES or not secret:
        return None
    return session_id, secret


def encode_principal(principal: Principal) -> str:
    return json.dumps(
        {
            "subject": principal.subject,
            "kind": principal.kind,
            "tenant": principal.tenant,
            "roles": {tenant: list(names) for tenant, names in principal.roles.items()},
            "credential_id": principal.credential_id,
        },
        sort_keys=True,
    )


def decode_principal(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a stored principal must be an object")
    return data


class Sessions:
    """Issues, checks and revokes sessions over one :class:`~orchestrator.ports.SessionStore`."""

    def __init__(self, store: SessionStore, ttl: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        if ttl <= 0:
            raise ValueError("a session's lifetime must be positive")
        self.store = store
        self.ttl = ttl
        self._clock = clock

    async def create(self, principal: Principal) -> IssuedSession:
        """A new session acting as ``principal`` (which must not itself be a session)."""
        if principal.kind == "session":
            raise ValueError("a session cannot open another session")
        session_id, secret = secrets.token_hex(ID_BYTES), secrets.token_urlsafe(SECRET_BYTES)
        now = self._clock()
        stored = StoredSession(
            session_id=session_id,
            secret_hash=secret_hash(secret),
            principal=encode_principal(principal),
            tenant=principal.tenant,
            created_at=now,
            expires_at=now + self.ttl,
        )
        await self.store.put(stored)
        cookie = f"{session_id}.{secret}"
        return IssuedSession(session_id, cookie, csrf_token(cookie), self.principal_of(stored), stored)

    async def check(self, cookie: str) -> tuple[StoredSession, Principal]:
        """The live session a cookie opens; AuthenticationFailed ``session_invalid`` (malformed,
        unknown or wrong secret), ``session_expired`` or ``session_revoked``."""
        parts = split_cookie(cookie)
        if parts is None:
            raise AuthenticationFailed("session_invalid", "the session cookie is malformed")
        session_id, secret = parts
        stored = await self.store.get(session_id)
        if stored is None or not hmac.compare_digest(stored.secret_hash, secret_hash(secret)):
            raise AuthenticationFailed("session_invalid", "no such session")
        if stored.revoked_at is not None:
            raise AuthenticationFailed("session_revoked", "the session was ended")
        if stored.expires_at <= self._clock():
            raise AuthenticationFailed("session_expired", "the session has expired; log in again")
        return stored, self.principal_of(stored)

    async def revoke(self, session_id: str, tenant: str | None = None) -> bool:
        """End a session (in ``tenant``, when given); False when there is none there."""
        stored = await self.store.get(session_id)
        if stored is None or (tenant is not None and stored.tenant != tenant):
            return False
        return await self.store.revoke(session_id, self._clock()) is not None

    @staticmethod
    def principal_of(stored: StoredSession) -> Principal:
        """The principal a session acts as: who logged in, with the roles they had then."""
        data = decode_principal(stored.principal)
        roles = cast(dict[str, list[str]], data.get("roles") or {})
        return Principal(
            subject=str(data["subject"]),
            kind="session",
            tenant=str(data["tenant"]),
            roles={tenant: tuple(names) for tenant, names in roles.items()},
            credential_id=stored.session_id,
        )

    @staticmethod
    def logged_in_as(stored: StoredSession) -> PrincipalKind:
        """How the session's principal authenticated when it logged in (``key``, ``token``)."""
        return cast(PrincipalKind, decode_principal(stored.principal)["kind"])


class SessionAuthenticator:
    """An :class:`~orchestrator.auth.principal.Authenticator` for the session cookie."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def authenticate(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Principal | None:
        cookie = cookies.get(SESSION_COOKIE)
        if cookie is None or has_authorization(headers):
            return None
        _, principal = await self.sessions.check(cookie)
        return principal


def has_authorization(headers: Mapping[str, str]) -> bool:
    return "Authorization" in headers or any(name.lower() == "authorization" for name in headers)
