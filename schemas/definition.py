"""Workflow definition format: pydantic v2 models, loaded from YAML/JSON or built in Python.

Expressions are JMESPath evaluated over the execution context
``{"input": ..., "steps": {name: output}, "execution": {"id": ...}}``. In an ``input`` mapping every
string value is an expression; write a literal string as a JMESPath raw string: ``'text'``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.tenant import TenantName

MAX_VERSION = 2**31 - 1  # versions are 32-bit wherever they are stored (Cassandra int)
MAX_SECONDS = 100 * 366 * 86_400  # durations: a century at most, so every due time is a date
StepName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
Expression = Annotated[str, Field(min_length=1, description="A JMESPath expression.")]
Mapping = dict[str, Any]


class _Model(BaseModel):
    # allow_inf_nan: a float field (seconds, jitter, ...) never holds NaN or infinity.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Backoff(_Model):
    """Delay before attempt n+1: min(initial * multiplier**(n-1), max)."""

    initial_seconds: float = Field(1.0, ge=0, le=MAX_SECONDS)
    multiplier: float = Field(2.0, ge=1, le=1000)
    max_seconds: float = Field(300.0, ge=0, le=MAX_SECONDS)


class RetryPolicy(_Model):
    """How a failed task is retried. ``retry_on`` holds glob patterns of error types."""

    max_attempts: int = Field(1, ge=1, le=1000)
    backoff: Backoff = Backoff()
    jitter: float = Field(0.0, ge=0, le=1, description="Fraction of the delay that is randomised.")
    retry_on: list[str] | None = Field(
        None,
        description="Error types to retry (globs). Default: errors the connector marks retryable.",
    )
    non_retryable: list[str] = Field(default_factory=list)


class Sla(_Model):
    """A service level: the execution (or the step, first attempt to outcome) should take at most
    ``seconds``. A breach is recorded by analytics when it ends later (docs/analytics.md)."""

    seconds: float = Field(gt=0, le=MAX_SECONDS)


class Kpi(_Model):
    """A number to track over time: ``value`` is evaluated over ``{"output": ...}`` of each
    execution that succeeds (docs/analytics.md); a result that is not a number is not counted."""

    name: StepName
    value: Expression


class _StepBase(_Model):
    name: StepName
    description: str = ""
    sla: Sla | None = Field(None, description="Seconds this step should take at most (analytics).")


class TaskStep(_StepBase):
    """Call a connector with arguments mapped from the context."""

    type: Literal["task"] = "task"
    connector: str = Field(description="Connector name, e.g. 'http' or 'python'.")
    config: Mapping = Field(default_factory=dict, description="Static connector settings.")
    input: Mapping = Field(default_factory=dict, description="Arguments: expressions over the context.")
    output: Expression | None = Field(None, description="Expression over {'result': ...} kept as output.")
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_SECONDS)
    next: StepName | None = None
    on_error: StepName | None = Field(None, description="Step to go to when retries are exhausted.")


class ChoiceRule(_Model):
    when: Expression
    next: StepName


class ChoiceStep(_StepBase):
    """Go to the first rule whose condition is truthy, else to ``default``."""

    type: Literal["choice"] = "choice"
    choices: list[ChoiceRule] = Field(min_length=1)
    default: StepName | None = None


class Branch(_Model):
    name: StepName | None = None
    steps: list[Step] = Field(min_length=1)


class ParallelStep(_StepBase):
    """Run branches concurrently; the output is the list of branch outputs."""

    type: Literal["parallel"] = "parallel"
    branches: list[Branch] = Field(min_length=1)
    next: StepName | None = None
    on_error: StepName | None = None


class WaitStep(_StepBase):
    """A durable timer: ``seconds`` or ``until`` (an expression giving an ISO-8601 time)."""

    type: Literal["wait"] = "wait"
    seconds: float | None = Field(None, ge=0, le=MAX_SECONDS)
    until: Expression | None = None
    next: StepName | None = None


class WaitForEventStep(_StepBase):
    """Pause until an event named ``event`` arrives with a matching correlation key."""

    type: Literal["wait_for_event"] = "wait_for_event"
    event: str = Field(min_length=1)
    correlation_key: Expression | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_SECONDS)
    on_timeout: StepName | None = None
    next: StepName | None = None


class SubworkflowStep(_StepBase):
    """Start a child workflow and wait for its result."""

    type: Literal["subworkflow"] = "subworkflow"
    workflow: str
    version: int | None = Field(None, ge=1, le=MAX_VERSION)
    input: Mapping = Field(default_factory=dict)
    next: StepName | None = None
    on_error: StepName | None = None


class SucceedStep(_StepBase):
    type: Literal["succeed"] = "succeed"
    output: Expression | None = None


class FailStep(_StepBase):
    type: Literal["fail"] = "fail"
    error: str = "Failed"
    cause: Expression | None = None


Step = Annotated[
    TaskStep
    | ChoiceStep
    | ParallelStep
    | WaitStep
    | WaitForEventStep
    | SubworkflowStep
    | SucceedStep
    | FailStep,
    Field(discriminator="type"),
]


class SignatureConfig(_Model):
    """HMAC-SHA256 verification. ``secret`` names a secret from config/env, never its value."""

    preset: Literal["github", "stripe", "generic"]
    secret: str = Field(
        pattern=r"^[A-Za-z0-9_]+$", description="Secret name (env ORCHESTRATOR_SECRET_<NAME>)."
    )
    header: str | None = Field(None, description="Header for the generic preset.")
    timestamp_header: str | None = Field(
        None,
        description="Generic preset: a header with the delivery's Unix time; the HMAC then covers "
        "'<timestamp>.<body>'.",
    )
    tolerance_seconds: int = Field(
        300,
        gt=0,
        le=MAX_SECONDS,
        description="How far a signed timestamp (stripe, generic with timestamp_header) may be from now.",
    )
    replay_window_seconds: int = Field(
        259_200,
        ge=0,
        le=MAX_SECONDS,
        description="Without a signed id or timestamp (github, generic without timestamp_header), "
        "a delivery whose signed content was accepted within this window is a duplicate. "
        "0: dedup by the unsigned delivery headers instead.",
    )


class WebhookTrigger(_Model):
    type: Literal["webhook"] = "webhook"
    name: StepName = Field(description="Served at POST /hooks/{name}.")
    signature: SignatureConfig | None = None
    idempotency_header: str | None = Field(None, description="e.g. X-GitHub-Delivery")
    idempotency_field: Expression | None = Field(None, description="Body field used as dedup key.")
    max_body_bytes: int = Field(1_048_576, gt=0, le=2**31 - 1)
    tenant: TenantName = Field("default", description="The tenant of the executions it starts or reaches.")
    enabled: bool = True


class EventDelivery(_Model):
    """Deliver each message as an event to the executions waiting for it, instead of starting one."""

    event: StepName = Field(description="The event name that wait_for_event steps wait for.")
    key: Expression = Field(description="Correlation key, over the message context.")
    payload: Expression | None = Field(None, description="Event payload; default: the message's data.")
    unmatched: Literal["dead_letter", "drop"] = Field(
        "dead_letter",
        description="A message no execution is waiting for goes to the dead-letter destination, or is dropped.",
    )


class _MessageTrigger(_Model):
    """What queue and topic triggers share. Expressions see the message context:
    ``{"data", "key", "headers", "message_id", "cloudevent", "topic", "partition", "offset",
    "queue", "exchange", "routing_key"}`` (``data`` is the CloudEvent's data, else the JSON body)."""

    name: StepName = Field(description="Unique among the workflow's triggers.")
    connection: str = Field(description="A configured connection name (ORCHESTRATOR_CONNECTION_<NAME>).")
    filter: Expression | None = Field(None, description="Messages where this is falsy are skipped.")
    input: Expression | None = Field(None, description="The execution's input; default: the message's data.")
    message_id: Expression | None = Field(
        None, description="Dedup key; default: the CloudEvent id, else the transport's message identity."
    )
    correlation: EventDelivery | None = None
    tenant: TenantName = Field("default", description="The tenant of the executions it starts or reaches.")
    enabled: bool = True


class KafkaTrigger(_MessageTrigger):
    type: Literal["kafka"] = "kafka"
    connection: str = "kafka"
    topics: list[str] = Field(min_length=1)
    group: str | None = Field(None, description="Consumer group; default orchestrator.<workflow>.<name>.")
    dead_letter_topic: str | None = Field(None, description="Default: <first topic>.dlq")
    start_from: Literal["earliest", "latest"] = Field(
        "latest", description="Where a new consumer group starts; a known group resumes where it stopped."
    )


class AmqpTrigger(_MessageTrigger):
    type: Literal["amqp"] = "amqp"
    connection: str = "amqp"
    queue: str = Field(min_length=1)
    exchange: str | None = Field(None, description="Bind the queue to this exchange (declared if missing).")
    exchange_type: Literal["direct", "topic", "fanout", "headers"] = "topic"
    binding_key: str = "#"
    prefetch: int = Field(32, ge=1, le=10_000, description="Unacknowledged messages in flight at most.")
    dead_letter_exchange: str | None = Field(None, description="Default: <queue>.dlx")


class WindowTrigger(_Model):
    """Start when ``threshold`` matching messages with the same key arrive within ``window_seconds``
    (e.g. 5 failed logins for one user within 60 s). Window state lives in faust tables."""

    type: Literal["kafka_window"] = "kafka_window"
    name: StepName
    connection: str = "kafka"
    topics: list[str] = Field(min_length=1)
    filter: Expression | None = None
    key: Expression = Field(description="Groups messages, e.g. data.user.")
    window_seconds: float = Field(gt=0, allow_inf_nan=True)  # validation says which sizes run
    threshold: int = Field(ge=1)
    input: Expression | None = Field(
        None, description="Over {key, count, window_start, window_end, message}; default all of it."
    )
    tenant: TenantName = Field("default", description="The tenant of the executions it starts or reaches.")
    enabled: bool = True


Duration = Annotated[
    str | float,
    Field(description="Seconds, or text such as '30s', '5m', '1h30m', '2d' (validation checks it)."),
]


class ScheduleTrigger(_Model):
    """Start the workflow on a schedule: ``cron`` (five fields, or six with seconds first) in
    ``timezone``, or ``every`` (an interval anchored at ``start_at``, else the Unix epoch).
    Each fire time starts at most one execution (docs/schedules.md)."""

    type: Literal["schedule"] = "schedule"
    name: StepName = Field(description="Unique among the workflow's triggers.")
    cron: str | None = Field(None, min_length=1, description="e.g. '0 6 * * *', or '*/10 * * * * *' with seconds.")
    every: Duration | None = Field(None, description="An interval, e.g. '30s' or 3600 (instead of cron).")
    timezone: str = Field("UTC", min_length=1, description="IANA time zone of the cron fields, e.g. Europe/Paris.")
    start_at: AwareDatetime | None = Field(None, description="No fire before this time (RFC 3339 with offset).")
    end_at: AwareDatetime | None = Field(None, description="No fire after this time.")
    jitter: Duration = Field(0.0, description="Each fire is delayed by a stable pseudo-random part of this.")
    input: Expression | None = Field(
        None, description="Over {scheduled_time, scheduled_local, kind, catchup, schedule, workflow}; default all of it."
    )
    catchup: Literal["all", "latest", "none"] = Field(
        "latest", description="Fires missed while nothing ran: start all, only the latest, or none of them."
    )
    catchup_window: Duration = Field("1h", description="Missed fires older than this are skipped (recorded).")
    overlap: Literal["allow", "skip", "buffer_one", "cancel_previous", "terminate_previous"] = Field(
        "skip", description="What a fire does while the previous run of this schedule is still running."
    )
    tenant: TenantName = Field("default", description="The tenant of the executions it starts.")
    enabled: bool = True


Trigger = Annotated[
    WebhookTrigger | KafkaTrigger | AmqpTrigger | WindowTrigger | ScheduleTrigger, Field(discriminator="type")
]


class Retention(_Model):
    """How long a finished execution's history is kept before it expires."""

    days: float = Field(
        gt=0, le=MAX_SECONDS / 86_400, description="Days after an execution finishes before its history expires."
    )
    archive: bool = Field(
        False, description="Write the history to the archive directory (replayable JSONL) before expiry."
    )


MAX_CONCURRENCY_LIMITS = 10  # limits per definition
MAX_SLOT_LIMIT = 1_000_000


class ConcurrencyLimit(_Model):
    """At most ``limit`` executions hold a slot of one key at once (docs/resources.md).

    ``key`` is evaluated over ``{"input": ...}`` at the start: a constant (``'all'``) caps the
    workflow, ``input.customer`` gives one pool per customer. ``scope`` says who shares a key's
    slots: this workflow's executions in the tenant, every workflow of the tenant naming the same
    key value, or every tenant."""

    key: Expression = Field("'all'", description="JMESPath over {input}: the pool an execution takes a slot of.")
    limit: int = Field(ge=1, le=MAX_SLOT_LIMIT, description="Executions holding a slot of one key at once.")
    scope: Literal["workflow", "tenant", "global"] = Field(
        "workflow", description="Who shares a key: this workflow (per tenant), the tenant's workflows, or all."
    )
    on_limit: Literal["queue", "cancel_running", "cancel_new", "fail"] = Field(
        "queue", description="A start while the key is full: wait, cancel the oldest holder, cancel or fail the new one."
    )
    release_while_waiting: bool = Field(
        False, description="Give the slot back while the execution only waits (timer, event) and queue again after."
    )
class StartRateLimit(_Model):
    """At most ``limit`` starts per ``period`` for each value of ``key`` (evaluated over
    ``{"input": ...}``). A start past it is delayed, never dropped: it is recorded at once, and its
    first step waits on a timer for the start's slot (GCRA, docs/resources.md)."""

    key: Expression = Field(description="Groups the starts, e.g. input.customer; a constant such as `'all'` for one group.")
    limit: int = Field(ge=1, le=1_000_000, description="Starts per period for one key.")
    period: Duration = Field(description="Seconds, or text such as '1m' (validation checks it).")
class Debounce(_Model):
    """Starts with the same ``key`` value (evaluated over ``{"input": ...}``) within a quiet
    ``period`` collapse into one execution, which runs with the last start's input once ``period``
    has passed with no new start for that key (docs/resources.md)."""

    key: Expression = Field(description="Groups the starts, e.g. input.customer; a constant such as `'all'` for one group.")
    period: Duration = Field(description="The quiet period: seconds, or text such as '30s' (validation checks it).")
class Provenance(_Model):
    """Where a definition came from when a template rendered it (docs/templates.md)."""

    template: str = Field(min_length=1, description="The template id.")
    template_version: str = Field(min_length=1, description="The template's semantic version.")
    parameters: Mapping = Field(default_factory=dict, description="The parameters it was rendered with.")
    checksum: str = Field(description="sha256 of the resolved template document, hex.")


class WorkflowDefinition(_Model):
    """A named, versioned workflow."""

    name: StepName
    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Assigned by the registry when omitted.")
    tenant: TenantName = Field(
        "default", description="The tenant that owns it (set from the request's tenant when registered over HTTP)."
    )
    description: str = ""
    input_schema: Mapping = Field(default_factory=dict, description="JSON Schema of the input.")
    start: StepName | None = Field(None, description="First step; defaults to the first listed.")
    output: Expression | None = Field(None, description="Workflow output; default last step's.")
    triggers: list[Trigger] = Field(default_factory=list)
    retention: Retention | None = Field(None, description="Keep finished histories forever when omitted.")
    sla: Sla | None = Field(None, description="Seconds an execution should take at most (analytics).")
    kpis: list[Kpi] = Field(default_factory=list, max_length=50, description="Numbers tracked over outputs.")
    concurrency: list[ConcurrencyLimit] = Field(
        default_factory=list, max_length=MAX_CONCURRENCY_LIMITS, description="Slots an execution needs to run."
    )
    priority: Expression | None = Field(
        None, description="JMESPath over {input} giving a number: queued executions with a higher one go first."
    )
    rate_limit: StartRateLimit | None = Field(None, description="Starts per period for each key: later ones are delayed.")
    debounce: Debounce | None = Field(None, description="Starts per key within a quiet period collapse into one execution.")
    provenance: Provenance | None = Field(None, description="The template it was rendered from, if any.")
    steps: list[Step] = Field(min_length=1)

    def with_version(self, version: int) -> WorkflowDefinition:
        return self.model_copy(update={"version": version})


Branch.model_rebuild()
