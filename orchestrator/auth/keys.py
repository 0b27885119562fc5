"""The API key format and its keyed hash.

A key reads ``orch_<id>_<secret><checksum>``: ``orch_`` names the issuer (so secret scanners
can match ``orch_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}``), ``<id>`` is 12 base62 characters (the
stored record's id, shown in listings), ``<secret>`` 32 base62 characters (about 190 random
bits) and ``<checksum>`` 6 base62 characters of the CRC-32 of everything before it. A key that
does not have this shape, or whose checksum does not match (a typo, a truncated paste), is
refused by :func:`parse_key` before any store is asked.

Only ``HMAC-SHA256(pepper, secret)`` is stored. The pepper is a server setting
(``ORCHESTRATOR_KEY_PEPPER``); every record names the pepper it was hashed with by a short id
derived from it, so a key made under another pepper is told apart from a wrong secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "orch_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_PATTERN = re.compile(
    rf"{PREFIX}([0-9A-Za-z]{{{ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
ID_PATTERN = re.compile(rf"[0-9A-Za-z]{{{ID_LENGTH}}}")
NO_PEPPER = "none"  # the pepper id of keys hashed without a pepper


class KeyMalformed(ValueError):
    """Not an API key of this format, or its checksum does not match."""


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    secret: str


def base62(number: int, width: int) -> str:
    """``number`` in base 62, left-padded with ``0`` to ``width`` characters."""
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def random_base62(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def checksum(body: str) -> str:
    """The 6 base62 characters of the CRC-32 of ``orch_<id>_<secret>``."""
    return base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def format_key(key_id: str, secret: str) -> str:
    body = f"{PREFIX}{key_id}_{secret}"
    return body + checksum(body)


def new_key() -> tuple[ParsedKey, str]:
    """A fresh random key: (its parts, the text shown once to whoever created it)."""
    parsed = ParsedKey(random_base62(ID_LENGTH), random_base62(SECRET_LENGTH))
    return parsed, format_key(parsed.key_id, parsed.secret)


def parse_key(text: str) -> ParsedKey:
    """The id and secret of a well-formed key; KeyMalformed for anything else (no lookup)."""
    match = KEY_PATTERN.fullmatch(text)
    if match is None:
        raise KeyMalformed(f"not an API key (expected {PREFIX}<12 characters>_<38 characters>)")
    key_id, secret, check = match.groups()
    if not hmac.compare_digest(check, checksum(f"{PREFIX}{key_id}_{secret}")):
        raise KeyMalformed("the API key's checksum does not match (mistyped or truncated?)")
    return ParsedKey(key_id, secret)


@dataclass(frozen=True, slots=True)
class Hasher:
    """HMAC-SHA256 of key secrets under one pepper (empty: no pepper; see docs/security.md)."""

    pepper: bytes = b""

    @property
    def pepper_id(self) -> str:
        if not self.pepper:
            return NO_PEPPER
        return hmac.new(self.pepper, b"orchestrator pepper id", hashlib.sha256).hexdigest()[:8]

    def digest(self, secret: str) -> str:
        return hmac.new(self.pepper, secret.encode("ascii"), hashlib.sha256).hexdigest()

    def matches(self, secret: str, digest: str) -> bool:
        """Constant-time comparison of the secret's digest with a stored one."""
        return hmac.compare_digest(self.digest(secret), digest)
