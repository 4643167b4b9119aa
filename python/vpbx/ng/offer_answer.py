"""``offer`` and ``answer``: anchor the media of an SDP offer/answer exchange on the engine.

For an offer from party A (From-tag) towards party B (not known yet) we allocate, per m-line,
a leg for A (where A will send: advertised later in the answer to A) and a leg for B (where B
will send: advertised now in the offer passed to B), then rewrite A's SDP as rtpengine does
(NG protocol document, "offer Message"): c= and the m= port point at B's leg, a=rtcp names its
RTCP port (RFC 3605), rtcp-mux (RFC 5761) and ICE attributes follow the options, and the codec
options strip, mask, offer and transcode edit the format list (:func:`vpbx.sdp.rewrite`).

The answer from B is rewritten the same way towards A, and its codecs are checked against A's
offer (RFC 3264 §6.1): if B chose a codec A offered, the media is relayed and the answer to A
keeps only codecs A offered; if B chose one we added for transcoding, the answer to A names
A's own codec instead and the engine transcodes. Then the engine learns each leg's codecs and
the two parties are connected.

Legs are allocated once per party and m-line and reused by re-offers, so ports stay stable.
"""

from __future__ import annotations

from collections.abc import Sequence

from vpbx.ng import errors
from vpbx.ng.backend import Endpoint, LegCodecs, MediaBackend, RecordingOptions
from vpbx.ng.errors import NgError
from vpbx.ng.options import Options
from vpbx.ng.state import Call, Party, PendingOffer
from vpbx.sdp import (
    Codec,
    CodecSpec,
    MediaSection,
    NegotiatedMedia,
    RewriteOptions,
    RtcpMux,
    SdpError,
    SessionDescription,
    negotiated,
    parse,
    rewrite,
    same_codec,
    update_version,
)

__all__ = ["MAX_MEDIA", "MAX_PARTIES", "do_answer", "do_offer", "set_recording"]

MAX_MEDIA = 32  # m-lines per SDP we anchor
MAX_PARTIES = 32  # parties per call, forks included
_NO_OPTIONS: frozenset[str] = frozenset()


def _parse(sdp: bytes) -> SessionDescription:
    try:
        sd = parse(sdp)
    except SdpError as e:
        raise NgError(f"{errors.BAD_SDP}: {e}") from None
    if len(sd.media) > MAX_MEDIA:
        raise NgError(f"{errors.INCOMPLETE_SDP}: more than {MAX_MEDIA} m-lines")
    return sd


def _new_party(call: Call, tag: str, now: float, via_branch: str | None = None) -> Party:
    if len(call.parties) >= MAX_PARTIES:
        raise NgError(f"Too many parties in call (at most {MAX_PARTIES})")
    return call.new_party(tag, now, via_branch)


def _family(sd: SessionDescription) -> str | None:
    conn = sd.connection or next((m.connection for m in sd.media if m.connection is not None), None)
    if conn is None or conn.addrtype.upper() not in ("IP4", "IP6"):
        return None
    return conn.addrtype.upper()


def _endpoint(sd: SessionDescription, i: int, opts: Options, mux: bool) -> Endpoint | None:
    """Where the writer of ``sd`` receives media ``i`` (RFC 8866 §5.7, RFC 3605 §2.1)."""
    m = sd.media[i]
    if m.rejected:
        return None
    conn = sd.media_connection(i)
    address = conn.address if conn is not None else None
    if opts.media_address:
        address = opts.media_address  # overrides SDP and "received from"
    elif opts.sip_source and opts.received_from is not None:
        address = opts.received_from[1]
    if address is None:
        return None
    rtcp = m.rtcp
    return Endpoint(address, m.port, rtcp.port if rtcp is not None else m.port + 1, mux)


