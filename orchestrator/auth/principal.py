"""The principal: who a request acts as, however it authenticated.

An API key, an OIDC/JWT bearer token and a browser session all produce the same
:class:`Principal`; authorization (roles bound within a tenant) and the audit trail read only
this object, never how it was obtained. An :class:`Authenticator` turns a request into a
principal: ``None`` when the request carries no credential it understands (the next
authenticator is asked), :class:`AuthenticationFailed` when it carries one that is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

PrincipalKind = Literal["key", "token", "session", "anonymous", "system"]


class AuthenticationFailed(Exception):
    """A credential was presented and refused (malformed, unknown, expired, revoked, bad
    signature). ``code`` is the machine-readable reason answered with 401 and audited."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``subject`` names it (a person, a service account, a token's ``sub``); ``credential_id``
    is what it authenticated with (an API key id, a token ``jti`` or issuer, a session id),
    recorded in the audit trail. ``roles`` maps a tenant (or ``"*"`` for every tenant) to the
    role names bound there; ``tenant`` is the tenant it works in by default.
    """

    subject: str
    kind: PrincipalKind
    tenant: str
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    credential_id: str | None = None

    @property
    def actor(self) -> str:
        """The actor recorded on commands and events: ``<kind>:<subject>``."""
        return f"{self.kind}:{self.subject}"

    def roles_in(self, tenant: str) -> tuple[str, ...]:
        """The roles bound in ``tenant``, plus those bound in every tenant."""
        return (*self.roles.get(tenant, ()), *self.roles.get("*", ()))


class Authenticator(Protocol):
    """One way of authenticating a request (its headers and cookies)."""

    async def authenticate(
        self, headers: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Principal | None: ...
