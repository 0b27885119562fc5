"""CloudEvents 1.0 over HTTP, Kafka and AMQP: decode what arrives, encode what we send. Pure: no I/O.

Decoding (``from_http``, ``from_kafka``, ``from_amqp``) gives a :class:`Decoded`:

- a **binary-mode** event (attributes in ``ce-*`` HTTP headers, ``ce_*`` Kafka headers or
  ``cloudEvents_*`` / ``cloudEvents:*`` AMQP application properties; the body is the data, read
  per its content type, which becomes ``datacontenttype``);
- a **structured-mode** event (content type ``application/cloudevents+json``; the body is the
  whole event as JSON, with ``data`` or ``data_base64``);
- anything else is not a CloudEvent: ``data`` is the JSON body and ``attributes`` is None.

Data is read per content type: JSON types (``application/json``, ``*/*+json``, ``text/json``,
or none given) are parsed, ``text/*`` becomes a string, anything else (opaque bytes) becomes a
base64 string, so ``data`` is always a JSON value. An empty body is ``None``.

Every failure raises :class:`BadMessage` naming what is wrong: a missing or
empty required attribute (``specversion``, ``id``, ``source``, ``type``), a specversion other
than 1.0, an invalid attribute name or time, a body that is not what its content type says,
a batch (``application/cloudevents-batch+json``, not supported) or another event format.

Encoding: :func:`to_http_binary`, :func:`to_kafka_binary`, :func:`to_amqp` (binary mode) and
:func:`structured` (JSON event format). ``data`` may be a JSON value or ``bytes``;
``datacontenttype`` defaults to ``application/json`` (``application/octet-stream`` for bytes).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, unquote

from schemas import strict_json


class BadMessage(ValueError):
    """A message that can never succeed: it goes to the dead-letter destination with this reason."""



SPEC_VERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("specversion", "id", "source", "type")
HTTP_PREFIX = "ce-"
KAFKA_PREFIX = "ce_"
AMQP_PREFIXES = ("cloudevents_", "cloudevents:")  # matched case-insensitively; we emit cloudEvents_
AMQP_EMIT_PREFIX = "cloudEvents_"
_NAME = re.compile(r"^[a-z0-9]{1,64}$")
# HTTP binding 3.1.3.2: space, '"', '%' and anything outside U+0021..U+007E are percent-encoded.
_HTTP_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message: ``data`` (a JSON value) and the CloudEvent attributes without data,
    or ``attributes`` None when the message was not a CloudEvent."""

    data: Any
    attributes: dict[str, Any] | None = None
    mode: Literal["binary", "structured"] | None = None  # None: not a CloudEvent

    @property
    def is_cloudevent(self) -> bool:
        return self.attributes is not None


def is_binary_cloudevent(header_names: Iterable[str]) -> bool:
    """A binary-mode CloudEvent over HTTP: some header (any case) is a ``ce-*`` attribute; the
    body may then be any media type."""
    return any(name.lower().startswith(HTTP_PREFIX) for name in header_names)


def identity(attributes: Mapping[str, Any]) -> str:
    """The event's unique name: ``source`` + ``id`` (the spec's uniqueness rule), for dedup keys."""
    return f"{attributes['source']}/{attributes['id']}"


# -- decoding -----------------------------------------------------------------------------------


def from_http(body: bytes, headers: Mapping[str, str]) -> Decoded:
    """An HTTP request or response body and its headers (any case)."""
    lowered = [(str(k).lower(), str(v)) for k, v in headers.items()]
    content_type = next((v for k, v in lowered if k == "content-type"), None)
    if _is_event_format(content_type):
        return _structured(body, content_type)
    found = [(k[len(HTTP_PREFIX) :], unquote(v)) for k, v in lowered if k.startswith(HTTP_PREFIX)]
    if found:
        return _binary(found, body, content_type)
    return Decoded(_json_body(body))