def _set_remotes(
    backend: MediaBackend, call_id: str, party: Party, sd: SessionDescription, opts: Options
) -> None:
    """Tells the engine where ``party`` (the writer of ``sd``) receives each anchored medium."""
    for i, m in enumerate(sd.media):
        ep = _endpoint(sd, i, opts, m.rtcp_mux)
        if ep is not None and i in party.legs:
            backend.set_remote(
                call_id, party.pid, i, ep, latching=opts.latching, strict_source=opts.strict_source
            )


def _ice(sd: SessionDescription, opts: Options) -> bool:
    """Whether to remove ICE. We cannot be an ICE candidate yet, so the peer's candidates must
    go whenever there are any (they would route media around us)."""
    has_ice = any(sd.uses_ice(i) for i in range(len(sd.media)))
    explicit = "remove" in opts.ice or opts.reject_ice
    if "force relay" in opts.ice:
        opts.warn(errors.NO_ICE_RELAY)
    elif ("force" in opts.ice or "optional" in opts.ice) or (has_ice and not explicit):
        opts.warn(errors.NO_ICE)
    return has_ice or explicit


def _srtp(sd: SessionDescription, opts: Options) -> None:
    secure = any(m.is_secure or m.crypto or m.fingerprint is not None for m in sd.media)
    wants = opts.transport_protocol is not None and "SAVP" in opts.transport_protocol.upper()
    if secure or wants:
        opts.warn(errors.NO_SRTP)


def _versioned(prev: SessionDescription | None, new: SessionDescription, opts: Options) -> SessionDescription:
    # replace "SDP version" / "force-increment-sdp-ver": keep the o= line we sent last time and
    # raise its version when the body changed (RFC 3264 §8).
    force = "force increment sdp ver" in opts.replace
    if prev is None or not (force or "sdp version" in opts.replace):
        return new
    return update_version(prev, new, force=force)


def set_recording(call: Call, opts: Options, backend: MediaBackend) -> None:
    """``record call`` in offer/answer: start or stop recording the whole call."""
    want = True if opts.record_flag else opts.record_call
    if want is True and not call.recording:
        backend.start_recording(call.call_id, RecordingOptions(metadata=call.metadata))
        call.recording = True
    elif want is False and call.recording:
        backend.stop_recording(call.call_id)
        call.recording = False


# ---------------------------------------------------------------------------------------------
# offer


def _offer_peer(call: Call, offerer: Party, opts: Options, now: float) -> Party:
    """The party the offer goes to: by To-tag (re-INVITE), else by Via branch (forking), else the
    offerer's current peer, else a new untagged party."""
    if opts.to_tag:
        p = call.by_tag(opts.to_tag)
        if p is not None and p is not offerer:
            return p
        peer = offerer.peer
        if peer is not None and not peer.tag:
            peer.tag = opts.to_tag
            return peer
        return _new_party(call, opts.to_tag, now, opts.via_branch)
    if opts.via_branch:
        p = call.by_branch(opts.via_branch)
        if p is not None and p is not offerer:
            return p
        peer = offerer.peer
        if peer is not None and (peer.tag or peer.via_branch is None):
            # an established dialogue (a re-INVITE) or the first branch seen with a Via branch
            if not peer.tag:
                peer.via_branch = opts.via_branch
            return peer
        return _new_party(call, "", now, opts.via_branch)  # another fork of the INVITE
    if offerer.peer is not None:
        return offerer.peer
    return _new_party(call, "", now)


def _offer_mux(opts: Options) -> RtcpMux:
    # section "rtcp-mux": what to offer to the far side
    if "require" in opts.rtcp_mux:
        return RtcpMux.REQUIRE
    if "offer" in opts.rtcp_mux:
        return RtcpMux.OFFER
    if "demux" in opts.rtcp_mux or "reject" in opts.rtcp_mux:
        return RtcpMux.REMOVE
    return RtcpMux.KEEP


def _rtcp_ports(party: Party, n: int) -> list[int | None]:
    # Only name an RTCP port when the engine did not give the usual RTP + 1, so that rewrite
    # can still put the RTP port there when RTCP is multiplexed (RFC 5761 §5.1.3).
    out: list[int | None] = []
    for i in range(n):
        leg = party.legs.get(i)
        out.append(None if leg is None or leg.rtcp_port in (None, leg.rtp_port + 1) else leg.rtcp_port)
    return out


