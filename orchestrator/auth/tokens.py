"""OIDC/JWT bearer tokens: ``Authorization: Bearer <JWT>`` verified against the provider's JWKS.

A token is accepted when its signature verifies with a key of the configured key set under an
allowed asymmetric algorithm whose key type matches (``none`` and HMAC are refused, so a public
key can never serve as a shared secret), its ``iss`` and ``aud`` are the configured ones and
``exp`` (required) and ``nbf`` hold within ``leeway`` seconds. Its claims then become the
principal by the configured :class:`~orchestrator.auth.claims.ClaimsRule`. A bearer credential
that is not shaped like a JWT is left to the other authenticators (API keys).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from orchestrator.auth.claims import ClaimsRule
from orchestrator.auth.jwks import KEY_TYPES, Jwks
from orchestrator.auth.principal import AuthenticationFailed, Authenticator, Principal
from orchestrator.settings import Settings, SettingsError

MAX_TOKEN_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What a token must satisfy besides its signature."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway: float = 30.0

    def __post_init__(self) -> None:
        refused = [alg for alg in self.algorithms if alg not in KEY_TYPES]
        if refused or not self.algorithms:
            allowed = ", ".join(KEY_TYPES)
            raise SettingsError(f"token algorithms {refused or '(none)'} are not allowed; choose from {allowed}")


def bearer(headers: Mapping[str, str]) -> str | None:
    """The credential of an ``Authorization: Bearer`` header (any header name case), or None."""
    value = headers.get("Authorization")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is None:
        return None
    scheme, _, credential = value.strip().partition(" ")
    return credential.strip() or None if scheme.lower() == "bearer" else None


def jwt_header(token: str) -> dict[str, Any] | None:
    """The JOSE header of a compact JWS (three base64url parts, the first a JSON object with
    ``alg``); None for anything else (an API key, say)."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0]:
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) and "alg" in header else None


class TokenAuthenticator:
    """An :class:`~orchestrator.auth.principal.Authenticator` for OIDC/JWT bearer tokens."""

    def __init__(self, keys: Jwks, policy: TokenPolicy, rule: ClaimsRule | None = None) -> None:
        self.keys = keys
        self.policy = policy
        self.rule = rule or ClaimsRule()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenAuthenticator | None:
        """The authenticator ``ORCHESTRATOR_OIDC_*`` configure; None when no JWKS is set."""
        if settings.oidc_jwks is None:
            return None
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise SettingsError("ORCHESTRATOR_OIDC_JWKS needs ORCHESTRATOR_OIDC_ISSUER and ORCHESTRATOR_OIDC_AUDIENCE")
        policy = TokenPolicy(
            settings.oidc_issuer, settings.oidc_audience, settings.oidc_algorithms, settings.oidc_leeway
        )
        return cls(Jwks(settings.oidc_jwks), policy, ClaimsRule.from_file(settings.oidc_claims_file))

    async def authenticate(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Principal | None:
        token = bearer(headers)
        if token is None:
            return None
        header = jwt_header(token)
        if header is None:
            return None
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationFailed("token_malformed", f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        claims = await self.verify(token, header)
        return self.rule.principal(claims, _credential_id(claims))

    async def verify(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        """The claims of a token that passes every check; AuthenticationFailed naming the first
        that fails."""
        algorithm = header.get("alg")
        if algorithm not in self.policy.algorithms:
            raise AuthenticationFailed("token_algorithm_refused", f"tokens signed with {algorithm!r} are refused")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        if not key.verifies(algorithm):
            raise AuthenticationFailed(
                "token_algorithm_refused", f"key {kid!r} does not verify {algorithm} signatures"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.jwk.key,
                algorithms=[algorithm],
                audience=self.policy.audience,
                issuer=self.policy.issuer,
                leeway=self.policy.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("token_expired", "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationFailed("token_not_yet_valid", "the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed("token_invalid_audience", "the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed("token_invalid_issuer", "the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed("token_bad_signature", "the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationFailed("token_missing_claim", f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed("token_invalid", f"the token is invalid: {exc}") from None
        return claims


def token_authenticators(settings: Settings) -> list[Authenticator]:
    """The bearer-token authenticators the settings configure (none without ORCHESTRATOR_OIDC_JWKS)."""
    found = TokenAuthenticator.from_settings(settings)
    return [] if found is None else [found]


def _credential_id(claims: Mapping[str, Any]) -> str | None:
    """What the audit trail records the token as: its ``jti``, else its issuer."""
    for name in ("jti", "iss"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None
