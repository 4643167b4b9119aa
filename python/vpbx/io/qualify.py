"""OPTIONS qualify in `vpbx serve`: drives vpbx.pbx.Qualifier on the server's SIP transport.

    runner = QualifyRunner(qualifier, transport, service, bindings=..., on_rtt=metrics.observe_contact_rtt)
    transport.every(TICK_S, runner.tick)

Each tick reads the current bindings again when SYNC_S has passed (at Unix time, as the
location store keeps them), counts overdue probes as failures, and sends the probes due as
client transactions
(SipTransport.send_request) whose outcome comes back through SipService.track. The
qualifier's clock is the loop's (monotonic).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final

from vpbx.io.sip_transport import SipTransport
from vpbx.logs import get_logger
from vpbx.pbx.location import Binding
from vpbx.pbx.qualify import Probe, Qualifier
from vpbx.sip import Response
from vpbx.sip.transaction_actions import Deliver, Timeout, TransactionLimitError, TransportError
from vpbx.sip_service import SipService

__all__ = ["TICK_S", "QualifyRunner"]

log = get_logger("vpbx.qualify")

TICK_S: Final = 0.25  # how often due probes and timeouts are looked at
SYNC_S: Final = 2.0  # how often the bindings are read again (about 8 ms per 10,000)


class QualifyRunner:
    """The qualifier's IO (module doc)."""

    def __init__(
        self,
        qualifier: Qualifier,
        transport: SipTransport,
        service: SipService,
        *,
        bindings: Callable[[float], Iterable[Binding]],
        on_rtt: Callable[[float], object] | None = None,
    ) -> None:
        self.qualifier = qualifier
        self.transport = transport
        self.service = service
        self.bindings = bindings  # every live binding at a Unix time
        self.on_rtt = on_rtt
        self._next_sync = float("-inf")

    def tick(self) -> None:
        q = self.qualifier
        now = self.transport.loop.time()
        if now >= self._next_sync:
            self._next_sync = now + SYNC_S
            q.sync(self.bindings(time.time()), now)
        for aor, uri in q.expire(now):
            log.warning("contact_unreachable", aor=aor, contact=uri)
        for probe in q.due(now):
            self._send(probe, now)

    def _send(self, probe: Probe, now: float) -> None:
        try:
            key = self.transport.send_request(probe.request, probe.dest, probe.transport)
        except (TransactionLimitError, OSError):  # overloaded or the socket is gone: a failure
            self.qualifier.on_failure(probe.key, probe.token, now)
            return
        self.service.track(key, lambda action: self._on_result(probe, action))

    def _on_result(self, probe: Probe, action: Deliver | Timeout | TransportError) -> None:
        q, now = self.qualifier, self.transport.loop.time()
        if isinstance(action, Deliver):
            message = action.message
            if not isinstance(message, Response) or message.status < 200:
                return
            status = q.contacts.get(probe.key)
            was_down = status is not None and status.state == "unreachable"
            rtt = q.on_answer(probe.key, probe.token, now)
            if rtt is not None:
                if self.on_rtt is not None:
                    self.on_rtt(rtt)
                if was_down:
                    log.info("contact_reachable", aor=probe.key[0], contact=probe.key[1], rtt_s=round(rtt, 4))
            return
        before = q.contacts.get(probe.key)
        was_down = before is not None and before.state == "unreachable"
        q.on_failure(probe.key, probe.token, now)
        after = q.contacts.get(probe.key)
        if after is not None and after.state == "unreachable" and not was_down:
            log.warning("contact_unreachable", aor=probe.key[0], contact=probe.key[1])
