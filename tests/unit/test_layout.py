"""The package layout holds: who may import whom, no import cycles, factory tables that resolve.

The rules are the ones ``docs/architecture.md`` states. Each check has a case proving it can fail.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from orchestrator.backends import urls
from tests.unit.import_graph import ROOT, cycles, import_graph
from triggers import manager

CORE = ("orchestrator.core", "schemas")
# The small shared seams every layer may use: ports, settings, lifecycle, instrumentation, log
# context, TLS, the collector's threshold.
SEAMS = (
    "orchestrator.ports",
    "orchestrator.access_ports",
    "orchestrator.settings",
    "orchestrator.lifecycle",
    "orchestrator.instrumentation",
    "orchestrator.logcontext",
    "orchestrator.tls",
    "orchestrator.collector",
)
BASE = (*CORE, *SEAMS)

# Area (longest matching prefix wins) -> prefixes of the project modules it may import.
RULES: dict[str, tuple[str, ...]] = {
    "schemas": ("schemas",),
    "orchestrator.core": CORE,
    **{seam: BASE for seam in SEAMS},
    # The engine reads histories through the one pager (a leaf: ports and schemas only).
    "orchestrator.engine": (*BASE, "orchestrator.engine", "orchestrator.history.pager"),
    "orchestrator.history": (*BASE, "orchestrator.history"),
    "orchestrator.backends": (*BASE, "orchestrator.backends", "orchestrator.crypto.identity"),
    # Encryption at rest: keyring, data keys, the AES-GCM codec (a leaf over the base).
    "orchestrator.crypto": (*BASE, "orchestrator.crypto"),
    "orchestrator.projections": (*BASE, "orchestrator.projections", "orchestrator.engine", "orchestrator.backends"),
    # Cluster health: node identity, heartbeats, the cluster view (pure over node records).
    "orchestrator.cluster": (*BASE, "orchestrator.cluster"),
    # Quotas and limits per tenant: policy over the ports.
    "orchestrator.limits": (*BASE, "orchestrator.limits"),
    # Analytics: the pure fold, sketches and queries over aggregate cells, the store port and the
    # projection following the feed into it.
    "orchestrator.analytics": (*BASE, "orchestrator.analytics"),
    # Secret stores and their sealing (by the encryption keyring when configured).
    "orchestrator.secrets": (*BASE, "orchestrator.secrets", "orchestrator.crypto"),
    # The template catalog: entries, reviews, stores, signing and its rules (a leaf over the base).
    "orchestrator.catalog": (*BASE, "orchestrator.catalog", "orchestrator.backends.cassandra.schema"),
    "orchestrator.runtime": (
        *BASE,
        "orchestrator.analytics",
        "orchestrator.cluster",
        "orchestrator.limits",
        "orchestrator.audit",
        "orchestrator.secrets",
        "orchestrator.engine",
        "orchestrator.history",
        "orchestrator.projections",
        "orchestrator.backends",
        "orchestrator.crypto",
        "orchestrator.stores",
        "connectors",
    ),
    # The stores opened one by one for maintenance commands: the library root's other half.
    "orchestrator.stores": (
        *BASE,
        "orchestrator.audit",
        "orchestrator.secrets",
        "orchestrator.backends",
        "orchestrator.crypto",
    ),
    # Workflow templates: format, rendering (pure), in-memory tests on an embedded runtime with
    # stubbed connectors, installation through a small protocol.
    "orchestrator.templates": (
        *BASE,
        "orchestrator.templates",
        "orchestrator.runtime",
        "orchestrator.secrets.sealing",
        "connectors.base",
    ),
    # Metrics and log formats at the edge: over the hooks, served with the route declarations.
    "orchestrator.observability": (*BASE, "orchestrator.observability", "orchestrator.api.routes"),
    # Principals, authentication and authorization: a leaf over the base.
    "orchestrator.auth": (*BASE, "orchestrator.auth"),
    # The security scan: pure rules over definitions and deployment facts.
    "orchestrator.scan": (*BASE, "orchestrator.scan"),
    # The web console's built files and the route serving them.
    "orchestrator.console": (*BASE, "orchestrator.console", "orchestrator.api.routes"),
    # The audit trail (records, chain, verification, reading): a leaf over the base.
    "orchestrator.audit": (*BASE, "orchestrator.audit"),
    "orchestrator.api": (
        *BASE,
        "orchestrator.api",
        "orchestrator.analytics",
        "orchestrator.history",
        "orchestrator.runtime",
        "orchestrator.auth",
        "orchestrator.cluster",
        "orchestrator.audit",
        "orchestrator.limits",
        "orchestrator.secrets",
        "orchestrator.templates",
        "orchestrator.catalog",
    ),
    "triggers": (
        *BASE,
        "triggers",
        "orchestrator.runtime",
        "orchestrator.api",
        "orchestrator.limits",
        "orchestrator.backends.kafka.client",
        "orchestrator.backends.urls",  # schedules open their states beside the event log
    ),
    "connectors": (*BASE, "connectors", "orchestrator.backends.kafka.client"),
    "orchestrator.process": (
        *BASE,
        "orchestrator.audit",
        "orchestrator.runtime",
        "orchestrator.api",
        "orchestrator.auth",
        "orchestrator.backends.urls",
        "orchestrator.history",
        "triggers",
        "connectors",
        "orchestrator.observability",
        "orchestrator.console",
        "orchestrator.catalog",
    ),
    # The outermost edge: the command line may use every part of the library.
    "orchestrator.cli": ("orchestrator", "schemas", "triggers", "connectors"),
    "orchestrator.__main__": ("orchestrator.cli",),
    "orchestrator": (),  # the package's own __init__
}
# Inside backends/: these are shared helpers, not backends; every other module, or subpackage
# (cassandra/, kafka/), is one backend, which never imports another.
SHARED_BACKEND_HELPERS = (
    "orchestrator.backends.fair_gate",
    "orchestrator.backends.fair_queue",
    "orchestrator.backends.paging",
    "orchestrator.backends.summary",
    "orchestrator.backends.urls",
    "orchestrator.backends.versions",
)


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def area_of(module: str, rules: Mapping[str, tuple[str, ...]] = RULES) -> str:
    matching = [area for area in rules if within(module, area)]
    if not matching:
        raise AssertionError(f"{module} belongs to no area of the import rules: add it to RULES")
    return max(matching, key=len)


def backend_of(module: str) -> str | None:
    """The backend a module of ``orchestrator.backends`` belongs to (None for the shared helpers)."""
    if not within(module, "orchestrator.backends") or module == "orchestrator.backends":
        return None
    if any(within(module, helper) for helper in SHARED_BACKEND_HELPERS):
        return None
    return ".".join(module.split(".")[:3])


def violations(
    graph: Mapping[str, Mapping[str, int]], rules: Mapping[str, tuple[str, ...]] = RULES
) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        allowed = rules[area_of(module, rules)]
        for target, line in sorted(targets.items()):
            if not any(within(target, prefix) for prefix in allowed):
                found.append(f"{module}:{line} imports {target}")
                continue
            mine, theirs = backend_of(module), backend_of(target)
            if mine is not None and theirs is not None and mine != theirs:
                found.append(f"{module}:{line} imports {target}: one backend never imports another")
    return found


def test_every_module_follows_the_import_rules() -> None:
    assert violations(import_graph()) == []


def test_there_is_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_import_rules_can_fail() -> None:
    graph = {
        "orchestrator.core.machine": {"orchestrator.engine.engine": 3},
        "orchestrator.api.app": {"triggers.webhook": 7, "orchestrator.runtime": 8},
        "orchestrator.backends.sqlite": {"orchestrator.backends.memory": 9, "orchestrator.backends.paging": 10},
        "orchestrator.backends.kafka.transport": {"orchestrator.backends.kafka.client": 2},
        "connectors.http": {"triggers.inbound": 4},
    }
    assert violations(graph) == [
        "connectors.http:4 imports triggers.inbound",
        "orchestrator.api.app:7 imports triggers.webhook",
        "orchestrator.backends.sqlite:9 imports orchestrator.backends.memory: one backend never imports another",
        "orchestrator.core.machine:3 imports orchestrator.engine.engine",
    ]


def test_a_module_outside_every_area_is_reported() -> None:
    with pytest.raises(AssertionError, match="no area"):
        violations({"elsewhere.thing": {}})


def test_the_cycle_check_can_fail(tmp_path: Path) -> None:
    """A real tree on disk with a cycle through a function-level import and a TYPE_CHECKING one."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import c\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n")
    (package / "d.py").write_text("from . import a\n")
    assert cycles(import_graph(tmp_path, ["pkg"])) == [["pkg.a", "pkg.b", "pkg.c"]]


