"""Scan workflow definitions: plaintext credentials, unsigned webhooks, calls to private
addresses, python functions outside the allow-list, retry policies that never give up.

Pure: a definition and a :class:`DefinitionPolicy` in, findings out. No DNS lookups (a name is
judged by its spelling; the ``http`` connector checks resolved addresses when it runs).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jmespath
from jmespath.exceptions import JMESPathError

from orchestrator.scan.findings import Finding, Severity
from schemas.definition import ParallelStep, TaskStep, WebhookTrigger, WorkflowDefinition

CREDENTIAL_KEY = re.compile(
    r"(?i)(^|[-_.])(pass(word|wd|phrase)?|secret|token|api[-_]?key|apikey|authorization|"
    r"private[-_]?key|client[-_]?secret|access[-_]?key|credentials?|bearer)($|[-_.])"
)
# Well-known token shapes, found in any string (so a key under an innocent name is found too).
TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a Stripe live key", re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*")),
)
USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.azure.com", "instance-data"})
MANY_ATTEMPTS = 20
TOO_MANY_ATTEMPTS = 100
LONGEST_RETRYING = 86_400.0  # seconds of backoff in the worst case before a step gives up


@dataclass(frozen=True, slots=True)
class DefinitionPolicy:
    """What the deployment allows, where it is known (None: that rule is not checked)."""

    python_modules: tuple[str, ...] | None = None  # module prefixes python steps may call


NO_POLICY = DefinitionPolicy()


def scan_definition(definition: WorkflowDefinition, policy: DefinitionPolicy = NO_POLICY) -> list[Finding]:
    """Every finding of one definition."""
    where = f"workflow {definition.name}" + (f" v{definition.version}" if definition.version else "")
    findings: list[Finding] = []
    for trigger in definition.triggers:
        if isinstance(trigger, WebhookTrigger) and trigger.signature is None:
            findings.append(
                Finding(
                    "unsigned-webhook",
                    Severity.HIGH,
                    f"{where}, trigger {trigger.name}",
                    f"webhook {trigger.name!r} accepts unsigned deliveries: anyone who reaches "
                    "/hooks/ can start executions",
                    "add a signature (preset github, stripe or generic with a secret name)",
                )
            )
    for step in task_steps(definition.steps):
        target = f"{where}, step {step.name}"
        findings.extend(_credentials(target, "config", step.config, literal=True))
        findings.extend(_credentials(target, "input", step.input, literal=False))
        if step.connector == "http":
            findings.extend(_private_address(target, step))
        if step.connector == "python" and policy.python_modules is not None:
            findings.extend(_python_function(target, step, policy.python_modules))
        findings.extend(_retries(target, step))
    return findings


def task_steps(steps: list[Any]) -> Iterator[TaskStep]:
    """Every task step, including those inside parallel branches."""
    for step in steps:
        if isinstance(step, TaskStep):
            yield step
        elif isinstance(step, ParallelStep):
            for branch in step.branches:
                yield from task_steps(branch.steps)


def literal_value(expression: Any) -> Any:
    """The value of an input expression that is a JMESPath literal (``'text'``, a JSON literal
    in backticks), else None: the value it has whatever the input."""
    if not isinstance(expression, str):
        return None
    try:
        parsed = jmespath.compile(expression).parsed
    except (JMESPathError, RecursionError, ValueError, TypeError):
        return None
    return parsed.get("value") if parsed.get("type") == "literal" else None


def is_secret_reference(value: Any) -> bool:
    """``{secret: NAME}`` or an expression calling ``secret('NAME')``."""
    if isinstance(value, Mapping):
        return set(value) == {"secret"} and isinstance(value["secret"], str)
    return isinstance(value, str) and "secret(" in value


def _strings(value: Any, path: str, literal: bool) -> Iterator[tuple[str, str, bool]]:
    """(path, text, credential-named) for every literal string in a config or input mapping."""
    if is_secret_reference(value):
        return
    if isinstance(value, Mapping):
        for key, child in value.items():
            named = bool(CREDENTIAL_KEY.search(str(key)))
            for child_path, text, child_named in _strings(child, f"{path}.{key}", literal):
                yield child_path, text, named or child_named
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, f"{path}[{index}]", literal)
    elif isinstance(value, str):
        text = value if literal else literal_value(value)
        if isinstance(text, str):
            yield path, text, False
        elif text is not None and not literal:
            yield from _strings(text, path, True)


def _credentials(target: str, part: str, mapping: Any, literal: bool) -> Iterator[Finding]:
    fix = "reference a secret ({secret: NAME} or secret('NAME')) instead of writing the value"
    for path, text, named in _strings(mapping, part, literal):
        kind = next((name for name, pattern in TOKEN_PATTERNS if pattern.search(text)), None)
        if kind is None and USERINFO.search(text):
            kind = "a password in a URL"
        if kind is None and named and len(text) >= 4 and "://" not in text:  # token_url is no token
            kind = "a value under a credential name"
        if kind is not None:
            yield Finding(
                "plaintext-credential",
                Severity.HIGH,
                target,
                f"{path} holds {kind}: it would be stored in every StepScheduled event and export",
                fix,
            )


def private_host(host: str) -> str | None:
    """Why ``host`` (an IP literal or a name) is not a public address, or None."""
    name = host.strip("[]").lower().rstrip(".")
    if name in METADATA_HOSTS:
        return "a cloud metadata address"
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    if str(address) in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"):
        return "a cloud metadata address"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private or address.is_reserved or address.is_unspecified:
        return "a private address"
    return None


def _private_address(target: str, step: TaskStep) -> Iterator[Finding]:
    url = step.input.get("url")
    url = literal_value(url) if url is not None else step.config.get("url")
    if not isinstance(url, str):
        return
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return
    reason = private_host(host) if host else None
    if reason is not None:
        yield Finding(
            "private-address",
            Severity.HIGH,
            target,
            f"the http step calls {host} ({reason}): a definition author could read internal services",
            "call a public address, or allow this host explicitly in the http egress allow-list",
        )


def _python_function(target: str, step: TaskStep, prefixes: tuple[str, ...]) -> Iterator[Finding]:
    function = step.config.get("function")
    if not isinstance(function, str):
        return
    module = function.partition(":")[0]
    if function in prefixes:  # an allow-list entry may name one function (``pkg.mod:f``)
        return
    if not any(module == p.rstrip(".") or module.startswith(p.rstrip(".") + ".") for p in prefixes if ":" not in p):
        allowed = ", ".join(prefixes) or "none"
        yield Finding(
            "python-outside-allow-list",
            Severity.HIGH,
            target,
            f"python function {function!r} is outside the allowed modules ({allowed})",
            "move the function under an allowed module prefix, or allow its module",
        )


def worst_case_retrying(step: TaskStep) -> float:
    """Seconds of backoff before the step's last attempt, at the longest (no jitter)."""
    backoff = step.retry.backoff
    total, delay = 0.0, backoff.initial_seconds
    for _ in range(step.retry.max_attempts - 1):
        total += min(delay, backoff.max_seconds)
        delay = min(delay * backoff.multiplier, backoff.max_seconds)
    return total


def _retries(target: str, step: TaskStep) -> Iterator[Finding]:
    attempts = step.retry.max_attempts
    waiting = worst_case_retrying(step)
    if attempts > TOO_MANY_ATTEMPTS or waiting > LONGEST_RETRYING:
        severity = Severity.MEDIUM
    elif attempts > MANY_ATTEMPTS:
        severity = Severity.LOW
    else:
        return
    yield Finding(
        "huge-retries",
        severity,
        target,
        f"{attempts} attempts, up to {waiting / 3600:.1f} h of backoff: a failing dependency keeps "
        "executions and their resources for that long",
        "lower max_attempts or max_seconds, and route exhausted retries to on_error",
    )