def do_offer(call: Call, opts: Options, backend: MediaBackend, now: float) -> SessionDescription:
    assert opts.sdp is not None and opts.from_tag
    sd = _parse(opts.sdp)
    offerer = call.by_tag(opts.from_tag) or _new_party(call, opts.from_tag, now)
    peer = _offer_peer(call, offerer, opts, now)
    if opts.label is not None:
        offerer.label = opts.label
    if opts.to_label is not None:
        peer.label = opts.to_label
    if not offerer.legs:
        offerer.interface = opts.from_interface
        offerer.family = _family(sd)
    if not peer.legs:
        peer.interface = opts.to_interface
        peer.family = opts.address_family or _family(sd)
    for i, m in enumerate(sd.media):
        if m.rejected:
            continue
        for party, mux_only in ((offerer, False), (peer, "require" in opts.rtcp_mux)):
            if i not in party.legs:
                party.legs[i] = backend.allocate_leg(
                    call.call_id,
                    party.pid,
                    i,
                    interface=party.interface,
                    family=party.family,
                    rtcp_mux=mux_only,
                )
    _set_remotes(backend, call.call_id, offerer, sd, opts)
    ice_remove = _ice(sd, opts)
    _srtp(sd, opts)
    codec = opts.codec
    address = peer.address or (sd.connection.address if sd.connection is not None else "0.0.0.0")
    ropts = RewriteOptions(
        address=address,
        ports=[peer.legs[i].rtp_port if i in peer.legs else 0 for i in range(len(sd.media))],
        rtcp_ports=_rtcp_ports(peer, len(sd.media)),
        replace_origin="origin" in opts.replace,
        replace_session_connection="session connection" in opts.replace,
        replace_zero_address="zero address" in opts.replace,
        ice_remove=ice_remove,
        rtcp_mux=_offer_mux(opts),
        rtcp_attribute=not opts.no_rtcp_attribute,
        full_rtcp_attribute=opts.full_rtcp_attribute,
        strip=codec.strip,
        mask=[*codec.mask, *codec.consume],
        offer=[*codec.offer, *codec.except_],
        transcode=codec.transcode,
        ptime=opts.ptime,
        transport_protocol=opts.transport_protocol,
    )
    try:
        rw = rewrite(sd, ropts)
    except ValueError as e:
        raise NgError(f"Error rewriting SDP: {e}") from None
    for w in rw.warnings:
        opts.warn(w)
    out = _versioned(peer.sdp_out, rw.sdp, opts)
    peer.pending = PendingOffer(
        offerer=offerer,
        sdp_in=sd,
        sdp_out=out,
        plans=rw.media,
        rtcp_mux=frozenset(opts.rtcp_mux) if opts.rtcp_mux else _NO_OPTIONS,  # one empty set for all
        ptime=opts.ptime,
        ptime_reverse=opts.ptime_reverse,
        accept=tuple(codec.accept),
        force_transcoding=opts.force_transcoding or bool(codec.consume),
    )
    offerer.sdp_in, peer.sdp_out = sd, out
    call.note_text(sd, opts.sdp)
    offerer.peer, peer.peer = peer, offerer
    return out


# ---------------------------------------------------------------------------------------------
# answer


def _answerer(call: Call, offerer: Party, opts: Options) -> Party:
    def answers(p: Party | None) -> bool:
        return p is not None and p.pending is not None and p.pending.offerer is offerer

    assert opts.to_tag
    tagged = call.by_tag(opts.to_tag)
    if answers(tagged):
        assert tagged is not None
        return tagged
    cand = call.by_branch(opts.via_branch)
    if not answers(cand):
        cand = offerer.peer
    if cand is None or not answers(cand) or (tagged is not None and tagged is not cand):
        raise NgError(errors.DIALOGUE)
    if not cand.tag:
        cand.tag = opts.to_tag
    elif cand.tag != opts.to_tag:
        cand.add_alias(opts.to_tag)  # a new To-tag for the same branch (section "new branch")
    return cand


