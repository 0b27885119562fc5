"""Failure prediction: a naive Bayes model of an execution failing, trained on this deployment's
own history, from the fields of its input.

**Features.** The input's fields, flattened to dotted paths (``customer.country``; list items
count as the list's field): a string, boolean or null value is the feature ``path=value``; a
number falls in one of four bins cut at the training set's quartiles of that path
(``amount in q4``). Strings longer than 64 characters and paths with more than 50 distinct
values in training are left out (identifiers predict nothing).

**Model.** Bernoulli naive Bayes with Laplace smoothing over the features seen in training, two
classes (failed, succeeded). The executions are split by start time: the oldest 70 % train, the
newest 30 % test, so the reported **held-out accuracy** is that of predicting the future from
the past; it is reported beside the **naive baseline** (always the majority class of training).

**Causes.** Features ranked by how much more often they occur in failed executions than in
succeeded ones (the smoothed log ratio), with their counts: the input fields to look at first.
Pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_STRING = 64
MAX_DISTINCT = 50
MAX_DEPTH = 4
TRAIN_SHARE = 0.7


@dataclass(frozen=True, slots=True)
class Sample:
    started_at: str
    input: Any
    failed: bool


def _leaves(value: Any, path: str, depth: int = 0) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict) and depth < MAX_DEPTH:
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list) and depth < MAX_DEPTH:
        for item in value[:20]:
            yield from _leaves(item, path + "[]", depth + 1)
    elif not isinstance(value, dict | list):
        yield path or "(input)", value


@dataclass(frozen=True, slots=True)
class Encoder:
    """Turns an input into features, with the cut points and paths learnt from training."""

    cuts: dict[str, tuple[float, float, float]]
    dropped: frozenset[str]

    @classmethod
    def learn(cls, inputs: Sequence[Any]) -> Encoder:
        numbers: dict[str, list[float]] = {}
        distinct: dict[str, set[str]] = {}
        for value in inputs:
            for path, leaf in _leaves(value, ""):
                if isinstance(leaf, int | float) and not isinstance(leaf, bool):
                    numbers.setdefault(path, []).append(float(leaf))
                else:
                    distinct.setdefault(path, set()).add(str(leaf)[: MAX_STRING + 1])
        cuts = {}
        for path, values in numbers.items():
            ordered = sorted(values)
            cuts[path] = tuple(ordered[min(len(ordered) - 1, len(ordered) * k // 4)] for k in (1, 2, 3))
        dropped = frozenset(path for path, seen in distinct.items() if len(seen) > MAX_DISTINCT)
        return cls(cuts, dropped)  # type: ignore[arg-type]

    def features(self, value: Any) -> set[str]:
        found = set()
        for path, leaf in _leaves(value, ""):
            if isinstance(leaf, int | float) and not isinstance(leaf, bool):
                cut = self.cuts.get(path)
                if cut is not None:
                    found.add(f"{path} in q{1 + sum(1 for c in cut if float(leaf) > c)}")
            elif path not in self.dropped:
                text = "null" if leaf is None else str(leaf).lower() if isinstance(leaf, bool) else str(leaf)
                if len(text) <= MAX_STRING:
                    found.add(f"{path}={text}")
        return found


@dataclass(frozen=True, slots=True)
class Model:
    encoder: Encoder
    prior_failed: float
    counts: dict[str, tuple[int, int]]  # feature -> (in failed, in succeeded)
    failed: int
    succeeded: int

    def log_odds(self, value: Any) -> float:
        """log P(failed | features) - log P(succeeded | features)."""
        present = self.encoder.features(value)
        score = math.log(self.prior_failed / (1 - self.prior_failed))
        for feature, (f, s) in self.counts.items():
            p_f = (f + 1) / (self.failed + 2)
            p_s = (s + 1) / (self.succeeded + 2)
            if feature in present:
                score += math.log(p_f / p_s)
            else:
                score += math.log((1 - p_f) / (1 - p_s))
        return score

    def predicts_failure(self, value: Any) -> bool:
        return self.log_odds(value) > 0

    def causes(self, top: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for feature, (f, s) in self.counts.items():
            ratio = math.log(((f + 1) / (self.failed + 2)) / ((s + 1) / (self.succeeded + 2)))
            if ratio > 0:
                rows.append({"feature": feature, "in_failed": f, "in_succeeded": s,
                             "failure_rate": round(f / (f + s), 4), "log_ratio": round(ratio, 4)})  # fmt: skip
        rows.sort(key=lambda r: (-float(r["log_ratio"]), -int(r["in_failed"]), str(r["feature"])))
        return rows[:top]


def train(samples: Sequence[Sample]) -> Model:
    encoder = Encoder.learn([s.input for s in samples])
    counts: dict[str, list[int]] = {}
    failed = sum(1 for s in samples if s.failed)
    for sample in samples:
        for feature in encoder.features(sample.input):
            counts.setdefault(feature, [0, 0])[0 if sample.failed else 1] += 1
    prior = (failed + 1) / (len(samples) + 2)
    return Model(encoder, prior, {k: (v[0], v[1]) for k, v in counts.items()}, failed, len(samples) - failed)


def failure_model(samples: Sequence[Sample], top: int = 10) -> dict[str, Any]:
    """Train on the oldest 70 %, test on the newest 30 %, report accuracy beside the baseline;
    the causes come from a model trained on every sample."""
    ordered = sorted(samples, key=lambda s: s.started_at)
    cut = int(len(ordered) * TRAIN_SHARE)
    training, testing = ordered[:cut], ordered[cut:]
    if not training or not testing or all(s.failed for s in training) or not any(s.failed for s in training):
        return {"samples": len(ordered), "trained": False,
                "reason": "needs failed and succeeded executions among the oldest 70 % and a newest 30 %"}  # fmt: skip
    model = train(training)
    right = sum(1 for s in testing if model.predicts_failure(s.input) == s.failed)
    majority_failed = model.failed > model.succeeded
    baseline = sum(1 for s in testing if s.failed == majority_failed)
    caught = [s for s in testing if s.failed]
    return {
        "samples": len(ordered),
        "trained": True,
        "method": "Bernoulli naive Bayes over input features, oldest 70 % train, newest 30 % test",
        "train": {"executions": len(training), "failed": model.failed},
        "test": {"executions": len(testing), "failed": len(caught)},
        "accuracy": round(right / len(testing), 4),
        "baseline_accuracy": round(baseline / len(testing), 4),
        "baseline": "always " + ("failed" if majority_failed else "succeeded"),
        "recall_of_failures": round(sum(1 for s in caught if model.predicts_failure(s.input)) / len(caught), 4)
        if caught else None,
        "causes": train(ordered).causes(top),
    }
