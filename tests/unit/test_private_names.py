"""No private (underscore) name is imported from another package, anywhere in the repository.

The import rules between packages (backends apart, the pure core, the edges) are in
``test_layout.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def test_no_private_name_is_imported_across_packages() -> None:
    bad = []
    for path in python_files():
        bad += underscore_violations(module_of(path), read(path), path.name == "__init__.py")
    assert bad == []


def test_the_check_can_fail() -> None:
    trigger = "triggers.kafka_source"
    assert underscore_violations(trigger, "from orchestrator.backends.kafka.transport import _describe, ok\n") == [
        f"{trigger} imports _describe from orchestrator.backends.kafka.transport"
    ]
    assert underscore_violations(trigger, "from triggers.inbound import _truthy\n") == []  # same package
    assert underscore_violations(trigger, "from __future__ import annotations\n") == []
