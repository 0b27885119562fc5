"""TLS and SASL for every Kafka client, from the ``kafka://`` URL's query options.

``security_protocol`` is ``PLAINTEXT`` (the default), ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``;
``sasl_mechanism`` (``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``) with ``sasl_username`` and
``sasl_password`` for the SASL ones; ``ssl_ca``, ``ssl_cert``, ``ssl_key``, ``ssl_verify`` (see
:mod:`orchestrator.tls`) for the SSL ones. :meth:`KafkaSecurity.client_args` is the one place
they become aiokafka arguments; every producer, consumer and admin client takes them.
Inconsistent options (a mechanism without SASL, TLS files on a plaintext protocol, SASL
without credentials) are refused when the URL is read, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.tls import TLS_PARAMETERS, TlsOptions

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_PARAMETERS = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password")
PARAMETERS = (*SASL_PARAMETERS, *TLS_PARAMETERS)


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsOptions | None = None

    @classmethod
    def take(cls, params: dict[str, str], shown: str) -> KafkaSecurity:
        """Remove the security options from ``params`` and check they fit together."""
        tls = TlsOptions.take(params, shown)
        protocol = params.pop("security_protocol", "PLAINTEXT").upper()
        mechanism = params.pop("sasl_mechanism", None)
        username, password = params.pop("sasl_username", None), params.pop("sasl_password", None)
        if protocol not in PROTOCOLS:
            raise ValueError(f"{shown}: security_protocol must be one of {', '.join(PROTOCOLS)}")
        sasl = protocol.startswith("SASL_")
        if sasl:
            mechanism = (mechanism or "").upper()
            if mechanism not in MECHANISMS:
                raise ValueError(f"{shown}: sasl_mechanism must be one of {', '.join(MECHANISMS)}")
            if not username or not password:
                raise ValueError(f"{shown}: {protocol} needs sasl_username and sasl_password")
        elif mechanism or username or password:
            raise ValueError(f"{shown}: sasl_* options need security_protocol=SASL_SSL or SASL_PLAINTEXT")
        if tls is not None and not protocol.endswith("SSL"):
            raise ValueError(f"{shown}: ssl_* options need security_protocol=SSL or SASL_SSL")
        if protocol.endswith("SSL") and tls is None:
            tls = TlsOptions()
        return cls(protocol, mechanism if sasl else None, username, password, tls)

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        args: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls is not None:
            args["ssl_context"] = self.tls.context()
        if self.mechanism is not None:
            args.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return args

    def faust_credentials(self) -> Any:
        """The same options as faust ``broker_credentials`` (window triggers); None for PLAINTEXT."""
        if self.protocol == "PLAINTEXT":
            return None
        import faust

        context = self.tls.context() if self.tls is not None else None
        if self.mechanism is None:
            return faust.SSLCredentials(context)
        return faust.SASLCredentials(
            username=self.username, password=self.password, ssl_context=context, mechanism=self.mechanism
        )


PLAINTEXT = KafkaSecurity()
