"""Layout rules of the CLI, checked on the source: group modules never import ``cli.main``, only the
CLI draws with rich, and stores are opened by the two composition roots only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "orchestrator"
ROOTS = {"orchestrator/runtime.py", "orchestrator/stores.py", "orchestrator/process.py", "orchestrator/backends/urls.py"}


def imported(source: str) -> set[str]:
    """Every module a source imports, with ``from X import y`` counted as ``X`` and ``X.y``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def names_used(source: str) -> set[str]:
    tree = ast.parse(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }


def group_imports_main(source: str) -> bool:
    return "orchestrator.cli.main" in imported(source)


def imports_rich(source: str) -> bool:
    return any(name == "rich" or name.startswith("rich.") for name in imported(source))


def opens_backends(source: str) -> bool:
    return "open_backend" in names_used(source) or any(n.endswith(".open_backend") for n in imported(source))


def sources(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.py"))}


def test_no_group_module_imports_main() -> None:
    groups = {path: text for path, text in sources(PACKAGE / "cli").items() if not path.endswith("main.py")}
    assert len(groups) >= 10
    assert [path for path, text in groups.items() if group_imports_main(text)] == []


def test_only_the_cli_output_module_uses_rich() -> None:
    users = [path for path, text in sources(PACKAGE).items() if imports_rich(text)]
    assert users == ["orchestrator/cli/output.py"]


def test_only_the_composition_roots_open_backends() -> None:
    openers = {path for path, text in sources(PACKAGE).items() if opens_backends(text)}
    assert openers <= ROOTS and "orchestrator/runtime.py" in openers


def test_the_checks_can_fail() -> None:
    assert group_imports_main("from orchestrator.cli.main import load_file\n")
    assert group_imports_main("from orchestrator.cli import main\n")
    assert not group_imports_main("from orchestrator.cli import output\n")
    assert imports_rich("def f():\n    from rich.table import Table\n")
    assert not imports_rich("import richer\n")
    assert opens_backends("from orchestrator.backends.urls import open_backend\n")
    assert opens_backends("from orchestrator.backends import urls\nurls.open_backend(x, y, z)\n")
    assert not opens_backends("from orchestrator.stores import open_stores\n")
