"""Overload shedding for new calls, sans-IO: when the node is late, a new INVITE is answered
503 Service Unavailable with Retry-After (RFC 3261 §21.5.4) at once, before authentication,
routing or media, rather than being taken on and timing out for everybody.

Two signals, both cheap:

- calls in setup (INVITE taken, no final answer yet) at or beyond `max_setup`: calls pile up
  there when the callees or this node cannot keep up;
- the lag of SIP input (how long a probe datagram waits in the socket queue and the loop
  before it is read; measured by vpbx.io.sip_transport.SipTransport.probe_queue and fed
  with `note_lag`) above `max_lag_s`: every message waits that long, and at RFC 3261's
  T1 = 500 ms the peers start retransmitting, which makes it worse.

Shedding on lag goes on for `hold_s` after the last late sample (no flapping at the edge),
then stops by itself: the node recovers without an operator. Calls already admitted are
never touched: their BYEs, ACKs and re-INVITEs go on being served.

    admission = Admission(AdmissionConfig(max_setup=2000, max_lag_s=0.25))
    admission.note_lag(0.35, now)           # from the loop probe
    reason = admission.check(in_setup, now)  # None: admit; "lag" / "setup": 503 + Retry-After
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["Admission", "AdmissionConfig", "ShedReason"]

ShedReason = Literal["lag", "setup"]
REASONS: Final[tuple[ShedReason, ...]] = ("lag", "setup")


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """max_setup: calls in setup beyond which new ones are refused (0: no limit).
    max_lag_s: SIP input lag beyond which new calls are refused (0: not watched).
    hold_s: how long shedding on lag lasts after the last late sample.
    retry_after_s: the Retry-After of the 503."""

    max_setup: int = 2000
    max_lag_s: float = 0.25  # half of T1: peers retransmit at 500 ms
    hold_s: float = 1.0
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.max_setup < 0 or self.max_lag_s < 0 or self.hold_s < 0 or self.retry_after_s < 0:
            raise ValueError("admission limits must not be negative")


@dataclass(slots=True)
class Admission:
    """See the module docstring. `shed` counts refused INVITEs by reason."""

    config: AdmissionConfig = field(default_factory=AdmissionConfig)
    lag_s: float = 0.0  # the last sample
    shed: dict[ShedReason, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    _late_until: float = float("-inf")

    def note_lag(self, lag_s: float, now: float) -> None:
        """A loop-lag sample taken at `now` (seconds late)."""
        self.lag_s = lag_s
        limit = self.config.max_lag_s
        if limit > 0 and lag_s > limit:
            self._late_until = now + self.config.hold_s

    def lagging(self, now: float) -> bool:
        return now < self._late_until

    def check(self, in_setup: int, now: float) -> ShedReason | None:
        """None when a new call may be taken; else why it is refused (and counted)."""
        reason: ShedReason | None = None
        if self.lagging(now):
            reason = "lag"
        elif 0 < self.config.max_setup <= in_setup:
            reason = "setup"
        if reason is not None:
            self.shed[reason] += 1
        return reason
