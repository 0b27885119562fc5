"""The pure modules stay pure: no I/O libraries, no clock, no randomness.

Checked twice: statically (every import statement and call in their source, function-level
ones included) and dynamically (a fresh interpreter imports and exercises them while an import
hook records which file asked for each forbidden module).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "orchestrator" / "core"
# Outside orchestrator/: pure helpers of the definition format that the machine uses.
PURE_OUTSIDE_CORE = ["schemas/expressions.py", "schemas/graph.py"]


def package_modules(package: Path) -> list[str]:
    """Every module of a package directory (subpackages too), as paths relative to ROOT."""
    return sorted(str(path.relative_to(ROOT)) for path in package.rglob("*.py"))


def orchestrator_outside_core() -> list[str]:
    """Every top-level module and subpackage of ``orchestrator`` except ``core``: the pure core
    may import none of them (they do I/O, or lead to it)."""
    names = []
    for entry in sorted((ROOT / "orchestrator").iterdir()):
        if entry.name in {"core", "__init__.py", "__pycache__"} or entry.name.startswith("."):
            continue
        if entry.is_dir() and (entry / "__init__.py").exists():
            names.append(f"orchestrator.{entry.name}")
        elif entry.suffix == ".py":
            names.append(f"orchestrator.{entry.stem}")
    return names


PURE = [*package_modules(CORE), *PURE_OUTSIDE_CORE]
FORBIDDEN = {
    "asyncio",
    "aiohttp",
    "aiokafka",
    "aio_pika",
    "cassandra",
    "sqlite3",
    "time",
    "random",
    "socket",
    "threading",
    "connectors",
    "os",
    "subprocess",
    "secrets",
    "pathlib",
    "urllib",
    "http",
    "triggers",
    *orchestrator_outside_core(),
}
# Calls that read the clock or make randomness, whatever they are imported as.
CLOCK_ATTRIBUTES = {
    "now",
    "utcnow",
    "today",
    "time",
    "time_ns",
    "monotonic",
    "perf_counter",
    "urandom",
}
RANDOM_NAMES = {
    "uuid1",
    "uuid4",
    "random",
    "randint",
    "choice",
    "shuffle",
    "token_hex",
    "token_bytes",
}


def forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def clock_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Attribute) and function.attr in CLOCK_ATTRIBUTES | RANDOM_NAMES:
            found.append((node.lineno, ast.unparse(function)))
        elif isinstance(function, ast.Name) and function.id in RANDOM_NAMES | {"time", "monotonic"}:
            found.append((node.lineno, function.id))
    return found


@pytest.mark.parametrize("path", PURE)
def test_pure_module_source_imports_no_io(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), path)
    bad = [(line, name) for line, name in imported_modules(tree) if forbidden(name)]
    assert bad == []


@pytest.mark.parametrize("path", PURE)
def test_pure_module_never_reads_the_clock_or_randomness(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), path)
    assert clock_calls(tree) == []


def test_the_static_checks_can_fail() -> None:
    tree = ast.parse(
        "import asyncio\nfrom os import path\nfrom orchestrator.engine.engine import Engine\n"
        "def f():\n    import time\n"
        "    return datetime.now(), time.time(), uuid.uuid4(), datetime.utcnow()\n"
    )
    assert [name for _, name in imported_modules(tree) if forbidden(name)] == [
        "asyncio",
        "os",
        "os.path",
        "orchestrator.engine.engine",
        "orchestrator.engine.engine.Engine",
        "time",
    ]
    assert [name for _, name in clock_calls(tree)] == [
        "datetime.now",
        "time.time",
        "uuid.uuid4",
        "datetime.utcnow",
    ]


# The child process: wrap __import__ (called by every import statement, even for a module that
# is already loaded) to record which file asked for each forbidden module; then import the pure
# modules and run them, so imports inside functions count too.
PROBE = r"""
import builtins, importlib, json, sys

ROOT, PURE, FORBIDDEN = sys.argv[1], json.loads(sys.argv[2]), set(json.loads(sys.argv[3]))
pure_files = {f"{ROOT}/{p}" for p in PURE}
asked = []
original_import = builtins.__import__

def forbidden(name):
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)

def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    caller = sys._getframe(1).f_code.co_filename
    if caller in pure_files:
        for wanted in [name, *(f"{name}.{item}" for item in fromlist or ())]:
            if level == 0 and forbidden(wanted):
                asked.append((wanted, caller))
    return original_import(name, globals, locals, fromlist, level)

# third-party dependencies load what they load (pydantic pulls in asyncio, for one): not ours
import pydantic, jmespath, jsonschema, yaml  # noqa
# a pattern-constrained field makes pydantic load its regex and network validators (email, socket)
class _Warm(pydantic.BaseModel):
    x: str = pydantic.Field("a", pattern="a")