def _answer_mux(pend: PendingOffer, answer: SessionDescription) -> RtcpMux:
    offered = any(m.rtcp_mux for m in pend.sdp_in.media if not m.rejected)
    answered = any(m.rtcp_mux for m in answer.media if not m.rejected)
    if not offered or "reject" in pend.rtcp_mux:
        return RtcpMux.REMOVE
    if answered or pend.rtcp_mux & {"demux", "accept", "require"}:
        return RtcpMux.OFFER  # accept it from the offerer: RTCP on the RTP port
    return RtcpMux.REMOVE


def _pick_offerer_codec(accepted: Sequence[Codec], accept: Sequence[str]) -> Codec | None:
    main = [c for c in accepted if not c.is_auxiliary]
    specs = [CodecSpec.parse(a) for a in accept if a.lower() not in ("all", "any", "full")]
    preferred = [c for c in main if any(s.matches(c) for s in specs)]
    return next(iter(preferred or main), None)


def _keep_single(m: MediaSection) -> None:
    # flag "single codec": the first codec and the auxiliary formats at its clock rate
    codecs = m.codecs()
    first = next((c for c in codecs if not c.is_auxiliary), None)
    if first is None:
        return
    drop = [
        c.pt
        for c in codecs
        if c is not first and (not c.is_auxiliary or c.clock_rate != first.clock_rate) and c.pt is not None
    ]
    if drop:
        m.remove_formats(drop)


def _answer_codecs(out_m: MediaSection, pend: PendingOffer, i: int, chosen: Codec) -> None:
    """Make the answer to the offerer name only codecs it offered (RFC 3264 §6.1)."""
    plan = pend.plans[i]
    offered = pend.sdp_in.media[i].codecs()
    if plan is not None and any(c.matches(chosen) for c in plan.kept) and not pend.force_transcoding:
        drop = [c.pt for c in out_m.codecs() if c.pt is not None and not any(c.matches(o) for o in offered)]
        if drop:
            out_m.remove_formats(drop)
        return
    accepted = plan.accepted if plan is not None else offered
    pick = _pick_offerer_codec(accepted, pend.accept)
    if pick is None:
        return
    events = [c for c in accepted if c.name.lower() == "telephone-event" and c.clock_rate == pick.clock_rate]
    out_m.set_codecs([pick, *events[:1]])


