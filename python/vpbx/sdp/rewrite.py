"""Media anchoring: rewrite an SDP so that media flows through us (what a B2BUA or rtpengine does).

Only the lines that must change are touched: c= (media level, and session level when asked),
m= ports, a=rtcp (RFC 3605), a=rtcp-mux (RFC 5761), ICE attributes (when removed), the codecs
named in the codec options, a=ptime when asked, the o= address when asked. Everything else —
crypto, fingerprint, setup, ssrc, mid, unknown attributes — stays byte for byte.

Codec options follow rtpengine's ``codec`` dictionary (docs/ng_control_protocol.md), matching
names case-insensitively (RFC 4855 §3):

- ``strip``: remove the codec; the sender may not use it. ``all``/``full`` strip every codec.
- ``mask``: remove it from the rewritten SDP, but still accept it from the sender (transcoding).
- ``offer``: keep it even under ``strip=all``/``mask=all``, and move it to the front.
- ``transcode``: make sure the rewritten SDP offers it; if the sender did not offer it, add it
  with a free payload type (static number for static codecs) and its rtpmap/fmtp.

A codec is named ``PCMU``, ``opus/48000``, ``opus/48000/2`` (rtpengine's
``name/rate/channels/bitrate/ptime/fmtp`` notation; fmtp parameters, when given, must all match),
or by payload type number (``"101"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from vpbx.sdp.model import (
    STATIC_PAYLOAD_TYPES,
    Codec,
    Connection,
    MediaSection,
    Origin,
    Rtcp,
    SessionDescription,
    known_codec,
    parse_fmtp,
)
from vpbx.sdp.negotiate import DYNAMIC_PAYLOAD_TYPES

__all__ = ["CodecSpec", "MediaRewrite", "RewriteOptions", "Rewritten", "RtcpMux", "rewrite"]

_ALL = ("all", "full")
_VIDEO = frozenset(
    {"h261", "h263", "h263-1998", "h263-2000", "h264", "h265", "vp8", "vp9", "av1", "mpv", "jpeg"}
)
_SECURITY_ATTRIBUTES = ("crypto", "fingerprint", "setup", "tls-id")  # RFC 4568, 8122, 4145, 8842


class RtcpMux(StrEnum):
    """What to do about ``a=rtcp-mux`` (RFC 5761), in rtpengine's terms."""

    KEEP = "keep"  # go along with the sender ("accept")
    OFFER = "offer"  # add it if absent; still advertise a separate RTCP port in offers
    REQUIRE = "require"  # add it and advertise no separate RTCP port (WebRTC peers)
    REMOVE = "remove"  # drop it ("demux" towards the far side, "reject")


@dataclass(frozen=True)
class CodecSpec:
    """A codec named in an option: ``name[/clock rate[/channels[/bitrate[/ptime[/fmtp]]]]]``,
    or a payload type number."""

    name: str
    clock_rate: int | None = None
    channels: int | None = None
    fmtp: str | None = None

    @classmethod
    def parse(cls, text: str) -> CodecSpec:
        parts = text.strip().split("/")
        if not parts[0]:
            raise ValueError(f"empty codec name in {text!r}")

        def num(i: int) -> int | None:
            if len(parts) <= i or not parts[i]:
                return None
            if not parts[i].isascii() or not parts[i].isdigit():
                raise ValueError(f"bad number {parts[i]!r} in codec {text!r}")
            return int(parts[i])

        fmtp = "/".join(parts[5:]) if len(parts) > 5 and parts[5] else None
        return cls(parts[0], num(1), num(2), fmtp)

    @property
    def pt(self) -> int | None:
        """The payload type when the spec is a bare number."""
        if self.name.isascii() and self.name.isdigit() and self.clock_rate is None:
            return int(self.name)
        return None

    def matches(self, codec: Codec) -> bool:
        if self.pt is not None:
            return codec.pt == self.pt
        if codec.name.lower() != self.name.lower():
            return False
        if self.clock_rate is not None and codec.clock_rate != self.clock_rate:
            return False
        if self.channels is not None and (codec.channels or 1) != self.channels:
            return False
        if self.fmtp is not None:
            have = parse_fmtp(codec.fmtp or "")
            return all(have.get(k) == v for k, v in parse_fmtp(self.fmtp).items())
        return True

    def to_codec(self) -> Codec:
        """The codec to add for transcoding, with usual defaults for what the spec leaves out."""
        base = known_codec(self.name, self.clock_rate, self.channels)
        if base is None:
            raise ValueError(f"unknown codec {self.name!r}: give its clock rate, e.g. {self.name}/8000")
        if self.fmtp is not None:
            base = Codec(base.name, base.clock_rate, base.channels, self.fmtp)
        return base


