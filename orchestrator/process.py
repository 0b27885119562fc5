"""The process root: ``build_app`` composes the HTTP app; ``run_server`` and ``run_worker`` run
the whole process."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from aiohttp import web

from orchestrator.api.access import AccessApi
from orchestrator.api.app import api_providers, create_app
from orchestrator.api.auditing import audit_middleware
from orchestrator.api.catalog import CatalogApi
from orchestrator.api.catalog_install import open_catalog
from orchestrator.api.doctor import doctor_lifecycle
from orchestrator.api.me import MeApi
from orchestrator.api.routes import RouteProvider, route_permission
from orchestrator.api.schedules import SchedulesApi
from orchestrator.api.sessions import AUTHENTICATORS, SessionsApi, csrf_middleware
from orchestrator.api.targets import RequestTargets
from orchestrator.auth.control import AccessControl, access_control, check_exposure
from orchestrator.auth.middleware import auth_middleware
from orchestrator.auth.principal import Authenticator
from orchestrator.auth.sessions import SessionAuthenticator, Sessions
from orchestrator.auth.tokens import token_authenticators
from orchestrator.backends.urls import SESSION_STORES, open_backend, sessions_url
from orchestrator.console.serve import ConsoleApi
from orchestrator.instrumentation import Instruments, Tee
from orchestrator.logcontext import bound
from orchestrator.observability.exposition import MetricsApi, MetricsListener, metrics_middleware
from orchestrator.observability.prometheus import PrometheusInstruments
from orchestrator.observability.sampler import RunningSampler
from orchestrator.ports import HookTaken, VersionConflict
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings, SettingsError
from orchestrator.tls import server_context
from schemas.definition import WorkflowDefinition
from schemas.dependencies import dependency_order
from schemas.loader import load_definition
from schemas.validation import DefinitionError, Problem
from triggers.manager import FACTORIES, TriggerManager, runs_sources_here
from triggers.schedules import Schedules
from triggers.sources import SourceFactory
from triggers.webhook import WebhookEndpoint

log = logging.getLogger(__name__)
DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")


def build_app(
    runtime: Runtime,
    settings: Settings,
    triggers: TriggerManager | None = None,
    metrics: PrometheusInstruments | None = None,
    schedules: Schedules | None = None,
    *,
    control: AccessControl | None = None,
    authenticators: Sequence[Authenticator] = (),
) -> web.Application:
    """Every route over one runtime: REST API, OpenAPI, health, triggers, schedules, webhooks,
    sessions.

    ``triggers``: the process's trigger manager, started and stopped by the caller. Without one,
    the app starts its own that runs no sources (it lists triggers and keeps their overrides).
    ``metrics``: serve them at ``GET /metrics`` and count every request in them.
    ``schedules``: the process's schedules, as for ``triggers`` (without them, the app opens the
    schedule states for its routes).

    With ``settings.auth`` (the default) every API route needs a principal allowed its
    permission (``orchestrator.auth``); ``control`` holds the key authenticator, keys and roles.
    ``authenticators``: more bearer authenticators to try before OIDC tokens; a session is opened
    with any of them. ``app[AUTHENTICATORS]`` is the whole chain, the session cookie last. The
    session store opens and closes with the app."""
    manager = triggers or TriggerManager(runtime, settings, run_sources=False)
    timetable = schedules or Schedules(runtime, settings)
    webhooks = WebhookEndpoint(runtime, overrides=lambda: manager.overrides)
    control = control or access_control(runtime.access, settings, runtime.clock)
    store = open_backend(
        SESSION_STORES, settings.sessions_url or sessions_url(settings.event_log_url), "session store"
    )
    sessions = Sessions(store, settings.session_ttl)
    catalog = open_catalog(runtime, settings)
    bearer = [*control.authenticators, *authenticators, *token_authenticators(settings)]
    providers: list[RouteProvider] = [
        *api_providers(runtime, manager), SchedulesApi(timetable), AccessApi(control), webhooks,
        SessionsApi(sessions, bearer), ConsoleApi(auth=settings.auth), CatalogApi(catalog),
    ]
    if metrics is not None:
        providers.append(MetricsApi(metrics))
    outer = [metrics_middleware(metrics)] if metrics is not None else []
    chain = [*bearer, SessionAuthenticator(sessions)]
    providers.append(MeApi(chain, control.catalog) if settings.auth else MeApi(None, None))
    # The audit middleware goes first: outside authentication, so it records what auth refused
    # (and what the CSRF check refused).
    middlewares = [audit_middleware(runtime.audit), csrf_middleware(settings.allowed_origins)]
    if settings.auth:
        targets = RequestTargets(runtime)
        middlewares.append(auth_middleware(chain, control.catalog, route_permission, targets))
    app = create_app(
        providers,
        max_body_bytes=settings.max_body_bytes,
        middlewares=middlewares,
        outer=outer,
    )
    app[AUTHENTICATORS] = (*bearer, SessionAuthenticator(sessions))

    async def webhook_lifecycle(app: web.Application) -> AsyncIterator[None]:
        await store.start()
        await catalog.store.start()
        if schedules is None:
            await timetable.start()
        if triggers is None:
            await manager.start()
        await webhooks.start()
        yield
        await webhooks.stop()
        if triggers is None:
            await manager.stop()
        if schedules is None:
            await timetable.stop()
        await catalog.store.stop()
        await store.stop()

    app.cleanup_ctx.append(webhook_lifecycle)
    app.cleanup_ctx.append(doctor_lifecycle(runtime, settings.doctor_interval))
    return app


def definition_files(paths: tuple[str, ...]) -> tuple[list[Path], list[Problem]]:
    """The files named, and the definition files in the directories named (sorted)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in DEFINITION_SUFFIXES and p.is_file())
            if not found:
                log.warning("no definition files (*.yaml, *.yml, *.json) in %s", path)
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), "no such file or directory"))
    return files, problems


