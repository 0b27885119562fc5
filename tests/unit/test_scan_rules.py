"""The security scan's rules: each finds what it is for, and leaves the safe form alone."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.scan.definitions import (
    DefinitionPolicy,
    literal_value,
    private_host,
    scan_definition,
    worst_case_retrying,
)
from orchestrator.scan.deployment import DeploymentFacts, KeyFact, scan_deployment, weakness
from orchestrator.scan.findings import Severity, counts, failing, ordered
from schemas.definition import TaskStep, WorkflowDefinition

NOW = 1_800_000_000.0


def definition(*steps: dict[str, Any], triggers: list[dict[str, Any]] | None = None) -> WorkflowDefinition:
    body: dict[str, Any] = {"name": "w", "version": 1, "steps": list(steps)}
    if triggers is not None:
        body["triggers"] = triggers
    return WorkflowDefinition.model_validate(body)


def task(name: str = "t", connector: str = "noop", **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "task", "connector": connector, **fields}


def rules(defn: WorkflowDefinition, policy: DefinitionPolicy | None = None) -> list[str]:
    return [f.rule for f in scan_definition(defn, policy or DefinitionPolicy())]


def test_a_clean_definition_has_no_findings() -> None:
    clean = definition(
        task("call", "http", config={"method": "POST", "headers": {"Authorization": {"secret": "API_TOKEN"}}},
             input={"url": "'https://api.example.com/orders'", "body": "input"}),
        triggers=[{"type": "webhook", "name": "gh", "signature": {"preset": "github", "secret": "GH"}}],
    )
    assert scan_definition(clean, DefinitionPolicy(python_modules=("examples",))) == []


@pytest.mark.parametrize(
    ("config", "inputs"),
    [
        ({"headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz"}}, {}),
        ({"password": "hunter2hunter2"}, {}),
        ({"dsn": "postgres://app:s3cr3t@db.example.com/app"}, {}),
        ({"note": "AKIAABCDEFGHIJKLMNOP"}, {}),
        ({}, {"api_key": "'literal-key-value'"}),
        ({}, {"body": "`{\"client_secret\": \"abcdef123456\"}`"}),
        ({"key": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}, {}),
    ],
)
def test_plaintext_credentials_are_high_findings(config: dict[str, Any], inputs: dict[str, Any]) -> None:
    [finding] = scan_definition(definition(task(config=config, input=inputs)))
    assert finding.rule == "plaintext-credential" and finding.severity is Severity.HIGH
    assert "step t" in finding.target


@pytest.mark.parametrize(
    ("config", "inputs"),
    [
        ({"headers": {"Authorization": {"secret": "TOKEN"}}}, {}),
        ({}, {"token": "secret('TOKEN')"}),
        ({}, {"password": "input.password"}),  # an expression over the input, not a value
        ({"token_url": "https://auth.example.com/token"}, {}),  # named like one, but a URL
    ],
)
def test_references_and_expressions_are_not_credentials(config: dict[str, Any], inputs: dict[str, Any]) -> None:
    assert scan_definition(definition(task(config=config, input=inputs))) == []


def test_an_unsigned_webhook_is_high_and_a_signed_one_is_not() -> None:
    unsigned = definition(task(), triggers=[{"type": "webhook", "name": "open"}])
    assert rules(unsigned) == ["unsigned-webhook"]
    signed = definition(task(), triggers=[{"type": "webhook", "name": "s", "signature": {"preset": "stripe", "secret": "S"}}])
    assert rules(signed) == []


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "a private address"),
        ("192.168.0.10", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("metadata.google.internal", "a cloud metadata address"),
        ("169.254.10.1", "link-local"),
        ("0.0.0.0", "a private address"),
        ("api.example.com", None),
        ("8.8.8.8", None),
    ],
)
def test_private_host_classes(host: str, reason: str | None) -> None:
    assert private_host(host) == reason


def test_http_steps_to_private_addresses_are_found_in_config_and_literal_input() -> None:
    in_config = definition(task(connector="http", config={"url": "http://169.254.169.254/latest/meta-data/"}))
    in_input = definition(task(connector="http", input={"url": "'http://10.0.0.5:8080/admin'"}))
    dynamic = definition(task(connector="http", input={"url": "input.url"}))
    assert rules(in_config) == ["private-address"]
    assert rules(in_input) == ["private-address"]
    assert rules(dynamic) == []  # unknown until it runs: the connector's egress policy decides


def test_python_functions_outside_the_allow_list() -> None:
    defn = definition(
        task("ok", "python", config={"function": "examples.orders:charge"}, next="bad"),
        task("bad", "python", config={"function": "subprocess:getoutput"}),
    )
    policy = DefinitionPolicy(python_modules=("examples",))
    found = scan_definition(defn, policy)
    assert [(f.rule, f.target.rsplit(" ", 1)[1]) for f in found] == [("python-outside-allow-list", "bad")]
    assert rules(defn) == []  # allow-list unknown: not judged
    assert {f.target for f in scan_definition(defn, DefinitionPolicy(python_modules=()))} == {
        "workflow w v1, step ok",
        "workflow w v1, step bad",
    }
    # a prefix is a module boundary: "examples" does not allow "examples_evil"
    sneaky = definition(task("s", "python", config={"function": "examples_evil:run"}))
    assert rules(sneaky, policy) == ["python-outside-allow-list"]


def test_retry_policies_that_keep_going_for_days() -> None:
    many = definition(task(retry={"max_attempts": 50}))
    huge = definition(task(retry={"max_attempts": 500}))
    slow = definition(task(retry={"max_attempts": 10, "backoff": {"initial_seconds": 86_400, "max_seconds": 86_400}}))
    fine = definition(task(retry={"max_attempts": 5}))
    assert [(f.rule, f.severity) for f in scan_definition(many)] == [("huge-retries", Severity.LOW)]
    assert [f.severity for f in scan_definition(huge)] == [Severity.MEDIUM]
    assert [f.severity for f in scan_definition(slow)] == [Severity.MEDIUM]
    assert scan_definition(fine) == []


def test_worst_case_retrying_sums_capped_backoff() -> None:
    step = TaskStep.model_validate(
        task(retry={"max_attempts": 4, "backoff": {"initial_seconds": 1, "multiplier": 10, "max_seconds": 50}})
    )
    assert worst_case_retrying(step) == 1 + 10 + 50


def test_parallel_branches_are_scanned() -> None:
    defn = definition(
        {
            "name": "fan",
            "type": "parallel",
            "branches": [{"steps": [task("inner", config={"password": "plaintext-pass"})]}],
        }
    )
    assert [f.target for f in scan_definition(defn)] == ["workflow w v1, step inner"]


def test_literal_value_only_for_literals() -> None:
    assert literal_value("'x'") == "x"
    assert literal_value("`[1, 2]`") == [1, 2]
    assert literal_value("input.x") is None
    assert literal_value("not ( valid") is None


def facts(**fields: Any) -> DeploymentFacts:
    return DeploymentFacts(**{"host": "127.0.0.1", "now": NOW, **fields})


def test_deployment_rules() -> None:
    assert scan_deployment(facts()) == []  # unknowns are not judged
    assert [f.rule for f in scan_deployment(facts(auth_required=False))] == ["auth-off"]
    assert scan_deployment(facts(auth_required=True)) == []
    assert [f.rule for f in scan_deployment(facts(host="0.0.0.0", tls=False))] == ["tls-off-public"]
    assert scan_deployment(facts(host="127.0.0.1", tls=False)) == []
    assert scan_deployment(facts(host="0.0.0.0", tls=True)) == []
    assert [(f.rule, f.severity) for f in scan_deployment(facts(encryption=False))] == [
        ("encryption-off", Severity.MEDIUM)
    ]


@pytest.mark.parametrize("value", ["secret", "changeme", "password1", "short", "aaaaaaaaaaaaaaaaaaaa"])
def test_weak_secrets(value: str) -> None:
    assert weakness(value) is not None
    [finding] = scan_deployment(facts(secrets={"GH": value}))
    assert finding.rule == "weak-secret" and repr(value) not in finding.message  # never quoted


def test_a_strong_secret_passes() -> None:
    assert weakness("9f1c2b7e4d5a6f80a1b2c3d4e5f60718") is None


def test_keys_near_expiry() -> None:
    keys = (
        KeyFact("k1", "ci", NOW + 3600),  # in an hour: rotate
        KeyFact("k2", "ops", NOW + 30 * 86_400),  # a month: fine
        KeyFact("k3", "old", NOW - 10),  # already expired: no longer works
        KeyFact("k4", "forever", None),
    )
    found = scan_deployment(facts(keys=keys))
    assert [(f.rule, f.target) for f in found] == [("key-near-expiry", "deployment, key k1")]
    assert "orchestrator keys rotate k1" in found[0].fix


def test_ordering_counts_and_threshold() -> None:
    found = ordered(
        [
            *scan_definition(definition(task(retry={"max_attempts": 50}))),
            *scan_deployment(facts(auth_required=False, encryption=False)),
        ]
    )
    assert [f.severity for f in found] == [Severity.HIGH, Severity.MEDIUM, Severity.LOW]
    assert counts(found) == {"high": 1, "medium": 1, "low": 1, "info": 0}
    assert len(failing(found, Severity.HIGH)) == 1 and len(failing(found, Severity.LOW)) == 3
    assert Severity.parse("Medium") is Severity.MEDIUM
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("critical")
