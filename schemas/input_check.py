"""Checking a workflow input against its definition's input schema, without surprises.

- A ``$ref`` resolves only inside the schema: a remote reference is never fetched (no I/O at a
  start, no requests to addresses a definition names) and fails like one that points nowhere.
- A schema that cannot be applied (an invalid ``pattern``, a ``$ref`` to nowhere) gives a
  :class:`~schemas.validation.Problem` at ``input_schema`` instead of raising, so a start answers
  400 and a trigger dead-letters, as for an input that does not match.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import referencing

from schemas.validation import Problem

__all__ = ["input_problems", "input_validator"]


def input_validator(schema: dict[str, Any]) -> Any:
    """A validator for ``schema`` whose references never leave it."""
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=referencing.Registry())  # an empty registry retrieves nothing


def input_problems(validator: Any, value: Any) -> list[Problem]:
    """Where ``value`` does not match (empty when it does), or why the schema cannot be applied."""
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except Exception as exc:  # the check is pure: the schema itself is unusable, for any input
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [Problem("input_schema", f"the input schema cannot be applied: {reason[:500]}")]
    return [Problem("input" + "".join(f"[{p!r}]" for p in e.absolute_path), e.message) for e in errors]
