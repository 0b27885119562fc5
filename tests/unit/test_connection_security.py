"""TLS and SASL options of the Kafka, Cassandra and AMQP URLs become client arguments in one place
each; inconsistent ones are refused; secrets never show in errors or redacted URLs."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.backends.cassandra.schema import CassandraSettings
from orchestrator.backends.kafka.client import KafkaOptions
from orchestrator.backends.urls import EVENT_LOGS, UnknownBackend, open_backend
from orchestrator.projections.transitions import TransitionOptions
from orchestrator.tls import TlsOptions, amqp_client, redact_url, redact_urls
from tests.certs import self_signed

SCRAM = "kafka://b1:9093,b2:9093?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-256&sasl_username=orch&sasl_password=s3cret"


@pytest.fixture
def ca(tmp_path: Path) -> str:
    return self_signed(tmp_path)[0]


async def test_kafka_sasl_ssl_becomes_aiokafka_arguments(ca: str) -> None:
    options = KafkaOptions.from_url(f"{SCRAM}&ssl_ca={ca}&partitions=3")
    assert options.partitions == 3 and options.bootstrap == ("b1:9093", "b2:9093")
    args = options.security.client_args()
    context = args.pop("ssl_context")
    assert args == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "orch",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs()  # the ca file was loaded
    assert "s3cret" not in repr(options)
    # The argument names are the ones every aiokafka client takes (built, not started).
    for client in (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient):
        client(bootstrap_servers=list(options.bootstrap), **options.security.client_args())


def test_kafka_defaults_to_plaintext_and_ssl_alone_works(ca: str) -> None:
    assert KafkaOptions.from_url("kafka://b:9092").security.client_args() == {"security_protocol": "PLAINTEXT"}
    tls = KafkaOptions.from_url(f"kafka://b:9093?security_protocol=SSL&ssl_ca={ca}&ssl_verify=false")
    args = tls.security.client_args()
    assert args["security_protocol"] == "SSL" and args["ssl_context"].verify_mode == ssl.CERT_NONE
    system = KafkaOptions.from_url("kafka://b:9093?security_protocol=SSL").security.client_args()
    assert system["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the system's CAs
    plain_sasl = KafkaOptions.from_url(
        "kafka://b?security_protocol=SASL_PLAINTEXT&sasl_mechanism=PLAIN&sasl_username=u&sasl_password=p"
    ).security
    assert "ssl_context" not in plain_sasl.client_args()
    assert isinstance(plain_sasl.faust_credentials(), faust.SASLCredentials)
    assert isinstance(tls.security.faust_credentials(), faust.SSLCredentials)
    assert KafkaOptions.from_url("kafka://b").security.faust_credentials() is None
    stream = TransitionOptions.from_url(f"{SCRAM}&topic=t")
    assert stream.security.client_args()["sasl_mechanism"] == "SCRAM-SHA-256"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("security_protocol=TLS", "security_protocol must be one of"),
        ("security_protocol=SASL_SSL&sasl_mechanism=GSSAPI&sasl_username=u&sasl_password=s3cret", "sasl_mechanism"),
        ("security_protocol=SASL_SSL&sasl_mechanism=PLAIN&sasl_username=u", "needs sasl_username and sasl_password"),
        ("sasl_mechanism=PLAIN&sasl_username=u&sasl_password=s3cret", "need security_protocol=SASL_SSL"),
        ("ssl_ca=/x.pem", "need security_protocol=SSL"),
        ("security_protocol=SSL&ssl_verify=maybe", "ssl_verify must be true or false"),
        ("security_protocol=SSL&ssl_key=/k.pem", "ssl_key needs ssl_cert"),
        ("sasl_password=s3cret&bogus=1", "sasl_"),
    ],
)
def test_inconsistent_kafka_security_is_refused_without_showing_the_password(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        KafkaOptions.from_url(f"kafka://b:9092?{query}")
    assert "s3cret" not in str(caught.value)


def test_an_unknown_kafka_option_error_shows_the_url_redacted() -> None:
    with pytest.raises(ValueError, match="unknown option 'bogus'") as caught:
        KafkaOptions.from_url(SCRAM + "&bogus=1")
    assert "s3cret" not in str(caught.value) and "sasl_password=***" in str(caught.value)


def test_cassandra_tls_options_make_the_driver_context(ca: str, tmp_path: Path) -> None:
    settings = CassandraSettings.from_url(f"cassandra://app:pw@h1:9142,h2:9142/ks?ssl_ca={ca}&consistency=QUORUM")
    assert settings.tls == TlsOptions(ca=ca) and settings.consistency == "QUORUM" and settings.port == 9142
    assert settings.url == f"cassandra://app:***@h1:9142,h2:9142/ks?ssl_ca={ca}&consistency=QUORUM"
    assert settings.tls.context().verify_mode == ssl.CERT_REQUIRED
    assert CassandraSettings.from_url("cassandra://h/ks").tls is None
    with pytest.raises(ValueError, match="ssl_verify") as caught:
        CassandraSettings.from_url("cassandra://app:pw@h/ks?ssl_verify=nope")
    assert "pw@" not in str(caught.value)
    with pytest.raises(ValueError, match="cannot load TLS files"):
        TlsOptions(ca=str(tmp_path / "missing.pem")).context()


def test_amqp_tls_options_become_an_ssl_context(ca: str) -> None:
    url, context = amqp_client(f"amqps://u:pw@rabbit:5671/vh?ssl_ca={ca}&heartbeat=30")
    assert url == "amqps://u:pw@rabbit:5671/vh?heartbeat=30" and isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert amqp_client("amqp://u:pw@rabbit/") == ("amqp://u:pw@rabbit/", None)
    assert amqp_client("amqps://u:pw@rabbit/") == ("amqps://u:pw@rabbit/", None)  # aio-pika's defaults
    with pytest.raises(ValueError, match="need an amqps:// URL") as caught:
        amqp_client(f"amqp://u:pw@rabbit/?ssl_ca={ca}")
    assert "pw" not in str(caught.value).replace("amqp://u:***", "")


def test_redaction_masks_passwords_and_secret_options_only() -> None:
    assert redact_url("amqp://guest:guest@h:5672/") == "amqp://guest:***@h:5672/"
    assert redact_url(SCRAM) == SCRAM.replace("s3cret", "***")
    assert redact_url("kafka://h?ssl_key_password=x&token=t&topic=a") == "kafka://h?ssl_key_password=***&token=***&topic=a"
    assert redact_url("https://h/jwks?api_key=k&ssl_key=/k.pem") == "https://h/jwks?api_key=***&ssl_key=/k.pem"
    assert redact_url("sqlite:///orchestrator.db") == "sqlite:///orchestrator.db"
    assert redact_url("cassandra://user@h/ks") == "cassandra://user@h/ks"
    text = "cannot reach amqp://a:b@h/ and kafka://k?sasl_password=z."
    assert "b@" not in redact_urls(text) and "=z" not in redact_urls(text)
    with pytest.raises(UnknownBackend) as caught:
        open_backend(EVENT_LOGS, "postgres://u:pw@h/db", "event log")
    assert "pw" not in str(caught.value)
