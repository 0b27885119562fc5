"""Roles: named sets of grants. A grant is ``resource:action[:selector]``; ``*`` matches any
resource or action, and the selector is a glob over workflow names (absent: every workflow).

The five built-in roles are :data:`BUILTIN_ROLES` (docs/security.md has the table). Custom roles
come from a YAML or JSON file (``ORCHESTRATOR_ROLES_FILE``: ``{name: [grant, ...]}``, for every
tenant) and from the API (per tenant, in the access store). A built-in name cannot be redefined.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

# Every resource and action a route can declare (orchestrator.api.routes.Permission; a test
# checks they agree), so a custom role naming anything else is refused.
RESOURCES = frozenset({
    "definitions", "executions", "payloads", "events", "triggers", "replay", "deadletters",
    "keys", "roles", "audit", "secrets", "templates", "cluster", "quotas", "analytics", "schedules",
    "sessions", "limits", "doctor", "catalog",
})  # fmt: skip
ACTIONS = frozenset({
    "read", "write", "start", "cancel", "signal", "redrive", "publish", "verify", "enable", "revoke", "run",
    "review", "moderate", "install",
})  # fmt: skip
ROLE_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,62}")
SELECTOR = re.compile(r"[A-Za-z0-9_.*?\[\]!-]{1,200}")
MAX_GRANTS = 200


class RoleInvalid(ValueError):
    """A role name or grant that is not well formed."""


@dataclass(frozen=True, slots=True)
class Grant:
    resource: str  # or "*"
    action: str  # or "*"
    selector: str | None = None  # a workflow-name glob; None: every workflow

    @classmethod
    def parse(cls, text: str) -> Grant:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise RoleInvalid(f"grant {text!r}: expected resource:action or resource:action:workflow-glob")
        resource, action = parts[0], parts[1]
        selector = parts[2] if len(parts) == 3 else None
        if resource != "*" and resource not in RESOURCES:
            raise RoleInvalid(f"grant {text!r}: unknown resource {resource!r}; known: {', '.join(sorted(RESOURCES))}")
        if action != "*" and action not in ACTIONS:
            raise RoleInvalid(f"grant {text!r}: unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
        if selector is not None and SELECTOR.fullmatch(selector) is None:
            raise RoleInvalid(f"grant {text!r}: the selector must be a workflow-name glob")
        return cls(resource, action, None if selector == "*" else selector)

    def __str__(self) -> str:
        base = f"{self.resource}:{self.action}"
        return base if self.selector is None else f"{base}:{self.selector}"

    def covers(self, permission: str) -> bool:
        """Whether this grant's resource and action match ``resource:action`` (any selector)."""
        resource, _, action = permission.partition(":")
        return self.resource in ("*", resource) and self.action in ("*", action)

    def selects(self, workflow: str) -> bool:
        return self.selector is None or fnmatch.fnmatchcase(workflow, self.selector)


def grants(texts: Iterable[str]) -> tuple[Grant, ...]:
    return tuple(Grant.parse(text) for text in texts)


VIEWER = (
    "definitions:read", "executions:read", "triggers:read", "templates:read", "quotas:read", "analytics:read",
    "schedules:read", "limits:read", "catalog:read", "catalog:review",
)  # fmt: skip
OPERATOR = (
    *VIEWER, "payloads:read", "executions:start", "executions:cancel", "executions:signal",
    "executions:redrive", "events:publish", "triggers:write", "deadletters:read",
    "deadletters:redrive", "replay:verify", "cluster:read", "schedules:write",
)  # fmt: skip
DEVELOPER = (
    *OPERATOR, "definitions:write", "templates:write", "secrets:write", "catalog:publish", "templates:install",
)  # fmt: skip
AUDITOR = (
    "audit:read", "keys:read", "roles:read", "definitions:read", "executions:read", "triggers:read", "quotas:read",
    "catalog:read",
)  # fmt: skip
BUILTIN_ROLES: Mapping[str, tuple[Grant, ...]] = {
    "viewer": grants(VIEWER),
    "operator": grants(OPERATOR),
    "developer": grants(DEVELOPER),
    "admin": grants(["*:*"]),
    "auditor": grants(AUDITOR),
}


def check_role(name: str, texts: Sequence[str]) -> tuple[Grant, ...]:
    """The grants of a custom role; RoleInvalid for a bad or built-in name or a bad grant."""
    if ROLE_NAME.fullmatch(name) is None:
        raise RoleInvalid(f"role name {name!r}: 1 to 63 of a-z, 0-9, '_', '.', '-', starting with a letter")
    if name in BUILTIN_ROLES:
        raise RoleInvalid(f"{name!r} is a built-in role and cannot be redefined")
    if not isinstance(texts, list | tuple) or not all(isinstance(t, str) for t in texts):
        raise RoleInvalid(f"role {name!r}: grants must be a list of strings")
    if not texts or len(texts) > MAX_GRANTS:
        raise RoleInvalid(f"role {name!r}: 1 to {MAX_GRANTS} grants")
    return grants(texts)


def load_roles_file(path: str | None) -> dict[str, tuple[Grant, ...]]:
    """The roles of ``ORCHESTRATOR_ROLES_FILE`` (YAML or JSON ``{name: [grant, ...]}``)."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise RoleInvalid(f"cannot read roles file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RoleInvalid(f"roles file {path} must hold a mapping of role name: [grant, ...]")
    try:
        return {str(name): check_role(str(name), texts) for name, texts in data.items()}
    except RoleInvalid as exc:
        raise RoleInvalid(f"roles file {path}: {exc}") from None
