"""The HTTP side, in the same event loop: ``/metrics`` (Prometheus text format),
``/health`` (JSON) and, for `vpbx serve`, the REST API under ``/api/v1`` (vpbx.api).
aiohttp runs inside the running loop through ``AppRunner``."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from vpbx.api import ApiContext

__all__ = ["HttpServer", "start_http"]

Health = Callable[[], dict[str, Any]]
"""Returns the /health document; a ``status`` other than ``ok`` answers 503."""


class HttpServer:
    """A running HTTP listener; :meth:`close` stops it."""

    def __init__(self, runner: web.AppRunner, address: tuple[str, int]) -> None:
        self._runner = runner
        self.address = address

    async def close(self) -> None:
        await self._runner.cleanup()


def _app(metrics: Callable[[], bytes], health: Health, api: ApiContext | None) -> web.Application:
    async def get_metrics(request: web.Request) -> web.Response:
        body = metrics()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_health(request: web.Request) -> web.Response:
        doc = health()
        return web.json_response(doc, status=200 if doc.get("status") == "ok" else 503)

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health", get_health)
    if api is not None:
        from vpbx.api import API_PREFIX, build_api_app  # noqa: PLC0415 (the media node needs no API)

        app.add_subapp(API_PREFIX, build_api_app(api))
    return app


async def start_http(
    host: str,
    port: int,
    *,
    metrics: Callable[[], bytes],
    health: Health,
    api: ApiContext | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> HttpServer:
    """Serve ``/metrics`` and ``/health`` (and the API when `api` is given) on
    ``host:port`` (port 0 picks a free one), over TLS when `ssl_context` is given."""
    runner = web.AppRunner(_app(metrics, health, api), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0] if runner.addresses else (host, port)
    return HttpServer(runner, (str(bound[0]), int(bound[1])))
