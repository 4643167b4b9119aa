"""The media node's event loop (uvloop): NG over UDP, ``/metrics`` and ``/health`` over HTTP,
engine events through the engine's descriptor, housekeeping once a second (unanswered
offers), and a graceful stop on SIGINT/SIGTERM.

On a signal the node stops taking NG requests, closes the HTTP listener, deletes every call
(freeing its ports; their call quality still reaches the metrics) and stops the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import uvloop

from vpbx.io.http import start_http
from vpbx.io.media_events import EventWatcher
from vpbx.io.ng_udp import serve_ng_udp
from vpbx.logs import configure_logging, get_logger
from vpbx.media import MediaError
from vpbx.media_node import MediaNode
from vpbx.settings import MediaNodeSettings

__all__ = ["run", "serve"]

log = get_logger("vpbx.media_node")

EXIT_OK = 0
EXIT_FAILED = 1


#: How often unanswered offers are looked for (offer_timeout_s is honoured to within this).
HOUSEKEEPING_S = 1.0


async def _housekeeping(node: MediaNode, stop: asyncio.Event) -> None:
    """Runs ``node.housekeeping`` about once a second until ``stop`` is set."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_S)
        if not stop.is_set():
            try:
                node.housekeeping(time.time())
            except Exception:  # a failing delete must not stop the loop; it is retried next round
                log.exception("housekeeping_failed")


async def serve(node: MediaNode, stop: asyncio.Event) -> None:
    """Serves ``node`` until ``stop`` is set; always closes the node on the way out."""
    settings = node.settings
    transport = None
    http = None
    try:
        with EventWatcher(node.engine, node.on_event):
            ng_host, ng_port = settings.ng_address
            transport, _ = await serve_ng_udp(node.ng, ng_host, ng_port, observer=node.on_ng)
            http_host, http_port = settings.http_address
            http = await start_http(http_host, http_port, metrics=node.metrics.exposition, health=node.health)
            log.info(
                "media_node_started",
                listen_ng=settings.listen_ng,
                listen_http=f"{http.address[0]}:{http.address[1]}",
                interfaces=settings.interfaces,
                port_min=settings.port_min,
                port_max=settings.port_max,
                workers=len(node.engine.engine_stats()["workers"]),
                max_sessions=settings.max_sessions,
                media_timeout_s=settings.media_timeout_s,
            )
            housekeeping = asyncio.create_task(_housekeeping(node, stop))
            await stop.wait()
            await housekeeping
            log.info("media_node_stopping")
            transport.close()
            transport = None
            await http.close()
            http = None
    finally:
        if transport is not None:
            transport.close()
        if http is not None:
            await http.close()
        deleted = node.close()
        log.info("media_node_stopped", calls_deleted=deleted)


async def _main(settings: MediaNodeSettings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        node = MediaNode(settings)
    except (MediaError, OSError) as e:
        log.error("media_node_failed", reason=str(e))
        return EXIT_FAILED
    try:
        await serve(node, stop)
    except OSError as e:  # a listen address in use or not ours
        log.error("media_node_failed", reason=str(e))
        return EXIT_FAILED
    return EXIT_OK


def run(settings: MediaNodeSettings) -> int:
    """Runs the media node on a uvloop loop until SIGINT/SIGTERM, logging JSON lines at the
    configured level; returns the process exit code."""
    configure_logging(settings.log_level)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_main(settings))
