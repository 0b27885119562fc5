"""The worker: run one task attempt through its connector and report the outcome as a command."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from orchestrator.core.commands import CompleteStep, ErrorInfo, FailStep
from orchestrator.core.machine import CommandRejected
from orchestrator.engine.retrying import Backoff, until_done
from orchestrator.engine.secret_refs import SecretLookup, SecretMissing, SecretResolver, redact, redact_text
from orchestrator.engine.throttle import Throttles
from orchestrator.instrumentation import Instruments, StepOutcome, guarded
from orchestrator.logcontext import bound
from orchestrator.ports import ConnectorError, ConnectorLookup, StepCall, StepTask, StepUsage, Transport
from schemas import strict_json
from schemas.expressions import RESULT_DEPTH
from schemas.traceparent import trace_id_of

log = logging.getLogger(__name__)


class Worker:
    """Steps run at least once: a crash before the answer is recorded runs the attempt again.

    An answer that cannot be recorded (the event log busy or away, conflicts past the engine's
    retries, any other fault) is submitted again with ``backoff`` until it is, restamped with the
    time of each try; it is never dropped, and ``run`` never raises for it. Only a rejection
    (the execution no longer exists) ends the retries.
    """

    def __init__(
        self,
        connectors: ConnectorLookup,
        transport: Transport,
        clock: Callable[[], float],
        *,
        instruments: Instruments | None = None,
        backoff: Backoff | None = None,
        throttles: Throttles | None = None,
        secrets: SecretLookup | None = None,
    ) -> None:
        self._connectors = connectors
        self.secrets = SecretResolver(secrets)  # references resolved here only (engine.secret_refs)
        self._transport = transport
        self._clock = clock
        self.instruments = guarded(instruments)
        self.backoff = backoff or Backoff()
        self.throttles = throttles  # per-connector rate limits: calls wait for their slot
        self._rng = random.Random()

    async def run(self, task: StepTask) -> None:
        """Run one attempt, its log lines labelled with the task (``orchestrator.logcontext``)."""
        trace_id = trace_id_of(task.traceparent) if task.traceparent else None
        with bound(
            execution_id=task.execution_id, workflow=task.workflow, step=task.step, tenant=task.tenant, trace_id=trace_id
        ):
            await self._run(task)

    async def _run(self, task: StepTask) -> None:
        call = StepCall(
            execution_id=task.execution_id,
            workflow=task.workflow,
            step=task.step,
            attempt=task.attempt,
            idempotency_key=task.idempotency_key,
            config=task.config,
            args=task.args,
            timeout_seconds=task.timeout_seconds,
            tenant=task.tenant,
            actor=task.actor,
            usage=StepUsage(),
            traceparent=task.traceparent,
        )
        if self.throttles:  # before the clock starts: waiting for a slot is not the step's time
            limit_key = task.config.get("rate_limit")
            keys = (task.connector, limit_key) if isinstance(limit_key, str) else (task.connector,)
            await self.throttles.wait(keys)
        self.instruments.step_started(task.workflow, task.step, task.connector, task.attempt)
        if task.scheduled_at is not None:
            waited = max(self._clock() - task.scheduled_at, 0.0)
            self.instruments.step_queued(task.workflow, task.step, task.connector, waited)
        began = time.perf_counter()
        secrets: list[str] = []  # the values resolved for this attempt, redacted from what it returns
        try:
            connector = self._connectors.get(task.connector)
            resolved = await self.secrets.resolve(task)
            if resolved.values:
                secrets = resolved.values
                call = dataclasses.replace(call, config=resolved.config, args=resolved.args)
            output = await asyncio.wait_for(connector.invoke(call), task.timeout_seconds)
            output = redact(output, secrets)
            strict_json.check(output, "output", max_depth=RESULT_DEPTH)
        except strict_json.StrictJSONError as exc:  # it would fail the same way again
            message = f"{task.connector} step {task.step!r}: {exc} (step outputs must be strict JSON)"
            await self._fail(task, ErrorInfo("invalid_output", message[:1000], False), began, call, secrets)
        except SecretMissing as exc:
            await self._fail(task, ErrorInfo(exc.type, exc.message[:1000], exc.retryable), began, call)
        except ConnectorError as exc:
            await self._fail(task, ErrorInfo(exc.type, exc.message, exc.retryable), began, call, secrets)
        except TimeoutError:
            timeout = ErrorInfo("timeout", f"no answer within {task.timeout_seconds}s", True)
            await self._fail(task, timeout, began, call)
        except (TypeError, ValueError) as exc:
            await self._fail(task, ErrorInfo(type(exc).__name__, str(exc)[:1000], True), began, call, secrets)
        except Exception as exc:  # a connector bug must not kill the worker
            if secrets:  # a traceback would carry the values: log the redacted message only
                what = f"{type(exc).__name__}: {redact_text(str(exc), secrets)}"
                log.error("connector %s failed on %s: %s", task.connector, task.attempt_id, what)
            else:
                log.exception("connector %s failed on %s", task.connector, task.attempt_id)
            await self._fail(task, ErrorInfo(type(exc).__name__, str(exc)[:1000], True), began, call, secrets)
        else:
            self._finished(task, "succeeded", began, None)
            await self._answer(
                CompleteStep(
                    execution_id=task.execution_id,
                    now=self._clock(),
                    step=task.step,
                    attempt_id=task.attempt_id,
                    output=output,
                    resources=resources(call, began, output),
                )
            )

    def _finished(self, task: StepTask, outcome: StepOutcome, began: float, error: str | None) -> None:
        seconds = time.perf_counter() - began
        workflow, step, connector = task.workflow, task.step, task.connector
        self.instruments.step_finished(workflow, step, connector, task.attempt, outcome, seconds)
        ended_at = self._clock()
        self.instruments.step_traced(
            task.execution_id, workflow, step, connector, task.attempt, task.traceparent, outcome, error,
            ended_at - seconds, ended_at,
        )  # fmt: skip

    async def _fail(
        self, task: StepTask, error: ErrorInfo, began: float, call: StepCall, secrets: list[str] | None = None
    ) -> None:
        if secrets:
            error = ErrorInfo(redact_text(error.type, secrets), redact_text(error.message, secrets), error.retryable)
        outcome: StepOutcome = "retryable" if error.retryable else "failed"
        self._finished(task, "timeout" if error.type == "timeout" else outcome, began, error.type)
        await self._answer(
            FailStep(
                execution_id=task.execution_id,
                now=self._clock(),
                step=task.step,
                attempt_id=task.attempt_id,
                error=error,
                resources=resources(call, began, None),
            )
        )

    async def _answer(self, command: CompleteStep | FailStep) -> None:
        """Submit the answer until it is recorded (see the class docstring)."""
        tries = 0

        async def submit() -> None:
            nonlocal tries
            tries += 1
            stamped = command if tries == 1 else dataclasses.replace(command, now=self._clock())
            await self._transport.submit(stamped)

        what = f"the answer to {command.attempt_id} of {command.execution_id}"
        await until_done(submit, what, self.backoff, self._rng, permanent=(CommandRejected,))


def resources(call: StepCall, began: float, output: Any) -> dict[str, Any]:
    """What one attempt used: wall seconds, bytes in (arguments) and out (result), and CPU
    seconds and peak memory when its connector measured them (isolated steps)."""
    used: dict[str, Any] = {
        "wall_seconds": round(time.perf_counter() - began, 6),
        "bytes_in": strict_json.encoded_size(call.args),
        "bytes_out": strict_json.encoded_size(output),
    }
    usage = call.usage
    if usage is not None:
        if usage.cpu_seconds is not None:
            used["cpu_seconds"] = usage.cpu_seconds
        if usage.peak_memory_bytes is not None:
            used["peak_memory_bytes"] = usage.peak_memory_bytes
    return used
