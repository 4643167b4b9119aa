"""SDP session descriptions (RFC 8866, formerly RFC 4566): parse, inspect, edit, serialize.

Nothing is lost: every line is kept, in order, exactly as written (unknown line types and
unknown attributes included), so an edit changes only the lines it means to, and
``serialize(parse(x)) == x`` for canonical input (CRLF line ends). The m= line is the one
exception: it is held as fields and written back with single spaces.

Parsing is liberal where that is harmless (LF-only or CR-only line ends, blank lines, trailing
whitespace, missing s= or t=) and strict where a wrong reading would mislead: v=, o=, c=, m= and
the rtpmap, fmtp and rtcp attributes are checked, and a bad one raises :class:`SdpError` with
its 1-based line number. Bytes that are not UTF-8 are kept as they are (surrogate escapes), so
an odd charset (RFC 8866 §6.10) survives a round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from vpbx.sdp.fields import (
    _DIRECTIONS,
    ICE_ATTRIBUTES,
    KNOWN_CODECS,
    STATIC_PAYLOAD_TYPES,
    Codec,
    Connection,
    Direction,
    Line,
    Origin,
    Rtcp,
    SdpError,
    _is_uint,
    _parse_rtpmap,
    _show,
    _uint,
    known_codec,
    parse_fmtp,
)

__all__ = [
    "ICE_ATTRIBUTES",
    "KNOWN_CODECS",
    "STATIC_PAYLOAD_TYPES",
    "Codec",
    "Connection",
    "Direction",
    "Line",
    "MediaSection",
    "Origin",
    "Rtcp",
    "SdpError",
    "SessionDescription",
    "known_codec",
    "parse",
    "parse_fmtp",
    "serialize",
]

_NEWLINE = re.compile(r"\r\n|\r|\n")


# ---------------------------------------------------------------------------------------------
# Sections


class _Lines:
    """Attribute helpers shared by the session part and media sections (RFC 8866 §5.13)."""

    lines: list[Line]

    def values(self, type_: str) -> list[str]:
        """The values of every ``<type>=`` line here (``"i"``, ``"b"``, ``"k"``...), in order."""
        return [ln.value for ln in self.lines if ln.type == type_]

    @property
    def bandwidths(self) -> dict[str, int]:
        """``b=<bwtype>:<bandwidth>`` lines (RFC 8866 §5.8; TIAS per RFC 3890), e.g.
        ``{"AS": 64}``; unreadable ones are skipped (they are kept in the text all the same)."""
        out: dict[str, int] = {}
        for value in self.values("b"):
            kind, _, amount = value.strip().partition(":")
            if kind and _is_uint(amount):
                out.setdefault(kind, int(amount))
        return out

    def attributes(self, name: str) -> list[str]:
        """Values of every ``a=<name>`` line here, in order ("" for property attributes)."""
        return [ln.value.partition(":")[2] for ln in self.lines if ln.is_attr(name)]

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=<name>`` line here, or None."""
        for ln in self.lines:
            if ln.is_attr(name):
                return ln.value.partition(":")[2]
        return None

    def has_attribute(self, name: str) -> bool:
        return any(ln.is_attr(name) for ln in self.lines)

    def add_attribute(self, name: str, value: str | None = None) -> None:
        """Append ``a=<name>[:<value>]`` after the last line of this part."""
        self.lines.append(Line.attribute(name, value))

    def set_attribute(self, name: str, value: str | None = None) -> None:
        """Rewrite the first ``a=<name>`` line in place (dropping repeats) or append one."""
        new = Line.attribute(name, value)
        out: list[Line] = []
        done = False
        for ln in self.lines:
            if ln.is_attr(name):
                if not done:
                    out.append(new)
                    done = True
                continue
            out.append(ln)
        if not done:
            out.append(new)
        self.lines = out

    def remove_attributes(self, *names: str) -> int:
        """Drop every ``a=`` line with one of these names; returns how many went."""
        wanted = {n.lower() for n in names}
        keep = [
            ln for ln in self.lines if not (ln.type == "a" and (ln.attr_name or "").strip().lower() in wanted)
        ]
        removed = len(self.lines) - len(keep)
        self.lines = keep
        return removed

    @property
    def direction(self) -> Direction | None:
        """The direction attribute written here, if any (the last one wins if several)."""
        found = None
        for ln in self.lines:
            if ln.type == "a" and ln.value.strip().lower() in _DIRECTIONS:
                found = Direction(ln.value.strip().lower())
        return found

    def set_direction(self, direction: Direction | None) -> None:
        """Write the direction in place of the existing one (or append it); None removes it."""
        out: list[Line] = []
        done = direction is None
        for ln in self.lines:
            if ln.type == "a" and ln.value.strip().lower() in _DIRECTIONS:
                if not done:
                    out.append(Line.attribute(str(direction)))
                    done = True
                continue
            out.append(ln)
        if not done:
            out.append(Line.attribute(str(direction)))
        self.lines = out

    @property
    def connections(self) -> list[Connection]:
        return [Connection.parse(ln.value) for ln in self.lines if ln.type == "c"]

    @property
    def connection(self) -> Connection | None:
        """The (first) c= line of this part."""
        for ln in self.lines:
            if ln.type == "c":
                return Connection.parse(ln.value)
        return None

    def set_connection(self, conn: Connection | None) -> None:
        """Rewrite the first c= line in place, insert one where RFC 8866 §5 puts it, or remove."""
        idx = next((i for i, ln in enumerate(self.lines) if ln.type == "c"), None)
        if conn is None:
            self.lines = [ln for ln in self.lines if ln.type != "c"]
        elif idx is not None:
            self.lines[idx] = Line("c", str(conn))
        else:
            self.lines.insert(self._connection_slot(), Line("c", str(conn)))

    def _connection_slot(self) -> int:
        raise NotImplementedError

    def remove_ice(self) -> int:
        """Remove every ICE attribute here (rtpengine's ICE=remove); returns how many went."""
        return self.remove_attributes(*ICE_ATTRIBUTES)