def do_answer(call: Call, opts: Options, backend: MediaBackend, now: float) -> SessionDescription:
    assert opts.sdp is not None and opts.from_tag and opts.to_tag
    sd = _parse(opts.sdp)
    offerer = call.by_tag(opts.from_tag)
    if offerer is None:
        raise NgError(errors.DIALOGUE)
    answerer = _answerer(call, offerer, opts)
    pend = answerer.pending
    assert pend is not None
    n = len(pend.sdp_out.media)
    if len(sd.media) != n:
        raise NgError(f"{errors.INCOMPLETE_SDP}: the answer has {len(sd.media)} m-lines, the offer {n}")
    if opts.label is not None:
        answerer.label = opts.label
    theirs = negotiated(pend.sdp_out, sd)
    _set_remotes(backend, call.call_id, answerer, sd, opts)
    ice_remove = _ice(sd, opts)
    _srtp(sd, opts)
    protos = {m.proto for m in pend.sdp_in.media if not m.rejected}
    address = offerer.address or (sd.connection.address if sd.connection is not None else "0.0.0.0")
    ropts = RewriteOptions(
        address=address,
        ports=[offerer.legs[i].rtp_port if i in offerer.legs else 0 for i in range(n)],
        rtcp_ports=_rtcp_ports(offerer, n),
        answer=True,
        replace_origin="origin" in opts.replace,
        replace_session_connection="session connection" in opts.replace,
        replace_zero_address="zero address" in opts.replace,
        ice_remove=ice_remove,
        rtcp_mux=_answer_mux(pend, sd),
        rtcp_attribute=not opts.no_rtcp_attribute,
        full_rtcp_attribute=opts.full_rtcp_attribute,
        ptime=pend.ptime_reverse,
        # the offerer hears back the protocol it offered (section "transport protocol")
        transport_protocol=next(iter(protos)) if len(protos) == 1 else None,
    )
    try:
        rw = rewrite(sd, ropts)
    except ValueError as e:
        raise NgError(f"Error rewriting SDP: {e}") from None
    out = rw.sdp
    for i, mine in enumerate(theirs):
        if mine is not None and not out.media[i].rejected:
            _answer_codecs(out.media[i], pend, i, mine.codec)
            if opts.single_codec:
                _keep_single(out.media[i])
    out = _versioned(offerer.sdp_out, out, opts)
    ours = negotiated(pend.sdp_in, out)
    transcode = [_transcode(pend, answer=sd, out=out, i=i, ours=ours[i], theirs=theirs[i]) for i in range(n)]
    _program_engine(
        call, backend=backend, offerer=offerer, answerer=answerer, pend=pend, answer=sd, out=out, opts=opts
    )
    backend.connect(call.call_id, offerer.pid, answerer.pid, transcode)
    answerer.sdp_in, offerer.sdp_out = sd, out
    offerer.peer, answerer.peer = answerer, offerer
    call.note_text(sd, opts.sdp)
    return out


def _transcode(
    pend: PendingOffer,
    *,
    answer: SessionDescription,
    out: SessionDescription,
    i: int,
    ours: NegotiatedMedia | None,
    theirs: NegotiatedMedia | None,
) -> bool:
    """Relay or transcode media ``i``: transcode when the two legs ended up on different codecs,
    when forced, or when a ptime was imposed on one side (section "ptime": repacketization)."""
    if ours is None or theirs is None:
        return False
    if pend.force_transcoding or not same_codec(ours, theirs):
        return True
    a_ptime = out.media[i].ptime or pend.sdp_in.media[i].ptime
    b_ptime = pend.sdp_out.media[i].ptime or answer.media[i].ptime
    return a_ptime is not None and b_ptime is not None and a_ptime != b_ptime


def _program_engine(
    call: Call,
    *,
    backend: MediaBackend,
    offerer: Party,
    answerer: Party,
    pend: PendingOffer,
    answer: SessionDescription,
    out: SessionDescription,
    opts: Options,
) -> None:
    for i, (om, am) in enumerate(zip(out.media, answer.media, strict=True)):
        if om.rejected or am.rejected or i not in offerer.legs or i not in answerer.legs:
            continue
        # the offerer learns the final rtcp-mux state only now (RFC 5761 §5.1.1)
        ep = _endpoint(pend.sdp_in, i, opts, om.rtcp_mux)
        if ep is not None:
            backend.set_remote(
                call.call_id,
                offerer.pid,
                i,
                ep,
                latching=opts.latching,
                strict_source=opts.strict_source,
            )
        # the offerer sends with the numbers of the answer it got and expects its own offer's
        # numbers back (RFC 3264 §5.1, §6.1); they differ when the answerer renumbered
        mine = tuple(om.codecs())
        offered = tuple(pend.sdp_in.media[i].codecs())
        send = tuple(next((o for o in offered if o.matches(c)), c) for c in mine)
        backend.set_codecs(
            call.call_id, offerer.pid, i, LegCodecs(mine, send, om.ptime or pend.sdp_in.media[i].ptime)
        )
        theirs = tuple(am.codecs())
        # the answerer sends with the numbers of the offer it got (RFC 3264 §6.1)
        receive = tuple(c for c in pend.sdp_out.media[i].codecs() if any(c.matches(t) for t in theirs))
        backend.set_codecs(call.call_id, answerer.pid, i, LegCodecs(receive, theirs, pend.ptime or am.ptime))
