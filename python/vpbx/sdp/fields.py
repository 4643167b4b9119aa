"""Line-level SDP values (RFC 8866 §5): lines, origin, connection, directions, codecs, RTCP.

These are the typed readings of single lines that :mod:`vpbx.sdp.model` hands out. Each parser
raises :class:`SdpError` with the line number when given one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = [
    "ICE_ATTRIBUTES",
    "KNOWN_CODECS",
    "STATIC_PAYLOAD_TYPES",
    "Codec",
    "Connection",
    "Direction",
    "Line",
    "Origin",
    "Rtcp",
    "SdpError",
    "known_codec",
    "parse_fmtp",
]


class SdpError(ValueError):
    """Malformed SDP. ``line`` is the 1-based line number, or None when no one line is at fault."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"SDP line {line}: {reason}" if line is not None else f"SDP: {reason}")
        self.reason = reason
        self.line = line


_DIGITS = re.compile(r"[0-9]{1,64}")  # ASCII only: int() would also accept '١٢', ' 1' or '1_0'


def _uint(text: str, what: str, line: int | None, maximum: int | None = None) -> int:
    if _DIGITS.fullmatch(text) is None:
        raise SdpError(f"{what} is not a number: {_show(text)}", line)
    n = int(text)
    if maximum is not None and n > maximum:
        raise SdpError(f"{what} out of range: {n}", line)
    return n


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _is_uint(text: str) -> bool:
    return _DIGITS.fullmatch(text) is not None


# ---------------------------------------------------------------------------------------------
# Small value types


@dataclass(frozen=True, slots=True)
class Line:
    """One ``<type>=<value>`` line as written (RFC 8866 §5); ``value`` excludes the line end."""

    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}={self.value}"

    @classmethod
    def attribute(cls, name: str, value: str | None = None) -> Line:
        """``a=<name>`` (property attribute) or ``a=<name>:<value>`` (value attribute), §5.13."""
        return cls("a", name if value is None else f"{name}:{value}")

    @property
    def attr_name(self) -> str | None:
        """The attribute name of an a= line (None for other lines)."""
        if self.type != "a":
            return None
        return self.value.partition(":")[0]

    @property
    def attr_value(self) -> str | None:
        """The attribute value of an a= line; "" for a property attribute like ``a=sendrecv``."""
        if self.type != "a":
            return None
        return self.value.partition(":")[2]

    def is_attr(self, name: str) -> bool:
        """True for an a= line of this name (names compared case-insensitively)."""
        if self.type != "a":
            return False
        v, n = self.value, len(name)
        if len(v) > n and v[n] != ":" and v[n:].strip():
            return False  # a longer name; trailing whitespace after a property attribute is fine
        return len(v) >= n and v[:n].lower() == name.lower()


