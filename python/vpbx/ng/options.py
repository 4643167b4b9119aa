"""Reading an NG request dictionary into typed :class:`Options`.

Key names follow the NG protocol document (section "offer Message" and the sections of the
other commands). As rtpengine does, a key may be written with spaces, hyphens or underscores
(``call-id``, ``received from``, ``record_call``) and in any case (``ICE``/``ice``); flags in
the ``flags`` list likewise (``trust-address`` = ``trust address``). Options that can also be
given as prefixed flags (``codec-strip-PCMA``, ``replace-origin``, ``rtcp-mux-demux``,
``SDES-off``...) are understood in both forms, and so is the ``rtpp-flags`` string form (see
:mod:`vpbx.ng.rtpp_flags`).

Nothing here raises on bad input: a value of the wrong type is treated as absent (with a
warning), an unknown flag or option value becomes a warning, and the command decides what is
required.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from vpbx.ng.backend import Latching
from vpbx.ng.bencode import Value
from vpbx.ng.rtpp_flags import parse_rtpp_flags
from vpbx.sdp import CodecSpec

__all__ = ["CodecOptions", "Options", "norm", "parse_options"]


def norm(text: str) -> str:
    """Canonical spelling of a key or flag: lower case, ``-``/``_`` read as spaces."""
    return " ".join(text.replace("-", " ").replace("_", " ").lower().split())


def _text(v: Value) -> str | None:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else None


# Flags that change what we do (canonical spelling -> Options attribute set to True).
_FLAGS: dict[str, str] = {
    "sip source address": "sip_source",
    "asymmetric": "asymmetric",
    "strict source": "strict_source",
    "media handover": "media_handover",
    "symmetric": "symmetric",
    "record call": "record_flag",
    "fatal": "fatal",
    "fast": "fast",
    "to tag": "to_tag_flag",
    "all": "all_flag",
    "pause": "pause_flag",
    "discard recording": "discard_recording",
    "no rtcp attribute": "no_rtcp_attribute",
    "full rtcp attribute": "full_rtcp_attribute",
    "force transcoding": "force_transcoding",
    "single codec": "single_codec",
    "reject ice": "reject_ice",
    "ice reject": "reject_ice",
    "webrtc": "webrtc",
}
# Flags that are accepted and need nothing from us: our defaults already behave so (symmetric
# RTP with latching, trusted SDP addresses, ports kept across re-offers), or they only tune
# rtpengine internals (kernel forwarding, logging, redis).
_HARMLESS = frozenset(
    {
        "trust address",
        "port latching",
        "no port latching",
        "debug",
        "debugging",
        "unidirectional",
        "provisional",
        "new branch",
        "directional",
        "no redis update",
        "loop protect",
        "allow transcoding",
        "allow asymmetric codecs",
        "asymmetric codecs",
        "symmetric codecs",
        "no codec renegotiation",
        "reuse codecs",
        "static codecs",
        "skip recording db",
        "no jitter buffer",
        "passthrough",
        "no passthrough",
        "recrypt",
        "pad crypto",
        "no tls id",
        "trickle ice",
    }
)
_ALWAYS_TRANSCODE = frozenset({"always transcode"})

_REPLACE = {
    "origin": "origin",
    "origin full": "origin",
    "session connection": "session connection",
    "zero address": "zero address",
    "sdp version": "sdp version",
    "force increment sdp ver": "force increment sdp ver",
    "username": "username",
    "session name": "session name",
}
_RTCP_MUX = frozenset({"offer", "require", "demux", "accept", "reject"})
_ICE = frozenset({"remove", "force", "default", "force relay", "optional", "trickle", "ice2"})
_CODEC_KEYS = ("strip", "offer", "transcode", "mask", "accept", "except", "consume", "ignore", "set")
_CODEC_FLAG_PREFIXES = {f"codec {k} ": k for k in _CODEC_KEYS} | {"transcode ": "transcode"}
_DTMF_CHARS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15


@dataclass
class CodecOptions:
    """The ``codec`` dictionary (section "Optionally included codec manipulations")."""

    strip: list[str] = field(default_factory=list)
    offer: list[str] = field(default_factory=list)
    transcode: list[str] = field(default_factory=list)
    mask: list[str] = field(default_factory=list)
    accept: list[str] = field(default_factory=list)
    except_: list[str] = field(default_factory=list)
    consume: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    set: list[str] = field(default_factory=list)

    def add(self, key: str, names: list[str]) -> None:
        getattr(self, "except_" if key == "except" else key).extend(names)


@dataclass
class Options:
    command: str | None = None
    call_id: str | None = None
    from_tag: str | None = None
    to_tag: str | None = None
    via_branch: str | None = None
    sdp: bytes | None = None
    label: str | None = None
    to_label: str | None = None
    set_label: str | None = None
    metadata: str | None = None
    # flags
    sip_source: bool = False
    asymmetric: bool = False
    symmetric: bool = False
    media_handover: bool = False
    strict_source: bool = False
    record_flag: bool = False
    fatal: bool = False
    fast: bool = False
    to_tag_flag: bool = False
    all_flag: bool = False
    pause_flag: bool = False
    discard_recording: bool = False
    no_rtcp_attribute: bool = False
    full_rtcp_attribute: bool = False
    force_transcoding: bool = False
    single_codec: bool = False
    reject_ice: bool = False
    webrtc: bool = False
    # valued options
    replace: set[str] = field(default_factory=set)
    rtcp_mux: set[str] = field(default_factory=set)
    ice: set[str] = field(default_factory=set)
    codec: CodecOptions = field(default_factory=CodecOptions)
    ptime: int | None = None
    ptime_reverse: int | None = None
    record_call: bool | None = None
    from_interface: str | None = None
    to_interface: str | None = None
    address_family: str | None = None
    media_address: str | None = None
    received_from: tuple[str, str] | None = None
    transport_protocol: str | None = None
    dtls: str | None = None
    sdes: list[str] = field(default_factory=list)
    osrtp: list[str] = field(default_factory=list)
    all: str | None = None
    limit: int | None = None
    pause: bool = False
    recording_file: str | None = None
    recording_dir: str | None = None
    recording_pattern: str | None = None
    file: str | None = None
    blob: bytes | None = None
    repeat_times: int | None = None
    repeat_duration: int | None = None
    start_pos: int | None = None
    code: int | None = None
    code_given: bool = False
    duration: int | None = None
    volume: int | None = None
    pause_ms: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def latching(self) -> Latching:
        """Per-request latching of the party's leg: ``asymmetric`` never latches, ``media
        handover`` re-latches at once; else symmetric (``asymmetric`` wins over ``symmetric``
        when both are given, as the more cautious)."""
        if self.asymmetric:
            return "asymmetric"
        return "handover" if self.media_handover else "symmetric"

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


class _Reader:
    """Typed access to the request with canonical key names (the first spelling given wins)."""

    def __init__(self, doc: dict[bytes, Value], opts: Options) -> None:
        self.d: dict[str, Value] = {}
        for k, v in doc.items():
            self.d.setdefault(norm(k.decode("utf-8", "surrogateescape")), v)
        self.o = opts

    def has(self, key: str) -> bool:
        return key in self.d

    def get_str(self, *keys: str) -> str | None:
        for key in keys:
            v = self.d.get(key)
            if v is None:
                continue
            if isinstance(v, int):
                return str(v)
            t = _text(v)
            if t is None:
                self.o.warn(f"'{key}' should be a string; ignored")
                continue
            return t
        return None

    def get_bytes(self, key: str) -> bytes | None:
        v = self.d.get(key)
        if v is None or isinstance(v, bytes):
            return v
        self.o.warn(f"'{key}' should be a string; ignored")
        return None

    def get_int(self, *keys: str) -> int | None:
        for key in keys:
            v = self.d.get(key)
            if v is None:
                continue
            if isinstance(v, int):
                return v
            t = _text(v)
            if t is not None and t.strip().lstrip("-").isdigit() and t.strip().isascii():
                return int(t.strip())
            self.o.warn(f"'{key}' should be an integer; ignored")
        return None

    def strings(self, key: str) -> list[str]:
        """A list of strings; a single string counts as a list of one."""
        v = self.d.get(key)
        if v is None:
            return []
        if isinstance(v, bytes):
            return [_text(v) or ""]
        if isinstance(v, list):
            out = [t for t in (_text(x) for x in v) if t is not None]
            if len(out) != len(v):
                self.o.warn(f"'{key}' should list strings; other items ignored")
            return out
        self.o.warn(f"'{key}' should be a list of strings; ignored")
        return []


def _codec_names(opts: Options, key: str, names: list[str]) -> list[str]:
    # Codec names as given in the lists; the special words pass; the rest must parse.
    out = []
    for name in names:
        low = name.strip().lower()
        if low in ("all", "full", "any"):
            out.append(low)
            continue
        try:
            spec = CodecSpec.parse(name)
            if key == "transcode" and spec.pt is None:
                spec.to_codec()
        except ValueError as e:
            opts.warn(f"codec-{key}: {e}; ignored")
            continue
        out.append(name.strip())
    return out


def _flag(opts: Options, raw: str) -> None:
    f = norm(raw)
    if not f:
        return
    attr = _FLAGS.get(f)
    if attr is not None:
        setattr(opts, attr, True)
        return
    if f in _HARMLESS:
        return
    if f in _ALWAYS_TRANSCODE:
        opts.codec.accept.append("all")
        return
    low = raw.lower()
    for prefix, key in _CODEC_FLAG_PREFIXES.items():
        p = prefix.replace(" ", "-")
        if low.startswith(p) and len(raw) > len(p):
            # rtpengine lets "--" stand for "=" inside flag values
            opts.codec.add(key, _codec_names(opts, key, [raw[len(p) :].replace("--", "=")]))
            return
    for prefix, handler in (
        ("replace-", _replace),
        ("rtcp-mux-", _rtcp_mux),
        ("ice-", _ice),
        ("sdes-", _sdes),
        ("osrtp-", _osrtp),
    ):
        if low.startswith(prefix) and len(raw) > len(prefix):
            handler(opts, raw[len(prefix) :])
            return
    opts.warn(f"Unknown flag encountered: '{raw}'")


def _replace(opts: Options, value: str) -> None:
    r = _REPLACE.get(norm(value))
    if r is None:
        opts.warn(f"Unknown replace value '{value}'")
    else:
        opts.replace.add(r)


def _rtcp_mux(opts: Options, value: str) -> None:
    v = norm(value)
    if v in _RTCP_MUX:
        opts.rtcp_mux.add(v)
    else:
        opts.warn(f"Unknown rtcp-mux value '{value}'")


def _ice(opts: Options, value: str) -> None:
    v = norm(value)
    if v in _ICE or v.startswith("lite"):
        opts.ice.add(v)
    elif v == "reject":
        opts.reject_ice = True
    else:
        opts.warn(f"Unknown ICE value '{value}'")


def _sdes(opts: Options, value: str) -> None:
    opts.sdes.append(value)


def _osrtp(opts: Options, value: str) -> None:
    opts.osrtp.append(value)


def _yes_no(opts: Options, key: str, value: str | None) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("yes", "on", "true", "1"):
        return True
    if v in ("no", "off", "false", "0"):
        return False
    opts.warn(f"'{key}' should be yes/no/on/off, not '{value}'; ignored")
    return None


def _dtmf_code(opts: Options, r: _Reader) -> None:
    v = r.d.get("code", r.d.get("digit"))
    if v is None:
        return
    opts.code_given = True
    if isinstance(v, int):
        opts.code = v if 0 <= v <= 15 else -1
        return
    t = (_text(v) or "").strip().upper()
    if len(t) == 1 and t in _DTMF_CHARS:
        opts.code = _DTMF_CHARS.index(t)
    elif t.isascii() and t.isdigit() and int(t) <= 15:
        opts.code = int(t)
    else:
        opts.code = -1


def parse_options(doc: dict[bytes, Value]) -> Options:
    """Read every option we know from a request dictionary."""
    opts = Options()
    r = _Reader(doc, opts)
    _merge_rtpp_flags(r, opts)
    opts.command = r.get_str("command")
    opts.call_id = r.get_str("call id")
    opts.from_tag = r.get_str("from tag")
    opts.to_tag = r.get_str("to tag")
    opts.via_branch = r.get_str("via branch")
    opts.sdp = r.get_bytes("sdp")
    opts.label = r.get_str("label", "from label")
    opts.to_label = r.get_str("to label")
    opts.set_label = r.get_str("set label")
    opts.metadata = r.get_str("metadata")
    for f in r.strings("flags"):
        _flag(opts, f)
    for v in r.strings("replace"):
        _replace(opts, v)
    for v in r.strings("rtcp mux"):
        _rtcp_mux(opts, v)
    for v in r.strings("ice"):
        _ice(opts, v)
    codec = r.d.get("codec")
    if isinstance(codec, dict):
        for ck, cv in codec.items():
            key = norm(ck.decode("utf-8", "surrogateescape"))
            if key not in _CODEC_KEYS:
                opts.warn(f"Unknown codec option '{key}'")
                continue
            names: list[str] = []
            if isinstance(cv, bytes):
                names = [_text(cv) or ""]
            elif isinstance(cv, list):
                names = [t for t in map(_text, cv) if t]
            else:
                opts.warn(f"codec-{key} should be a list of codecs; ignored")
            opts.codec.add(key, _codec_names(opts, key, names))
    elif codec is not None:
        opts.warn("'codec' should be a dictionary; ignored")
    opts.ptime = r.get_int("ptime")
    opts.ptime_reverse = r.get_int("ptime reverse", "reverse ptime")
    opts.record_call = _yes_no(opts, "record call", r.get_str("record call"))
    direction = r.strings("direction")
    if direction:
        opts.from_interface = direction[0] or None
        opts.to_interface = direction[1] if len(direction) > 1 and direction[1] else None
    opts.from_interface = r.get_str("from interface") or opts.from_interface
    opts.to_interface = r.get_str("to interface") or opts.to_interface
    interface = r.get_str("interface")
    if interface is not None and opts.from_interface is None:
        opts.from_interface = opts.to_interface = interface
    family = r.get_str("address family")
    if family is not None:
        fam = family.strip().upper()
        if fam in ("IP4", "IP6"):
            opts.address_family = fam
        else:
            opts.warn(f"'address family' should be IP4 or IP6, not '{family}'; ignored")
    opts.media_address = r.get_str("media address")
    received = r.strings("received from")
    if len(received) == 2:
        opts.received_from = (received[0].upper(), received[1])
    elif r.has("received from"):
        opts.warn("'received from' should be a list of an address family and an address; ignored")
    opts.transport_protocol = r.get_str("transport protocol")
    opts.dtls = r.get_str("dtls")
    opts.sdes += r.strings("sdes")
    opts.osrtp += r.strings("osrtp")
    opts.all = r.get_str("all") if isinstance(r.d.get("all"), bytes) else None
    opts.limit = r.get_int("limit")
    pause = r.d.get("pause")
    if isinstance(pause, bytes):
        opts.pause = bool(_yes_no(opts, "pause", _text(pause)))
    opts.recording_file = r.get_str(
        "recording file", "output file", "output destination", "recording destination"
    )
    opts.recording_dir = r.get_str("recording dir", "recording directory", "recording path", "output dir")
    opts.recording_pattern = r.get_str("recording pattern", "output pattern")
    opts.file = r.get_str("file")
    opts.blob = r.get_bytes("blob")
    b64 = r.get_bytes("blob64")
    if b64 is not None and opts.blob is None:
        try:
            opts.blob = base64.b64decode(b64, validate=False)
        except (binascii.Error, ValueError):
            opts.warn("'blob64' is not valid base64; ignored")
    opts.repeat_times = r.get_int("repeat times")
    opts.repeat_duration = r.get_int("repeat duration")
    opts.start_pos = r.get_int("start pos")
    _dtmf_code(opts, r)
    opts.duration = r.get_int("duration")
    opts.volume = r.get_int("volume")
    opts.pause_ms = pause if isinstance(pause, int) else None
    if opts.webrtc:
        # The WebRTC shortcut (section "flags"): SAVPF with ICE and rtcp-mux required.
        opts.transport_protocol = opts.transport_protocol or "UDP/TLS/RTP/SAVPF"
        opts.ice.add("force")
        opts.rtcp_mux |= {"offer", "require"}
        opts.no_rtcp_attribute = True
    return opts


def _merge_rtpp_flags(r: _Reader, opts: Options) -> None:
    # The string form of the options (``rtpp-flags``): explicit keys win, flags add up.
    text = r.get_str("rtpp flags")
    if text is None:
        return
    try:
        parsed = parse_rtpp_flags(text)
    except ValueError as e:
        opts.warn(f"rtpp-flags: {e}; ignored")
        return
    for k, v in parsed.items():
        key = norm(k.decode("utf-8", "surrogateescape"))
        if key == "flags" and isinstance(v, list):
            old = r.d.get("flags")
            r.d["flags"] = (old if isinstance(old, list) else []) + v
        else:
            r.d.setdefault(key, v)
