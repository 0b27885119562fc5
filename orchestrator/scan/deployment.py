"""Scan the deployment: authentication off, TLS off on a public address, encryption at rest
off, default or weak secrets, API keys near expiry.

Pure: :class:`DeploymentFacts` (gathered by the CLI from settings and stores) in, findings out.
A fact left ``None`` is unknown and its rule is not checked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from orchestrator.scan.findings import Finding, Severity

WEAK_WORDS = frozenset(
    {"secret", "password", "changeme", "change-me", "default", "test", "admin", "demo", "example", "123456"}
)
MIN_SECRET_LENGTH = 16
EXPIRY_WARNING_SECONDS = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class KeyFact:
    """An active API key: its id, name and expiry (Unix seconds; None: never expires)."""

    key_id: str
    name: str
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class DeploymentFacts:
    host: str
    now: float
    auth_required: bool | None = None
    tls: bool | None = None
    encryption: bool | None = None
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # name -> value, judged, never shown
    keys: tuple[KeyFact, ...] | None = None


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def weakness(value: str) -> str | None:
    """Why a secret value is weak (never quoting it), or None."""
    lowered = value.lower()
    if any(word == lowered or (lowered.startswith(word) and lowered[len(word) :].isdigit()) for word in WEAK_WORDS):
        return "a default or dictionary word"
    if len(value) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(value)) < 6:
        return "too few distinct characters"
    return None


def scan_deployment(facts: DeploymentFacts) -> list[Finding]:
    return [*_transport(facts), *_secrets(facts), *_keys(facts)]


def _transport(facts: DeploymentFacts) -> Iterator[Finding]:
    public = not is_loopback(facts.host)
    if facts.auth_required is False:
        yield Finding(
            "auth-off",
            Severity.HIGH,
            "deployment",
            "authentication is turned off: anyone who reaches the API can start, cancel and read everything",
            "unset ORCHESTRATOR_AUTH=off and create keys with `orchestrator keys create`",
        )
    if facts.tls is False and public:
        yield Finding(
            "tls-off-public",
            Severity.HIGH,
            "deployment",
            f"the API listens on {facts.host} without TLS: keys, tokens and payloads cross the network in clear",
            "set ORCHESTRATOR_TLS_CERT and ORCHESTRATOR_TLS_KEY, or terminate TLS in front and bind to loopback",
        )
    if facts.encryption is False:
        yield Finding(
            "encryption-off",
            Severity.MEDIUM,
            "deployment",
            "encryption at rest is off: payloads are stored and exported in plaintext",
            "configure a master key (docs/security.md, Encryption at rest)",
        )


def _secrets(facts: DeploymentFacts) -> Iterator[Finding]:
    for name in sorted(facts.secrets):
        reason = weakness(facts.secrets[name])
        if reason is not None:
            yield Finding(
                "weak-secret",
                Severity.HIGH,
                f"deployment, secret {name}",
                f"secret {name} is weak ({reason}): webhook signatures and keys made from it can be guessed",
                "replace it with at least 32 random bytes (e.g. `openssl rand -hex 32`)",
            )


def _keys(facts: DeploymentFacts) -> Iterator[Finding]:
    for key in facts.keys or ():
        if key.expires_at is None:
            continue
        left = key.expires_at - facts.now
        if left <= 0:
            continue  # expired keys no longer work; nothing is exposed
        if left <= EXPIRY_WARNING_SECONDS:
            yield Finding(
                "key-near-expiry",
                Severity.MEDIUM,
                f"deployment, key {key.key_id}",
                f"API key {key.key_id} ({key.name}) expires in {left / 3600:.1f} h: its callers will get 401",
                f"rotate it now: `orchestrator keys rotate {key.key_id}`",
            )
