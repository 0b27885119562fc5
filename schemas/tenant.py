"""Tenant names: what every execution belongs to, and the one rule a name must follow.

An execution's tenant is set where its start comes in (the API's ``X-Orchestrator-Tenant``
header, a trigger's ``tenant`` field, the parent of a child execution, the original of a
redrive) and is recorded on every event. Lookups and listings only see the caller's tenant.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import Field

DEFAULT_TENANT: Final = "default"
TENANT_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_TENANT = re.compile(TENANT_PATTERN)

TenantName = Annotated[
    str,
    Field(pattern=TENANT_PATTERN, description="Tenant: lowercase letters, digits, '_' and '-', at most 63."),
]


class TenantInvalid(ValueError):
    """A tenant name that does not match ``TENANT_PATTERN``."""


def check_tenant(value: object) -> str:
    """``value`` if it is a valid tenant name, else ``TenantInvalid`` saying why."""
    if not isinstance(value, str) or _TENANT.fullmatch(value) is None:
        raise TenantInvalid(
            f"invalid tenant {value!r}: 1 to 63 of a-z, 0-9, '_' and '-', starting with a letter or digit"
        )
    return value
