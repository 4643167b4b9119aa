"""The aiohttp application of the API: one wrapper authenticates and checks every
route's declared permission (the single place RBAC is enforced), one middleware turns
every error into ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from aiohttp import web

from .auth import authenticate
from .context import ApiContext, Call
from .errors import ERROR_STATUS, ApiError
from .handlers import ROUTES, json_response
from .rbac import check
from .routes import Handler, Route

__all__ = ["CONTEXT_KEY", "build_api_app"]

log = logging.getLogger(__name__)
CONTEXT_KEY: Final = web.AppKey("vpbx_api_context", ApiContext)
_CODE_OF: Final = {status: code for code, status in ERROR_STATUS.items()}
AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(route: Route, ctx: ApiContext) -> AiohttpHandler:
    """The handler behind `route`: authenticate, check `route.need`, then call it."""
    handler: Handler = route.handler
    known = {p.name for p in route.params if p.where == "query"}

    async def run(request: web.Request) -> web.StreamResponse:
        now = ctx.clock()
        principal = None
        if route.auth:
            principal = await authenticate(ctx, request.headers.get("Authorization"), now=now)
            if route.need is not None and (missing := check(principal, route.need)) is not None:
                raise ApiError("forbidden", f"permission {missing} is required")
        if unknown := sorted(set(request.query) - known):
            takes = ", ".join(sorted(known)) or "none"
            raise ApiError("bad_request", f"unknown parameter {unknown[0]!r} (this endpoint takes: {takes})")
        return await handler(Call(request, ctx, principal, now))

    run.__name__ = route.operation_id
    return run


@web.middleware
async def _errors(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as e:
        return json_response(e.body(), e.status, e.headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _CODE_OF.get(e.status, "bad_request")
        message = "no such API path" if e.status == 404 else e.reason
        return json_response({"error": {"code": code, "message": message}}, e.status)
    except Exception:
        log.exception("API handler failed: %s %s", request.method, request.path)
        return json_response({"error": {"code": "internal", "message": "internal error"}}, 500)
    return response


def build_api_app(ctx: ApiContext, routes: Sequence[Route] = ROUTES) -> web.Application:
    """The API as an aiohttp sub-application (mount it at /api/v1)."""
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[CONTEXT_KEY] = ctx
    for route in routes:
        app.router.add_route(route.method, route.path, _guarded(route, ctx), name=route.operation_id)
    return app
