"""Signalling state of the NG layer: calls, their parties and the outstanding offers.

A *call* is everything under one SIP Call-ID. A *party* (rtpengine's "monologue") is one side
of a dialogue, named by its SIP tag: the From-tag of the offerer, the To-tag of the answerer.
When an offer arrives the answering party is not known yet; it is created without a tag (keyed
by the Via branch when one is given, so that forked branches stay apart) and gets its tag from
the answer. Each party has one leg per m-line, allocated once and reused by every later offer
and answer, so ports stay stable across re-INVITEs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vpbx.ng.backend import LegAddress
from vpbx.sdp import MediaRewrite, SessionDescription

__all__ = ["Call", "Party", "PendingOffer"]


@dataclass
class PendingOffer:
    """What an answer needs from the offer it answers (kept on the answering party)."""

    offerer: Party
    sdp_in: SessionDescription  # as the offerer sent it
    sdp_out: SessionDescription  # as we passed it on
    plans: list[MediaRewrite | None]  # what the codec options did, per m-line
    rtcp_mux: frozenset[str]  # the offer's rtcp-mux options
    ptime: int | None  # towards the answerer (NG ``ptime``)
    ptime_reverse: int | None  # towards the offerer (NG ``ptime-reverse``)
    accept: tuple[str, ...]  # codec-accept: offerer codecs usable for transcoding
    force_transcoding: bool


@dataclass(eq=False)
class Party:
    pid: str  # the engine's party id: stable even while the tag is unknown
    tag: str  # "" until known
    created: float
    via_branch: str | None = None
    aliases: set[str] = field(default_factory=set)
    label: str | None = None
    interface: str | None = None
    family: str | None = None
    peer: Party | None = None  # "in dialogue with"
    legs: dict[int, LegAddress] = field(default_factory=dict)
    sdp_in: SessionDescription | None = None  # the last SDP this party sent us
    sdp_out: SessionDescription | None = None  # the last SDP we sent it
    pending: PendingOffer | None = None  # the last offer made to this party

    @property
    def address(self) -> str | None:
        """Our advertised address towards this party (all its legs share an interface)."""
        return next((leg.address for leg in self.legs.values()), None)


@dataclass(eq=False)
class Call:
    call_id: str
    created: float
    last_signal: float
    parties: list[Party] = field(default_factory=list)
    metadata: str | None = None
    recording: bool = False
    answered: bool = False  # an answer has been processed (offer timeout no longer applies)
    _next: int = 0

    def by_tag(self, tag: str | None) -> Party | None:
        if not tag:
            return None
        return next((p for p in self.parties if p.tag == tag or tag in p.aliases), None)

    def by_branch(self, branch: str | None) -> Party | None:
        if not branch:
            return None
        return next((p for p in reversed(self.parties) if p.via_branch == branch), None)

    def by_label(self, label: str) -> Party | None:
        return next((p for p in self.parties if p.label == label), None)

    def new_party(self, tag: str, now: float, via_branch: str | None = None) -> Party:
        self._next += 1
        pid = tag if tag and all(p.pid != tag for p in self.parties) else f"~{self._next}"
        party = Party(pid, tag, now, via_branch)
        self.parties.append(party)
        return party

    def remove(self, party: Party) -> None:
        self.parties.remove(party)
        for p in self.parties:
            if p.peer is party:
                p.peer = None

    def has_dialogue(self) -> bool:
        """Whether two remaining parties still talk to each other."""
        return any(p.peer is not None and p.peer in self.parties for p in self.parties)
