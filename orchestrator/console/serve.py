"""Serving the console's built files at ``/console``.

``GET /console`` and ``GET /console/{path}``: a file of ``static/`` (the built bundle, shipped as
package data), or ``index.html`` for any other path (the app routes in the browser). Every answer
carries a strict Content-Security-Policy: scripts, styles, images and connections from this origin
only, no inline scripts, no frames. The routes are public (the page itself holds no data: the API
calls it makes are authorized) and left out of the OpenAPI document, like the probes.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from orchestrator.api.routes import Route

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/console"
MODE_COOKIE = "orchestrator_console"
# style-src needs no 'unsafe-inline' for our CSS files; Vue Flow sets element styles through the
# CSSOM (allowed), never with inline <style> or style attributes parsed from HTML.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


class ConsoleApi:
    """The console's page and assets from ``root`` (default: the packaged build).

    ``auth``: whether the API authenticates; when it does not, the page's answer says so in a
    cookie the script reads (``orchestrator_console=auth-off``), so the page skips the sign-in
    without first provoking a 401."""

    def __init__(self, root: Path = STATIC, *, auth: bool = True) -> None:
        self.root = root.resolve()
        self.auth = auth

    def routes(self) -> list[Route]:
        return [
            Route("GET", PREFIX, self.serve, None, "console", "The web console.", "200", in_openapi=False),
            Route(
                "GET", PREFIX + "/{path:.*}", self.serve, None, "consoleFiles",
                "The web console's files; other paths answer its page.", "200", in_openapi=False,
            ),
        ]  # fmt: skip

    def file(self, relative: str) -> Path | None:
        """The built file at ``relative``, never outside the root; None when there is none."""
        if not relative or relative.endswith("/"):
            return None
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    async def serve(self, request: web.Request) -> web.StreamResponse:
        relative = request.match_info.get("path", "")
        found = self.file(relative)
        if found is None and relative.startswith("assets/"):
            return web.Response(status=404, text="no such file", headers=HEADERS)
        target = found or self.root / "index.html"
        if not target.is_file():
            return web.Response(status=503, text="the console is not built (npm run build in console/)", headers=HEADERS)
        kind = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        cache = "no-cache" if target.name == "index.html" else "public, max-age=300"
        response = web.Response(
            body=target.read_bytes(), content_type=kind, headers={**HEADERS, "Cache-Control": cache}
        )
        if target.name == "index.html" and not self.auth:
            response.set_cookie(MODE_COOKIE, "auth-off", path=PREFIX, samesite="Strict")
        elif target.name == "index.html" and MODE_COOKIE in request.cookies:
            response.del_cookie(MODE_COOKIE, path=PREFIX)
        return response