def from_kafka(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Decoded:
    """A Kafka record's value and headers (as aiokafka gives them)."""
    texts = [(name, _header_text(name, raw)) for name, raw in headers or ()]
    content_type = next((v for k, v in texts if k.lower() == "content-type"), None)
    body = value or b""
    if _is_event_format(content_type):
        return _structured(body, content_type)
    found = [(k[len(KAFKA_PREFIX) :], v) for k, v in texts if k.lower().startswith(KAFKA_PREFIX)]
    if found:
        return _binary(found, body, content_type)
    return Decoded(_json_body(body))


def from_amqp(body: bytes, headers: Mapping[str, Any], content_type: str | None) -> Decoded:
    """An AMQP message body, its application properties (aio-pika ``headers``) and content type."""
    if _is_event_format(content_type):
        return _structured(body, content_type)
    found: list[tuple[str, Any]] = []
    for name, value in (headers or {}).items():
        lowered = str(name).lower()
        prefix = next((p for p in AMQP_PREFIXES if lowered.startswith(p)), None)
        if prefix is not None:
            found.append((lowered[len(prefix) :], _amqp_value(name, value)))
    if found:
        return _binary(found, body, content_type)
    return Decoded(_json_body(body))


def _binary(found: Iterable[tuple[str, Any]], body: bytes, content_type: str | None) -> Decoded:
    attributes: dict[str, Any] = {}
    for name, value in found:
        _check_name(name)
        if name in ("data", "data_base64", "datacontenttype"):
            raise BadMessage(f"CloudEvent attribute {name!r} cannot be sent as a header")
        attributes[name] = value
    if content_type:
        attributes["datacontenttype"] = content_type
    _validate(attributes)
    return Decoded(_data(body, content_type), attributes, "binary")


def _structured(body: bytes, content_type: str | None) -> Decoded:
    if content_type is not None and _media_type(content_type) == BATCH:
        raise BadMessage(f"batched CloudEvents ({BATCH}) are not supported; send one event per message")
    if content_type is not None and _media_type(content_type) != STRUCTURED:
        raise BadMessage(
            f"unsupported CloudEvents event format {_media_type(content_type)!r}; use {STRUCTURED}"
        )
    try:
        event = strict_json.loads(body, max_depth=strict_json.MAX_DEPTH + 1)  # data is one level in
    except strict_json.StrictJSONError as exc:
        raise BadMessage(f"the structured CloudEvent is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise BadMessage("the structured CloudEvent is not a JSON object")
    if "data" in event and "data_base64" in event:
        raise BadMessage("the CloudEvent has both 'data' and 'data_base64'")
    attributes = {k: v for k, v in event.items() if k not in ("data", "data_base64")}
    for name in attributes:
        _check_name(name)
    _validate(attributes)
    kind = attributes.get("datacontenttype")
    if kind is not None and not isinstance(kind, str):
        raise BadMessage("CloudEvent attribute 'datacontenttype' must be a string")
    if "data_base64" in event:
        raw = event["data_base64"]
        if not isinstance(raw, str):
            raise BadMessage("CloudEvent 'data_base64' must be a string")
        try:
            data = _data(base64.b64decode(raw, validate=True), kind)
        except binascii.Error as exc:
            raise BadMessage(f"CloudEvent 'data_base64' is not valid base64: {exc}") from None
    else:
        data = event.get("data")
    return Decoded(data, attributes, "structured")


def _validate(attributes: dict[str, Any]) -> None:
    missing = [name for name in REQUIRED if attributes.get(name) in (None, "")]
    if missing:
        names = ", ".join(repr(n) for n in missing)
        raise BadMessage(f"the CloudEvent is missing required attribute(s) {names}")
    for name in REQUIRED:
        if not isinstance(attributes[name], str):
            raise BadMessage(f"CloudEvent attribute {name!r} must be a string")
    if attributes["specversion"] != SPEC_VERSION:
        raise BadMessage(
            f"unsupported CloudEvents specversion {attributes['specversion']!r}; only {SPEC_VERSION} is"
        )
    when = attributes.get("time")
    if when is not None:
        if not isinstance(when, str):
            raise BadMessage("CloudEvent attribute 'time' must be an RFC 3339 string")
        try:
            datetime.fromisoformat(when)
        except ValueError:
            raise BadMessage(f"CloudEvent attribute 'time' is not an RFC 3339 timestamp: {when!r}") from None


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise BadMessage(f"invalid CloudEvent attribute name {name!r}: use lowercase letters and digits only")


def _data(body: bytes, content_type: str | None) -> Any:
    if not body:
        return None
    kind = _media_type(content_type) if content_type else None
    if kind is None or _is_json(kind):
        return _json_body(body, "the CloudEvent data")
    if kind.startswith("text/"):
        try:
            return body.decode(_charset(content_type or "") or "utf-8")
        except (UnicodeDecodeError, LookupError) as exc:
            raise BadMessage(f"the CloudEvent data is not {kind} text: {exc}") from None
    return base64.b64encode(body).decode("ascii")


def _json_body(body: bytes, what: str = "the body") -> Any:
    try:
        return strict_json.loads(body)
    except strict_json.StrictJSONError as exc:
        raise BadMessage(f"{what} is not JSON: {exc}") from None


def _header_text(name: str, raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadMessage(f"Kafka header {name!r} is not UTF-8") from None


def _amqp_value(name: str, value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise BadMessage(f"AMQP property {name!r} is not UTF-8") from None
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadMessage(f"AMQP property {name!r} is {value!r}, not a JSON number")
    if isinstance(value, list | dict | tuple):
        raise BadMessage(f"AMQP property {name!r} is a {type(value).__name__}, not a CloudEvents attribute value")
    if not isinstance(value, str | int | float | bool) and value is not None:
        return _text(value)  # e.g. a Decimal: its canonical string form, as a header would carry it
    return value


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _is_json(kind: str) -> bool:
    return kind in ("application/json", "text/json") or kind.endswith("+json")


def _is_event_format(content_type: str | None) -> bool:
    return content_type is not None and _media_type(content_type).startswith("application/cloudevents")


# -- encoding -----------------------------------------------------------------------------------


def to_http_binary(attributes: Mapping[str, Any], data: Any) -> tuple[bytes, dict[str, str]]:
    """Binary mode for HTTP: (body, headers) with ``ce-*`` headers and ``Content-Type``."""
    attrs, body, kind = _prepare(attributes, data)
    headers = {f"{HTTP_PREFIX}{k}": quote(_text(v), safe=_HTTP_SAFE) for k, v in attrs.items()}
    headers["content-type"] = kind
    return body, headers


def to_kafka_binary(attributes: Mapping[str, Any], data: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Binary mode for Kafka: (value, headers) with ``ce_*`` headers and ``content-type``."""
    attrs, body, kind = _prepare(attributes, data)
    headers = kafka_headers(attrs)
    headers.append(("content-type", kind.encode()))
    return body, headers


def kafka_headers(attributes: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """``ce_<name>`` headers (canonical text, UTF-8) for every attribute but data and its type:
    the binary-mode headers, also useful beside a structured value for routing without parsing."""
    skip = ("data", "data_base64", "datacontenttype")
    return [
        (f"{KAFKA_PREFIX}{k}", _text(v).encode())
        for k, v in attributes.items()
        if k not in skip and v is not None
    ]


def to_amqp(attributes: Mapping[str, Any], data: Any) -> tuple[bytes, dict[str, Any], str]:
    """Binary mode for AMQP: (body, application properties ``cloudEvents_*``, content type)."""
    attrs, body, kind = _prepare(attributes, data)
    headers = {f"{AMQP_EMIT_PREFIX}{k}": _amqp_native(v) for k, v in attrs.items()}
    return body, headers, kind


def structured(attributes: Mapping[str, Any], data: Any) -> bytes:
    """The JSON event format (``application/cloudevents+json``): ``data``, or ``data_base64``
    for bytes."""
    event = _attributes(attributes)
    kind = event.setdefault(
        "datacontenttype", "application/octet-stream" if isinstance(data, bytes) else "application/json"
    )
    if isinstance(data, bytes | bytearray):
        event["data_base64"] = base64.b64encode(bytes(data)).decode("ascii")
    elif data is not None:
        if not _is_json(_media_type(kind)) and not isinstance(data, str):
            raise BadMessage(f"data for datacontenttype {kind!r} must be bytes or a string")
        event["data"] = data
    return _strict_dumps(event)


def _prepare(attributes: Mapping[str, Any], data: Any) -> tuple[dict[str, Any], bytes, str]:
    attrs = _attributes(attributes)
    default = "application/octet-stream" if isinstance(data, bytes | bytearray) else "application/json"
    kind = str(attrs.pop("datacontenttype", None) or default)
    if isinstance(data, bytes | bytearray):
        body = bytes(data)
    elif data is None:
        body = b""
    elif _is_json(_media_type(kind)):
        body = _strict_dumps(data)
    elif isinstance(data, str):
        body = data.encode(_charset(kind) or "utf-8")
    else:
        raise BadMessage(f"data for datacontenttype {kind!r} must be bytes or a string")
    return attrs, body, kind


def _strict_dumps(value: Any) -> bytes:
    """What we emit is strict JSON: a NaN or infinity is an error here, not a surprise downstream."""
    try:
        return strict_json.dumps(value).encode()
    except strict_json.StrictJSONError as exc:
        raise BadMessage(f"the CloudEvent cannot be encoded: {exc}") from None


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Checked outgoing attributes, ``specversion`` defaulted, None values dropped."""
    attrs: dict[str, Any] = {"specversion": SPEC_VERSION}
    attrs.update({k: v for k, v in attributes.items() if v is not None})
    for name in attrs:
        if name in ("data", "data_base64"):
            raise BadMessage(f"{name!r} is not an attribute; pass the data separately")
        _check_name(name)
    if isinstance(attrs.get("time"), datetime):
        attrs["time"] = _rfc3339(attrs["time"])
    _validate(attrs)
    return attrs


def _text(value: Any) -> str:
    """The CloudEvents canonical string form of an attribute value (for headers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return _rfc3339(value)
    return str(value)


def _amqp_native(value: Any) -> Any:
    return value if isinstance(value, bool | int | str) else _text(value)


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")