@dataclass(frozen=True)
class RewriteOptions:
    """How to anchor one SDP. ``ports[i]`` is our RTP port for m-line ``i`` (ignored for port-0
    m-lines, which stay rejected). ``rtcp_ports[i]`` overrides the RTCP port (default RTP + 1,
    or the RTP port itself when multiplexing in an answer or under ``RtcpMux.REQUIRE``)."""

    address: str
    ports: Sequence[int]
    rtcp_ports: Sequence[int | None] | None = None
    answer: bool = False
    replace_origin: bool = False
    replace_session_connection: bool = False
    replace_zero_address: bool = False
    ice_remove: bool = False
    rtcp_mux: RtcpMux = RtcpMux.KEEP
    rtcp_attribute: bool = True
    full_rtcp_attribute: bool = False
    strip: Sequence[str] = ()
    mask: Sequence[str] = ()
    offer: Sequence[str] = ()
    transcode: Sequence[str | Codec] = ()
    ptime: int | None = None
    transport_protocol: str | None = None


@dataclass
class MediaRewrite:
    """What the codec options did to one m-line (payload types as in the rewritten SDP)."""

    index: int
    kept: list[Codec] = field(default_factory=list)  # offered by the sender and passed on
    added: list[Codec] = field(default_factory=list)  # put in for transcoding
    masked: list[Codec] = field(default_factory=list)  # hidden, still accepted from the sender
    stripped: list[Codec] = field(default_factory=list)  # removed and refused

    @property
    def accepted(self) -> list[Codec]:
        """Codecs the sender of the original SDP may still use towards us."""
        return [*self.kept, *self.masked]

    @property
    def transcoding(self) -> bool:
        return any(not c.is_auxiliary for c in self.added)


@dataclass
class Rewritten:
    sdp: SessionDescription
    media: list[MediaRewrite | None]  # None for m-lines with port 0 (rejected before or now)
    warnings: list[str] = field(default_factory=list)


def _specs(names: Sequence[str]) -> tuple[bool, list[CodecSpec]]:
    every = any(n.strip().lower() in _ALL for n in names)
    return every, [CodecSpec.parse(n) for n in names if n.strip().lower() not in _ALL]


def _any_match(specs: Sequence[CodecSpec], c: Codec) -> bool:
    return any(s.matches(c) for s in specs)


def _media_type(c: Codec) -> str:
    """audio or video: where a codec named in ``transcode`` may be added."""
    return "video" if c.name.lower() in _VIDEO or c.clock_rate == 90000 else "audio"


def _free_pt(c: Codec, used: set[int], reserved: frozenset[int] = frozenset()) -> int:
    # The static number of a static codec (RFC 3551 §6), else the number asked for, else the
    # first free dynamic one that no other requested codec asked for.
    static = next((p for p, s in STATIC_PAYLOAD_TYPES.items() if s.matches(c)), None)
    if static is not None and static not in used:
        return static
    if c.pt is not None and c.pt not in used:
        return c.pt
    pt = next((p for p in DYNAMIC_PAYLOAD_TYPES if p not in used and p not in reserved), None)
    if pt is None:
        raise ValueError("no free payload type left")
    return pt


