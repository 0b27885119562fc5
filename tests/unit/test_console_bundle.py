"""The console's committed build: within its size budget, no inline script, every file it names
present. (scripts/test rebuilds it from console/ and fails when the result differs.)"""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

from orchestrator.console.serve import STATIC

BUDGET = 400 * 1024  # bytes, gzip-compressed, of everything the console loads (docs/console.md)


def gzip_size(root: Path) -> int:
    return sum(len(gzip.compress(path.read_bytes(), 9, mtime=0)) for path in root.rglob("*") if path.is_file())


def inline_scripts(html: str) -> list[str]:
    return [tag for tag in re.findall(r"<script\b[^>]*>", html) if "src=" not in tag]


def test_the_bundle_is_within_its_budget() -> None:
    size = gzip_size(STATIC)
    assert 10_000 < size <= BUDGET, f"the console's bundle is {size / 1024:.0f} KB gzip, the budget {BUDGET // 1024} KB"


def test_the_budget_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "big.js").write_bytes(random.Random(0).randbytes(BUDGET + 1))  # does not compress
    assert gzip_size(tmp_path) > BUDGET


def test_the_page_has_no_inline_script_and_its_files_exist() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert inline_scripts(html) == [] and "<style" not in html and "style=" not in html
    assert inline_scripts('<script>alert(1)</script><script type="module" src="/x.js"></script>') == ["<script>"]
    named = re.findall(r'(?:src|href)="/console/([^"]+)"', html)
    assert "assets/app.js" in named
    assert all((STATIC / name).is_file() for name in named), named
    assert not re.search(r"https?://", html), "no external scripts, styles or fonts"
