"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 document merged from the API modules.

Each API module exports ``OPENAPI_PATHS`` (and optionally ``OPENAPI_SCHEMAS``);
``handlers/__init__.py`` passes them here as tuples, so this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

Spec = Mapping[str, Any]


_ERROR = {
    "description": "",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
# Answers any operation may give, whatever its module documents: the bearer check's 401 and
# 503 (bot/web.py: wrong token / no token configured) and a bad query parameter's 400.
COMMON_RESPONSES: dict[str, Any] = {
    "400": {**_ERROR, "description": "bad parameter"},
    "401": {**_ERROR, "description": "missing or wrong bearer token"},
    "503": {**_ERROR, "description": "the API is disabled: no api_token configured"},
}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}


def _with_common_responses(item: Spec) -> dict[str, Any]:
    return {
        method: (
            {**op, "responses": {**COMMON_RESPONSES, **op["responses"]}}
            if isinstance(op, Mapping) and "responses" in op
            else op
        )
        for method, op in item.items()
    }


def document(
    paths: Iterable[Spec], schemas: Iterable[Spec] = (), version: str = "1"
) -> dict[str, Any]:
    """Merge path and schema dicts into one OpenAPI 3.1 document (duplicate paths are errors)."""
    merged: dict[str, Any] = {}
    for part in paths:
        for path, item in part.items():
            if path in merged:
                raise ValueError(f"OpenAPI path {path} is defined twice")
            merged[path] = _with_common_responses(item)
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for part in schemas:
        components.update(part)
    return {
        "openapi": "3.1.0",
        "info": {"title": "sopbot API", "version": version},
        "paths": dict(sorted(merged.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


_SELF = {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}


def routes(paths: Iterable[Spec], schemas: Iterable[Spec] = ()) -> list[web.RouteDef]:
    doc = document(
        [
            *paths,
            {
                "/api/v1/openapi.json": {
                    "get": {
                        "summary": "This document",
                        "responses": {"200": {"description": "OpenAPI"}},
                    }
                }
            },
        ],
        schemas,
    )

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(doc)

    return [web.get("/api/v1/openapi.json", openapi)]
