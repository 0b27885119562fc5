"""``docs/architecture.md`` stays true: its tree names every module, its diagram every package and
every dependency between them, and the README's development tree every package."""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from pathlib import Path

from tests.unit.import_graph import ROOT, import_graph
from tests.unit.test_layout import BASE, within

DOC = ROOT / "docs" / "architecture.md"
MAX_MODULE_LINES = 800
EDGE = re.compile(r"^\s*(\w+)\s*-->\s*(\w+)\s*$")
NODE = re.compile(r"^\s*(\w+)\[\"?([\w./ ]+?)\"?\]\s*$")


def block(text: str, fence: str) -> str:
    """The first fenced block of that kind (```mermaid, ```text)."""
    match = re.search(rf"^```{fence}\n(.*?)^```", text, re.M | re.S)
    assert match, f"docs/architecture.md has no ```{fence} block"
    return match.group(1)


def areas() -> list[str]:
    """The packages of the diagram: each subpackage and root module of orchestrator/ (but
    ``__main__``), and the other top-level packages."""
    names = ["schemas", "triggers", "connectors"]
    for entry in sorted((ROOT / "orchestrator").iterdir()):
        if entry.is_dir() and (entry / "__init__.py").exists():
            names.append(f"orchestrator.{entry.name}")
        elif entry.suffix == ".py" and entry.stem not in {"__init__", "__main__"}:
            names.append(f"orchestrator.{entry.stem}")
    return names


def area_of(module: str, known: list[str]) -> str | None:
    matching = [a for a in known if within(module, a)]
    return max(matching, key=len) if matching else None


def actual_edges(graph: Mapping[str, Mapping[str, int]]) -> set[tuple[str, str]]:
    """Area -> area imports, leaving out those into the base every area may use (core, schemas,
    ports, settings, lifecycle, instrumentation): the diagram states those once in prose."""
    known = areas()
    edges = set()
    for module, targets in graph.items():
        mine = area_of(module, known)
        for target in targets:
            theirs = area_of(target, known)
            if mine and theirs and mine != theirs and not any(within(theirs, b) for b in BASE):
                edges.add((mine, theirs))
    return edges


def diagram(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """Node id -> package label, and the edges between labels, of the Mermaid diagram."""
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    lines = block(text, "mermaid").splitlines()
    for line in lines:
        if node := NODE.match(line):
            nodes[node.group(1)] = node.group(2).strip()
    for line in lines:
        if edge := EDGE.match(line):
            edges.add((nodes[edge.group(1)], nodes[edge.group(2)]))
    return nodes, edges


def documented_paths(text: str) -> set[str]:
    """Every ``*.py`` path named in the tree block, joined with its folder."""
    paths, stack = set(), []
    for line in block(text, "text").splitlines():
        stripped = line.lstrip(" │├└─")
        if not stripped or stripped.startswith("#"):
            continue
        depth = (len(line) - len(stripped)) // 4
        name = stripped.split()[0]
        del stack[depth:]
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
        elif name.endswith(".py"):
            paths.add("/".join([*stack, name]))
    return paths


def modules_on_disk() -> set[str]:
    return {
        str(p.relative_to(ROOT))
        for package in ("orchestrator", "schemas", "triggers", "connectors")
        for p in (ROOT / package).rglob("*.py")
        if p.name != "__init__.py"
    }


def test_the_diagram_names_every_package_and_no_other() -> None:
    nodes, _ = diagram(DOC.read_text(encoding="utf-8"))
    assert sorted(nodes.values()) == sorted(areas())


def test_the_diagram_draws_exactly_the_dependencies_the_code_has() -> None:
    _, drawn = diagram(DOC.read_text(encoding="utf-8"))
    actual = actual_edges(import_graph())
    assert sorted(drawn - actual) == [], "drawn but not in the code"
    assert sorted(actual - drawn) == [], "in the code but not drawn"


def test_the_tree_names_every_module_and_only_existing_ones() -> None:
    documented = documented_paths(DOC.read_text(encoding="utf-8"))
    on_disk = modules_on_disk()
    assert sorted(on_disk - documented) == [], "modules missing from docs/architecture.md"
    assert sorted(documented - on_disk) == [], "docs/architecture.md names modules that do not exist"


def test_the_readme_development_tree_shows_every_package() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Development") :]
    tree = block(section, "text")
    for area in areas():
        if "." in area and (ROOT / area.replace(".", "/")).is_dir():
            folder = area.rpartition(".")[2] + "/"
            assert re.search(rf"^\s+{re.escape(folder)}\s", tree, re.M), f"{area} missing from the README tree"


def test_modules_stay_small() -> None:
    sizes = {path: len((ROOT / path).read_text(encoding="utf-8").splitlines()) for path in modules_on_disk()}
    too_big = {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert too_big == {}
    assert statistics.median(sizes.values()) <= 300


def test_the_doc_checks_can_fail(tmp_path: Path) -> None:
    text = (
        "```mermaid\nflowchart TD\n  api[\"orchestrator.api\"]\n  rt[\"orchestrator.runtime\"]\n"
        "  api --> rt\n```\n```text\norchestrator/\n    api/\n        app.py\n    runtime.py\n```\n"
    )
    nodes, edges = diagram(text)
    assert sorted(nodes.values()) != sorted(areas())
    assert edges == {("orchestrator.api", "orchestrator.runtime")}
    assert actual_edges(import_graph()) != edges
    assert documented_paths(text) == {"orchestrator/api/app.py", "orchestrator/runtime.py"}
    assert documented_paths(text) != modules_on_disk()