def factory_strings() -> list[tuple[str, str]]:
    tables = {
        "event logs": urls.EVENT_LOGS,
        "registries": urls.REGISTRIES,
        "transports": urls.TRANSPORTS,
        "timers": urls.TIMERS,
        "wait indexes": urls.WAIT_INDEXES,
        "trigger sources": manager.FACTORIES,
    }
    return [(f"{kind}[{key}]", target) for kind, table in tables.items() for key, target in table.items()]


def resolve(target: str) -> object:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("where", "target"), factory_strings())
def test_every_factory_string_resolves(where: str, target: str) -> None:
    factory = resolve(target)
    assert isinstance(factory, type), f"{where}: {target} is not a class"
    if not where.startswith("trigger sources"):
        assert callable(getattr(factory, "from_url", None)), f"{where}: {target} has no from_url"


def test_a_bad_factory_string_fails_to_resolve() -> None:
    with pytest.raises(ModuleNotFoundError):
        resolve("orchestrator.backends.nowhere:Thing")
    with pytest.raises(AttributeError):
        resolve("orchestrator.backends.memory:NoSuchLog")


def test_the_graph_covers_the_whole_tree() -> None:
    graph = import_graph()
    on_disk = {p for package in ("orchestrator", "schemas", "triggers", "connectors") for p in (ROOT / package).rglob("*.py")}
    assert len(graph) == len(on_disk)
    assert "orchestrator.core.machine" in graph and "orchestrator.engine.engine" in graph["orchestrator.runtime"]