def load_definitions(paths: tuple[str, ...]) -> list[tuple[Path, WorkflowDefinition]]:
    """Load and validate every file; one DefinitionError lists the problems of all of them."""
    files, problems = definition_files(paths)
    loaded: list[tuple[Path, WorkflowDefinition]] = []
    for file in files:
        try:
            loaded.append((file, load_definition(file)))
        except DefinitionError as exc:
            problems += [
                p if p.location == str(file) else Problem(f"{file}: {p.location}", p.message)
                for p in exc.problems
            ]
    if problems:
        raise DefinitionError(problems)
    return loaded


async def register_definitions(runtime: Runtime, definitions: list[tuple[Path, WorkflowDefinition]]) -> None:
    """Register in dependency order (children first); one DefinitionError lists what failed."""
    order, problems = dependency_order([definition for _, definition in definitions])
    for index in order:
        file, definition = definitions[index]
        try:
            stored = await runtime.register(definition)
        except (VersionConflict, HookTaken) as exc:
            problems.append(Problem(str(file), str(exc)))
        except DefinitionError as exc:
            problems += [Problem(f"{file}: {p.location}", p.message) for p in exc.problems]
        else:
            log.info("registered %s v%s from %s", stored.name, stored.version, file)
    if problems:
        raise DefinitionError(problems)


def server_tls(settings: Settings) -> ssl.SSLContext | None:
    """The API server's TLS context (ORCHESTRATOR_TLS_CERT and _KEY), None for plain HTTP."""
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise SettingsError("ORCHESTRATOR_TLS_CERT and ORCHESTRATOR_TLS_KEY must be set together")
    return server_context(settings.tls_cert, settings.tls_key)


def bound_url(runner: web.AppRunner, settings: Settings, scheme: str = "http") -> str:
    """The URL actually listened on (the real port when settings.port is 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            host, port = str(address[0]), int(address[1])
            return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
    return f"{scheme}://{settings.host}:{settings.port}"


def process_metrics(settings: Settings) -> PrometheusInstruments | None:
    """This process's metrics (its own registry), unless ``ORCHESTRATOR_METRICS=false``."""
    return PrometheusInstruments(workflow_labels=settings.metrics_workflows) if settings.metrics else None


