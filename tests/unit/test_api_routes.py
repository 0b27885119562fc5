"""The route table: every API route declares a permission, the OpenAPI document is generated from
the table (with ``x-permission``), the README's table matches it, and ``api`` imports no triggers.

Each guard is also run on a deliberately bad table or source, to prove it can fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import BaseModel

from orchestrator.api.app import UnguardedRoute, create_app
from orchestrator.api.openapi import document
from orchestrator.api.routes import (
    ROUTE_TABLE,
    Body,
    Permission,
    Route,
    RouteTable,
    body,
    unguarded,
)
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/\S*)` \| (`[a-z]+:[a-z]+`|public) \|", re.MULTILINE)


async def ok(request: web.Request) -> web.Response:
    return web.json_response({})


class Item(BaseModel):
    name: str


class Provider:
    def __init__(self, *routes: Route) -> None:
        self._routes = list(routes)

    def routes(self) -> list[Route]:
        return self._routes


def route(
    path: str,
    permission: Permission | None,
    method: str = "GET",
    *,
    request: Body | None = None,
    in_openapi: bool = True,
) -> Route:
    return Route(
        method, path, ok, permission, f"{method} {path}", "Summary.", "200", body=request, in_openapi=in_openapi
    )


@pytest.fixture
def app() -> web.Application:
    settings = Settings(auth=False, event_log_url="memory://")
    return build_app(Runtime(settings), settings)


def registered_unguarded(app: web.Application) -> list[str]:
    """Every aiohttp route under /api/ that is undeclared or declares no permission (and is not
    a known public one), whoever registered it."""
    table = app[ROUTE_TABLE]
    found = []
    for registered in app.router.routes():
        path = registered.resource.canonical if registered.resource is not None else ""
        if not path.startswith("/api/"):
            continue
        declared = table.declared(registered)
        if declared is None or unguarded([declared]):
            found.append(f"{registered.method} {path}")
    return found


# -- permissions ------------------------------------------------------------------------------


def test_every_registered_api_route_declares_a_permission(app: web.Application) -> None:
    assert registered_unguarded(app) == []
    declared = {(r.method, r.path): r.permission for r in app[ROUTE_TABLE].routes}
    assert declared[("POST", "/api/v1/executions")] == Permission.EXECUTIONS_START
    assert declared[("GET", "/api/v1/executions/{id}/history")] == Permission.PAYLOADS_READ
    assert declared[("POST", "/hooks/{name}")] is None and declared[("GET", "/healthz")] is None


def test_the_check_finds_a_route_registered_without_a_permission(app: web.Application) -> None:
    app.router.add_get("/api/v1/secrets", ok)  # behind the table's back
    bad = RouteTable([route("/api/v1/open", None, "POST"), route("/api/v1/fine", Permission.TRIGGERS_READ)])
    bad_app = web.Application()
    bad.register(bad_app.router)
    bad_app[ROUTE_TABLE] = bad
    assert registered_unguarded(app) == ["HEAD /api/v1/secrets", "GET /api/v1/secrets"]
    assert registered_unguarded(bad_app) == ["POST /api/v1/open"]


def test_create_app_refuses_an_api_route_without_a_permission() -> None:
    bad = route("/api/v1/open", None, "POST")
    assert unguarded([bad, route("/hooks/x", None), route("/api/v1/x", Permission.EVENTS_PUBLISH)]) == [bad]
    with pytest.raises(UnguardedRoute, match="POST /api/v1/open"):
        create_app([Provider(bad)], max_body_bytes=1024)
    create_app([Provider(route("/metrics", None))], max_body_bytes=1024)  # public outside /api/


def test_permissions_are_resource_action_names() -> None:
    for permission in Permission:
        assert re.fullmatch(r"[a-z]+:[a-z]+", permission.value)
        assert f"{permission.resource}:{permission.action}" == permission


def test_a_route_checks_its_method_and_path() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        route("/x", None, "FETCH")
    with pytest.raises(ValueError, match="must start with"):
        route("x", None)


# -- the OpenAPI document -------------------------------------------------------------------------


def test_openapi_carries_each_routes_permission(app: web.Application) -> None:
    routes = app[ROUTE_TABLE].routes
    doc = document(routes)
    for declared in routes:
        if not declared.in_openapi:  # the console's page and files, like /metrics
            assert declared.path not in doc["paths"]
            continue
        operation = doc["paths"][declared.path][declared.method.lower()]
        expected = None if declared.permission is None else declared.permission.value
        assert operation["x-permission"] == expected, declared.path
    ids = [r.operation_id for r in routes]
    assert len(ids) == len(set(ids))


def test_excluded_routes_are_absent_from_openapi() -> None:
    routes = [
        route("/api/v1/items", Permission.DEFINITIONS_WRITE, "POST", request=body(Item)),
        route("/metrics", None, in_openapi=False),
        route("/console/{page}", None, in_openapi=False),
    ]
    doc = document(routes)
    assert set(doc["paths"]) == {"/api/v1/items"}
    operation = doc["paths"]["/api/v1/items"]["post"]
    assert operation["x-permission"] == "definitions:write"
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"
    }
    assert "Item" in doc["components"]["schemas"]
    assert set(document([routes[0]])["paths"]) == set(doc["paths"])  # the flag, not the path, decides


def test_undeclared_path_parameters_are_still_documented() -> None:
    doc = document([route("/api/v1/things/{thing}", Permission.DEFINITIONS_READ)])
    [param] = doc["paths"]["/api/v1/things/{thing}"]["get"]["parameters"]
    assert param == {"name": "thing", "in": "path", "required": True, "schema": {"type": "string"}}


# -- the README ---------------------------------------------------------------------------------


def readme_table(text: str) -> set[tuple[str, str, str | None]]:
    section = text[text.index("## REST API") :]
    section = section[: section.index("\n## ", 1)]
    return {
        (method, path, None if permission == "public" else permission.strip("`"))
        for method, path, permission in ROW.findall(section)
    }


def test_the_readme_lists_every_route_with_its_permission(app: web.Application) -> None:
    declared = {
        (r.method, r.path, None if r.permission is None else r.permission.value) for r in app[ROUTE_TABLE].routes
    }
    assert readme_table(README) == declared
    wrong = README.replace("| `POST /api/v1/events` | `events:publish` |", "| `POST /api/v1/events` | public |")
    assert readme_table(wrong) != declared


# -- layering -----------------------------------------------------------------------------------


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def imports_triggers(source: str) -> bool:
    return any(m == "triggers" or m.startswith("triggers.") for m in imported_modules(source))


def test_the_http_edge_imports_no_triggers() -> None:
    modules = sorted((ROOT / "orchestrator" / "api").glob("*.py"))
    assert len(modules) >= 9
    assert [m.name for m in modules if imports_triggers(m.read_text(encoding="utf-8"))] == []
    assert imports_triggers("def f():\n    from triggers.webhook import parse_json\n")
    assert imports_triggers("import triggers")
    assert not imports_triggers("from orchestrator.api import triggers")
