"""Consumer lag: records between a partition's high watermark and the consumer's position.

Both Kafka consumers of the orchestrator (the transport's groups and the topic triggers) call
:meth:`LagReporter.report` from their fetch loop after each fetch; it reports at most once per
``interval`` seconds, for each partition whose high watermark the consumer knows (it learns it
from a fetch response), as ``Instruments.consumer_lag(group, topic, partition, lag)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from orchestrator.instrumentation import Instruments

log = logging.getLogger(__name__)
POSITION_TIMEOUT = 0.05  # a position being reset (after a seek or assignment) is skipped, not awaited


class LagReporter:
    """Rate-limited lag reports for one consumer group."""

    def __init__(
        self, group: str, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.group = group
        self.interval = interval
        self._clock = clock
        self._next = 0.0

    async def report(
        self, consumer: Any, partitions: Iterable[TopicPartition], instruments: Instruments
    ) -> None:
        """Report the lag of each of ``partitions`` (assigned to ``consumer``) if one is due."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self.interval
        for tp in list(partitions):
            lag = await partition_lag(consumer, tp)
            if lag is not None:
                instruments.consumer_lag(self.group, tp.topic, tp.partition, lag)


async def partition_lag(consumer: Any, tp: TopicPartition) -> int | None:
    """``highwater - position``, or None while either is unknown (or the partition is not assigned).

    Never raises: lag is an observation, and the caller is a fetch loop that must keep going."""
    try:
        highwater = consumer.highwater(tp)
        if highwater is None:
            return None
        async with asyncio.timeout(POSITION_TIMEOUT):
            position: int = await consumer.position(tp)
    except (IllegalStateError, AssertionError, TimeoutError):  # revoked meanwhile, or being reset
        return None
    except Exception as exc:  # e.g. a coordinator error the next fetch reports anyway
        log.debug("lag of %s/%d unknown: %r", tp.topic, tp.partition, exc)
        return None
    return max(int(highwater) - position, 0)
