"""Transport security shared by every connection: TLS contexts, and URLs shown without secrets.

- :func:`server_context`: the API server's context from ``ORCHESTRATOR_TLS_CERT`` and
  ``ORCHESTRATOR_TLS_KEY`` (TLS 1.2 or later).
- :class:`TlsOptions`: the ``ssl_ca``, ``ssl_cert``, ``ssl_key`` and ``ssl_verify`` query options
  that the Cassandra and AMQP URLs (and Kafka's, with its own protocol options) share, and the
  client context they make: the system CAs unless ``ssl_ca`` names others, a client certificate
  for mutual TLS, hostname and certificate checks unless ``ssl_verify=false``.
- :func:`amqp_client`: an ``amqps://`` URL's TLS options taken out and made a context.
- :func:`redact_url`: a URL with its password and secret-looking query values replaced by
  ``***``, for every log line and error message that shows a connection URL.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from orchestrator.settings import SettingsError

TLS_PARAMETERS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify")
MASK = "***"
_SECRET_NAME = re.compile(r"pass|secret|token|credential|api_?key|access_key|private_key", re.IGNORECASE)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for the PEM certificate chain ``cert`` and its private key ``key``;
    SettingsError naming the file when either cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"cannot load the TLS certificate {cert} with key {key}: {exc}") from None
    return context


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """A TLS client's files and checks, read from URL query options."""

    ca: str | None = None  # PEM CA bundle; None: the system's trust store
    cert: str | None = None  # PEM client certificate (mutual TLS)
    key: str | None = None  # its private key (in ``cert`` when None)
    verify: bool = True  # False: no certificate or hostname check (tests only)

    @classmethod
    def take(cls, params: dict[str, str], shown: str) -> TlsOptions | None:
        """Remove the TLS options from ``params``; the options, or None when none was given."""
        found = {name: params.pop(name) for name in TLS_PARAMETERS if name in params}
        if not found:
            return None
        verify = found.get("ssl_verify", "true").lower()
        if verify not in ("true", "false"):
            raise ValueError(f"{shown}: ssl_verify must be true or false, not {verify!r}")
        if "ssl_key" in found and "ssl_cert" not in found:
            raise ValueError(f"{shown}: ssl_key needs ssl_cert")
        return cls(found.get("ssl_ca") or None, found.get("ssl_cert") or None, found.get("ssl_key") or None, verify == "true")

    def context(self) -> ssl.SSLContext:
        """The client context; ValueError naming a file that cannot be loaded."""
        try:
            context = ssl.create_default_context(cafile=self.ca)
            if self.cert is not None:
                context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load TLS files ({self.ca or 'system CAs'}, {self.cert}): {exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def amqp_client(url: str) -> tuple[str, ssl.SSLContext | None]:
    """The URL to give aio-pika without our TLS options, and the context they make (None when
    the URL has none: aio-pika's own ``amqps://`` defaults then apply). TLS options on a
    plain ``amqp://`` URL are refused rather than ignored."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    options = TlsOptions.take(params, redact_url(url))
    if options is None:
        return url, None
    if parts.scheme != "amqps":
        raise ValueError(f"{redact_url(url)}: TLS options need an amqps:// URL")
    return urlunsplit(parts._replace(query=urlencode(params))), options.context()


def redact_url(url: str) -> str:
    """``url`` with the password of its user info and the values of query options named like
    secrets (``sasl_password``, ``ssl_key_password``, ``token``...) masked; the rest as written."""
    head, question, rest = url.partition("?")
    query, hash_sign, fragment = rest.partition("#")
    scheme, sep, after = head.partition("://")
    if sep:
        netloc, slash, path = after.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        if at and ":" in userinfo:
            head = f"{scheme}://{userinfo.partition(':')[0]}:{MASK}@{hosts}{slash}{path}"
    if query:
        pairs = [pair.partition("=") for pair in query.split("&")]
        query = "&".join(
            f"{name}{eq}{MASK if eq and _SECRET_NAME.search(name) else value}" for name, eq, value in pairs
        )
    return f"{head}{question}{query}{hash_sign}{fragment}"


def redact_urls(text: str) -> str:
    """Every URL inside ``text`` (an error message) redacted."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)

