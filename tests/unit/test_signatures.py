"""Signature presets against the providers' documented constructions."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from triggers.signatures import (
    SignatureError,
    header_name,
    sign_generic,
    sign_github,
    sign_stripe,
    verify,
    verify_generic,
    verify_github,
    verify_stripe,
)

# GitHub's documented example ("Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

STRIPE_SECRET = "whsec_test_secret"
STRIPE_BODY = b'{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}'
T = 1_700_000_000


def stripe_v1(secret: str, timestamp: int, body: bytes) -> str:
    """Stripe's documented scheme, computed independently: HMAC-SHA256 of "<t>.<payload>"."""
    signed_payload = f"{timestamp}.{body.decode()}".encode()
    return hmac.new(secret.encode(), signed_payload, hashlib.sha256).hexdigest()


def reason(excinfo: pytest.ExceptionInfo[SignatureError]) -> str:
    return excinfo.value.reason


# -- GitHub -------------------------------------------------------------------------------


def test_github_documented_vector() -> None:
    assert sign_github(GITHUB_SECRET, GITHUB_BODY) == GITHUB_SIGNATURE
    verify_github(GITHUB_SECRET, GITHUB_BODY, GITHUB_SIGNATURE)
    verify_github(
        GITHUB_SECRET.encode(), GITHUB_BODY, GITHUB_SIGNATURE.upper().replace("SHA256", "sha256")
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "missing X-Hub-Signature-256 header"),
        ("", "missing X-Hub-Signature-256 header"),
        ("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),
        ("sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),
        ("sha256=abc", "malformed"),
        ("sha256=" + "z" * 64, "malformed"),
        ("sha256=" + "é" * 64, "malformed"),
        ("sha256=" + "0" * 64, "signature mismatch"),
    ],
)
def test_github_rejects(value: str | None, expected: str) -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_github(GITHUB_SECRET, GITHUB_BODY, value)
    assert reason(excinfo).startswith(expected)


def test_github_wrong_secret_or_body() -> None:
    with pytest.raises(SignatureError, match="mismatch"):
        verify_github("another secret", GITHUB_BODY, GITHUB_SIGNATURE)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_github(GITHUB_SECRET, GITHUB_BODY + b" ", GITHUB_SIGNATURE)


# -- Stripe -------------------------------------------------------------------------------


def test_stripe_signature_is_built_as_documented() -> None:
    header = sign_stripe(STRIPE_SECRET, STRIPE_BODY, T)
    assert header == f"t={T},v1={stripe_v1(STRIPE_SECRET, T, STRIPE_BODY)}"
    verify_stripe(STRIPE_SECRET, STRIPE_BODY, header, now=T)


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_stripe_accepts_inside_tolerance_both_sides(offset: int) -> None:
    verify_stripe(
        STRIPE_SECRET, STRIPE_BODY, sign_stripe(STRIPE_SECRET, STRIPE_BODY, T), now=T + offset
    )


@pytest.mark.parametrize("offset", [-301, 301, 10_000])
def test_stripe_rejects_outside_tolerance_both_sides(offset: int) -> None:
    header = sign_stripe(STRIPE_SECRET, STRIPE_BODY, T)
    with pytest.raises(SignatureError) as excinfo:
        verify_stripe(STRIPE_SECRET, STRIPE_BODY, header, now=T + offset)
    assert reason(excinfo) == "timestamp outside the tolerance of 300 seconds"


def test_stripe_custom_tolerance() -> None:
    header = sign_stripe(STRIPE_SECRET, STRIPE_BODY, T)
    verify_stripe(STRIPE_SECRET, STRIPE_BODY, header, now=T + 30, tolerance_seconds=30)
    with pytest.raises(SignatureError, match="tolerance of 29 seconds"):
        verify_stripe(STRIPE_SECRET, STRIPE_BODY, header, now=T + 30, tolerance_seconds=29)


def test_stripe_any_v1_may_match() -> None:
    """During secret rotation Stripe sends one v1 per active secret; v0 and others are ignored."""
    good = stripe_v1(STRIPE_SECRET, T, STRIPE_BODY)
    other = stripe_v1("old secret", T, STRIPE_BODY)
    for header in (
        f"t={T},v1={other},v1={good}",
        f"t={T},v1={good},v1={other}",
        f"t={T}, v1={other}, v0={'0' * 64}, v1={good}",
        f"v1={good},t={T}",
        f"t={T},v1=not-hex,v1={good}",
    ):
        verify_stripe(STRIPE_SECRET, STRIPE_BODY, header, now=T)