baseline = set(sys.modules)
builtins.__import__ = recording_import

modules = [p[:-3].removesuffix("/__init__").replace("/", ".") for p in PURE]
for name in modules:
    importlib.import_module(name)

from orchestrator.core.commands import StartExecution, FailStep, ErrorInfo
from orchestrator.core.machine import decide_and_evolve
from orchestrator.core.replay import verify_history, replay_state
from schemas.graph import WorkflowGraph
from schemas.definition import WorkflowDefinition
from schemas.expressions import evaluate
from schemas.envelope import Envelope

graph = WorkflowGraph.build(WorkflowDefinition.model_validate({"name": "w", "steps": [
    {"name": "a", "type": "task", "connector": "c", "retry": {"max_attempts": 2, "jitter": 0.5,
     "retry_on": ["x*"]}, "next": "b"},
    {"name": "b", "type": "wait", "until": "'2030-01-01T00:00:00'", "next": "c"},
    {"name": "c", "type": "wait_for_event", "event": "e", "timeout_seconds": 5}]}))
start = StartExecution(execution_id="x", now=1.0, workflow="w", version=1)
events, state = decide_and_evolve(graph, None, start)
failed = FailStep(execution_id="x", now=2.0, step="a", attempt_id="a:1:1", error=ErrorInfo("xe"))
more, state = decide_and_evolve(graph, state, failed)
stamped = [
    Envelope(id=str(i), type=e.type, subject="x", sequence=i, time="1970-01-01T00:00:01Z",
             workflow="w", workflowversion=1, data=e.data)
    for i, e in enumerate(events + more, 1)
]
replay_state(stamped)
verify_history(graph, stamped)
evaluate("a.b", {"a": {"b": 1}})
builtins.__import__ = original_import

print(json.dumps({
    "asked_by_pure": sorted(set(asked)),
    "new_forbidden": sorted(n for n in set(sys.modules) - baseline if forbidden(n)),
    "loaded": modules,
}))
"""


def probe(pure: list[str], forbidden_modules: list[str]) -> dict[str, list[Any]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT), json.dumps(pure), json.dumps(forbidden_modules)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, list[Any]] = json.loads(result.stdout.splitlines()[-1])
    return report


def test_importing_and_running_the_pure_modules_loads_no_io_library() -> None:
    report = probe(PURE, sorted(FORBIDDEN))
    assert report["loaded"] == [module_name(p) for p in PURE]
    assert report["asked_by_pure"] == []
    assert report["new_forbidden"] == []


def test_the_import_probe_can_fail() -> None:
    """Told that base64 and datetime are forbidden, the probe catches the modules importing them,
    although both were loaded long before (by pydantic)."""
    report = probe([*PURE, "schemas/envelope.py"], ["base64", "datetime"])
    assert ["base64", f"{ROOT}/schemas/envelope.py"] in report["asked_by_pure"]
    assert ["datetime", f"{ROOT}/orchestrator/core/machine.py"] in report["asked_by_pure"]
    assert ["datetime", f"{ROOT}/orchestrator/core/timefmt.py"] in report["asked_by_pure"]


def module_name(path: str) -> str:
    return path[:-3].removesuffix("/__init__").replace("/", ".")


def test_every_module_of_the_core_package_is_checked() -> None:
    """The checked list is a scan of the package, so a new module in core/ is checked at once."""
    on_disk = {str(p.relative_to(ROOT)) for p in CORE.rglob("*.py")}
    assert on_disk <= set(PURE)
    assert "orchestrator/core/machine.py" in PURE and "orchestrator/core/__init__.py" in PURE


def test_the_package_scan_finds_a_new_impure_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module dropped into a scanned package is found by the scan and fails the static check."""
    package = ROOT / "orchestrator" / "core"
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    fake = tmp_path / "orchestrator" / "core"
    (fake / "sub").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "sub" / "__init__.py").write_text("")
    (fake / "sub" / "sneaky.py").write_text("import sqlite3\nfrom orchestrator.backends.sqlite import X\n")
    found = package_modules(fake)
    assert "orchestrator/core/sub/sneaky.py" in found
    tree = ast.parse((tmp_path / "orchestrator/core/sub/sneaky.py").read_text())
    assert [name for _, name in imported_modules(tree) if forbidden(name)] == [
        "sqlite3",
        "orchestrator.backends.sqlite",
        "orchestrator.backends.sqlite.X",
    ]
    assert package.exists()


def test_everything_outside_core_is_forbidden_to_it() -> None:
    outside = orchestrator_outside_core()
    for name in ("orchestrator.engine", "orchestrator.backends", "orchestrator.runtime", "orchestrator.api"):
        assert name in outside
    assert not any(name.startswith("orchestrator.core") for name in outside)
