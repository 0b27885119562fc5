"""Authorization: the grants a principal holds in a tenant, and what they allow.

:class:`RoleCatalog` resolves role names to grants: the built-in roles, the roles file (every
tenant) and the tenant's custom roles in the access store (re-read at most every
``ttl`` seconds, at once after a change made through this catalog). :class:`Access` is the
answer for one request: the grants of the principal's roles bound in the request's tenant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.access_ports import RoleStore
from orchestrator.auth.roles import BUILTIN_ROLES, Grant, RoleInvalid, check_role

PAYLOADS_READ = "payloads:read"
ROLES_TTL = 5.0  # seconds a tenant's custom roles are trusted without asking the store


@dataclass(frozen=True, slots=True)
class Access:
    """The grants one principal holds in one tenant."""

    grants: tuple[Grant, ...]

    def covers(self, permission: str) -> bool:
        """Some grant allows ``permission`` for at least some workflows."""
        return any(grant.covers(permission) for grant in self.grants)

    def unrestricted(self, permission: str) -> bool:
        """Some grant allows ``permission`` for every workflow."""
        return any(grant.covers(permission) and grant.selector is None for grant in self.grants)

    def allows(self, permission: str, workflows: Sequence[str] | None = None) -> bool:
        """``permission`` on every one of ``workflows`` (None: not known, so only an
        unrestricted grant will do)."""
        if self.unrestricted(permission):
            return True
        if workflows is None:
            return False
        matching = [grant for grant in self.grants if grant.covers(permission)]
        return all(any(grant.selects(workflow) for grant in matching) for workflow in workflows)


class RoleCatalog:
    """Role names -> grants, for one process."""

    def __init__(
        self,
        store: RoleStore,
        file_roles: Mapping[str, tuple[Grant, ...]] | None = None,
        *,
        ttl: float = ROLES_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.file_roles = dict(file_roles or {})
        self._ttl = ttl
        self._clock = clock
        self._cached: dict[str, tuple[float, dict[str, tuple[Grant, ...]]]] = {}

    async def custom(self, tenant: str) -> dict[str, tuple[Grant, ...]]:
        """The tenant's roles from the store (cached for ``ttl`` seconds)."""
        now = self._clock()
        cached = self._cached.get(tenant)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        stored = await self.store.roles(tenant)
        parsed: dict[str, tuple[Grant, ...]] = {}
        for name, texts in stored.items():
            try:
                parsed[name] = check_role(name, texts)
            except RoleInvalid:
                continue  # written by a newer version that knows more resources: ignored here
        if len(self._cached) > 10_000:
            self._cached.clear()
        self._cached[tenant] = (now, parsed)
        return parsed

    async def roles(self, tenant: str) -> dict[str, tuple[Grant, ...]]:
        """Every role usable in ``tenant``: built-in, then the file's, then the tenant's own."""
        return {**(await self.custom(tenant)), **self.file_roles, **BUILTIN_ROLES}

    async def access(self, tenant: str, names: Iterable[str]) -> Access:
        """The grants of the roles named (unknown names grant nothing)."""
        known = await self.roles(tenant)
        return Access(tuple(grant for name in dict.fromkeys(names) for grant in known.get(name, ())))

    async def check_names(self, tenant: str, names: Iterable[str]) -> None:
        """RoleInvalid naming the first role that does not exist in ``tenant``."""
        known = await self.roles(tenant) if tenant != "*" else {**self.file_roles, **BUILTIN_ROLES}
        for name in names:
            if name not in known:
                raise RoleInvalid(f"unknown role {name!r} in tenant {tenant!r}; known: {', '.join(sorted(known))}")

    async def put(self, tenant: str, name: str, texts: Sequence[str]) -> tuple[Grant, ...]:
        """Create or replace a custom role of ``tenant``; RoleInvalid."""
        parsed = check_role(name, texts)
        if name in self.file_roles:
            raise RoleInvalid(f"{name!r} is defined by the roles file and cannot be changed here")
        await self.store.put_role(tenant, name, tuple(str(grant) for grant in parsed))
        self._cached.pop(tenant, None)
        return parsed

    async def delete(self, tenant: str, name: str) -> bool:
        deleted = await self.store.delete_role(tenant, name)
        self._cached.pop(tenant, None)
        return deleted
