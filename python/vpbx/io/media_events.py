"""Media-engine events into asyncio (DESIGN.md §3.2).

The engine's workers queue events and make a descriptor readable; the loop
watches that descriptor (``loop.add_reader``) and, when it fires, drains the
queue with one ``poll_events()`` call and hands each event to a callback. Rust
never calls Python, and Python never polls on a timer.

    async def main(engine: Engine) -> None:
        with EventWatcher(engine, on_event):
            ...  # run the PBX

    # or, as a task that runs until cancelled:
    task = asyncio.create_task(watch_events(engine, on_event))

Close the watcher (leave its ``with`` block, cancel the task) before closing
the engine: the descriptor belongs to the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

from vpbx.media import Engine, MediaError
from vpbx.media.engine import EngineEvent

EventCallback = Callable[[EngineEvent], object]
"""Called on the loop's thread with one event; what it returns is ignored."""


class EventWatcher:
    """Delivers ``engine``'s events to ``callback`` on ``loop`` (default: the
    running loop) from construction until :meth:`close`.

    A callback that raises does not lose the rest of the batch: the exception
    goes to the loop's exception handler and delivery goes on.
    """

    def __init__(
        self,
        engine: Engine,
        callback: EventCallback,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._engine = engine
        self._callback = callback
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._fd: int | None = engine.event_fd()
        self.delivered = 0
        """Events handed to the callback so far."""
        self._loop.add_reader(self._fd, self.drain)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def drain(self) -> int:
        """Delivers every queued event now; returns how many. Called by the
        loop when the descriptor is readable; harmless to call any time."""
        if self._fd is None:
            return 0
        try:
            events = self._engine.poll_events()
        except MediaError:
            # The engine was closed under us: nothing more will come.
            self.close()
            return 0
        for event in events:
            self.delivered += 1
            try:
                self._callback(event)
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "media engine event callback failed", "exception": exc, "event": event}
                )
        return len(events)

    def close(self) -> None:
        """Stops watching (idempotent). Events still queued stay in the engine."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def watch_events(engine: Engine, callback: EventCallback) -> None:
    """Delivers ``engine``'s events to ``callback`` on the running loop until
    the task running this is cancelled; stops watching on the way out."""
    with EventWatcher(engine, callback):
        await asyncio.get_running_loop().create_future()


__all__ = ["EventCallback", "EventWatcher", "watch_events"]