async def open_runtime(
    stack: AsyncExitStack, settings: Settings, role: str, metrics: PrometheusInstruments | None
) -> Runtime:
    """The started runtime of this process. From here on its log lines name its node
    (``orchestrator.logcontext``), and the running-executions gauge is sampled."""
    instruments: Instruments | None = metrics
    if settings.otel:  # the optional extra: imported only when asked for
        try:
            from orchestrator.observability.otel import OtelInstruments

            spans = OtelInstruments()
        except ImportError as exc:
            raise SettingsError(f"ORCHESTRATOR_OTEL needs the otel extra (pip install 'orchestrator[otel]'): {exc}") from None
        except ValueError as exc:  # an OTEL_TRACES_EXPORTER it cannot build
            raise SettingsError(str(exc)) from None
        stack.callback(spans.stop)  # flushes the spans of the last commits, after the runtime stopped
        instruments = spans if metrics is None else Tee(metrics, spans)
    runtime = Runtime(settings, role=role, instruments=instruments)
    stack.enter_context(bound(node=runtime.node.node_id))
    await stack.enter_async_context(runtime)
    if metrics is not None:
        await stack.enter_async_context(RunningSampler(runtime.log, metrics))
    return runtime


async def start_triggers(
    stack: AsyncExitStack, runtime: Runtime, settings: Settings
) -> tuple[Schedules, TriggerManager]:
    """The schedules (their states in the event log's database) and the trigger manager that
    runs every source, schedules included; both stopped by ``stack``."""
    schedules = await stack.enter_async_context(Schedules(runtime, settings))
    factories: dict[str, str | SourceFactory] = {**FACTORIES, "schedule": schedules.source}
    triggers = TriggerManager(runtime, settings, run_sources=runs_sources_here(runtime), factories=factories)
    await stack.enter_async_context(triggers)
    return schedules, triggers


async def run_server(settings: Settings, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation), then close everything in reverse order.

    Invalid definition files fail startup with a DefinitionError naming each file's problems;
    authentication off on a non-loopback address fails it with Unprotected; with
    ORCHESTRATOR_TLS_CERT and ORCHESTRATOR_TLS_KEY it serves HTTPS only.
    """
    check_exposure(settings)
    definitions = load_definitions(settings.definitions)  # before anything opens
    tls = server_tls(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        runtime = await open_runtime(stack, settings, "serve", metrics := process_metrics(settings))
        await register_definitions(runtime, definitions)
        # Trigger sources run wherever workers run (not in Kafka role=api processes); stopped
        # after the HTTP server and before the runtime.
        schedules, triggers = await start_triggers(stack, runtime, settings)
        # Access logging costs about a tenth of the CPU of a webhook accept: off unless asked for.
        access_log = logging.getLogger("aiohttp.access") if settings.access_log else None
        app = build_app(runtime, settings, triggers, metrics, schedules)
        runner = web.AppRunner(app, handle_signals=False, access_log=access_log)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=tls)
        await site.start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
            stack.callback(loop.remove_signal_handler, signum)
        url = bound_url(runner, settings, "https" if tls is not None else "http")
        log.info("serving on %s", url)
        if ready is not None:
            ready(url)
        await stop.wait()
        log.info("shutting down")


async def run_worker(settings: Settings, *, ready: Callable[[], None] | None = None) -> None:
    """A worker process without HTTP: joins the transport's consumer groups and runs steps
    until SIGINT/SIGTERM. With Kafka, every worker shares the executions of its partitions."""
    definitions = load_definitions(settings.definitions)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        runtime = await open_runtime(stack, settings, "worker", metrics := process_metrics(settings))
        await register_definitions(runtime, definitions)
        await start_triggers(stack, runtime, settings)
        if metrics is not None and settings.metrics_port is not None:
            await stack.enter_async_context(MetricsListener(metrics, settings.host, settings.metrics_port))
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
            stack.callback(loop.remove_signal_handler, signum)
        log.info("worker running")
        if ready is not None:
            ready()
        await stop.wait()
        log.info("worker shutting down")
