"""PythonConnector: thread pool, async functions, argument mapping, errors, key injection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ConnectorError, StepCall
from connectors.defaults import default_connectors
from connectors.python import THREAD_NAME_PREFIX, PythonConnector
from orchestrator.settings import Settings
from tests.unit import python_funcs

MODULE = "tests.unit.python_funcs"
ALLOW = ("tests.unit",)  # the python connector calls only allowed modules


def make_call(function: str, args: Any = None, **fields: Any) -> StepCall:
    return StepCall(
        execution_id="exec-1",
        workflow="wf",
        step=fields.pop("step", "step-a"),
        attempt=fields.pop("attempt", 1),
        idempotency_key="exec-1:step-a:0",
        config={"function": function},
        args={} if args is None else args,
        **fields,
    )


@pytest.fixture
async def connector() -> AsyncIterator[PythonConnector]:
    async with PythonConnector(max_threads=2, allow=ALLOW) as started:
        yield started


async def test_sync_function_runs_on_the_connector_thread_pool(
    connector: PythonConnector,
) -> None:
    name = await connector.invoke(make_call(f"{MODULE}:thread_name"))
    assert name.startswith(THREAD_NAME_PREFIX)
    assert name != threading.current_thread().name


async def test_pool_size_bounds_the_threads_used(connector: PythonConnector) -> None:
    calls = [make_call(f"{MODULE}:sleep_then_name", {"seconds": 0.05}) for _ in range(6)]
    names = await asyncio.gather(*(connector.invoke(call) for call in calls))
    assert 1 <= len(set(names)) <= 2


async def test_async_function_is_awaited_on_the_loop(connector: PythonConnector) -> None:
    result = await connector.invoke(make_call(f"{MODULE}:async_double", {"x": 21}))
    assert result == {"doubled": 42, "thread": threading.current_thread().name}


async def test_object_with_async_call_is_awaited(connector: PythonConnector) -> None:
    assert await connector.invoke(make_call(f"{MODULE}:greet", {"name": "ada"})) == "hello ada"


async def test_dict_args_are_keyword_arguments(connector: PythonConnector) -> None:
    assert await connector.invoke(make_call(f"{MODULE}:add", {"b": 2, "a": 40})) == 42
    assert await connector.invoke(make_call(f"{MODULE}:with_kwargs", {"k": [1]})) == {"k": [1]}


@pytest.mark.parametrize("value", [[1, 2], "text", 7, None])
async def test_other_args_are_one_positional_argument(
    connector: PythonConnector, value: Any
) -> None:
    call = StepCall("e", "wf", "s", 1, "k", config={"function": f"{MODULE}:echo"}, args=value)
    assert await connector.invoke(call) == value


async def test_exception_becomes_retryable_error_named_by_class(
    connector: PythonConnector,
) -> None:
    with pytest.raises(ConnectorError) as info:
        await connector.invoke(make_call(f"{MODULE}:fail_value", {"message": "bad amount"}))
    assert (info.value.type, info.value.message, info.value.retryable) == (
        "ValueError",
        "bad amount",
        True,
    )
    assert isinstance(info.value.__cause__, ValueError)


async def test_connector_error_passes_through(connector: PythonConnector) -> None:
    with pytest.raises(ConnectorError) as info:
        await connector.invoke(make_call(f"{MODULE}:fail_connector"))
    assert (info.value.type, info.value.retryable) == ("payment.declined", False)


@pytest.mark.parametrize(
    "function",
    [
        "tests.unit.no_such_module:f",
        f"{MODULE}:missing",
        f"{MODULE}:not_callable",
        f"{MODULE}.add",
        ":add",
        None,
    ],
)
async def test_unresolvable_function_is_a_non_retryable_import_error(
    connector: PythonConnector, function: Any
) -> None:
    call = StepCall("e", "wf", "s", 1, "k", config={"function": function}, args={})
    with pytest.raises(ConnectorError) as info:
        await connector.invoke(call)
    assert (info.value.type, info.value.retryable) == ("python.import", False)


async def test_args_not_fitting_the_signature_are_not_retried(
    connector: PythonConnector,
) -> None:
    with pytest.raises(ConnectorError) as info:
        await connector.invoke(make_call(f"{MODULE}:add", {"a": 1, "c": 2}))
    assert (info.value.type, info.value.retryable) == ("python.arguments", False)


async def test_idempotency_key_is_injected_when_declared(connector: PythonConnector) -> None:
    assert await connector.invoke(make_call(f"{MODULE}:with_key", {"x": 1})) == {
        "x": 1,
        "key": "exec-1:step-a:0",
    }
    assert await connector.invoke(make_call(f"{MODULE}:async_with_key")) == "exec-1:step-a:0"


async def test_idempotency_key_is_not_forced_on_kwargs_functions(
    connector: PythonConnector,
) -> None:
    assert await connector.invoke(make_call(f"{MODULE}:with_kwargs", {"a": 1})) == {"a": 1}


async def test_call_is_injected_when_declared(connector: PythonConnector) -> None:
    result = await connector.invoke(make_call(f"{MODULE}:with_call", step="charge", attempt=3))
    assert result == {"step": "charge", "attempt": 3}


async def test_context_variables_reach_the_thread(connector: PythonConnector) -> None:
    token = python_funcs.REQUEST_ID.set("req-7")
    try:
        assert await connector.invoke(make_call(f"{MODULE}:read_request_id")) == "req-7"
    finally:
        python_funcs.REQUEST_ID.reset(token)


async def test_stop_waits_for_running_sync_calls() -> None:
    connector = PythonConnector(max_threads=1, allow=ALLOW)
    await connector.start()
    running = asyncio.create_task(
        connector.invoke(make_call(f"{MODULE}:sleep_then_name", {"seconds": 0.2, "marker": "m1"}))
    )
    await asyncio.sleep(0.05)
    await connector.stop()
    assert "m1" in python_funcs.FINISHED
    assert (await running).startswith(THREAD_NAME_PREFIX)


async def test_invoke_needs_start() -> None:
    connector = PythonConnector(allow=ALLOW)
    with pytest.raises(RuntimeError):
        await connector.invoke(make_call(f"{MODULE}:add", {"a": 1, "b": 2}))
    await connector.start()
    await connector.stop()
    with pytest.raises(RuntimeError):
        await connector.invoke(make_call(f"{MODULE}:add", {"a": 1, "b": 2}))


async def test_default_connectors() -> None:
    connectors = default_connectors(python_threads=2, settings=Settings(python_allow=ALLOW))
    assert connectors.names() == ["amqp.publish", "http", "kafka.publish", "noop", "python"]
    async with connectors:
        noop = connectors.get("noop")
        assert await noop.invoke(make_call("unused", {"a": [1]})) == {"a": [1]}
        python = connectors.get("python")
        assert await python.invoke(make_call(f"{MODULE}:add", {"a": 1, "b": 2})) == 3