class Direction(StrEnum):
    """Media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1), from the SDP writer's view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reverse(self) -> Direction:
        """The same stream seen from the other end: sendonly <-> recvonly (RFC 3264 §6.1)."""
        return Direction.of(self.receives, self.sends)


_DIRECTIONS = frozenset(d.value for d in Direction)

#: Attributes of ICE (RFC 8839 §5) and its extensions; ``remove_ice`` drops all of them.
ICE_ATTRIBUTES = frozenset(
    {
        "candidate",
        "remote-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
        "end-of-candidates",
    }
)

# Formats that ride along with a real codec rather than carrying the media themselves:
# RFC 4733 events, RFC 3389 comfort noise, RFC 4588 retransmission, RFC 2198 redundancy, FEC.
_AUXILIARY = frozenset({"telephone-event", "cn", "rtx", "red", "ulpfec", "flexfec"})


@dataclass(frozen=True, slots=True)
class Codec:
    """A payload format: ``a=rtpmap:<pt> <name>/<clock_rate>[/<channels>]`` plus its fmtp.

    ``channels`` is the encoding parameter as written (None when omitted, which for audio
    means one channel, RFC 8866 §6.6). ``pt`` is None for a capability not yet numbered.
    Codecs match by name (case-insensitive, RFC 4855 §3), clock rate and channel count.
    """

    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None
    pt: int | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.name.lower(), self.clock_rate, self.channels or 1)

    def matches(self, other: Codec) -> bool:
        return self.key == other.key

    @property
    def is_auxiliary(self) -> bool:
        """telephone-event, CN, rtx, red, FEC: negotiated alongside a real codec."""
        return self.name.lower() in _AUXILIARY

    @property
    def encoding(self) -> str:
        """The rtpmap text after the payload type: ``PCMU/8000``, ``opus/48000/2``."""
        tail = "" if self.channels is None else f"/{self.channels}"
        return f"{self.name}/{self.clock_rate}{tail}"

    def with_pt(self, pt: int) -> Codec:
        return replace(self, pt=pt)

    def __str__(self) -> str:
        return self.encoding if self.pt is None else f"{self.pt} {self.encoding}"


#: RFC 3551 §6 (tables 4 and 5): payload types with an implicit rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, Codec] = {
    pt: Codec(name, rate, ch, None, pt)
    for pt, name, rate, ch in (
        (0, "PCMU", 8000, None),
        (3, "GSM", 8000, None),
        (4, "G723", 8000, None),
        (5, "DVI4", 8000, None),
        (6, "DVI4", 16000, None),
        (7, "LPC", 8000, None),
        (8, "PCMA", 8000, None),
        (9, "G722", 8000, None),  # 8000 is the RTP clock rate, not the sampling rate (§4.5.2)
        (10, "L16", 44100, 2),
        (11, "L16", 44100, None),
        (12, "QCELP", 8000, None),
        (13, "CN", 8000, None),
        (14, "MPA", 90000, None),
        (15, "G728", 8000, None),
        (16, "DVI4", 11025, None),
        (17, "DVI4", 22050, None),
        (18, "G729", 8000, None),
        (25, "CelB", 90000, None),
        (26, "JPEG", 90000, None),
        (28, "nv", 90000, None),
        (31, "H261", 90000, None),
        (32, "MPV", 90000, None),
        (33, "MP2T", 90000, None),
        (34, "H263", 90000, None),
    )
}

#: Usual defaults for codecs asked for by name only (e.g. "opus" in a codec-transcode list).
KNOWN_CODECS: dict[str, Codec] = {
    c.name.lower(): c
    for c in (
        *(STATIC_PAYLOAD_TYPES[pt] for pt in (0, 3, 8, 9, 13, 18)),
        Codec("opus", 48000, 2, "useinbandfec=1"),  # RFC 7587 §7: always /48000/2
        Codec("telephone-event", 8000, None, "0-16"),  # RFC 4733 §7.1.1
        Codec("iLBC", 8000, None, "mode=30"),  # RFC 3952
        Codec("speex", 8000),
        Codec("AMR", 8000, None, "octet-align=1"),  # RFC 4867
        Codec("AMR-WB", 16000, None, "octet-align=1"),
        Codec("G726-32", 8000),
        Codec("L16", 8000),
        Codec("H264", 90000, None, "packetization-mode=1"),  # RFC 6184
        Codec("VP8", 90000),
        Codec("VP9", 90000),
    )
}


def known_codec(name: str, clock_rate: int | None = None, channels: int | None = None) -> Codec | None:
    """A codec from :data:`KNOWN_CODECS` by name, optionally at another clock rate or channel count."""
    base = KNOWN_CODECS.get(name.lower())
    if base is None:
        if clock_rate is None:
            return None
        return Codec(name, clock_rate, channels)
    if clock_rate is not None and clock_rate != base.clock_rate:
        base = replace(base, clock_rate=clock_rate, pt=None)
    if channels is not None:
        base = replace(base, channels=channels)
    return base


def parse_fmtp(params: str) -> dict[str, str]:
    """``"minptime=10;useinbandfec=1"`` -> ``{"minptime": "10", "useinbandfec": "1"}``.

    Parameters without ``=`` (as in telephone-event's ``0-16``) map to "". Names are lowercased.
    """
    out: dict[str, str] = {}
    for part in params.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`` (§5.2)."""

    username: str
    session_id: int
    version: int
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> Origin:
        f = value.split()
        if len(f) != 6:
            raise SdpError(f"o= needs 6 fields, got {len(f)}", line)
        sid = _uint(f[1], "o= session id", line)
        ver = _uint(f[2], "o= session version", line)
        return cls(f[0], sid, ver, f[3], f[4], f[5])

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} {self.nettype} {self.addrtype} {self.address}"
        )


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`` (§5.7). The address may be a name."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4 <address>`` or ``IN IP6 <address>`` depending on the address."""
        return cls(address, _addrtype(address))

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> Connection:
        f = value.split()
        if len(f) != 3:
            raise SdpError(f"c= needs 3 fields, got {len(f)}", line)
        nettype, addrtype, address = f
        ttl = count = None
        if addrtype.upper() in ("IP4", "IP6") and "/" in address:
            address, *rest = address.split("/")
            nums = [_uint(r, "c= multicast ttl/count", line) for r in rest]
            if addrtype.upper() == "IP4" and len(nums) <= 2:
                ttl, count = nums[0], (nums[1] if len(nums) == 2 else None)
            elif addrtype.upper() == "IP6" and len(nums) == 1:
                count = nums[0]
            else:
                raise SdpError(f"c= bad multicast suffix: {_show(value)}", line)
        if not address:
            raise SdpError("c= has an empty address", line)
        return cls(address, addrtype, nettype, ttl, count)

    @property
    def is_zero(self) -> bool:
        """The old hold address (RFC 3264 §8.4): 0.0.0.0, or :: for IPv6."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        suffix = "".join(f"/{n}" for n in (self.ttl, self.count) if n is not None)
        return f"{self.nettype} {self.addrtype} {self.address}{suffix}"


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""

    port: int
    address: str | None = None
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> Rtcp:
        f = value.split()
        if len(f) not in (1, 4):
            raise SdpError(f"a=rtcp needs a port and optionally an address: {_show(value)}", line)
        port = _uint(f[0], "a=rtcp port", line, 65535)
        if len(f) == 1:
            return cls(port)
        return cls(port, f[3], f[2], f[1])

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype} {self.addrtype} {self.address}"


def _parse_rtpmap(value: str, line: int | None) -> Codec:
    # a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>] (§6.6)
    pt_text, _, enc = value.strip().partition(" ")
    pt = _uint(pt_text, "rtpmap payload type", line, 127)
    parts = enc.strip().split("/")
    if len(parts) not in (2, 3) or not parts[0]:
        raise SdpError(f"rtpmap needs <name>/<clock rate>[/<channels>]: {_show(value)}", line)
    rate = _uint(parts[1], "rtpmap clock rate", line)
    channels = _uint(parts[2], "rtpmap channels", line) if len(parts) == 3 else None
    return Codec(parts[0], rate, channels, None, pt)
