"""HTTP connector: one pooled ``aiohttp`` session per instance, statuses mapped to error types.

A request is ``call.config`` merged with ``call.args`` (args win)::

    method           GET, or POST when ``json``/``body`` is given
    url              required, http or https
    headers          {name: value}; ``Idempotency-Key`` is added unless set here
    query            {name: value | [values]}
    json | body      a JSON value, or a string sent as is
    timeout_seconds  default: the step's timeout, else 30
    expect_status    extra statuses that count as success, e.g. [404]
    response_headers names of the headers to keep in the output (default: all but
                     ``SENSITIVE_HEADERS`` such as Set-Cookie, kept only when named here)
    follow_redirects default true (at most ``MAX_REDIRECTS``, each target checked)

The output is ``{"status": int, "headers": {lower-case name: value}, "body": JSON or text}``.
Errors: 408, 425, 429 and 5xx -> retryable ``http.<status>``; other 4xx -> ``http.<status>``
(not retryable); no connection -> retryable ``http.connection``; too slow -> retryable ``timeout``;
a destination the egress policy refuses (``connectors.egress``: loopback, private, link-local,
metadata addresses, also after DNS resolution and on redirects) -> ``http.egress_denied`` (not
retryable).
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from connectors.base import ConnectorError, StepCall
from connectors.egress import EgressPolicy, GuardedResolver, denied_cause
from connectors.tracing import HEADER, outbound_traceparent
from orchestrator.lifecycle import Lifecycle
from schemas import strict_json

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
EXCERPT_CHARS = 500
RETRYABLE_STATUSES = frozenset({408, 425, 429})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
# Credentials a response may carry: not stored in the step output unless asked for by name.
SENSITIVE_HEADERS = frozenset(
    {"set-cookie", "set-cookie2", "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate"}
)
_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: URL
    headers: CIMultiDict[str]
    data: bytes | None
    timeout: float
    expect_status: frozenset[int]
    response_headers: frozenset[str] | None
    follow_redirects: bool


class HttpConnector(Lifecycle):
    """Calls HTTP endpoints through one connection pool, opened in ``start()``: at most
    ``max_connections`` open connections (``ORCHESTRATOR_HTTP_MAX_CONNECTIONS``), and at most
    ``max_connections_per_host`` to one host (``ORCHESTRATOR_HTTP_MAX_CONNECTIONS_PER_HOST``, 0:
    none). A call that finds the pool full waits for a connection; the wait counts against its
    timeout."""

    name = "http"

    def __init__(
        self,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_connections: int = 100,
        max_connections_per_host: int = 0,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._max_response_bytes = max_response_bytes
        self._max_connections = max_connections
        self._max_per_host = max_connections_per_host  # 0: no limit besides the total
        self.egress = egress or EgressPolicy()  # default: public addresses only
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    limit_per_host=self._max_per_host,
                    resolver=GuardedResolver(self.egress),
                ),
                timeout=aiohttp.ClientTimeout(total=None),  # each call has its own deadline
                trust_env=False,  # no proxy from the environment: the policy judges the real peer
            )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pool opened by ``start()``."""
        if self._session is None:
            raise RuntimeError("the http connector is not started")
        return self._session

    def step_problems(self, config: Mapping[str, Any]) -> list[str]:
        """Registration: a literal URL whose host is a refused IP address."""
        url = config.get("url")
        if not isinstance(url, str):
            return []
        try:
            host = URL(url).host
        except ValueError:
            return []
        problem = self.egress.host_denied(host) if host else None
        return [] if problem is None else [f"url {url!r}: {problem}"]

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def invoke(self, call: StepCall) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("HttpConnector is not started")
        request = _build_request(call)
        where = f"{request.method} {request.url.with_query(None)}"  # the query may hold secrets
        try:
            async with asyncio.timeout(request.timeout):
                return await self._send(self._session, request, where)
        except TimeoutError:
            raise ConnectorError("timeout", f"{where}: no answer within {request.timeout}s") from None
        except aiohttp.InvalidURL as exc:
            raise _bad_request(f"invalid url: {exc}") from exc
        except aiohttp.ClientError as exc:
            if (denied := denied_cause(exc)) is not None:
                raise ConnectorError("http.egress_denied", f"{where}: {denied}", retryable=False) from None
            raise ConnectorError("http.connection", f"{where}: {type(exc).__name__}: {exc}") from exc

    async def _send(self, session: aiohttp.ClientSession, request: _Request, where: str) -> dict[str, Any]:
        """Send, following redirects here (not in aiohttp) so every target is checked first."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check_host(request.url, where)
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.data,
                allow_redirects=False,
            ) as response:
                location = response.headers.get("Location")
                if request.follow_redirects and response.status in REDIRECT_STATUSES and location:
                    request = _redirected(request, response.status, response.url, location, where)
                    continue
                return await self._output(response, request, where)
        raise ConnectorError("http.too_many_redirects", f"{where}: more than {MAX_REDIRECTS} redirects", retryable=False)

    def _check_host(self, url: URL, where: str) -> None:
        problem = self.egress.host_denied(url.host or "")
        if problem is not None:
            target = url.with_query(None).with_fragment(None)
            raise ConnectorError("http.egress_denied", f"{where}: {target}: {problem}", retryable=False)

    async def _output(self, response: aiohttp.ClientResponse, request: _Request, where: str) -> dict[str, Any]:
        status = response.status
        if status >= 400 and status not in request.expect_status:
            raise ConnectorError(
                f"http.{status}",
                f"{where} -> {status}: {await _excerpt(response)}",
                retryable=status in RETRYABLE_STATUSES or status >= 500,
            )
        raw, complete = await _read(response, self._max_response_bytes)
        if not complete:
            raise ConnectorError(
                "http.response_too_large",
                f"{where}: response over {self._max_response_bytes} bytes",
                retryable=False,
            )
        return {
            "status": status,
            "headers": _select_headers(response, request.response_headers),
            "body": _decode_body(response, raw, where),
        }


async def _excerpt(response: aiohttp.ClientResponse) -> str:
    """The start of the body, at most ``EXCERPT_CHARS`` characters; the rest is not read."""
    raw = bytearray()
    async for chunk in response.content.iter_chunked(EXCERPT_CHARS * 4):
        raw += chunk
        if len(raw) >= EXCERPT_CHARS * 4:  # enough bytes for 500 characters in any encoding
            break
    return bytes(raw).decode(_charset(response), "replace")[:EXCERPT_CHARS]


async def _read(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes; the flag says whether the whole body fit."""
    if response.content_length is not None and response.content_length > limit:
        return b"", False
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), False
    return bytes(body), True