def _codecs(
    m: MediaSection, index: int, opts: RewriteOptions, used: set[int], warnings: list[str]
) -> MediaRewrite:
    result = MediaRewrite(index)
    original = m.codecs()
    if not (opts.strip or opts.mask or opts.offer or opts.transcode):
        result.kept = original
        return result
    strip_all, strip = _specs(opts.strip)
    mask_all, mask = _specs(opts.mask)
    prefer = [CodecSpec.parse(n) for n in opts.offer]
    wanted = [t if isinstance(t, Codec) else CodecSpec.parse(t) for t in opts.transcode]
    # rtpengine: under strip=all / mask=all (not "full"), naming a present codec in transcode
    # restores it rather than adding a transcoded copy.
    restore = (
        [w for w in wanted if isinstance(w, CodecSpec)]
        if not any(n.strip().lower() == "full" for n in (*opts.strip, *opts.mask))
        else []
    )
    for c in original:
        if _any_match(strip, c):
            result.stripped.append(c)
        elif _any_match(mask, c):
            result.masked.append(c)
        elif _any_match(prefer, c) or _any_match(restore, c):
            result.kept.append(c)
        elif strip_all:
            result.stripped.append(c)
        elif mask_all:
            result.masked.append(c)
        else:
            result.kept.append(c)
    reserved = frozenset(w.pt for w in wanted if isinstance(w, Codec) and w.pt is not None)
    for w in wanted:
        if any(w.matches(k) for k in result.kept):
            continue  # already offered: no transcoding needed for it
        new = w if isinstance(w, Codec) else w.to_codec()
        if _media_type(new) != m.media.lower():
            continue
        pt = _free_pt(new, used, reserved)
        used.add(pt)
        result.added.append(new.with_pt(pt))
    _add_events(result, used)
    _drop_orphans(result, original)
    had_codec = any(not c.is_auxiliary for c in original)
    if had_codec and not any(not c.is_auxiliary for c in (*result.kept, *result.added)):
        warnings.append(f"m-line {index}: codec options would leave no codec; left unchanged")
        return MediaRewrite(index, kept=original)
    gone = [c.pt for c in (*result.stripped, *result.masked) if c.pt is not None]
    if gone:
        m.remove_formats(gone)
    if prefer:
        first = [str(c.pt) for s in prefer for c in result.kept if s.matches(c)]
        first = list(dict.fromkeys(first))
        m.formats = first + [f for f in m.formats if f not in first]
        result.kept.sort(key=lambda c: m.formats.index(str(c.pt)))
    for c in result.added:
        m.add_codec(c)
    return result


def _add_events(result: MediaRewrite, used: set[int]) -> None:
    # RFC 4733 §7.1.1: telephone-event is offered per clock rate; a codec added at a new clock
    # rate gets its own telephone-event, like the sender's.
    events = [c for c in result.kept if c.name.lower() == "telephone-event"]
    if not events:
        return
    rates = {c.clock_rate for c in (*result.kept, *result.added) if c.name.lower() == "telephone-event"}
    for c in list(result.added):
        if c.is_auxiliary or c.clock_rate in rates:
            continue
        ev = Codec(events[0].name, c.clock_rate, events[0].channels, events[0].fmtp)
        pt = _free_pt(ev, used)
        used.add(pt)
        result.added.append(ev.with_pt(pt))
        rates.add(c.clock_rate)


def _drop_orphans(result: MediaRewrite, original: Sequence[Codec]) -> None:
    # A telephone-event or CN whose clock rate lost its last codec (RFC 4733 §7.1.1, RFC 3389),
    # or an rtx whose apt codec went (RFC 4588 §8.1), goes with it: masked if its codec was
    # masked (the sender may still use the pair), else stripped.
    def rates(codecs: Sequence[Codec]) -> set[int]:
        return {c.clock_rate for c in codecs if not c.is_auxiliary}

    before, now = rates(original), rates([*result.kept, *result.added])
    masked_rates, masked_pts = rates(result.masked), {str(c.pt) for c in result.masked}
    gone_pts = {str(c.pt) for c in (*result.stripped, *result.masked)}
    for c in list(result.kept):
        name = c.name.lower()
        if name in ("telephone-event", "cn") and c.clock_rate in before and c.clock_rate not in now:
            masked = c.clock_rate in masked_rates
        elif name == "rtx" and (apt := parse_fmtp(c.fmtp or "").get("apt")) in gone_pts:
            masked = apt in masked_pts
        else:
            continue
        result.kept.remove(c)
        (result.masked if masked else result.stripped).append(c)


