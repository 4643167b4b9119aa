"""SDP offer/answer (RFC 3264): answers, our own offers, hold/resume, and what a call ended up using.

Everything here is pure: descriptions in, descriptions out. Session ids come from the caller
(sans-IO: no clock, no randomness here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vpbx.sdp.model import (
    STATIC_PAYLOAD_TYPES,
    Codec,
    Connection,
    Direction,
    Line,
    MediaSection,
    Origin,
    SdpError,
    SessionDescription,
    known_codec,
    parse_fmtp,
)

__all__ = [
    "DYNAMIC_PAYLOAD_TYPES",
    "Capabilities",
    "NegotiatedMedia",
    "answer",
    "assign_payload_types",
    "choose_codecs",
    "common_codec",
    "default_capabilities",
    "hold",
    "is_held",
    "is_on_hold",
    "negotiated",
    "offer",
    "resume",
    "same_codec",
    "update_version",
]

#: RFC 3551 §6: the dynamic range. When it runs out, 35-63 are used (unassigned in RFC 3551 and
#: clear of the RTCP packet types RFC 5761 §4 warns about, which collide with 64-95).
DYNAMIC_PAYLOAD_TYPES: tuple[int, ...] = (*range(96, 128), *range(35, 64))


def _key_name(c: Codec) -> str:
    return c.name.lower()


@dataclass(frozen=True)
class Capabilities:
    """What we can receive and send, per media type, in our order of preference.

    ``codecs["audio"]`` lists codecs with optional payload types (used in our own offers) and
    fmtp (put into answers in place of the offer's). One ``telephone-event`` entry enables
    RFC 4733 events at whatever clock rate the chosen codec runs (RFC 4733 §7.1.1).
    ``protos`` lists the transport protocols we accept; the first is used in our offers.
    """

    codecs: Mapping[str, Sequence[Codec]]
    protos: tuple[str, ...] = ("RTP/AVP", "RTP/AVPF")
    ptime: int | None = None
    rtcp_mux: bool = True
    multiple_codecs: bool = False
    local_preference: bool = False

    def supported(self, media: str) -> Sequence[Codec]:
        return self.codecs.get(media, ())

    def accepts_proto(self, proto: str) -> bool:
        return proto.upper() in (p.upper() for p in self.protos)


def default_capabilities() -> Capabilities:
    """Audio only: PCMU, PCMA, G722, opus and telephone-event (what the media core handles)."""
    names = ("PCMU", "PCMA", "G722", "opus", "telephone-event")
    audio = [c for c in (known_codec(n) for n in names) if c is not None]
    return Capabilities({"audio": audio})


def _find(codec: Codec, among: Sequence[Codec]) -> Codec | None:
    return next((c for c in among if c.matches(codec)), None)


# ---------------------------------------------------------------------------------------------
# Choosing codecs (answerer side)


def choose_codecs(
    offered: Sequence[Codec],
    supported: Sequence[Codec],
    *,
    multiple: bool = False,
    local_preference: bool = False,
) -> list[Codec]:
    """The codecs to answer for one offered stream (RFC 3264 §6.1), numbered as in the offer.

    Media codecs we support are kept in the offerer's order (ours if ``local_preference``),
    only the first unless ``multiple``. Then the auxiliary formats that go with them:
    telephone-event at the clock rate of a chosen codec (RFC 4733 §7.1.1), CN likewise
    (RFC 3389), rtx whose ``apt`` names a chosen codec (RFC 4588), red/FEC if supported.
    An empty list means: reject the stream.
    """
    main = [c for c in offered if not c.is_auxiliary and _find(c, supported) is not None]
    if local_preference:
        order = [c.key for c in supported]
        main.sort(key=lambda c: order.index(c.key) if c.key in order else len(order))
    if not main:
        return []
    if not multiple:
        main = main[:1]
    out = [_answer_codec(c, _find(c, supported)) for c in main]
    rates = {c.clock_rate for c in main}
    chosen_pts = {str(c.pt) for c in main}
    events = [c for c in supported if _key_name(c) == "telephone-event"]
    seen: set[tuple[str, int]] = set()
    for c in offered:
        name = _key_name(c)
        if not c.is_auxiliary or (name, c.clock_rate) in seen:
            continue
        local: Codec | None
        if name == "telephone-event":
            local = next((e for e in events if e.clock_rate == c.clock_rate), events[0] if events else None)
            ok = local is not None and c.clock_rate in rates
        elif name == "cn":
            local = _find(c, supported)
            ok = local is not None and c.clock_rate in rates
        elif name == "rtx":
            local = next((s for s in supported if _key_name(s) == "rtx"), None)
            ok = local is not None and parse_fmtp(c.fmtp or "").get("apt") in chosen_pts
            local = None  # rtx keeps the offer's fmtp: apt points at the offer's numbers
        else:
            local = _find(c, supported)
            ok = local is not None
        if ok:
            seen.add((name, c.clock_rate))
            out.append(_answer_codec(c, local))
    return out


def _answer_codec(offered: Codec, local: Codec | None) -> Codec:
    # §6.1: the answer reuses the offer's payload type number for the same codec. Our fmtp
    # (what we want to receive) replaces the offer's when we have one.
    fmtp = local.fmtp if local is not None and local.fmtp is not None else offered.fmtp
    return Codec(offered.name, offered.clock_rate, offered.channels, fmtp, offered.pt)


def _rejected(om: MediaSection) -> MediaSection:
    # §6: a rejected stream keeps its m= line with port zero; formats are ignored but must be there.
    return MediaSection(om.media, 0, om.proto, list(om.formats))


def _effective_direction(sd: SessionDescription, index: int) -> Direction:
    # RFC 3264 §8.4: a connection address of 0.0.0.0 means "send nothing to me" -- unless ICE
    # is in use, where it is only a placeholder until candidates arrive (RFC 8840).
    d = sd.media_direction(index)
    conn = sd.media_connection(index)
    if conn is not None and conn.is_zero and not sd.uses_ice(index):
        d = Direction.of(d.sends, False)
    return d


def _new_origin(
    previous: SessionDescription | None, session_id: int | None, username: str, address: str
) -> Origin:
    if previous is not None:
        return previous.origin
    if session_id is None:
        raise ValueError("session_id is required for a new session (RFC 8866 §5.2)")
    return Origin(username, session_id, session_id, "IN", Connection.for_address(address).addrtype, address)


def _skeleton(origin: Origin, session_name: str, address: str, timing: Sequence[str]) -> SessionDescription:
    sd = SessionDescription.new(
        origin,
        session_name=session_name,
        connection=Connection.for_address(address),
        timing=timing[0] if timing else "0 0",
    )
    for t in timing[1:]:
        sd.lines.append(Line("t", t))
    return sd


def answer(
    offer: SessionDescription,
    caps: Capabilities,
    *,
    address: str,
    ports: Sequence[int],
    session_id: int | None = None,
    username: str = "-",
    session_name: str = "-",
    direction: Direction = Direction.SENDRECV,
    previous: SessionDescription | None = None,
) -> SessionDescription:
    """Answer ``offer`` as an endpoint (RFC 3264 §6).

    ``ports[i]`` is our RTP port for m-line ``i`` (ignored for streams we reject). ``direction``
    is what we want (e.g. sendonly to play music on hold); it is intersected with the mirror of
    the offered direction (§6.1). ``previous`` is our last SDP in this session: its o= line is
    kept and the version goes up by one if anything changed (§8). Without it, ``session_id`` is
    required. The answer has exactly the offer's m-lines, in order; streams with no common codec,
    an unknown media type or an unsupported protocol get port zero (§6).
    """
    if len(ports) != len(offer.media):
        raise ValueError(f"{len(offer.media)} m-lines offered, {len(ports)} ports given")
    origin = _new_origin(previous, session_id, username, address)
    sd = _skeleton(origin, session_name, address, offer.timing)  # §6: t= as offered
    for i in range(len(offer.media)):
        sd.media.append(_answer_media(offer, i, caps, ports[i], direction))
    return update_version(previous, sd)


def _answer_media(
    offer: SessionDescription, i: int, caps: Capabilities, port: int, want: Direction
) -> MediaSection:
    om = offer.media[i]
    if om.rejected or not om.is_rtp or not caps.accepts_proto(om.proto) or port <= 0:
        return _rejected(om)
    chosen = choose_codecs(
        om.codecs(),
        caps.supported(om.media),
        multiple=caps.multiple_codecs,
        local_preference=caps.local_preference,
    )
    if not chosen:
        return _rejected(om)
    ms = MediaSection(om.media, port, om.proto, [])
    for c in chosen:
        ms.add_codec(c)
    ptime = caps.ptime if caps.ptime is not None else om.ptime
    if ptime is not None and om.media == "audio":
        ms.add_attribute("ptime", str(ptime))  # §6.1: the ptime we want to receive
    if om.rtcp_mux and caps.rtcp_mux:
        ms.add_attribute("rtcp-mux")  # RFC 5761 §5.1.1: accept by echoing it
    if om.mid is not None:
        ms.add_attribute("mid", om.mid)  # RFC 5888 §9.2
    offered = _effective_direction(offer, i)
    # §6.1: sendonly is answered recvonly, recvonly sendonly, inactive inactive, limited by `want`.
    ms.set_direction(Direction.of(offered.receives and want.sends, offered.sends and want.receives))
    return ms


# ---------------------------------------------------------------------------------------------
# Our own offers


def assign_payload_types(codecs: Sequence[Codec], *, taken: Mapping[int, Codec] | None = None) -> list[Codec]:
    """Number codecs for an offer.

    A codec keeps the number it already had earlier in this session (``taken``: pt -> codec;
    RFC 3264 §8.3.2 forbids remapping a number), else its RFC 3551 static number, else the
    payload type it was given if that is free, else the lowest free dynamic number
    (:data:`DYNAMIC_PAYLOAD_TYPES`). A number bound to another codec is never reused.
    """
    used: dict[int, Codec] = dict(taken or {})
    out: list[Codec] = []

    def free(pt: int) -> bool:
        return pt not in used

    for c in codecs:
        pt = next((p for p, t in (taken or {}).items() if t.matches(c)), None)
        if pt is None:
            static = next((p for p, s in STATIC_PAYLOAD_TYPES.items() if s.matches(c)), None)
            if static is not None and free(static):
                pt = static
            elif c.pt is not None and free(c.pt):
                pt = c.pt
            else:
                pt = next((p for p in DYNAMIC_PAYLOAD_TYPES if free(p)), None)
                if pt is None:
                    raise ValueError("no free payload type left")
        used[pt] = c
        out.append(c.with_pt(pt))
    return out


def _offer_codecs(supported: Sequence[Codec]) -> list[Codec]:
    # Our media codecs in our order, then telephone-event once per clock rate they use
    # (RFC 4733 §7.1.1), then the other auxiliary formats as listed.
    main = [c for c in supported if not c.is_auxiliary]
    events = [c for c in supported if _key_name(c) == "telephone-event"]
    out = list(main)
    if events:
        for rate in dict.fromkeys(c.clock_rate for c in main):
            e = next((e for e in events if e.clock_rate == rate), events[0])
            out.append(Codec(e.name, rate, e.channels, e.fmtp, e.pt if e.clock_rate == rate else None))
    out.extend(c for c in supported if c.is_auxiliary and _key_name(c) != "telephone-event")
    return out


def offer(
    caps: Capabilities,
    media: Sequence[tuple[str, int]],
    *,
    address: str,
    session_id: int | None = None,
    username: str = "-",
    session_name: str = "-",
    direction: Direction = Direction.SENDRECV,
    previous: SessionDescription | None = None,
) -> SessionDescription:
    """Our offer (RFC 3264 §5): one m-line per ``(media type, port)``; port 0 disables a stream.

    With ``previous`` (our last SDP in this session) it is a re-offer (§8): the o= line is kept
    with the version bumped if anything changed, codecs keep their earlier payload type numbers
    (§8.3.2), and m-lines of ``previous`` beyond ``media`` are kept as removed streams (port 0),
    since a re-offer may not drop m-lines (§8).
    """
    origin = _new_origin(previous, session_id, username, address)
    sd = _skeleton(origin, session_name, address, ["0 0"])
    taken: dict[int, Codec] = {}
    if previous is not None:
        for m in previous.media:
            for c in m.codecs():
                if c.pt is not None:
                    taken.setdefault(c.pt, c)
    for kind, port in media:
        codecs = assign_payload_types(_offer_codecs(caps.supported(kind)), taken=taken)
        for c in codecs:
            if c.pt is not None:
                taken.setdefault(c.pt, c)
        if not codecs:
            raise ValueError(f"no codecs for media type {kind!r}")
        ms = MediaSection(kind, port, caps.protos[0], [])
        if port == 0:
            ms.formats = [str(codecs[0].pt)]
        else:
            for c in codecs:
                ms.add_codec(c)
            if caps.ptime is not None and kind == "audio":
                ms.add_attribute("ptime", str(caps.ptime))
            if caps.rtcp_mux:
                ms.add_attribute("rtcp-mux")  # RFC 5761 §5.1.1
            ms.set_direction(direction)
        sd.media.append(ms)
    if previous is not None:
        for old in previous.media[len(media) :]:
            sd.media.append(_rejected(old))
    return update_version(previous, sd)


# ---------------------------------------------------------------------------------------------
# Versions, hold and resume


def update_version(
    previous: SessionDescription | None, new: SessionDescription, *, force: bool = False
) -> SessionDescription:
    """Give ``new`` the o= line of ``previous`` (same username, session id and address) with the
    version unchanged if nothing else changed, else plus one (RFC 3264 §8; RFC 8866 §5.2).
    Returns a copy; without ``previous`` returns ``new`` as it is."""
    if previous is None:
        return new
    out = new.copy()
    prev = previous.origin
    out.origin = prev
    if force or out.to_text() != previous.to_text():
        out.origin = Origin(
            prev.username, prev.session_id, prev.version + 1, prev.nettype, prev.addrtype, prev.address
        )
    return out


def is_held(sd: SessionDescription, index: int) -> bool:
    """Whether the writer of ``sd`` puts media ``index`` on hold: it does not want to receive
    (sendonly or inactive), or the old way, connection address 0.0.0.0 (RFC 3264 §8.4)."""
    if sd.media[index].rejected:
        return False
    return not _effective_direction(sd, index).receives


def is_on_hold(sd: SessionDescription) -> bool:
    """True when every active stream of ``sd`` is held (and there is at least one)."""
    active = [i for i, m in enumerate(sd.media) if not m.rejected]
    return bool(active) and all(is_held(sd, i) for i in active)


def hold(local: SessionDescription, *, inactive: bool = False) -> SessionDescription:
    """Re-offer of our last SDP putting every active stream on hold (RFC 3264 §8.4): sendrecv
    becomes sendonly, recvonly becomes inactive (all inactive if asked). Version + 1."""
    new = local.copy()
    for i, m in enumerate(new.media):
        if not m.rejected:
            cur = local.media_direction(i)
            m.set_direction(Direction.INACTIVE if inactive else Direction.of(cur.sends, False))
    return update_version(local, new)


def resume(local: SessionDescription, *, direction: Direction = Direction.SENDRECV) -> SessionDescription:
    """Re-offer of our last SDP taking every active stream off hold (``direction``, default
    sendrecv). Version + 1 if anything changed."""
    new = local.copy()
    for m in new.media:
        if not m.rejected:
            m.set_direction(direction)
    return update_version(local, new)


# ---------------------------------------------------------------------------------------------
# What was negotiated


@dataclass(frozen=True)
class NegotiatedMedia:
    """The outcome of offer/answer for one m-line.

    RTP payload type numbers are chosen by the receiver (RFC 3264 §5.1): the offerer sends with
    the answer's numbers (``codec.pt``, ``telephone_event.pt``), the answerer with the offer's
    (``offer_pt``, ``telephone_event_offer_pt``). Directions are as each side wrote them, with a
    zero connection address read as "does not receive" (§8.4).
    """

    index: int
    media: str
    codec: Codec
    offer_pt: int
    offer_direction: Direction
    answer_direction: Direction
    telephone_event: Codec | None = None
    telephone_event_offer_pt: int | None = None
    ptime: int | None = None
    rtcp_mux: bool = False
    answer_codecs: list[Codec] = field(default_factory=list)

    @property
    def offerer_sends(self) -> bool:
        return self.offer_direction.sends and self.answer_direction.receives

    @property
    def answerer_sends(self) -> bool:
        return self.answer_direction.sends and self.offer_direction.receives


def negotiated(offer: SessionDescription, answer: SessionDescription) -> list[NegotiatedMedia | None]:
    """Per m-line, the codec in use after this offer/answer, or None where the stream is rejected
    or the answer names no offered codec. The codec is the first media codec of the answer that
    the offer also lists (§6.1: the answer's order is the answerer's preference)."""
    if len(answer.media) != len(offer.media):
        raise SdpError(f"answer has {len(answer.media)} m-lines, offer has {len(offer.media)} (RFC 3264 §6)")
    out: list[NegotiatedMedia | None] = []
    for i, (om, am) in enumerate(zip(offer.media, answer.media, strict=True)):
        if om.rejected or am.rejected or not om.is_rtp:
            out.append(None)
            continue
        ocs, acs = om.codecs(), am.codecs()
        pick: tuple[Codec, Codec] | None = None
        for ac in acs:
            if ac.is_auxiliary:
                continue
            same_pt = next((oc for oc in ocs if oc.pt == ac.pt and oc.matches(ac)), None)
            oc = same_pt or _find(ac, ocs)
            if oc is not None:
                pick = (ac, oc)
                break
        if pick is None:
            out.append(None)
            continue
        ac, oc = pick
        ate = next(
            (c for c in acs if _key_name(c) == "telephone-event" and c.clock_rate == ac.clock_rate), None
        )
        ote = next(
            (c for c in ocs if _key_name(c) == "telephone-event" and c.clock_rate == ac.clock_rate), None
        )
        if ate is None or ote is None:
            ate = ote = None
        out.append(
            NegotiatedMedia(
                index=i,
                media=om.media,
                codec=ac,
                offer_pt=oc.pt if oc.pt is not None else -1,
                offer_direction=_effective_direction(offer, i),
                answer_direction=_effective_direction(answer, i),
                telephone_event=ate,
                telephone_event_offer_pt=ote.pt if ote is not None else None,
                ptime=am.ptime if am.ptime is not None else om.ptime,
                rtcp_mux=om.rtcp_mux and am.rtcp_mux,
                answer_codecs=acs,
            )
        )
    return out


def same_codec(a: NegotiatedMedia | None, b: NegotiatedMedia | None) -> bool:
    """Whether two legs of a call (say caller<->us and us<->callee) ended up on the same codec
    (name, clock rate, channels), so media can be relayed (payload type numbers may still need
    rewriting) rather than transcoded."""
    return a is not None and b is not None and a.codec.matches(b.codec)


def common_codec(a: Sequence[Codec], b: Sequence[Codec]) -> Codec | None:
    """The first media codec of ``a`` that ``b`` also lists (as it appears in ``a``), or None."""
    return next((c for c in a if not c.is_auxiliary and _find(c, b) is not None), None)
