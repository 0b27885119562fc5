"""Secret references resolved for one step attempt, and the values redacted from what it returns.

The worker asks the :class:`SecretResolver` for the call's config and arguments with every
reference (``schemas.secrets``) replaced by its value: anywhere in ``config``, and in ``args``
only at the task's ``secret_args`` paths. The values never leave the worker: before an outcome
is recorded, :func:`redact` replaces each occurrence of a value (as written, URL-encoded or
JSON-escaped) in the output, the error and the log line with ``REDACTED``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from orchestrator.ports import BackendUnavailable, SecretsUnavailable, StepTask
from schemas.secrets import config_references, reference_name

__all__ = [
    "REDACTED",
    "Resolved",
    "SecretLookup",
    "SecretMissing",
    "SecretReads",
    "SecretResolver",
    "redact",
    "redact_text",
]

REDACTED = "[redacted]"


class SecretLookup(Protocol):
    """Where values come from (``SecretStore.get``; ``orchestrator.secrets.stores.ChainedSecrets``)."""

    async def get(self, tenant: str, name: str) -> str | None: ...


class SecretReads(Protocol):
    """Told of every resolution (``orchestrator.audit.secret_reads``): once per name per attempt,
    with ``outcome`` ``ok``, ``failed`` (not set) or ``error`` (the store could not answer). Never
    given the value; must not raise."""

    async def secret_read(self, task: StepTask, name: str, outcome: str, reason: str | None) -> None: ...


class SecretMissing(Exception):
    """A referenced secret is not set for the execution's tenant, or cannot be read: the step
    fails with ``type`` (``secret.missing``, ``secret.unavailable``), retried only if ``retryable``."""

    def __init__(self, type_: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Resolved:
    config: dict[str, Any]
    args: Any
    values: list[str] = field(default_factory=list)  # what to redact


class SecretResolver:
    """Resolves a task's references through one lookup (``None``: every reference fails)."""

    def __init__(self, lookup: SecretLookup | None, reads: SecretReads | None = None) -> None:
        self._lookup = lookup
        self.reads = reads  # the audit trail of resolutions, when one is attached

    async def resolve(self, task: StepTask) -> Resolved:
        """SecretMissing for a name the tenant does not have or a store that cannot answer."""
        config_refs = config_references(task.config)
        if not config_refs and not task.secret_args:
            return Resolved(task.config, task.args)
        values: dict[str, str] = {}
        config = task.config
        for path, name in config_refs:
            config = _replace(config, path, await self._value(task, str(name), values))
        args = task.args
        for raw_path in task.secret_args:
            path = tuple(raw_path)
            name = reference_name(_at(args, path))
            if name is not None:  # the machine put a reference there; anything else is data
                args = _replace(args, path, await self._value(task, name, values))
        return Resolved(config, args, list(values.values()))

    async def _value(self, task: StepTask, name: str, found: dict[str, str]) -> str:
        if name in found:
            return found[name]
        try:
            value = await self._read(task, name)
        except SecretMissing as exc:
            await self._tell(task, name, "error" if exc.type == "secret.unavailable" else "failed", exc.type)
            raise
        await self._tell(task, name, "ok", None)
        found[name] = value
        return value

    async def _tell(self, task: StepTask, name: str, outcome: str, reason: str | None) -> None:
        if self.reads is not None:
            await self.reads.secret_read(task, name, outcome, reason)

    async def _read(self, task: StepTask, name: str) -> str:
        where = f"step {task.step!r} of {task.workflow!r} (tenant {task.tenant!r})"
        if self._lookup is None:
            raise SecretMissing("secret.unavailable", f"{where}: no secret store is configured for {name!r}")
        try:
            value = await self._lookup.get(task.tenant, name)
        except SecretsUnavailable as exc:
            raise SecretMissing("secret.unavailable", f"{where}: secret {name!r}: {exc}") from None
        except (BackendUnavailable, OSError) as exc:
            message = f"{where}: secret {name!r}: the store failed ({type(exc).__name__})"
            raise SecretMissing("secret.unavailable", message, retryable=True) from None
        if value is None:
            message = f"{where} references secret {name!r}, which is not set (orchestrator secrets set {name})"
            raise SecretMissing("secret.missing", message)
        return value


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    """What stands at ``path`` in ``value`` (None when the path leads nowhere)."""
    for part in path:
        if isinstance(value, dict) and isinstance(part, str):
            value = value.get(part)
        elif isinstance(value, list) and type(part) is int and 0 <= part < len(value):
            value = value[part]
        else:
            return None
    return value


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with ``new`` at ``path`` (the containers on the way are copied)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    index = int(head)
    copy[index] = _replace(copy[index], rest, new)
    return copy


def _forms(values: Sequence[str]) -> list[str]:
    """Each value as written, URL-encoded and JSON-escaped; longest first."""
    forms: set[str] = set()
    for value in values:
        if value:
            forms.update({value, quote(value, safe=""), json.dumps(value)[1:-1]})
    return sorted(forms, key=len, reverse=True)


def redact_text(text: str, values: Sequence[str]) -> str:
    for form in _forms(values):
        text = text.replace(form, REDACTED)
    return text


def redact(value: Any, values: Sequence[str]) -> Any:
    """``value`` with every occurrence of a secret in its strings (keys too) replaced."""
    forms = _forms(values)
    if not forms:
        return value
    return _redact(value, forms)


def _redact(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        for form in forms:
            if form in value:
                value = value.replace(form, REDACTED)
        return value
    if isinstance(value, dict):
        return {_redact(key, forms): _redact(item, forms) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, forms) for item in value]
    return value

