"""Functions the Python connector tests call by 'tests.unit.python_funcs:<name>'."""

from __future__ import annotations

import asyncio
import threading
import time
from contextvars import ContextVar
from typing import Any

from connectors.base import ConnectorError, StepCall

REQUEST_ID: ContextVar[str] = ContextVar("REQUEST_ID", default="unset")
FINISHED: list[str] = []


def add(a: int, b: int) -> int:
    return a + b


def thread_name() -> str:
    return threading.current_thread().name


def echo(value: Any) -> Any:
    return value


async def async_double(x: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"doubled": x * 2, "thread": threading.current_thread().name}


class Greeter:
    async def __call__(self, name: str) -> str:
        return f"hello {name}"


greet = Greeter()


def fail_value(message: str) -> None:
    raise ValueError(message)


def fail_connector() -> None:
    raise ConnectorError("payment.declined", "card declined", retryable=False)


def with_key(x: int, idempotency_key: str) -> dict[str, Any]:
    return {"x": x, "key": idempotency_key}


async def async_with_key(*, idempotency_key: str) -> str:
    return idempotency_key


def with_call(call: StepCall) -> dict[str, Any]:
    return {"step": call.step, "attempt": call.attempt}


def with_kwargs(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def read_request_id() -> str:
    return REQUEST_ID.get()


def sleep_then_name(seconds: float, marker: str | None = None) -> str:
    time.sleep(seconds)
    if marker is not None:
        FINISHED.append(marker)
    return threading.current_thread().name


not_callable = 42
