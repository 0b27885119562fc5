"""The layout's import rules, checked on the source (function-level imports included).

- A backend module never imports another backend: the modules of one subpackage
  (``backends/cassandra/``, ``backends/kafka/``) may import each other, and the shared helpers
  (``paging``, ``summary``, ``urls``, ``versions``) are anyone's.
- No private (underscore) name is imported from another package, anywhere in the repository.
- ``history/redrive.py`` never imports the runtime (it depends on its ``RedriveHost`` protocol),
  and the engine's worker never imports the ``connectors`` package (only the port).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = "orchestrator.backends"
SHARED = {f"{BACKENDS}.{name}" for name in ("paging", "summary", "urls", "versions")}
SOURCES = ("orchestrator", "schemas", "triggers", "connectors", "tests", "bench", "examples", "scripts")


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports(source: str) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every absolute import statement, wherever it is."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def backend_of(module: str) -> str | None:
    """The backend a module belongs to (its subpackage for cassandra/ and kafka/), None if it is
    not a backend module."""
    if not module.startswith(BACKENDS + ".") or module in SHARED:
        return None
    parts = module.split(".")
    return ".".join(parts[:3])  # backends.sqlite, or backends.cassandra for all of cassandra/


def backend_violations(module: str, source: str) -> list[str]:
    own = backend_of(module)
    if own is None:
        return []
    bad = []
    for target, names in imports(source):
        # `from orchestrator.backends import sqlite` imports the module named by target + name
        candidates = [target] + [f"{target}.{name}" for name in names if is_module(f"{target}.{name}")]
        for candidate in candidates:
            other = backend_of(candidate)
            if other is not None and other != own:
                bad.append(f"{module} imports {candidate}")
    return bad


def is_module(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").is_file()


def package_of(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def underscore_violations(module: str, source: str, is_package: bool = False) -> list[str]:
    mine = package_of(module, is_package)
    bad = []
    for target, names in imports(source):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        target_package = target if (ROOT / target.replace(".", "/")).is_dir() else target.rpartition(".")[0]
        if private and target_package != mine:
            bad.append(f"{module} imports {', '.join(private)} from {target}")
        private_module = any(part.startswith("_") and not part.startswith("__") for part in target.split("."))
        if private_module and target_package != mine:
            bad.append(f"{module} imports the private module {target}")
    return bad


def python_files() -> list[Path]:
    return sorted(p for top in SOURCES if (ROOT / top).is_dir() for p in (ROOT / top).rglob("*.py"))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_no_backend_imports_another_backend() -> None:
    bad = []
    for path in sorted((ROOT / "orchestrator" / "backends").rglob("*.py")):
        bad += backend_violations(module_of(path), read(path))
    assert bad == []


def test_no_private_name_is_imported_across_packages() -> None:
    bad = []
    for path in python_files():
        bad += underscore_violations(module_of(path), read(path), path.name == "__init__.py")
    assert bad == []


def test_redrive_never_imports_the_runtime_and_the_worker_never_imports_connectors() -> None:
    redrive = [m for m, _ in imports(read(ROOT / "orchestrator/history/redrive.py"))]
    worker = [m for m, _ in imports(read(ROOT / "orchestrator/engine/worker.py"))]
    assert not [m for m in redrive if m == "orchestrator.runtime" or m.startswith("orchestrator.runtime.")]
    assert not [m for m in worker if m == "connectors" or m.startswith("connectors.")]


def test_the_checks_can_fail() -> None:
    sqlite = "orchestrator.backends.sqlite"
    assert backend_violations(sqlite, "from orchestrator.backends.memory import same_content\n") == [
        f"{sqlite} imports orchestrator.backends.memory"
    ]
    assert backend_violations(sqlite, "def f():\n    from orchestrator.backends import memory\n") == [
        f"{sqlite} imports orchestrator.backends.memory"
    ]
    projections = "orchestrator.backends.cassandra.projections"
    assert backend_violations(projections, "from orchestrator.backends.kafka.client import describe\n") == [
        f"{projections} imports orchestrator.backends.kafka.client"
    ]
    allowed = "from orchestrator.backends.cassandra.schema import Database\nfrom orchestrator.backends.summary import summarize\n"
    assert backend_violations(projections, allowed) == []
    assert backend_violations("orchestrator.runtime", "from orchestrator.backends.memory import X\n") == []

    trigger = "triggers.kafka_source"
    assert underscore_violations(trigger, "from orchestrator.backends.kafka.transport import _describe, ok\n") == [
        f"{trigger} imports _describe from orchestrator.backends.kafka.transport"
    ]
    assert underscore_violations(trigger, "from triggers.inbound import _truthy\n") == []  # same package
    assert underscore_violations(trigger, "from __future__ import annotations\n") == []
