"""One frozen settings object, read from ``ORCHESTRATOR_*`` environment variables, passed explicitly."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from schemas.loader import UniqueKeys, parse_json_text, syntax_error

PREFIX = "ORCHESTRATOR_"
SECRET_PREFIX = PREFIX + "SECRET_"
CONNECTION_PREFIX = PREFIX + "CONNECTION_"

# Every variable the code reads, with its default; the README and docker-compose list the same.
VARIABLES: dict[str, str] = {
    "ORCHESTRATOR_EVENT_LOG_URL": "sqlite:///orchestrator.db",
    "ORCHESTRATOR_REGISTRY_URL": "(same as the event log)",
    "ORCHESTRATOR_TRANSPORT_URL": "inprocess://",
    "ORCHESTRATOR_TIMERS_URL": "(beside a shared event log, else memory://)",
    "ORCHESTRATOR_WAITS_URL": "(beside a shared event log, else memory://)",
    "ORCHESTRATOR_TRANSITIONS_URL": "(none: off)",
    "ORCHESTRATOR_HOST": "127.0.0.1",
    "ORCHESTRATOR_PORT": "8080",
    "ORCHESTRATOR_WORKER_CONCURRENCY": "64",
    "ORCHESTRATOR_PYTHON_THREADS": "8",
    "ORCHESTRATOR_ANALYTICS": "true",
    "ORCHESTRATOR_QUOTAS_FILE": "(none: no quotas)",
    "ORCHESTRATOR_CONNECTOR_RATE_LIMITS": "(none)",
    "ORCHESTRATOR_MAX_IN_FLIGHT": "10000",
    "ORCHESTRATOR_TENANT_WEIGHTS": "(every tenant 1)",
    "ORCHESTRATOR_PYTHON_ISOLATION": "thread",
    "ORCHESTRATOR_PYTHON_PROCESSES": "2",
    "ORCHESTRATOR_MAX_BODY_BYTES": "1048576",
    "ORCHESTRATOR_ACCESS_LOG": "false",
    "ORCHESTRATOR_LOG_FORMAT": "text",
    "ORCHESTRATOR_METRICS": "true",
    "ORCHESTRATOR_METRICS_PORT": "(none: workers serve no metrics)",
    "ORCHESTRATOR_METRICS_WORKFLOWS": "100",
    "ORCHESTRATOR_OTEL": "false",
    "ORCHESTRATOR_SNAPSHOT_EVERY": "1000",
    "ORCHESTRATOR_RETENTION_INTERVAL": "3600",
    "ORCHESTRATOR_TRIGGER_POLL_INTERVAL": "5",
    "ORCHESTRATOR_RECOVERY_INTERVAL": "30",
    "ORCHESTRATOR_RECOVERY_GRACE": "300",
    "ORCHESTRATOR_COMMAND_ATTEMPTS": "5",
    "ORCHESTRATOR_ARCHIVE_DIR": "(none)",
    "ORCHESTRATOR_STATE_DIR": "(<temp dir>/orchestrator-state)",
    "ORCHESTRATOR_DEFINITIONS": "(none)",
    "ORCHESTRATOR_NODE_ID": "(<host>-<pid>-<random>)",
    "ORCHESTRATOR_HEARTBEAT_INTERVAL": "5",
    "ORCHESTRATOR_NODES_URL": "(beside a shared event log or SQLite file, else memory://)",
    "ORCHESTRATOR_SECRETS_FILE": "(none)",
    "ORCHESTRATOR_ENCRYPTION_KEYRING": "(none: encryption at rest off)",
    "ORCHESTRATOR_ENCRYPTION_KEYS": "(none: encryption at rest off)",
    "ORCHESTRATOR_ENCRYPTION_CURRENT_KEY": "(the keyring's current key)",
    "ORCHESTRATOR_TRANSITIONS_PLAINTEXT": "false",
    "ORCHESTRATOR_AUTH": "on",
    "ORCHESTRATOR_KEY_PEPPER": "(none: keys hashed without a pepper)",
    "ORCHESTRATOR_ROLES_FILE": "(none)",
    "ORCHESTRATOR_API_KEY": "(none; read by the remote CLI)",
    "ORCHESTRATOR_TLS_CERT": "(none: plain HTTP)",
    "ORCHESTRATOR_TLS_KEY": "(none)",
    "ORCHESTRATOR_OIDC_JWKS": "(none: tokens off)",
    "ORCHESTRATOR_OIDC_ISSUER": "(none)",
    "ORCHESTRATOR_OIDC_AUDIENCE": "(none)",
    "ORCHESTRATOR_OIDC_ALGORITHMS": "RS256,ES256",
    "ORCHESTRATOR_OIDC_LEEWAY": "30",
    "ORCHESTRATOR_OIDC_CLAIMS_FILE": "(none: sub, tenant and roles claims)",
    "ORCHESTRATOR_SESSIONS_URL": "(beside a shared event log, else memory://)",
    "ORCHESTRATOR_SESSION_TTL": "3600",
    "ORCHESTRATOR_ALLOWED_ORIGINS": "(none: the server's own origin)",
    "ORCHESTRATOR_SECRET_<NAME>": "(none)",
    "ORCHESTRATOR_SECRETS_DIR": "(none)",
    "ORCHESTRATOR_SECRETS_KEY": "(none: storing secrets is refused)",
    "ORCHESTRATOR_CATALOG_URL": "(beside a SQLite or Cassandra event log, else memory://)",
    "ORCHESTRATOR_CATALOG_SIGNING_KEY": "(catalog-signing-key.pem beside the SQLite file, generated)",
    "ORCHESTRATOR_PYTHON_ALLOW": "(none: no python function may be called)",
    "ORCHESTRATOR_HTTP_ALLOW": "(none: only public addresses)",
    "ORCHESTRATOR_CONNECTION_<NAME>": "(none)",
}


class SettingsError(ValueError):
    """A configuration value is invalid."""


@dataclass(frozen=True)
class Settings:
    event_log_url: str = "sqlite:///orchestrator.db"
    registry_url: str | None = None
    transport_url: str = "inprocess://"
    timers_url: str | None = None
    waits_url: str | None = None
    transitions_url: str | None = None  # kafka://...?topic=...: export committed events (docs/events.md)
    host: str = "127.0.0.1"
    port: int = 8080
    worker_concurrency: int = 64  # tasks run at once, unless the transport URL sets concurrency=
    python_threads: int = 8
    gc_threshold: int = 20_000  # the collector's first threshold while running (orchestrator/collector.py); 0: as is
    analytics: bool = True  # the analytics projection follows the event feed (docs/analytics.md)
    quotas_file: str | None = None  # tenant -> {running, starts_per_minute, payload_bytes}
    connector_rate_limits: str | None = None  # "http=50,payments-api=20/5": calls/s[/burst] per key
    max_in_flight: int = 10_000  # step tasks queued or running here before new starts get 429; 0: no bound
    tenant_weights: Mapping[str, float] = field(default_factory=dict)  # fair scheduling of step tasks
    python_isolation: str = "thread"  # python steps whose config does not say: thread or process
    python_processes: int = 2  # child processes for isolated python steps (started on demand)
    max_body_bytes: int = 1_048_576
    access_log: bool = False  # one log line per HTTP request (logger aiohttp.access)
    log_format: str = "text"  # text or json (one JSON object per line; docs/observability.md)
    metrics: bool = True  # Prometheus metrics: GET /metrics on serve, the listener on workers
    metrics_port: int | None = None  # a worker's metrics listener (on ``host``); 0: any port
    metrics_workflows: int = 100  # workflows with their own metrics label; later ones: _other
    otel: bool = False  # export spans per execution and step to OpenTelemetry (the otel extra)
    snapshot_every: int = 1000  # events between state snapshots; 0 disables them
    retention_interval: int = 3600  # seconds between retention sweeps; 0 disables them
    trigger_poll_interval: float = 5.0  # seconds between the trigger manager's registry reads
    recovery_interval: float = 30.0  # seconds between recovery sweeps (Kafka); 0 disables them
    doctor_interval: float = 300.0  # seconds between the servers' leak checks (docs/resources.md); 0: off
    recovery_grace: float = 300.0  # seconds without an event before a sweep resumes an execution
    command_attempts: int = 5  # tries of a command failing deterministically before it is parked
    archive_dir: str | None = None  # where retention archives histories before deleting them
    state_dir: str | None = None  # local, rebuildable state (window triggers' faust data)
    definitions: tuple[str, ...] = ()
    node_id: str | None = None  # this process in the cluster view; default <host>-<pid>-<random>
    heartbeat_interval: float = 5.0  # seconds between heartbeats in the node directory; 0: none
    nodes_url: str | None = None  # the node directory; default beside the event log
    auth: bool = True  # API requests need a key (docs/security.md); off only on a loopback address
    key_pepper: str | None = field(default=None, repr=False)  # HMAC key of stored API key hashes
    roles_file: str | None = None  # custom roles for every tenant (orchestrator/auth/roles.py)
    # Transport security, bearer tokens and browser sessions (docs/security.md).
    tls_cert: str | None = None  # PEM certificate chain: serve HTTPS
    tls_key: str | None = None  # PEM private key of tls_cert
    oidc_jwks: str | None = None  # JWKS file or http(s) URL: accept OIDC/JWT bearer tokens
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256")
    oidc_leeway: float = 30.0  # seconds of clock skew allowed on exp and nbf
    oidc_claims_file: str | None = None  # how claims map to tenant and roles (auth/claims.py)
    sessions_url: str | None = None
    session_ttl: float = 3600.0  # seconds a browser session lives
    allowed_origins: tuple[str, ...] = ()  # origins besides the server's own for cookie requests
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets_dir: str | None = None  # one file per secret (orchestrator.secrets.stores)
    secrets_key: str | None = field(default=None, repr=False)  # base64 AES-256 key sealing stored secrets
    catalog_url: str | None = None  # the template catalog's store (default: beside the event log)
    catalog_signing_key: str | None = None  # a PEM Ed25519 private key file signing catalog versions
    python_allow: tuple[str, ...] = ()  # module prefixes the python connector may call
    http_allow: tuple[str, ...] = ()  # hosts and CIDRs the http connector may reach beyond public ones
    http_max_connections: int = 100  # the http connector's pool: open connections at most, all hosts
    http_max_connections_per_host: int = 0  # ... to one host (scheme, host, port); 0: only the total
    connections: Mapping[str, str] = field(default_factory=dict, repr=False)  # name -> URL
    # Encryption at rest (docs/security.md): a keyring file, or id=base64 keys; neither: off.
    encryption_keyring: str | None = None
    encryption_keys: str | None = field(default=None, repr=False)
    encryption_current_key: str | None = None
    transitions_plaintext: bool = False  # publish decrypted events for a trusted consumer

    @property
    def effective_registry_url(self) -> str:
        return self.registry_url or self.event_log_url

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(PREFIX + name)
            return value if value else None

        def number(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise SettingsError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None

        def positive(name: str, default: int) -> int:
            value = number(name, default)
            if value < 1:
                raise SettingsError(f"{PREFIX}{name} must be at least 1, got {value}")
            return value

        secrets = _secrets_file(get("SECRETS_FILE"))
        secrets.update({k[len(SECRET_PREFIX) :]: v for k, v in env.items() if k.startswith(SECRET_PREFIX)})
        definitions = tuple(p for p in (get("DEFINITIONS") or "").split(os.pathsep) if p)
        return cls(
            event_log_url=get("EVENT_LOG_URL") or cls.event_log_url,
            registry_url=get("REGISTRY_URL"),
            transport_url=get("TRANSPORT_URL") or cls.transport_url,
            timers_url=get("TIMERS_URL"),
            waits_url=get("WAITS_URL"),
            transitions_url=get("TRANSITIONS_URL"),
            host=get("HOST") or cls.host,
            port=number("PORT", cls.port),
            worker_concurrency=positive("WORKER_CONCURRENCY", cls.worker_concurrency),
            python_threads=number("PYTHON_THREADS", cls.python_threads),
            gc_threshold=number("GC_THRESHOLD", cls.gc_threshold),
            analytics=_flag("ANALYTICS", get, cls.analytics),
            quotas_file=get("QUOTAS_FILE"),
            connector_rate_limits=get("CONNECTOR_RATE_LIMITS"),
            max_in_flight=number("MAX_IN_FLIGHT", cls.max_in_flight),
            tenant_weights=_weights(get("TENANT_WEIGHTS")),
            python_isolation=_choice("PYTHON_ISOLATION", get, ("thread", "process"), cls.python_isolation),
            python_processes=positive("PYTHON_PROCESSES", cls.python_processes),
            max_body_bytes=number("MAX_BODY_BYTES", cls.max_body_bytes),
            access_log=_flag("ACCESS_LOG", get, cls.access_log),
            log_format=_choice("LOG_FORMAT", get, ("text", "json"), cls.log_format),
            metrics=_flag("METRICS", get, cls.metrics),
            otel=_flag("OTEL", get, cls.otel),
            metrics_port=_port("METRICS_PORT", get),
            metrics_workflows=_at_least_zero("METRICS_WORKFLOWS", number("METRICS_WORKFLOWS", cls.metrics_workflows)),
            snapshot_every=number("SNAPSHOT_EVERY", cls.snapshot_every),
            retention_interval=number("RETENTION_INTERVAL", cls.retention_interval),
            trigger_poll_interval=_seconds("TRIGGER_POLL_INTERVAL", get, cls.trigger_poll_interval),
            recovery_interval=_seconds("RECOVERY_INTERVAL", get, cls.recovery_interval, zero=True),
            doctor_interval=_seconds("DOCTOR_INTERVAL", get, cls.doctor_interval, zero=True),
            recovery_grace=_seconds("RECOVERY_GRACE", get, cls.recovery_grace, zero=True),
            command_attempts=positive("COMMAND_ATTEMPTS", cls.command_attempts),
            archive_dir=get("ARCHIVE_DIR"),
            state_dir=get("STATE_DIR"),
            definitions=definitions,
            node_id=get("NODE_ID"),
            heartbeat_interval=_seconds("HEARTBEAT_INTERVAL", get, cls.heartbeat_interval, zero=True),
            nodes_url=get("NODES_URL"),
            auth=_flag("AUTH", get, cls.auth),
            key_pepper=get("KEY_PEPPER"),
            roles_file=get("ROLES_FILE"),
            tls_cert=get("TLS_CERT"),
            tls_key=get("TLS_KEY"),
            oidc_jwks=get("OIDC_JWKS"),
            oidc_issuer=get("OIDC_ISSUER"),
            oidc_audience=get("OIDC_AUDIENCE"),
            oidc_algorithms=_list(get("OIDC_ALGORITHMS")) or cls.oidc_algorithms,
            oidc_leeway=_seconds("OIDC_LEEWAY", get, cls.oidc_leeway, zero=True),
            oidc_claims_file=get("OIDC_CLAIMS_FILE"),
            sessions_url=get("SESSIONS_URL"),
            session_ttl=_seconds("SESSION_TTL", get, cls.session_ttl),
            allowed_origins=_list(get("ALLOWED_ORIGINS")),
            secrets=secrets,
            secrets_dir=get("SECRETS_DIR"),
            secrets_key=get("SECRETS_KEY"),
            catalog_url=get("CATALOG_URL"),
            catalog_signing_key=get("CATALOG_SIGNING_KEY"),
            python_allow=_list(get("PYTHON_ALLOW")),
            http_allow=_list(get("HTTP_ALLOW")),
            http_max_connections=positive("HTTP_MAX_CONNECTIONS", cls.http_max_connections),
            http_max_connections_per_host=_at_least_zero(
                "HTTP_MAX_CONNECTIONS_PER_HOST", number("HTTP_MAX_CONNECTIONS_PER_HOST", 0)
            ),
            connections={
                k[len(CONNECTION_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(CONNECTION_PREFIX)
            },
            encryption_keyring=get("ENCRYPTION_KEYRING"),
            encryption_keys=get("ENCRYPTION_KEYS"),
            encryption_current_key=get("ENCRYPTION_CURRENT_KEY"),
            transitions_plaintext=_flag("TRANSITIONS_PLAINTEXT", get, cls.transitions_plaintext),
        )

    def secret(self, name: str) -> str | None:
        """A secret by name: ORCHESTRATOR_SECRET_<NAME> or the secrets file (names are case-insensitive)."""
        if name in self.secrets:
            return self.secrets[name]
        upper = name.upper()
        for key, value in self.secrets.items():
            if key.upper() == upper:
                return value
        return None

    def connection(self, name: str) -> str:
        """The URL of a named connection (a broker that triggers and connectors use), with its
        credentials: ORCHESTRATOR_CONNECTION_<NAME>, else the secret CONNECTION_<NAME>.
        Definitions name connections; they never hold URLs or credentials."""
        url = self.connections.get(name.lower()) or self.secret(f"CONNECTION_{name}")
        if not url:
            variable = f"{CONNECTION_PREFIX}{name.upper()}"
            secret = f"CONNECTION_{name.upper()}"
            raise SettingsError(f"connection {name!r} is not configured: set {variable} (or secret {secret})")
        return url


def _list(raw: str | None) -> tuple[str, ...]:
    """A comma-separated list (blanks ignored)."""
    return tuple(item.strip() for item in (raw or "").split(",") if item.strip())


def _flag(name: str, get: Callable[[str], str | None], default: bool) -> bool:
    raw = get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{PREFIX}{name} must be true or false (on or off), got {raw!r}")


def _weights(raw: str | None) -> dict[str, float]:
    """``acme=3,beta=0.5``: each tenant's weight in the fair scheduling of step tasks."""
    weights: dict[str, float] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        tenant, _, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not tenant.strip() or not (0 < weight < float("inf")):
            raise SettingsError(f"{PREFIX}TENANT_WEIGHTS: {part.strip()!r} is not tenant=weight (a weight above 0)")
        weights[tenant.strip()] = weight
    return weights


