"""The HTTP side, in the same event loop: ``/metrics`` (Prometheus text format),
``/health`` (JSON) and, for `vpbx serve`, the REST API under ``/api/v1`` (vpbx.api).
aiohttp runs inside the running loop through ``AppRunner``."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from pathlib import Path

    from vpbx.api import ApiContext
    from vpbx.settings import ServeSettings
    from vpbx.store import Database

__all__ = ["HttpServer", "api_context", "start_http", "tls_context"]

Health = Callable[[], dict[str, Any]]
"""Returns the /health document; a ``status`` other than ``ok`` answers 503."""


class HttpServer:
    """A running HTTP listener; :meth:`close` stops it."""

    def __init__(self, runner: web.AppRunner, address: tuple[str, int]) -> None:
        self._runner = runner
        self.address = address

    @property
    def app(self) -> web.Application:
        """The root application (its router lists every route served)."""
        return self._runner.app

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


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """A server TLS context (TLS 1.2+) for HTTPS, or None for plain HTTP."""
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def api_context(
    settings: ServeSettings,
    db: Database,
    *,
    sip_address: tuple[str, int],
    sync: Callable[[bool], Awaitable[Mapping[str, Any]]] | None = None,
    directory_login: Callable[[str, str], str | None] | None = None,
) -> ApiContext:
    """The API's context for `vpbx serve` (`sip_address`: where SIP is bound). `sync` runs
    a directory sync (argument: dry_run); `directory_login` is the blocking LDAP bind
    (login, password) -> directory id, run here in a worker thread. Both None: the API
    answers that the directory is not configured, and only local users log in."""
    from vpbx.api import ApiContext  # noqa: PLC0415

    host, port = sip_address
    public = settings.realm if host in {"0.0.0.0", "::", ""} else host
    threaded = None
    if directory_login is not None:
        blocking = directory_login

        async def threaded(login: str, password: str) -> str | None:
            return await asyncio.to_thread(blocking, login, password)

    return ApiContext(
        db=db, realm=settings.realm, sip_server=f"{public}:{port}", sync=sync, directory_login=threaded
    )