def test_stripe_signature_covers_the_timestamp() -> None:
    signature = stripe_v1(STRIPE_SECRET, T, STRIPE_BODY)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_stripe(STRIPE_SECRET, STRIPE_BODY, f"t={T + 1},v1={signature}", now=T)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "missing Stripe-Signature header"),
        ("", "missing Stripe-Signature header"),
        ("garbage", "malformed Stripe-Signature header"),
        (f"v1={'0' * 64}", "malformed Stripe-Signature header: expected one t="),
        (f"t=abc,v1={'0' * 64}", "malformed Stripe-Signature header: expected one t="),
        (f"t=-5,v1={'0' * 64}", "malformed Stripe-Signature header: expected one t="),
        (f"t={T},t={T},v1={'0' * 64}", "malformed Stripe-Signature header: expected one t="),
        (f"t={T}", "malformed Stripe-Signature header: no v1 signature"),
        (f"t={T},v0={'0' * 64}", "malformed Stripe-Signature header: no v1 signature"),
        (f"t={T},v1={'0' * 64}", "signature mismatch"),
        (f"t={T},v1=zz", "signature mismatch"),
    ],
)
def test_stripe_rejects(value: str | None, expected: str) -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_stripe(STRIPE_SECRET, STRIPE_BODY, value, now=T)
    assert reason(excinfo).startswith(expected)


def test_stripe_mismatch_is_reported_before_the_timestamp() -> None:
    """An attacker learns nothing about the clock from an unsigned header."""
    with pytest.raises(SignatureError, match="mismatch"):
        verify_stripe(STRIPE_SECRET, STRIPE_BODY, f"t={T},v1={'0' * 64}", now=T + 10_000)


# -- generic ------------------------------------------------------------------------------


def test_generic_with_and_without_prefix() -> None:
    digest = hmac.new(b"s3cret", b"{}", hashlib.sha256).hexdigest()
    assert sign_generic("s3cret", b"{}") == digest
    assert sign_generic("s3cret", b"{}", prefix=True) == "sha256=" + digest
    verify_generic("s3cret", b"{}", digest, "X-Signature")
    verify_generic("s3cret", b"{}", "sha256=" + digest, "X-Signature")
    verify_generic("s3cret", b"{}", digest.upper(), "X-Signature")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "missing X-Signature header"),
        ("md5=" + "0" * 64, "malformed X-Signature header"),
        ("0" * 63, "malformed X-Signature header"),
        ("0" * 64, "signature mismatch"),
    ],
)
def test_generic_rejects(value: str | None, expected: str) -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_generic("s3cret", b"{}", value, "X-Signature")
    assert reason(excinfo).startswith(expected)


def test_generic_with_a_timestamp_signs_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", f"{T}.".encode() + b"{}", hashlib.sha256).hexdigest()
    assert sign_generic("s3cret", b"{}", timestamp=T) == expected
    args = {"timestamp_header": "X-Timestamp", "now": T + 299, "tolerance_seconds": 300}
    assert verify_generic("s3cret", b"{}", expected, "X-Signature", timestamp=str(T), **args) == T
    assert verify_generic("s3cret", b"{}", sign_generic("s3cret", b"{}"), "X-Signature") is None


@pytest.mark.parametrize(
    ("timestamp", "signed_with", "now", "expected"),
    [
        (None, T, T, "missing X-Timestamp header"),
        ("yesterday", T, T, "malformed X-Timestamp header"),
        (str(T + 1), T, T, "signature mismatch"),  # the timestamp is covered: it cannot be changed
        (str(T), None, T, "signature mismatch"),  # a body-only HMAC does not verify
        (str(T), T, T + 301, "timestamp outside the tolerance of 300 seconds"),
        (str(T), T, T - 301, "timestamp outside the tolerance of 300 seconds"),
    ],
)
def test_generic_with_a_timestamp_rejects(timestamp: str | None, signed_with: int | None, now: int, expected: str) -> None:
    value = sign_generic("s3cret", b"{}", timestamp=signed_with)
    with pytest.raises(SignatureError) as excinfo:
        verify_generic("s3cret", b"{}", value, "X-Signature", timestamp_header="X-Timestamp", timestamp=timestamp,
                       now=now, tolerance_seconds=300)  # fmt: skip
    assert reason(excinfo) == expected or reason(excinfo).startswith(expected)


# -- dispatch -----------------------------------------------------------------------------


def test_verify_dispatches_by_preset() -> None:
    verify("github", GITHUB_SECRET, GITHUB_BODY, GITHUB_SIGNATURE, now=0)
    verify("stripe", STRIPE_SECRET, STRIPE_BODY, sign_stripe(STRIPE_SECRET, STRIPE_BODY, T), now=T)
    assert verify("generic", "k", b"x", sign_generic("k", b"x"), now=0, header="X-Sig") is None
    stamped = sign_generic("k", b"x", timestamp=T)
    assert verify("generic", "k", b"x", stamped, now=T, header="X-Sig", timestamp_header="X-T", timestamp=str(T)) == T
    assert verify("stripe", STRIPE_SECRET, STRIPE_BODY, sign_stripe(STRIPE_SECRET, STRIPE_BODY, T), now=T) == T
    with pytest.raises(SignatureError, match="missing X-Sig header"):
        verify("generic", "k", b"x", None, now=0, header="X-Sig")


def test_header_names() -> None:
    assert header_name("github") == "X-Hub-Signature-256"
    assert header_name("stripe") == "Stripe-Signature"
    assert header_name("generic", "X-Sig") == "X-Sig"
    with pytest.raises(ValueError, match="header"):
        header_name("generic")
