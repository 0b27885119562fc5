"""Template errors: every problem at once, each with its location (a ``DefinitionError``)."""

from __future__ import annotations

from schemas.validation import DefinitionError, Problem


class TemplateError(DefinitionError):
    """A template that cannot be resolved or rendered. ``code``: ``invalid_template`` (the
    document, its composition), ``invalid_parameters`` or ``unknown_template``."""

    def __init__(self, problems: list[Problem], code: str = "invalid_template") -> None:
        super().__init__(problems)
        self.code = code


def problem(location: str, message: str, code: str = "invalid_template") -> TemplateError:
    return TemplateError([Problem(location, message)], code)
