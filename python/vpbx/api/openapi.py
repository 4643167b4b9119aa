"""The OpenAPI 3.1 document, generated from the route table (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel

from .errors import ERROR_STATUS
from .models import ErrorOut
from .routes import Route

__all__ = ["API_PREFIX", "openapi_document"]

API_PREFIX: Final = "/api/v1"
_REF: Final = "#/components/schemas/{model}"
_REASONS: Final = {
    200: "OK",
    400: "Bad parameter or body (the message names it)",
    401: "No token, or an unknown, revoked or expired one; or a failed login",
    403: "The caller lacks the permission (named in the message)",
    404: "No such target, or one outside the caller's scope",
    409: "Conflict",
    429: "Too many failed logins from this address",
    503: "Not configured or not reachable",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=_REF, mode="serialization")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.tag]}
    if route.auth:
        op["security"] = [{"bearer": []}]
        op["x-vpbx-permission"] = route.need.name if route.need is not None else "any valid token"
    else:
        op["security"] = []
    if route.params:
        op["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "schema": p.schema,
                **({"description": p.description} if p.description else {}),
            }
            for p in route.params
        ]
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(route.body, components)}},
        }
    content: dict[str, Any] = {}
    for media in route.media:
        if media == "application/json" and route.response is not None:
            content[media] = {"schema": _schema(route.response, components)}
        elif media == "text/csv":
            content[media] = {"schema": {"type": "string"}}
        else:
            content[media] = {"schema": {"type": "string", "format": "binary"}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    codes = set(route.errors) | ({401, 403} if route.auth and route.need is not None else set())
    if route.auth:
        codes.add(401)
    error_ref = _schema(ErrorOut, components)
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _REASONS.get(code, "Error"),
            "content": {"application/json": {"schema": error_ref}},
        }
    op["responses"] = responses
    return op


def openapi_document(routes: Sequence[Route], *, version: str, prefix: str = API_PREFIX) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(prefix + route.path, {})[route.method.lower()] = _operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vpbx API",
            "version": version,
            "description": "Every refusal is JSON {error: {code, message}}; codes: "
            + ", ".join(f"{k} ({v})" for k, v in ERROR_STATUS.items()),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (`vpbx token create`) or a session token from /auth/login.",
                }
            },
        },
    }
