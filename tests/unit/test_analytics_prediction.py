"""Failure prediction finds a planted cause and beats the naive baseline on held-out executions."""

from __future__ import annotations

import random

from orchestrator.analytics.prediction import Encoder, Sample, failure_model


def planted(n: int = 1500, seed: int = 9) -> list[Sample]:
    """Orders from Japan above 750 fail 90 % of the time; every other order 3 %."""
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        order = {"id": f"o-{i}", "customer": {"country": rng.choice(["de", "fr", "us", "jp"])},
                 "amount": rng.uniform(1, 1000), "channel": rng.choice(["web", "app"]), "gift": rng.random() < 0.2}  # fmt: skip
        cause = order["customer"]["country"] == "jp" and order["amount"] > 750  # type: ignore[index]
        failed = rng.random() < (0.9 if cause else 0.03)
        samples.append(Sample(f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", order, failed))
    return samples


def test_the_planted_cause_is_found_and_the_model_beats_the_baseline() -> None:
    report = failure_model(planted())
    assert report["trained"] is True
    assert report["accuracy"] > report["baseline_accuracy"]  # the baseline says "succeeded" always
    assert report["recall_of_failures"] > 0.5
    top = [cause["feature"] for cause in report["causes"][:2]]
    assert set(top) == {"customer.country=jp", "amount in q4"}
    assert not any(c["feature"].startswith("id=") for c in report["causes"])  # identifiers left out


def test_features_of_an_input() -> None:
    encoder = Encoder.learn([{"a": 1, "b": "x"}, {"a": 5, "b": "y"}, {"a": 9, "b": None, "c": [True]}])
    assert encoder.features({"a": 9, "b": None, "c": [True, False]}) == {"a in q3", "b=null", "c[]=true", "c[]=false"}


def test_too_little_history_trains_nothing() -> None:
    assert failure_model(planted(4))["trained"] is False
    assert failure_model([s for s in planted() if not s.failed])["trained"] is False