def rewrite(sd: SessionDescription, opts: RewriteOptions) -> Rewritten:
    """Anchor ``sd``'s media on ``opts.address`` and ``opts.ports``; ``sd`` itself is not changed."""
    if len(opts.ports) != len(sd.media):
        raise ValueError(f"{len(sd.media)} m-lines, {len(opts.ports)} ports given")
    if opts.rtcp_ports is not None and len(opts.rtcp_ports) != len(sd.media):
        raise ValueError(f"{len(sd.media)} m-lines, {len(opts.rtcp_ports)} RTCP ports given")
    out = sd.copy()
    warnings: list[str] = []
    ours = Connection.for_address(opts.address)

    if opts.replace_origin:
        o = out.origin
        out.origin = Origin(o.username, o.session_id, o.version, o.nettype, ours.addrtype, ours.address)

    # A zero address is an old-style hold (RFC 3264 §8.4) and passes through unless
    # replace_zero_address; with ICE it is only a placeholder (RFC 8840) and gets replaced.
    ice = [sd.uses_ice(i) for i in range(len(sd.media))]
    session_conn = out.connection
    session_zero = session_conn is not None and session_conn.is_zero and not any(ice)
    session_ours = False
    if (
        session_conn is not None
        and opts.replace_session_connection
        and (not session_zero or opts.replace_zero_address)
    ):
        out.set_connection(ours)
        session_ours = True

    if opts.ice_remove:
        out.remove_ice()

    used = {
        int(f) for m in out.media if m.is_rtp for f in m.formats if f.isascii() and f.isdigit() and len(f) < 4
    }
    plans: list[MediaRewrite | None] = []
    for i, m in enumerate(out.media):
        if m.rejected or opts.ports[i] == 0:
            m.port = 0  # §6 of RFC 3264: port zero rejects; nothing else to anchor
            plans.append(None)
            continue
        m.port = opts.ports[i]
        _anchor_connection(m, ours, opts.replace_zero_address or ice[i], session_ours, session_zero)
        if opts.transport_protocol is not None and opts.transport_protocol != m.proto:
            was_secure = m.is_secure
            m.proto = opts.transport_protocol
            if was_secure and not m.is_secure:
                m.remove_attributes(*_SECURITY_ATTRIBUTES)
        if not m.is_rtp:
            plans.append(MediaRewrite(i))
            continue
        plans.append(_codecs(m, i, opts, used, warnings))
        if opts.ptime is not None and m.media == "audio":
            m.set_attribute("ptime", str(opts.ptime))
        _anchor_rtcp(m, i, ours, opts)
    return Rewritten(out, plans, warnings)


def _anchor_connection(
    m: MediaSection, ours: Connection, replace_zero: bool, session_ours: bool, session_zero: bool
) -> None:
    # RFC 8866 §5.7: a media-level c= overrides the session's.
    own = m.connection
    if own is not None:
        if not own.is_zero or replace_zero:
            m.set_connection(ours)
    elif not session_ours and not (session_zero and not replace_zero):
        m.set_connection(ours)


def _anchor_rtcp(m: MediaSection, i: int, ours: Connection, opts: RewriteOptions) -> None:
    mux = {
        RtcpMux.KEEP: m.rtcp_mux,
        RtcpMux.OFFER: True,
        RtcpMux.REQUIRE: True,
        RtcpMux.REMOVE: False,
    }[opts.rtcp_mux]
    given = opts.rtcp_ports[i] if opts.rtcp_ports is not None else None
    if given is not None:
        port = given
    elif mux and (opts.answer or opts.rtcp_mux is RtcpMux.REQUIRE):
        port = m.port  # RFC 5761 §5.1.3: with mux agreed, RTCP shares the RTP port
    else:
        port = m.port + 1  # RFC 3605 §2.1; in an offer the fallback if mux is refused
    if opts.rtcp_attribute:
        addr = Rtcp(port, ours.address, ours.addrtype) if opts.full_rtcp_attribute else Rtcp(port)
        m.set_attribute("rtcp", str(addr))
    else:
        m.remove_attributes("rtcp")
    if mux and not m.rtcp_mux:
        m.add_attribute("rtcp-mux")
    elif not mux and m.rtcp_mux:
        m.remove_attributes("rtcp-mux")