def _port(name: str, get: Callable[[str], str | None]) -> int | None:
    raw = get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > 65535:
        raise SettingsError(f"{PREFIX}{name} must be a port number (0-65535; 0: any), got {raw!r}")
    return int(raw)


def _at_least_zero(name: str, value: int) -> int:
    if value < 0:
        raise SettingsError(f"{PREFIX}{name} must be 0 or more, got {value}")
    return value


def _choice(name: str, get: Callable[[str], str | None], choices: tuple[str, ...], default: str) -> str:
    raw = get(name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise SettingsError(f"{PREFIX}{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw.lower()


def _seconds(name: str, get: Callable[[str], str | None], default: float, zero: bool = False) -> float:
    """A number of seconds: positive (``zero``: or 0)."""
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value >= 0 if zero else value > 0):
        what = "0 or a positive" if zero else "a positive"
        raise SettingsError(f"{PREFIX}{name} must be {what} number of seconds, got {raw!r}")
    return value


class _TextLoader(UniqueKeys, yaml.BaseLoader):
    """YAML whose scalars all stay text (no 012345 -> 5349, yes -> True, ~ -> None), no duplicate keys."""


def _secrets_file(path: str | None) -> dict[str, str]:
    """``name: value`` per line (YAML), or a JSON object of strings. Every value is the text as
    written (YAML quotes only delimit it); a value that is not text is refused, naming its key."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = parse_json_text(text) if path.endswith(".json") else yaml.load(text, Loader=_TextLoader)
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
        reason = syntax_error(exc) if isinstance(exc, ValueError | yaml.YAMLError) else exc
        raise SettingsError(f"cannot read secrets file {path}: {reason}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"secrets file {path} must hold a mapping of name: value")
    for key, value in data.items():
        if not isinstance(value, str):
            raise SettingsError(f"secrets file {path}: the value of {key!r} must be text, not {type(value).__name__}")
    return dict(data)
