"""Workflow definition format, expressions, validation and the event envelope."""

from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope
from schemas.loader import load_definition
from schemas.validation import DefinitionError, Problem, parse_definition, validate

__all__ = [
    "DefinitionError",
    "Envelope",
    "Problem",
    "WorkflowDefinition",
    "load_definition",
    "parse_definition",
    "validate",
]
