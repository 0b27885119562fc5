"""The commands dead-letter topic: poison commands parked as CloudEvents, listed and redriven.

A parked command is one record on ``<commands>.dead`` (the ``dead_letters`` URL option names
another topic), one partition, so a dead letter's id is its offset and the list is in the order
of parking. Records use the CloudEvents Kafka binding in binary mode: the value is the command
record exactly as it was (or would be) on the commands topic, even when it cannot be decoded,
and the attributes are headers: ``ce_specversion``, ``ce_id``, ``ce_source``, ``ce_type``
(``io.orchestrator.deadletter.command``), ``ce_subject`` (the execution id), ``ce_time``, and the
extensions ``ce_errortype``, ``ce_errormessage``, ``ce_attempts``, ``ce_commandtype``,
``ce_commandid`` and ``ce_origin`` (``topic/partition/offset`` when known). Redrive produces the
value again to the commands topic, keyed by the execution id; the dead letter stays listed (the
topic is a log: retention, not redrive, removes records).
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from orchestrator.backends.kafka.client import KafkaOptions, stop_client
from orchestrator.backends.kafka.codec import CodecError, encode_command
from orchestrator.core.commands import Command
from orchestrator.core.timefmt import rfc3339
from orchestrator.ports import DeadLetter, DeadLetterPage, UnknownDeadLetter

Headers = list[tuple[str, bytes]]
Send = Callable[[str, str, bytes, Headers | None], Awaitable[Any]]  # (topic, key, value, headers) -> metadata
TYPE = "io.orchestrator.deadletter.command"
SOURCE = "/orchestrator"
READ_TIMEOUT_MS = 1000
MAX_MESSAGE = 1000  # characters of an error message kept in a header


def dead_letter_topic(options: KafkaOptions) -> str:
    return options.dead_letters or f"{options.commands}.dead"


class KafkaDeadLetters:
    """The ``DeadLetters`` port over the dead-letter topic; produces through the transport's producer."""

    def __init__(
        self,
        options: KafkaOptions,
        send: Send,
        clock: Callable[[], float] = time.time,
        seal: Callable[[bytes], bytes] = lambda value: value,
    ) -> None:
        self.options = options
        self.topic = dead_letter_topic(options)
        self._send = send
        self._clock = clock
        self._seal = seal  # the commands topic's record cipher: a parked command is stored as sent

    async def park(
        self, command: Command, error: BaseException, attempts: int, tenant: str = "default"
    ) -> DeadLetter:
        try:
            value = self._seal(encode_command(command))
        except CodecError:
            value = b""  # cannot happen for a command that came through Kafka; keep the reason anyway
        return await self.park_record(
            value,
            command.execution_id,
            error,
            attempts,
            command_type=type(command).__name__,
            command_id=command.command_id or "",
            tenant=tenant,
        )

    async def park_record(
        self,
        value: bytes,
        key: str,
        error: BaseException,
        attempts: int,
        *,
        command_type: str = "",
        command_id: str = "",
        origin: str = "",
        tenant: str = "default",
    ) -> DeadLetter:
        """Park raw record bytes (a record that cannot be decoded keeps its bytes as they were, and
        is listed in the ``default`` tenant: its own is not known)."""
        attributes = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": SOURCE,
            "type": TYPE,
            "subject": key,
            "time": rfc3339(self._clock()),
            "errortype": type(error).__name__,
            "errormessage": str(error)[:MAX_MESSAGE],
            "attempts": str(attempts),
            "commandtype": command_type,
            "commandid": command_id,
            "origin": origin,
            "tenant": tenant,
        }
        headers = [(f"ce_{name}", text.encode()) for name, text in attributes.items()]
        headers.append(("content-type", b"application/json"))
        metadata = await self._send(self.topic, key, value, headers)
        return _letter(int(metadata.offset), attributes)

    async def list(self, limit: int = 100, cursor: str | None = None, tenant: str | None = None) -> DeadLetterPage:
        first = _offset(cursor) if cursor is not None else 0
        found: builtins.list[DeadLetter] = []
        while len(found) <= limit:  # another tenant's letters are read past, page by page
            records = await self._read(first, limit + 1)
            if not records:
                break
            found += [letter for letter in map(_from_record, records) if tenant in (None, letter.tenant)]
            first = int(records[-1].offset) + 1
            if len(records) <= limit:  # fewer than asked for: the end of the topic
                break
        items = found[:limit]
        more = len(found) > limit
        return DeadLetterPage(items, str(int(items[-1].id) + 1) if more else None)

    async def redrive(self, letter_id: str, tenant: str | None = None) -> DeadLetter:
        offset = _offset(letter_id, UnknownDeadLetter)
        records = await self._read(offset, 1)
        letter = _from_record(records[0]) if records and records[0].offset == offset else None
        if letter is None or tenant not in (None, letter.tenant):
            raise UnknownDeadLetter(f"no dead letter {letter_id!r} on {self.topic}")
        record = records[0]
        await self._send(self.options.commands, letter.execution_id, record.value or b"", None)
        return letter

    async def _read(self, first: int, count: int) -> builtins.list[Any]:
        """Up to ``count`` records from offset ``first`` (or the oldest one kept)."""
        tp = TopicPartition(self.topic, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=list(self.options.bootstrap),
            **self.options.security.client_args(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{self.options.group}.dead-letters",
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            end = int((await consumer.end_offsets([tp]))[tp])
            begin = int((await consumer.beginning_offsets([tp]))[tp])
            start = max(first, begin)
            found: builtins.list[Any] = []
            if start >= end:
                return found
            consumer.seek(tp, start)
            while len(found) < count and (not found or found[-1].offset + 1 < end):
                batch = await consumer.getmany(tp, timeout_ms=READ_TIMEOUT_MS, max_records=count - len(found))
                if not batch:
                    break  # nothing more within the timeout (e.g. only control records remain)
                found += batch.get(tp, [])
            return found
        finally:
            await stop_client("closing the dead-letter reader", consumer.stop, 10.0)


def _offset(text: str, error: type[Exception] = ValueError) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 19):  # an offset: 64 bits; "²" is a digit
        raise error(f"{text!r} is not a dead-letter position")
    return int(text)


def _headers(record: Any) -> dict[str, str]:
    pairs: Sequence[tuple[str, bytes]] = record.headers or ()
    return {
        name.removeprefix("ce_"): value.decode(errors="replace")
        for name, value in pairs
        if name.startswith("ce_")
    }


def _from_record(record: Any) -> DeadLetter:
    return _letter(record.offset, _headers(record))


def _letter(offset: int, attributes: dict[str, str]) -> DeadLetter:
    attempts = attributes.get("attempts", "")
    return DeadLetter(
        id=str(offset),
        execution_id=attributes.get("subject", ""),
        command_type=attributes.get("commandtype", ""),
        command_id=attributes.get("commandid") or None,
        error_type=attributes.get("errortype", ""),
        error_message=attributes.get("errormessage", ""),
        attempts=int(attempts) if attempts.isascii() and attempts.isdigit() and len(attempts) <= 9 else 0,
        parked_at=attributes.get("time", ""),
        origin=attributes.get("origin", ""),
        tenant=attributes.get("tenant") or "default",
    )
