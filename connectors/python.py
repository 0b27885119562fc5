"""Python connector: call ``package.module:function`` with the step's arguments.

A dict of args is passed as keyword arguments, anything else as one positional argument. Async
functions are awaited on the event loop; sync functions run in the connector's own thread pool,
opened in ``start()`` and shut down in ``stop()``. A function that declares a parameter named
``idempotency_key`` or ``call`` receives the attempt's key or its ``StepCall``.

With ``isolation: process`` (in the step's config, or for every step by default) the call runs
in a child process of a pool instead, stopped for real at its limits (``connectors.process_pool``).

Only functions of allowed modules may be called (``ORCHESTRATOR_PYTHON_ALLOW``, comma-separated):
an entry ``pkg.mod`` allows that module and its submodules, ``pkg.mod:function`` one function.
Nothing is allowed by default. The module named must be allowed, and so must the module that
defines the function found (``allowed:os.system`` is refused), no attribute may start with
``_``, and nothing is imported before the check: registration refuses a step naming a function
outside the list, and so does every call (``python.forbidden``, not retryable).

Errors: ``python.import`` when the function cannot be resolved and ``python.arguments`` when the
args do not fit its signature (neither retryable); a ``ConnectorError`` raised by the function
passes through; any other exception becomes a retryable error typed by its class name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError, StepCall
from connectors.process_pool import Limits, ProcessPool
from orchestrator.lifecycle import Lifecycle
from schemas.isolation import step_isolation

THREAD_NAME_PREFIX = "connector-python"


@dataclass(frozen=True, slots=True)
class _Target:
    """A resolved function and what its signature asks for, computed once."""

    function: Callable[..., Any]
    is_async: bool
    signature: inspect.Signature | None
    wants_key: bool
    wants_call: bool


class PythonConnector(Lifecycle):
    """Runs in-process Python functions; sync ones on an explicit, bounded thread pool."""

    name = "python"

    def __init__(
        self, max_threads: int = 8, allow: Iterable[str] = (), *, processes: int = 2, isolation: str = "thread"
    ) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        if isolation not in ("thread", "process"):
            raise ValueError(f"isolation must be thread or process, not {isolation!r}")
        self.allow = AllowList(allow)
        self._max_threads = max_threads
        self.isolation = isolation  # for steps whose config does not say
        self.pool = ProcessPool(processes)  # children start on the first isolated call
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._targets: dict[str, _Target] = {}

    async def start(self) -> None:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._max_threads, thread_name_prefix=THREAD_NAME_PREFIX
            )
            await self.pool.start()

    async def stop(self) -> None:
        """Drop queued sync calls and wait, without blocking the loop, for running ones."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await self.pool.stop()  # isolated calls still running are killed
        executor.shutdown(wait=False, cancel_futures=True)
        running = [asyncio.wrap_future(future) for future in list(self._running)]
        if running:
            await asyncio.wait(running)
        executor.shutdown(wait=True)  # the workers are idle now: this only joins them

    async def invoke(self, call: StepCall) -> Any:
        if self._executor is None:
            raise RuntimeError("PythonConnector is not started")
        isolation = step_isolation(call.config)
        if (isolation.mode or self.isolation) == "process":
            return await self._isolated(call, isolation.cpu_seconds, isolation.memory_bytes, isolation.wall_seconds)
        target = self._resolve(call.config.get("function"))
        args, kwargs = _arguments(target, call)
        try:
            if target.is_async:
                return await target.function(*args, **kwargs)
            result = await self._run_in_thread(self._executor, target.function, args, kwargs)
            if inspect.isawaitable(result):  # a sync wrapper around a coroutine function
                result = await result
            return result
        except ConnectorError:
            raise
        except Exception as exc:
            raise ConnectorError(type(exc).__name__, str(exc), retryable=True) from exc

    async def _isolated(
        self, call: StepCall, cpu: float | None, memory: int | None, wall: float | None
    ) -> Any:
        """Run the call in a child process of the pool, under its limits; record what it used."""
        self._resolve(call.config.get("function"))  # refused here, as in a thread, when it cannot load
        limits = Limits(cpu_seconds=cpu, memory_bytes=memory, wall_seconds=wall or call.timeout_seconds)
        result = await self.pool.run(call, limits)
        if call.usage is not None:
            call.usage.cpu_seconds = result.cpu_seconds
            call.usage.peak_memory_bytes = result.peak_memory_bytes
        return result.output

    async def _run_in_thread(
        self,
        executor: concurrent.futures.ThreadPoolExecutor,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        context = contextvars.copy_context()  # like asyncio.to_thread, but on our pool
        future = executor.submit(context.run, functools.partial(function, *args, **kwargs))
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return await asyncio.wrap_future(future)

    def step_problems(self, config: Mapping[str, Any]) -> list[str]:
        """Registration: the function must be written literally and be allowed (nothing imported)."""
        spec = config.get("function")
        if not isinstance(spec, str):
            return ["config 'function' must be 'module:function'"]
        module, _, attribute = spec.partition(":")
        if not module or not attribute:
            return [f"config 'function' must be 'module:function', not {spec!r}"]
        problem = self.allow.problem(spec)
        return [] if problem is None else [problem]

    def _resolve(self, spec: Any) -> _Target:
        if not isinstance(spec, str):
            raise ConnectorError(
                "python.import", "config 'function' must be 'module:function'", retryable=False
            )
        target = self._targets.get(spec)
        if target is None:
            if (problem := self.allow.problem(spec)) is not None:  # before anything is imported
                raise ConnectorError("python.forbidden", problem, retryable=False)
            target = _load(spec)
            defined_in = getattr(target.function, "__module__", None) or type(target.function).__module__
            if not self.allow.allows_definition(spec, defined_in):
                message = f"{spec!r} is defined in module {defined_in!r}, which {self.allow.describe()}"
                raise ConnectorError("python.forbidden", message, retryable=False)
            self._targets[spec] = target
        return target


def load_target(spec: Any) -> _Target:
    """Resolve ``module:function`` (cached per process); ConnectorError ``python.import``."""
    if not isinstance(spec, str):
        raise ConnectorError("python.import", "config 'function' must be 'module:function'", retryable=False)
    return _load(spec)


def step_arguments(target: _Target, call: StepCall) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments of one call (``python.arguments`` when they do not fit)."""
    return _arguments(target, call)


class AllowList:
    """Module prefixes (``pkg.mod``) and single functions (``pkg.mod:name``) that may be called."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entry.strip() for entry in entries if entry.strip())
        self._modules = tuple(e.rstrip(".") for e in self.entries if ":" not in e)
        self._functions = frozenset(e for e in self.entries if ":" in e)

    def allows_module(self, module: str) -> bool:
        return any(module == prefix or module.startswith(prefix + ".") for prefix in self._modules)

    def allows_definition(self, spec: str, module: str) -> bool:
        """Whether a function found through ``spec`` may run, given the module defining it."""
        return self.allows_module(module) or (spec in self._functions and spec.partition(":")[0] == module)

    def describe(self) -> str:
        if not self.entries:
            return "is not allowed: no module is (set ORCHESTRATOR_PYTHON_ALLOW to module prefixes)"
        return f"is not allowed (ORCHESTRATOR_PYTHON_ALLOW: {', '.join(self.entries)})"

    def problem(self, spec: str) -> str | None:
        """Why ``spec`` may not be called, or None."""
        module, _, attribute = spec.partition(":")
        if not module or not attribute:
            return None  # not a function name at all: python.import says so
        if any(part.startswith("_") or not part for part in attribute.split(".")):
            return f"{spec!r}: attributes starting with '_' may not be called"
        if spec in self._functions or self.allows_module(module):
            return None
        return f"python function {spec!r} {self.describe()}"


def _load(spec: str) -> _Target:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConnectorError("python.import", f"{spec!r} is not 'module:function'", retryable=False)
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:  # ImportError, AttributeError, or the module failing on import
        raise ConnectorError(
            "python.import", f"cannot load {spec!r}: {type(exc).__name__}: {exc}", retryable=False
        ) from exc
    if not callable(found):
        raise ConnectorError("python.import", f"{spec!r} is not callable", retryable=False)
    try:
        signature: inspect.Signature | None = inspect.signature(found)
    except (TypeError, ValueError):  # some builtins have no signature
        signature = None
    return _Target(
        function=found,
        is_async=_is_async(found),
        signature=signature,
        wants_key=_accepts_keyword(signature, "idempotency_key"),
        wants_call=_accepts_keyword(signature, "call"),
    )


def _is_async(function: Callable[..., Any]) -> bool:
    """Coroutine functions, including objects with an ``async def __call__``."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(type(function).__call__)


def _accepts_keyword(signature: inspect.Signature | None, name: str) -> bool:
    if signature is None or name not in signature.parameters:
        return False
    kind = signature.parameters[name].kind
    return kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _arguments(target: _Target, call: StepCall) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments for one call; arguments the step maps win."""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if isinstance(call.args, Mapping):
        kwargs = {str(key): value for key, value in call.args.items()}
    else:
        args = (call.args,)
    if target.wants_key:
        kwargs.setdefault("idempotency_key", call.idempotency_key)
    if target.wants_call:
        kwargs.setdefault("call", call)
    if target.signature is not None:
        try:
            target.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConnectorError("python.arguments", str(exc), retryable=False) from None
    return args, kwargs
