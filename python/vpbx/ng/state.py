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
from typing import TypeAlias

from vpbx.ng.backend import LegAddress
from vpbx.sdp import MediaRewrite, SessionDescription, parse

__all__ = ["Call", "Party", "PendingOffer"]

# An SDP kept for a call: parsed while offer/answer work on it, its text once the call is
# answered (compact()): a held call then keeps ~0.3 KB per SDP instead of ~2 KB of parsed
# lines. The text is what we parsed or produced, so parsing it again gives the same lines
# (to_text() round-trips) and every later offer/answer sees what it saw before.
Kept: TypeAlias = SessionDescription | bytes


_TEXTS_KEPT = 8  # offers without an answer (forks, retransmissions) do not pile up texts


def _expand(kept: Kept | None) -> SessionDescription | None:
    return parse(kept) if isinstance(kept, bytes) else kept


def _shrink(kept: Kept | None, texts: dict[int, bytes]) -> Kept | None:
    if kept is None or isinstance(kept, bytes):
        return kept
    text = texts.get(id(kept))
    if text is None:
        text = texts[id(kept)] = kept.to_bytes()
    return text


class PendingOffer:
    """What an answer needs from the offer it answers (kept on the answering party)."""

    __slots__ = (
        "_sdp_in",
        "_sdp_out",
        "accept",
        "force_transcoding",
        "offerer",
        "plans",
        "ptime",
        "ptime_reverse",
        "rtcp_mux",
    )

    def __init__(
        self,
        *,
        offerer: Party,
        sdp_in: SessionDescription,
        sdp_out: SessionDescription,
        plans: list[MediaRewrite | None],
        rtcp_mux: frozenset[str],
        ptime: int | None,
        ptime_reverse: int | None,
        accept: tuple[str, ...],
        force_transcoding: bool,
    ) -> None:
        self.offerer = offerer
        self._sdp_in: Kept = sdp_in  # as the offerer sent it
        self._sdp_out: Kept = sdp_out  # as we passed it on
        self.plans = plans  # what the codec options did, per m-line
        self.rtcp_mux = rtcp_mux  # the offer's rtcp-mux options
        self.ptime = ptime  # towards the answerer (NG ``ptime``)
        self.ptime_reverse = ptime_reverse  # towards the offerer (NG ``ptime-reverse``)
        self.accept = accept  # codec-accept: offerer codecs usable for transcoding
        self.force_transcoding = force_transcoding

    @property
    def sdp_in(self) -> SessionDescription:
        sd = _expand(self._sdp_in)
        assert sd is not None
        self._sdp_in = sd
        return sd

    @property
    def sdp_out(self) -> SessionDescription:
        sd = _expand(self._sdp_out)
        assert sd is not None
        self._sdp_out = sd
        return sd

    def compact(self, texts: dict[int, bytes]) -> None:
        self._sdp_in = _shrink(self._sdp_in, texts) or b""
        self._sdp_out = _shrink(self._sdp_out, texts) or b""


@dataclass(eq=False, slots=True)
class Party:
    pid: str  # the engine's party id: stable even while the tag is unknown
    tag: str  # "" until known
    created: float
    via_branch: str | None = None
    aliases: set[str] | tuple[()] = ()  # other To-tags of the same branch (a set once there is one)
    label: str | None = None
    interface: str | None = None
    family: str | None = None
    peer: Party | None = None  # "in dialogue with"
    legs: dict[int, LegAddress] = field(default_factory=dict)
    _sdp_in: Kept | None = None  # the last SDP this party sent us
    _sdp_out: Kept | None = None  # the last SDP we sent it
    pending: PendingOffer | None = None  # the last offer made to this party

    @property
    def address(self) -> str | None:
        """Our advertised address towards this party (all its legs share an interface)."""
        return next((leg.address for leg in self.legs.values()), None)

    @property
    def sdp_in(self) -> SessionDescription | None:
        self._sdp_in = sd = _expand(self._sdp_in)
        return sd

    @sdp_in.setter
    def sdp_in(self, sd: SessionDescription | None) -> None:
        self._sdp_in = sd

    @property
    def sdp_out(self) -> SessionDescription | None:
        self._sdp_out = sd = _expand(self._sdp_out)
        return sd

    @sdp_out.setter
    def sdp_out(self, sd: SessionDescription | None) -> None:
        self._sdp_out = sd

    def add_alias(self, tag: str) -> None:
        if isinstance(self.aliases, tuple):
            self.aliases = set()
        self.aliases.add(tag)

    def compact(self, texts: dict[int, bytes]) -> None:
        """Keep the SDPs as text (`texts` shares one text between parties holding the same SDP)."""
        self._sdp_in = _shrink(self._sdp_in, texts)
        self._sdp_out = _shrink(self._sdp_out, texts)
        if self.pending is not None:
            self.pending.compact(texts)


@dataclass(eq=False, slots=True)
class Call:
    call_id: str
    created: float
    last_signal: float
    parties: list[Party] = field(default_factory=list)
    metadata: str | None = None
    recording: bool = False
    answered: bool = False  # an answer has been processed (offer timeout no longer applies)
    _next: int = 0
    # (SDP, its text) known since the last compact(): what was parsed and what was sent, so
    # compact() shares those bytes (the B2BUA keeps the same ones as message bodies)
    texts: tuple[tuple[SessionDescription, bytes], ...] = ()

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

    def note_text(self, sd: SessionDescription, text: bytes) -> None:
        """`text` parses to `sd` (it was parsed into it, or is its serialization)."""
        self.texts = (*self.texts[-(_TEXTS_KEPT - 1) :], (sd, text))

    def compact(self) -> None:
        """An answer went through: keep every party's SDPs as text until the next offer."""
        texts = {id(sd): text for sd, text in self.texts}  # the SDPs are alive: ids are theirs
        self.texts = ()
        for p in self.parties:
            p.compact(texts)

    def remove(self, party: Party) -> None:
        self.parties.remove(party)
        for p in self.parties:
            if p.peer is party:
                p.peer = None

    def has_dialogue(self) -> bool:
        """Whether two remaining parties still talk to each other."""
        return any(p.peer is not None and p.peer in self.parties for p in self.parties)
