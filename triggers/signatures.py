"""HMAC-SHA256 webhook signatures (GitHub, Stripe, generic): verify and compute. Pure, no I/O.

What each preset signs: ``github`` the raw body; ``stripe`` ``"<t>.<body>"`` with ``t`` from
its header; ``generic`` the raw body, or ``"<t>.<body>"`` when the hook names a timestamp header
(``t`` is that header's Unix time). A signed timestamp further than the tolerance from ``now`` is
refused. Verification returns the signed timestamp (None when the preset signs none).

The clock is an argument (``now``), never read here. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal

__all__ = [
    "GITHUB_HEADER",
    "STRIPE_HEADER",
    "Preset",
    "SignatureError",
    "header_name",
    "sign_generic",
    "sign_github",
    "sign_stripe",
    "signed_content",
    "verify",
    "verify_generic",
    "verify_github",
    "verify_stripe",
]

Preset = Literal["github", "stripe", "generic"]
GITHUB_HEADER = "X-Hub-Signature-256"
STRIPE_HEADER = "Stripe-Signature"
PREFIX = "sha256="
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class SignatureError(ValueError):
    """A signature is missing, malformed, wrong or too old; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _hmac_hex(secret: str | bytes, message: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _matches(expected_hex: str, given_hex: str) -> bool:
    return hmac.compare_digest(expected_hex.encode("ascii"), given_hex.lower().encode("ascii"))


def _stripe_payload(timestamp: int, body: bytes) -> bytes:
    return f"{timestamp}.".encode() + body


def signed_content(body: bytes, timestamp: int | None) -> bytes:
    """What the HMAC covers: the body, or ``"<timestamp>.<body>"`` for a timestamped preset."""
    return body if timestamp is None else _stripe_payload(timestamp, body)


def _check_time(timestamp: int, now: float, tolerance_seconds: float) -> None:
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(f"timestamp outside the tolerance of {tolerance_seconds:g} seconds")


# -- computing --------------------------------------------------------------------------


def sign_github(secret: str | bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value: ``sha256=`` + hex HMAC of the raw body."""
    return PREFIX + _hmac_hex(secret, body)


def sign_stripe(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` value: ``t=<timestamp>,v1=<hex HMAC of "<t>.<body>">``."""
    return f"t={timestamp},v1={_hmac_hex(secret, _stripe_payload(timestamp, body))}"


def sign_generic(secret: str | bytes, body: bytes, *, prefix: bool = False, timestamp: int | None = None) -> str:
    """Hex HMAC of the raw body (of ``"<timestamp>.<body>"`` with a timestamp), optionally with
    the ``sha256=`` prefix."""
    digest = _hmac_hex(secret, signed_content(body, timestamp))
    return PREFIX + digest if prefix else digest


# -- verifying --------------------------------------------------------------------------


def header_name(preset: Preset, header: str | None = None) -> str:
    """The header carrying the signature: fixed for github/stripe, configured for generic."""
    if preset == "github":
        return GITHUB_HEADER
    if preset == "stripe":
        return STRIPE_HEADER
    if not header:
        raise ValueError("the generic preset needs a header name")
    return header


def verify_github(secret: str | bytes, body: bytes, value: str | None) -> None:
    """Check an ``X-Hub-Signature-256`` value; SignatureError if it does not match."""
    if not value:
        raise SignatureError(f"missing {GITHUB_HEADER} header")
    digest = value.strip()
    if not digest.startswith(PREFIX) or not _HEX_DIGEST.fullmatch(digest[len(PREFIX) :]):
        raise SignatureError(f"malformed {GITHUB_HEADER} header: expected sha256=<64 hex digits>")
    if not _matches(_hmac_hex(secret, body), digest[len(PREFIX) :]):
        raise SignatureError("signature mismatch")


def verify_generic(
    secret: str | bytes,
    body: bytes,
    value: str | None,
    header: str,
    *,
    timestamp_header: str | None = None,
    timestamp: str | None = None,
    now: float = 0.0,
    tolerance_seconds: float = 300,
) -> int | None:
    """Check a hex HMAC (``sha256=`` prefix optional) found in ``header``: of the body, or with a
    ``timestamp_header`` of ``"<timestamp>.<body>"``, the timestamp within the tolerance of
    ``now``. Returns the signed timestamp (None without a timestamp header)."""
    if not value:
        raise SignatureError(f"missing {header} header")
    digest = value.strip()
    digest = digest.removeprefix(PREFIX)
    if not _HEX_DIGEST.fullmatch(digest):
        raise SignatureError(f"malformed {header} header: expected [sha256=]<64 hex digits>")
    signed_at: int | None = None
    if timestamp_header is not None:
        if not timestamp:
            raise SignatureError(f"missing {timestamp_header} header")
        if not _TIMESTAMP.fullmatch(timestamp.strip()):
            raise SignatureError(f"malformed {timestamp_header} header: expected <unix seconds>")
        signed_at = int(timestamp.strip())
    if not _matches(_hmac_hex(secret, signed_content(body, signed_at)), digest):
        raise SignatureError("signature mismatch")
    if signed_at is not None:
        _check_time(signed_at, now, tolerance_seconds)
    return signed_at


def _parse_stripe(value: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, part = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {STRIPE_HEADER} header: {item.strip()!r} is not key=value")
        if key == "t":
            timestamps.append(part)
        elif key == "v1":
            signatures.append(part)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise SignatureError(f"malformed {STRIPE_HEADER} header: expected one t=<unix seconds>")
    if not signatures:
        raise SignatureError(f"malformed {STRIPE_HEADER} header: no v1 signature")
    return int(timestamps[0]), signatures


def verify_stripe(
    secret: str | bytes,
    body: bytes,
    value: str | None,
    *,
    now: float,
    tolerance_seconds: float = 300,
) -> int:
    """Check a ``Stripe-Signature`` value: any v1 must match and ``|now - t| <= tolerance``.
    Returns ``t``."""
    if not value:
        raise SignatureError(f"missing {STRIPE_HEADER} header")
    timestamp, signatures = _parse_stripe(value)
    expected = _hmac_hex(secret, _stripe_payload(timestamp, body))
    # Compare every candidate (no early exit) so timing does not reveal which one matched.
    matched = False
    for candidate in signatures:
        if _HEX_DIGEST.fullmatch(candidate) and _matches(expected, candidate):
            matched = True
    if not matched:
        raise SignatureError("signature mismatch")
    _check_time(timestamp, now, tolerance_seconds)
    return timestamp


def verify(
    preset: Preset,
    secret: str | bytes,
    body: bytes,
    value: str | None,
    *,
    now: float,
    header: str | None = None,
    tolerance_seconds: float = 300,
    timestamp_header: str | None = None,
    timestamp: str | None = None,
) -> int | None:
    """Verify ``value`` (the signature header's content) for ``preset``; SignatureError if not.
    Returns the signed timestamp, None when the preset signs none (``timestamp`` is the value of
    the generic preset's ``timestamp_header``)."""
    if preset == "github":
        verify_github(secret, body, value)
        return None
    if preset == "stripe":
        return verify_stripe(secret, body, value, now=now, tolerance_seconds=tolerance_seconds)
    return verify_generic(
        secret,
        body,
        value,
        header_name(preset, header),
        timestamp_header=timestamp_header,
        timestamp=timestamp,
        now=now,
        tolerance_seconds=tolerance_seconds,
    )
