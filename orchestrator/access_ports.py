"""Ports of access control: stored API keys and custom roles (``orchestrator/auth`` drives them,
one module per backend implements them). A seam of the base, beside ``orchestrator.ports``."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, Protocol


class KeyExists(ValueError):
    """An API key with that id is stored already (ids are random: a second add is a bug)."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What is stored of an API key: never the secret, only its keyed hash (``digest``, hex
    HMAC-SHA256 under the server's pepper, whose id is ``pepper_id``). ``roles`` maps a tenant
    (or ``"*"``) to the roles bound there; ``owner`` is the person it belongs to (None: a service
    account). Times are epoch seconds. A revoked key is kept (``revoked_at``), never deleted;
    a rotated one names its successor (``replaced_by``) and runs until ``expires_at``."""

    key_id: str
    digest: str
    pepper_id: str
    name: str
    tenant: str
    roles: dict[str, tuple[str, ...]]
    created_at: float
    owner: str | None = None
    created_by: str | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    rotated_from: str | None = None
    replaced_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id, "digest": self.digest, "pepper_id": self.pepper_id,
            "name": self.name, "tenant": self.tenant,
            "roles": {tenant: list(names) for tenant, names in self.roles.items()},
            "created_at": self.created_at, "owner": self.owner, "created_by": self.created_by,
            "expires_at": self.expires_at, "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at, "rotated_from": self.rotated_from,
            "replaced_by": self.replaced_by,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiKeyRecord:
        roles = {str(tenant): tuple(map(str, names)) for tenant, names in data["roles"].items()}
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        return cls(**{**known, "roles": roles})


class KeyStore(Protocol):
    """API key records by id, in the event log's backend."""

    async def add_key(self, key: ApiKeyRecord) -> None:
        """Store a new key; KeyExists when its id is taken."""

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        """The key with that id (revoked and expired ones too), with its last-used time."""

    async def list_keys(self, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        """Every key (of ``tenant``'s home tenant when given), oldest first."""

    async def save_key(self, key: ApiKeyRecord) -> None:
        """Replace a stored key's record (revoke, rotate, roles); its last-used time is kept."""

    async def touch_key(self, key_id: str, used_at: float) -> None:
        """Record when a key was last used (callers write this at most about once a minute)."""


class RoleStore(Protocol):
    """Custom roles per tenant: name -> grants (``resource:action[:workflow-glob]``)."""

    async def put_role(self, tenant: str, name: str, grants: tuple[str, ...]) -> None:
        """Create or replace a role of ``tenant``."""

    async def delete_role(self, tenant: str, name: str) -> bool:
        """Remove a role; False when there was none."""

    async def roles(self, tenant: str) -> dict[str, tuple[str, ...]]:
        """``tenant``'s custom roles by name."""


class AccessStore(KeyStore, RoleStore, Protocol):
    """Keys and custom roles in one store, started and stopped with the process."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
