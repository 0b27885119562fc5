"""How a verified token's claims become a principal's subject, tenant and roles.

The rule comes from a YAML or JSON file (``ORCHESTRATOR_OIDC_CLAIMS_FILE``); without one the
defaults apply: the subject is ``sub``, the tenant is the ``tenant`` claim (``default`` when
absent) and the names in the ``roles`` claim are roles in that tenant::

    subject: sub                  # claim naming the principal
    tenant: org.tenant            # claim naming its tenant (a dotted path reaches nested claims)
    default_tenant: default       # when the tenant claim is absent
    roles: roles                  # claim listing role names bound in the token's tenant; null: none
    groups: groups                # claim listing groups, mapped by the bindings below
    bindings:
      - group: platform-admins
        roles: [admin]
        tenant: "*"               # every tenant; omitted: the token's tenant
      - group: acme-ops
        roles: [operator]
        tenant: acme

A claim holding the roles or groups is a list of strings or one space-separated string. A tenant
that is not a valid tenant name refuses the token; a token mapped to no role is accepted (it is
authenticated) and authorization then denies what it asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.auth.principal import AuthenticationFailed, Principal
from orchestrator.settings import SettingsError
from schemas.loader import parse_json_text
from schemas.tenant import DEFAULT_TENANT, TenantInvalid, check_tenant

EVERY_TENANT = "*"
_KEYS = {"subject", "tenant", "default_tenant", "roles", "groups", "bindings"}
_BINDING_KEYS = {"group", "roles", "tenant"}


@dataclass(frozen=True, slots=True)
class Binding:
    """Members of ``group`` get ``roles`` in ``tenant`` (None: the token's tenant; ``*``: all)."""

    group: str
    roles: tuple[str, ...]
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimsRule:
    subject: str = "sub"
    tenant: str = "tenant"
    default_tenant: str = DEFAULT_TENANT
    roles: str | None = "roles"
    groups: str | None = None
    bindings: tuple[Binding, ...] = ()

    @classmethod
    def from_file(cls, path: str | None) -> ClaimsRule:
        """The rule in ``path`` (YAML, or JSON for ``*.json``); the defaults for None."""
        if path is None:
            return cls()
        try:
            text = Path(path).read_text(encoding="utf-8")
            data = parse_json_text(text) if path.endswith(".json") else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise SettingsError(f"cannot read claims file {path}: {exc}") from None
        return cls.from_mapping(data, path)

    @classmethod
    def from_mapping(cls, data: object, where: str = "claims rule") -> ClaimsRule:
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: must be a mapping")
        if unknown := sorted(set(data) - _KEYS):
            raise SettingsError(f"{where}: unknown keys {unknown}; known: {', '.join(sorted(_KEYS))}")
        defaults = cls()
        bindings = data.get("bindings") or []
        if not isinstance(bindings, list):
            raise SettingsError(f"{where}: bindings must be a list")
        try:
            default_tenant = check_tenant(data.get("default_tenant", defaults.default_tenant))
        except TenantInvalid as exc:
            raise SettingsError(f"{where}: default_tenant: {exc}") from None
        return cls(
            subject=_name(data, "subject", defaults.subject, where) or defaults.subject,
            tenant=_name(data, "tenant", defaults.tenant, where) or defaults.tenant,
            default_tenant=default_tenant,
            roles=_name(data, "roles", defaults.roles, where),
            groups=_name(data, "groups", defaults.groups, where),
            bindings=tuple(_binding(item, f"{where}: bindings[{i}]") for i, item in enumerate(bindings)),
        )

    def principal(self, claims: Mapping[str, Any], credential_id: str | None) -> Principal:
        """The principal of verified ``claims``; AuthenticationFailed for a missing subject or
        an invalid tenant."""
        subject = claim(claims, self.subject)
        if not isinstance(subject, str) or not subject:
            raise AuthenticationFailed("token_missing_claim", f"the token has no {self.subject!r} claim")
        raw_tenant = claim(claims, self.tenant)
        try:
            tenant = self.default_tenant if raw_tenant is None else check_tenant(raw_tenant)
        except TenantInvalid as exc:
            raise AuthenticationFailed("token_invalid_tenant", str(exc)) from None
        roles: dict[str, list[str]] = {}

        def grant(where: str, names: tuple[str, ...] | list[str]) -> None:
            held = roles.setdefault(where, [])
            held += [name for name in names if name not in held]

        if self.roles is not None:
            grant(tenant, names_in(claim(claims, self.roles)))
        if self.groups is not None:
            member_of = set(names_in(claim(claims, self.groups)))
            for binding in self.bindings:
                if binding.group in member_of:
                    grant(binding.tenant or tenant, binding.roles)
        return Principal(
            subject=subject,
            kind="token",
            tenant=tenant,
            roles={where: tuple(names) for where, names in roles.items() if names},
            credential_id=credential_id,
        )


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted ``path`` (``realm_access.roles``); None when absent. A claim whose
    own name holds dots (``https://example.com/roles``) is found by its whole name first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def names_in(value: Any) -> list[str]:
    """The names a roles/groups claim holds: a list of strings or a space-separated string."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _name(data: dict[str, Any], key: str, default: str | None, where: str) -> str | None:
    value = data.get(key, default)
    if value is not None and (not isinstance(value, str) or not value):
        raise SettingsError(f"{where}: {key} must be a claim name")
    return value


def _binding(item: object, where: str) -> Binding:
    if not isinstance(item, dict) or not {"group", "roles"} <= set(item):
        raise SettingsError(f"{where}: must be a mapping with group and roles")
    if unknown := sorted(set(item) - _BINDING_KEYS):
        raise SettingsError(f"{where}: unknown keys {unknown}")
    group, roles, tenant = item["group"], item["roles"], item.get("tenant")
    if not isinstance(group, str) or not group:
        raise SettingsError(f"{where}: group must be text")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r for r in roles):
        raise SettingsError(f"{where}: roles must be a list of role names")
    if tenant is not None and tenant != EVERY_TENANT:
        try:
            check_tenant(tenant)
        except TenantInvalid as exc:
            raise SettingsError(f"{where}: {exc}") from None
    return Binding(group, tuple(roles), tenant)