@dataclass
class MediaSection(_Lines):
    """An ``m=<media> <port>[/<count>] <proto> <fmt> ...`` line and the lines after it (§5.14)."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    lines: list[Line] = field(default_factory=list)

    def _connection_slot(self) -> int:
        # media-level order is i c b k a: after any i= line
        i = 0
        while i < len(self.lines) and self.lines[i].type == "i":
            i += 1
        return i

    @property
    def m_value(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return " ".join([self.media, port, self.proto, *self.formats])

    @property
    def is_rtp(self) -> bool:
        """RTP/AVP, RTP/SAVP, RTP/AVPF, UDP/TLS/RTP/SAVPF, TCP/RTP/AVP...: formats are payload types."""
        return "RTP" in self.proto.upper().split("/")

    @property
    def is_secure(self) -> bool:
        """SRTP profiles (RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF): keys via crypto or DTLS."""
        return "SAVP" in self.proto.upper()

    @property
    def rejected(self) -> bool:
        """Port zero: the stream is rejected or removed (RFC 3264 §6, §8.2)."""
        return self.port == 0

    @property
    def payload_types(self) -> list[int]:
        """The RTP payload types on the m= line, in order, each once (written in plain decimal)."""
        if not self.is_rtp:
            return []
        pts = (int(f) for f in self.formats if _is_uint(f) and str(int(f)) == f and int(f) <= 127)
        return list(dict.fromkeys(pts))

    def _codec_lines(self) -> tuple[dict[int, Codec], dict[str, str]]:
        # One pass: rtpmap by payload type (the first wins) and fmtp parameters by format.
        maps: dict[int, Codec] = {}
        fmtps: dict[str, str] = {}
        for ln in self.lines:
            if ln.type != "a":
                continue
            name, _, value = ln.value.partition(":")
            name = name.lower()
            if name == "rtpmap":
                c = _parse_rtpmap(value, None)
                if c.pt is not None:
                    maps.setdefault(c.pt, c)
            elif name == "fmtp":
                token, _, params = value.partition(" ")
                fmtps.setdefault(token, params.strip())
        return maps, fmtps

    def fmtp(self, fmt: int | str) -> str | None:
        """The parameters of ``a=fmtp:<fmt> <params>``, or None (RFC 8866 §6.15)."""
        return self._codec_lines()[1].get(str(fmt))

    def codec(self, pt: int) -> Codec | None:
        """The codec behind payload type ``pt``: its rtpmap, else the RFC 3551 static entry."""
        maps, fmtps = self._codec_lines()
        base = maps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
        if base is None:
            return None
        return Codec(base.name, base.clock_rate, base.channels, fmtps.get(str(pt)), pt)

    def codecs(self) -> list[Codec]:
        """The m= line's payload types as codecs, in its order; formats without a mapping (no
        rtpmap, not static) are left out, as they are from every codec operation."""
        if not self.is_rtp:
            return []
        maps, fmtps = self._codec_lines()
        out = []
        for pt in self.payload_types:
            base = maps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if base is not None:
                out.append(Codec(base.name, base.clock_rate, base.channels, fmtps.get(str(pt)), pt))
        return out

    def _ms_attribute(self, name: str) -> int | None:
        value = self.attribute(name)
        if value is None:
            return None
        m = re.fullmatch(r"\s*([0-9]{1,9})(?:\.[0-9]*)?\s*", value)
        return int(m.group(1)) if m else None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (RFC 8866 §6.4); None if absent or unreadable."""
        return self._ms_attribute("ptime")

    @property
    def maxptime(self) -> int | None:
        """``a=maxptime`` in milliseconds (RFC 8866 §6.5)."""
        return self._ms_attribute("maxptime")

    @property
    def rtcp(self) -> Rtcp | None:
        """``a=rtcp`` (RFC 3605); without it RTCP goes to the RTP port + 1."""
        value = self.attribute("rtcp")
        return None if value is None else Rtcp.parse(value)

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux`` present (RFC 5761 §5.1.1)."""
        return self.has_attribute("rtcp-mux")

    @property
    def mid(self) -> str | None:
        return self.attribute("mid")

    @property
    def candidates(self) -> list[str]:
        return self.attributes("candidate")

    @property
    def ice_ufrag(self) -> str | None:
        return self.attribute("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        return self.attribute("ice-pwd")

    @property
    def crypto(self) -> list[str]:
        """SDES keys (RFC 4568), as written."""
        return self.attributes("crypto")

    @property
    def fingerprint(self) -> str | None:
        """DTLS certificate fingerprint (RFC 8122)."""
        return self.attribute("fingerprint")

    @property
    def setup(self) -> str | None:
        """DTLS/TCP role (RFC 4145): actpass, active, passive, holdconn."""
        return self.attribute("setup")

    # -- editing formats --------------------------------------------------------------------

    def remove_formats(self, formats: Iterable[int | str]) -> None:
        """Drop formats from the m= line with their rtpmap, fmtp and rtcp-fb (RFC 4585) lines."""
        drop = {str(f) for f in formats}
        self.formats = [f for f in self.formats if f not in drop]

        def tied(ln: Line) -> bool:
            if ln.type != "a":
                return False
            name, _, value = ln.value.partition(":")
            return name.lower() in ("rtpmap", "fmtp", "rtcp-fb") and value.partition(" ")[0] in drop

        self.lines = [ln for ln in self.lines if not tied(ln)]

    def add_codec(self, codec: Codec, position: int | None = None) -> None:
        """Add a numbered codec to the m= line (at ``position``, default the end) with its
        rtpmap and fmtp lines, placed after the existing rtpmap/fmtp/rtcp-fb lines."""
        if codec.pt is None:
            raise ValueError(f"codec {codec} has no payload type")
        if str(codec.pt) in self.formats:
            raise ValueError(f"payload type {codec.pt} is already in use")
        if position is None:
            self.formats.append(str(codec.pt))
        else:
            self.formats.insert(position, str(codec.pt))
        new = [Line.attribute("rtpmap", f"{codec.pt} {codec.encoding}")]
        if codec.fmtp is not None:
            new.append(Line.attribute("fmtp", f"{codec.pt} {codec.fmtp}"))
        at = self._codec_slot()
        self.lines[at:at] = new

    def _codec_slot(self) -> int:
        last = None
        for i, ln in enumerate(self.lines):
            if ln.type == "a" and (ln.attr_name or "").lower() in ("rtpmap", "fmtp", "rtcp-fb"):
                last = i
        if last is not None:
            return last + 1
        return next((i for i, ln in enumerate(self.lines) if ln.type == "a"), len(self.lines))

    def set_codecs(self, codecs: Iterable[Codec]) -> None:
        """Replace the RTP formats with these numbered codecs (other lines stay as they are)."""
        self.remove_formats(list(self.formats))
        for c in codecs:
            self.add_codec(c)

    def copy(self) -> MediaSection:
        return replace(self, formats=list(self.formats), lines=list(self.lines))


@dataclass
class SessionDescription(_Lines):
    """A whole SDP body: the session-level lines (from v= on) and the media sections."""

    lines: list[Line]
    media: list[MediaSection] = field(default_factory=list)

    @classmethod
    def new(
        cls,
        origin: Origin,
        *,
        session_name: str = "-",
        connection: Connection | None = None,
        timing: str = "0 0",
    ) -> SessionDescription:
        """A fresh description: v=, o=, s=, optional c=, t= (RFC 8866 §5 order)."""
        lines = [Line("v", "0"), Line("o", str(origin)), Line("s", session_name)]
        if connection is not None:
            lines.append(Line("c", str(connection)))
        lines.append(Line("t", timing))
        return cls(lines)

    def _connection_slot(self) -> int:
        # session-level order is v o s i u e p c b t r z k a: after the last of v..p
        last = -1
        for i, ln in enumerate(self.lines):
            if ln.type in "vosiuep":
                last = i
        return last + 1

    @property
    def origin(self) -> Origin:
        for ln in self.lines:
            if ln.type == "o":
                return Origin.parse(ln.value)
        raise SdpError("missing o= line")

    @origin.setter
    def origin(self, origin: Origin) -> None:
        for i, ln in enumerate(self.lines):
            if ln.type == "o":
                self.lines[i] = Line("o", str(origin))
                return
        self.lines.insert(1, Line("o", str(origin)))

    @property
    def session_name(self) -> str | None:
        return next((ln.value for ln in self.lines if ln.type == "s"), None)

    @property
    def timing(self) -> list[str]:
        """The t= values (``"0 0"`` for an unbounded session); may be empty if t= was left out."""
        return [ln.value for ln in self.lines if ln.type == "t"]

    def media_direction(self, index: int) -> Direction:
        """Effective direction of media ``index``: its own attribute, else the session-level one,
        else sendrecv (RFC 8866 §6.7, RFC 3264 §5.1)."""
        return self.media[index].direction or self.direction or Direction.SENDRECV

    def media_connection(self, index: int) -> Connection | None:
        """Effective connection of media ``index``: its own c= line, else the session's (§5.7)."""
        return self.media[index].connection or self.connection

    def uses_ice(self, index: int) -> bool:
        """Whether media ``index`` carries ICE credentials (RFC 8839 §5.4), here or at session level.
        With ICE, c=IN IP4 0.0.0.0 and port 9 are placeholders (RFC 8840), not a hold."""
        return self.media[index].has_attribute("ice-ufrag") or self.has_attribute("ice-ufrag")

    def remove_ice(self) -> int:
        """Remove ICE attributes at session level and in every media section."""
        return super().remove_ice() + sum(m.remove_ice() for m in self.media)

    def copy(self) -> SessionDescription:
        return SessionDescription(list(self.lines), [m.copy() for m in self.media])

    def to_text(self) -> str:
        out = [str(ln) for ln in self.lines]
        for m in self.media:
            out.append("m=" + m.m_value)
            out.extend(str(ln) for ln in m.lines)
        return "\r\n".join(out) + "\r\n"

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        return self.to_text()