def _redirected(request: _Request, status: int, current: URL, location: str, where: str) -> _Request:
    """The request to send after a redirect: 303 (and 301/302 after a POST) become a GET
    without a body; credentials are not sent to another origin."""
    try:
        target = current.join(URL(location))
    except ValueError:
        raise ConnectorError("http.bad_redirect", f"{where}: invalid Location {location[:200]!r}", retryable=False) from None
    if target.scheme not in ("http", "https") or not target.host:
        raise ConnectorError("http.bad_redirect", f"{where}: redirect to {target.scheme}: refused", retryable=False)
    method, data, headers = request.method, request.data, CIMultiDict(request.headers)
    if status == 303 or (status in (301, 302) and method == "POST"):
        method, data = "GET", None
        headers.popall("Content-Type", None)
    if target.origin() != current.origin():
        for name in ("Authorization", "Cookie", "Proxy-Authorization"):
            headers.popall(name, None)
    return dataclasses.replace(request, method=method, url=target, data=data, headers=headers)


def _build_request(call: StepCall) -> _Request:
    if call.args is not None and not isinstance(call.args, Mapping):
        raise _bad_request(f"args must be an object, got {type(call.args).__name__}")
    spec: dict[str, Any] = {**call.config, **(call.args or {})}
    url = _url(spec.get("url"))
    headers = CIMultiDict({str(k): str(v) for k, v in _mapping(spec, "headers").items()})
    if "json" in spec and "body" in spec:
        raise _bad_request("give either 'json' or 'body', not both")
    data: bytes | None = None
    if "json" in spec:
        try:
            data = json.dumps(spec["json"], allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise _bad_request(f"'json' is not JSON-serialisable: {exc}") from None
        headers.setdefault("Content-Type", "application/json")
    elif "body" in spec:
        if not isinstance(spec["body"], str):
            raise _bad_request("'body' must be a string; use 'json' for structured data")
        data = spec["body"].encode()
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    method = spec.get("method") or ("POST" if data is not None else "GET")
    if not isinstance(method, str) or not method.isalpha():
        raise _bad_request(f"invalid method {method!r}")
    headers.setdefault("Idempotency-Key", call.idempotency_key)
    trace = outbound_traceparent(call)
    if trace is not None:
        headers.setdefault(HEADER, trace)
    kept = spec.get("response_headers")
    return _Request(
        method=method.upper(),
        url=url.extend_query(_query(_mapping(spec, "query"))),
        headers=headers,
        data=data,
        timeout=_timeout(spec.get("timeout_seconds"), call.timeout_seconds),
        expect_status=frozenset(_int_list(spec, "expect_status")),
        response_headers=None if kept is None else frozenset(str(n).lower() for n in kept),
        follow_redirects=bool(spec.get("follow_redirects", True)),
    )


def _url(value: Any) -> URL:
    if not isinstance(value, str) or not value:
        raise _bad_request("'url' is required")
    try:
        url = URL(value)
    except ValueError as exc:
        raise _bad_request(f"invalid url {value!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise _bad_request(f"invalid url {value!r}: need an absolute http(s) url")
    return url


def _mapping(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, Mapping):
        raise _bad_request(f"'{key}' must be an object")
    return value


def _query(query: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                pairs.append((str(name), _text(item)))
    return pairs


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _int_list(spec: Mapping[str, Any], key: str) -> list[int]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _bad_request(f"'{key}' must be a list of status codes")
    return value


def _timeout(value: Any, step_timeout: float | None) -> float:
    if value is None:
        return step_timeout or DEFAULT_TIMEOUT_SECONDS
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _bad_request(f"'timeout_seconds' must be a positive number, got {value!r}")
    return float(value)


def _charset(response: aiohttp.ClientResponse) -> str:
    charset = response.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        return "utf-8"
    return charset


def _select_headers(response: aiohttp.ClientResponse, names: frozenset[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        if (names is None and key not in SENSITIVE_HEADERS) or (names is not None and key in names):
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _decode_body(response: aiohttp.ClientResponse, raw: bytes, where: str) -> Any:
    text = raw.decode(_charset(response), "replace")
    mimetype = response.content_type
    if not (mimetype == "application/json" or mimetype.endswith("+json")):
        return text
    if not text.strip():
        return None
    try:
        return strict_json.loads(text)  # a step output must be strict JSON (no NaN, 1e400, ...)
    except strict_json.StrictJSONError as exc:
        raise ConnectorError(
            "http.invalid_json", f"{where} ({exc}): {text[:EXCERPT_CHARS]}", retryable=False
        ) from None


def _bad_request(message: str) -> ConnectorError:
    return ConnectorError("http.bad_request", message, retryable=False)
