"""The OpenAPI description matches the app: every route and method, nothing more."""

from __future__ import annotations

from starlette.routing import Route
from starlette.testclient import TestClient

from meta_harness.base.layout import Workspace
from meta_harness.web.app import create_app
from meta_harness.web.openapi import document


def app_operations(ws: Workspace) -> set[tuple[str, str]]:
    app = create_app(ws)
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api"):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((route.path, method.lower()))
    return found


def test_every_api_route_is_described_and_every_description_is_a_route(ws: Workspace) -> None:
    described = {
        (path, method) for path, operations in document()["paths"].items() for method in operations
    }
    assert app_operations(ws) == described


def test_the_description_is_served_and_its_references_resolve(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref
    for path, operations in spec["paths"].items():
        for name in (p[1:-1] for p in path.split("/") if p.startswith("{")):
            for operation in operations.values():
                assert name in {p["name"] for p in operation.get("parameters", [])}, (path, name)
