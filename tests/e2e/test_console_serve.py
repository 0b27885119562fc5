"""The console's route: files of the build, the page for any other path, never a file outside the
build folder, 404 for a missing asset, 503 when nothing was built; the security headers on each."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.console.serve import CSP, ConsoleApi


def console_app(root: Path) -> web.Application:
    return create_app([ConsoleApi(root)], max_body_bytes=1024)


async def test_files_the_page_fallback_and_no_escape(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<html>page</html>")
    (root / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside")
    async with TestClient(TestServer(console_app(root))) as client:
        page = await client.get("/console")
        assert page.status == 200 and "page" in await page.text()
        assert page.headers["Content-Security-Policy"] == CSP and page.headers["X-Frame-Options"] == "DENY"
        script = await client.get("/console/assets/app.js")
        assert script.status == 200 and script.content_type == "text/javascript"
        deep = await client.get("/console/executions/abc?status=failed")
        assert deep.status == 200 and "page" in await deep.text()  # the app routes in the browser
        assert (await client.get("/console/assets/missing.js")).status == 404
        for escape in ("/console/../secret.txt", "/console/%2e%2e/secret.txt", "/console/assets/..%2f..%2fsecret.txt"):
            answer = await client.get(escape)
            assert "outside" not in await answer.text(), escape


async def test_an_unbuilt_console_says_so(tmp_path: Path) -> None:
    async with TestClient(TestServer(console_app(tmp_path))) as client:
        answer = await client.get("/console")
        assert answer.status == 503 and "not built" in await answer.text()


def test_the_guard_against_escaping_can_fail(tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    served = ConsoleApi(tmp_path / "static")
    assert served.file("../secret.txt") is None
    assert ConsoleApi(tmp_path).file("secret.txt") is not None  # the same file inside the root is served
