"""The deferred task records a lane keeps in memory (orchestrator/backends/kafka/parked.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestrator.backends.kafka.client import KafkaOptions
from orchestrator.backends.kafka.parked import RECORD_OVERHEAD, ParkedRecords, ParkingBudget, record_size
from orchestrator.backends.kafka.read_ahead import header_tenant


@dataclass
class Record:
    offset: int
    value: bytes | None = b"x" * 100
    key: bytes | None = b"ex"
    headers: tuple[tuple[str, bytes], ...] = ()


SIZE = 100 + 2 + RECORD_OVERHEAD


def test_records_come_back_per_tenant_oldest_first() -> None:
    parked = ParkedRecords(ParkingBudget(10 * SIZE))
    for offset, tenant in [(3, "a"), (4, "b"), (5, "a"), (7, "a")]:
        assert parked.park(offset, tenant, Record(offset))
    assert parked.tenants() == ["a", "b"] and len(parked) == 4
    assert [parked.oldest("a")[0] for _ in range(3)] == [3, 5, 7]  # type: ignore[index]
    assert parked.oldest("a") is None and parked.tenants() == ["b"]


def test_the_budget_is_shared_and_given_back() -> None:
    budget = ParkingBudget(3 * SIZE)
    first, second = ParkedRecords(budget), ParkedRecords(budget)
    assert first.park(1, "a", Record(1)) and first.park(2, "a", Record(2))
    assert second.park(1, "a", Record(1))
    assert not second.park(2, "a", Record(2))  # over the budget: it stays in Kafka only
    assert budget.used == 3 * SIZE
    first.drop(1, "a")  # read from Kafka again after all
    first.drop(9, "a")  # never parked: nothing happens
    assert budget.used == 2 * SIZE
    second.clear()  # its lane was revoked
    assert budget.used == SIZE and len(second) == 0
    assert not first.park(2, "a", Record(2))  # parked already
    assert record_size(Record(0, value=None, key=None)) == RECORD_OVERHEAD


def test_a_zero_budget_parks_nothing() -> None:
    parked = ParkedRecords(ParkingBudget(0))
    assert not parked.park(1, "a", Record(1))
    assert parked.oldest("a") is None


def test_the_tenant_header() -> None:
    assert header_tenant(Record(0, headers=(("other", b"x"), ("tenant", b"acme")))) == "acme"
    assert header_tenant(Record(0)) is None  # an older producer's record
    assert header_tenant(Record(0, headers=(("tenant", b"\xff"),))) is None


def test_the_parking_budget_is_a_kafka_url_option() -> None:
    assert KafkaOptions.from_url("kafka://b:9092").parked_bytes == 16 << 20
    assert KafkaOptions.from_url("kafka://b:9092?parked_bytes=0").parked_bytes == 0
    with pytest.raises(ValueError, match="parked_bytes must be >= 0"):
        KafkaOptions.from_url("kafka://b:9092?parked_bytes=-1")