# ---------------------------------------------------------------------------------------------
# Parser


def _parse_m(value: str, line: int) -> MediaSection:
    # m=<media> <port>[/<number of ports>] <proto> <fmt> ... (§5.14). A port-zero section may
    # come with no format at all from sloppy writers; accept that.
    f = value.split()
    if len(f) < 3:
        raise SdpError(f"m= needs <media> <port> <proto> <fmt>...: {_show(value)}", line)
    port_text, _, count_text = f[1].partition("/")
    port = _uint(port_text, "m= port", line, 65535)
    count = _uint(count_text, "m= number of ports", line, 65535) if count_text else None
    if count == 0:
        raise SdpError("m= number of ports is zero", line)
    return MediaSection(f[0], port, f[2], f[3:], count)


def _check_attribute(ln: Line, line: int) -> None:
    name, _, value = ln.value.partition(":")
    name = name.lower()
    if name == "rtpmap":
        _parse_rtpmap(value, line)
    elif name == "fmtp":
        if not value.partition(" ")[0]:
            raise SdpError("fmtp needs a format", line)
    elif name == "rtcp":
        Rtcp.parse(value, line)


def parse(data: bytes | str) -> SessionDescription:
    """Parse an SDP body. Raises :class:`SdpError` (with ``.line``) for malformed input."""
    if isinstance(data, bytes | bytearray | memoryview):
        text = bytes(data).decode("utf-8", "surrogateescape")
    else:
        text = data
        try:
            text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise SdpError("text holds characters that cannot be encoded") from None
    session: list[Line] = []
    media: list[MediaSection] = []
    target = session
    first: int | None = None
    origin_line: int | None = None
    for no, raw in enumerate(_NEWLINE.split(text), start=1):
        if not raw.strip(" \t"):
            continue  # blank lines (typically a trailing one) carry nothing
        if len(raw) < 2 or raw[1] != "=" or not ("a" <= raw[0] <= "z"):
            raise SdpError(f"not a <type>=<value> line: {_show(raw)}", no)
        ln = Line(raw[0], raw[2:])
        if first is None:
            if ln.type != "v":
                raise SdpError("missing v= line: an SDP body starts with v=0", no)
            if ln.value.strip() != "0":
                raise SdpError(f"unsupported SDP version {_show(ln.value)}", no)
            first = no
        elif ln.type == "v":
            raise SdpError("a second v= line", no)
        elif ln.type == "o":
            if media or origin_line is not None:
                raise SdpError("o= must appear once, at session level", no)
            Origin.parse(ln.value, no)
            origin_line = no
        elif ln.type == "c":
            Connection.parse(ln.value, no)
        elif ln.type == "a":
            _check_attribute(ln, no)
        elif ln.type == "m":
            media.append(_parse_m(ln.value, no))
            target = media[-1].lines
            continue
        target.append(ln)
    if first is None:
        raise SdpError("empty session description (missing v= line)", 1)
    if origin_line is None:
        raise SdpError("missing o= line", first + 1)
    return SessionDescription(session, media)


def serialize(sd: SessionDescription) -> bytes:
    """The SDP body as bytes with CRLF line ends (RFC 8866 §5)."""
    return sd.to_bytes()
