"""SDP model (RFC 8866): real-world-like bodies round-trip exactly; typed accessors read them right."""

from __future__ import annotations

import pytest

from vpbx.sdp import (
    Codec,
    Connection,
    Direction,
    Line,
    MediaSection,
    Origin,
    Rtcp,
    SdpError,
    SessionDescription,
    known_codec,
    parse,
    parse_fmtp,
    serialize,
)


def crlf(text: str) -> bytes:
    """Test bodies are written one line per source line; the wire form uses CRLF."""
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n")).encode()


# Modelled on what each user agent sends (addresses from documentation ranges).
ASTERISK = crlf("""
v=0
o=- 1183186437 1183186437 IN IP4 192.0.2.10
s=Asterisk
c=IN IP4 192.0.2.10
t=0 0
m=audio 14330 RTP/AVP 0 8 9 3 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

FREESWITCH_SRTP = crlf("""
v=0
o=FreeSWITCH 1706081234 1706081235 IN IP4 203.0.113.5
s=FreeSWITCH
c=IN IP4 203.0.113.5
t=0 0
m=audio 20590 RTP/SAVP 102 9 0 8 100 101 13
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:R3F1aWNrIGJyb3duIGZveCBqdW1wcyBvdmVyIHRo
a=rtpmap:102 opus/48000/2
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:100 telephone-event/48000
a=fmtp:100 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
a=sendrecv
a=rtcp:20591 IN IP4 203.0.113.5
""")

LINPHONE_ICE_VIDEO = crlf("""
v=0
o=alice 2260 3178 IN IP4 192.168.0.20
s=Talk
c=IN IP4 192.168.0.20
t=0 0
a=ice-pwd:31ec21eb38b2ec6d36e8dc7b
a=ice-ufrag:7d64dcb5
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=candidate:1 1 UDP 2130706431 192.168.0.20 7078 typ host
a=candidate:1 2 UDP 2130706430 192.168.0.20 7079 typ host
a=candidate:2 1 UDP 1694498815 198.51.100.7 7078 typ srflx raddr 192.168.0.20 rport 7078
a=candidate:2 2 UDP 1694498814 198.51.100.7 7079 typ srflx raddr 192.168.0.20 rport 7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=rtcp:9079
a=candidate:1 1 UDP 2130706431 192.168.0.20 9078 typ host
a=candidate:1 2 UDP 2130706430 192.168.0.20 9079 typ host
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 ccm fir
""")

BARESIP = crlf("""
v=0
o=- 1472431045 3029466183 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 10228 RTP/AVP 96 0 8 101
b=AS:134
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:1449203041 cname:baresip@10.0.0.5
a=rtcp-rsize
a=rtcp-mux
""")

CHROME_WEBRTC = crlf("""
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1 2
a=extmap-allow-mixed
a=msid-semantic: WMS stream1
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
a=ice-options:trickle
a=fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=msid:stream1 track1
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6
a=ssrc:3570614608 msid:stream1 track1
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
a=ice-options:trickle
a=fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB
a=setup:actpass
a=mid:1
a=sendrecv
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=rtcp-fb:102 nack pli
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
a=ssrc-group:FID 1111 2222
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
a=fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB
a=setup:actpass
a=mid:2
a=sctp-port:5000
a=max-message-size:262144
a=end-of-candidates
""")

CISCO_VIDEO_REJECTED = crlf("""
v=0
o=Cisco-SIPUA 24365 0 IN IP4 10.10.10.50
s=SIP Call
t=0 0
m=audio 25950 RTP/AVP 0 8 18 9 101
c=IN IP4 10.10.10.50
b=TIAS:64000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
m=video 0 RTP/AVP 126 97
a=rtpmap:126 H264/90000
a=rtpmap:97 H264/90000
""")

IPV6 = crlf("""
v=0
o=bob 2808844564 2808844564 IN IP6 2001:db8::2
s=-
c=IN IP6 2001:db8::2
t=0 0
m=audio 49172 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:49173 IN IP6 2001:db8::2
a=ptime:20
""")

# Every session-level field of RFC 8866 §5, multicast, a media-level c= and unknown lines.
ALL_FIELDS = crlf("""
v=0
o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1
s=Call to John Smith
i=SDP Offer #1
u=http://www.jdoe.example.com/home.html
e=Jane Doe <jane@jdoe.example.com>
p=+1 617 555-6011
c=IN IP4 233.252.0.1/127/3
b=CT:128
t=2873397496 2873404696
r=604800 3600 0 90000
z=2882844526 -1h 2898848070 0
k=clear:secret
x=an unknown line type
a=recvonly
a=tool:some tool 1.0
m=audio 49170/2 RTP/AVP 0
i=main audio
m=audio 49180 RTP/AVP 0
a=x-unknown-attribute:with:colons
m=video 51372 RTP/AVP 99
c=IN IP6 2001:db8::2
a=rtpmap:99 h263-1998/90000
""")

# RFC 8866 §5.3 recommends "s= " (with the space) when there is no name.
EMPTY_SESSION_NAME = crlf("""
v=0
o=- 0 0 IN IP4 192.0.2.1
s=-
t=0 0
m=audio 5004 RTP/AVP 0
""").replace(b"s=-", b"s= ")

SAMPLES = {
    "asterisk": ASTERISK,
    "freeswitch-srtp": FREESWITCH_SRTP,
    "linphone-ice-video": LINPHONE_ICE_VIDEO,
    "baresip": BARESIP,
    "chrome-webrtc": CHROME_WEBRTC,
    "cisco-video-rejected": CISCO_VIDEO_REJECTED,
    "ipv6": IPV6,
    "all-fields": ALL_FIELDS,
    "empty-session-name": EMPTY_SESSION_NAME,
}


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_round_trip_exactly(name: str) -> None:
    wire = SAMPLES[name]
    sd = parse(wire)
    assert serialize(sd) == wire
    assert sd.to_text() == wire.decode()
    assert parse(wire.decode()) == sd  # str input parses the same


@pytest.mark.parametrize("name", SAMPLES)
def test_copy_is_deep_enough(name: str) -> None:
    sd = parse(SAMPLES[name])
    c = sd.copy()
    c.media[0].port = 1
    c.media[0].add_attribute("x-test")
    c.lines.append(Line("a", "x-test"))
    assert serialize(sd) == SAMPLES[name]


def test_session_fields() -> None:
    sd = parse(ALL_FIELDS)
    assert sd.origin == Origin("jdoe", 3724394400, 3724394405, "IN", "IP4", "198.51.100.1")
    assert sd.session_name == "Call to John Smith"
    assert sd.connection == Connection("233.252.0.1", "IP4", "IN", ttl=127, count=3)
    assert str(sd.connection) == "IN IP4 233.252.0.1/127/3"
    assert sd.timing == ["2873397496 2873404696"]
    assert sd.direction is Direction.RECVONLY
    assert [ln.type for ln in sd.lines] == list("vosiuepcbtrzkxaa")
    assert sd.attribute("tool") == "some tool 1.0"
    m0, m1, m2 = sd.media
    assert (m0.media, m0.port, m0.port_count, m0.proto, m0.formats) == ("audio", 49170, 2, "RTP/AVP", ["0"])
    assert m0.lines == [Line("i", "main audio")]
    assert m1.attribute("x-unknown-attribute") == "with:colons"
    # session-level recvonly is the default for every media without its own (§6.7)
    assert [sd.media_direction(i) for i in range(3)] == [Direction.RECVONLY] * 3
    assert sd.media_connection(2) == Connection("2001:db8::2", "IP6")
    assert sd.media_connection(0) == sd.connection
    assert m2.codecs() == [Codec("h263-1998", 90000, None, None, 99)]


def test_asterisk_codecs_and_attributes() -> None:
    m = parse(ASTERISK).media[0]
    assert [str(c) for c in m.codecs()] == [
        "0 PCMU/8000",
        "8 PCMA/8000",
        "9 G722/8000",
        "3 GSM/8000",
        "101 telephone-event/8000",
    ]
    assert m.fmtp(101) == "0-16"
    assert m.codec(101) == Codec("telephone-event", 8000, None, "0-16", 101)
    assert (m.ptime, m.maxptime) == (20, 150)
    assert m.direction is Direction.SENDRECV
    assert m.rtcp is None and not m.rtcp_mux
    assert m.is_rtp and not m.is_secure and not m.rejected
    assert m.payload_types == [0, 8, 9, 3, 101]


def test_static_payload_types_need_no_rtpmap() -> None:
    # RFC 3551 §6: 0 PCMU, 3 GSM, 4 G723, 8 PCMA, 9 G722, 18 G729 are implicit.
    sd = parse(
        crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 5004 RTP/AVP 0 3 4 8 9 18 13 96
a=fmtp:18 annexb=no
""")
    )
    got = [(c.pt, c.name, c.clock_rate, c.fmtp) for c in sd.media[0].codecs()]
    assert got == [
        (0, "PCMU", 8000, None),
        (3, "GSM", 8000, None),
        (4, "G723", 8000, None),
        (8, "PCMA", 8000, None),
        (9, "G722", 8000, None),
        (18, "G729", 8000, "annexb=no"),
        (13, "CN", 8000, None),
    ]  # 96 has no rtpmap: not a codec we can name, but it stays on the m= line
    assert sd.media[0].formats[-1] == "96"


def test_explicit_rtpmap_overrides_static_table() -> None:
    sd = parse(
        crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
t=0 0
m=audio 5004 RTP/AVP 0
a=rtpmap:0 pcmu/8000
""")
    )
    assert sd.media[0].codecs() == [Codec("pcmu", 8000, None, None, 0)]
    assert sd.media[0].codecs()[0].matches(Codec("PCMU", 8000))  # names are case-insensitive


def test_freeswitch_srtp() -> None:
    sd = parse(FREESWITCH_SRTP)
    m = sd.media[0]
    assert m.is_secure and m.proto == "RTP/SAVP"
    assert len(m.crypto) == 2 and m.crypto[0].startswith("1 AES_CM_128_HMAC_SHA1_80 inline:")
    assert m.rtcp == Rtcp(20591, "203.0.113.5", "IP4", "IN")
    opus = m.codec(102)
    assert opus is not None and (opus.name, opus.clock_rate, opus.channels) == ("opus", 48000, 2)
    assert parse_fmtp(opus.fmtp or "")["useinbandfec"] == "1"
    assert parse_fmtp(opus.fmtp or "")["minptime"] == "10"
    events = [c for c in m.codecs() if c.name == "telephone-event"]
    assert [(c.pt, c.clock_rate) for c in events] == [(100, 48000), (101, 8000)]


def test_linphone_ice_and_video() -> None:
    sd = parse(LINPHONE_ICE_VIDEO)
    assert sd.attribute("ice-ufrag") == "7d64dcb5"
    audio, video = sd.media
    assert len(audio.candidates) == 4
    assert audio.rtcp == Rtcp(7079)
    assert audio.codec(18) == Codec("G729", 8000, None, "annexb=yes", 18)
    assert [c.name for c in video.codecs()] == ["VP8", "H264"]
    assert video.fmtp(97) == "profile-level-id=42801F"
    assert sd.uses_ice(0) and sd.uses_ice(1)  # session-level credentials
    assert sd.remove_ice() == 2 + 4 + 2
    assert sd.attribute("ice-ufrag") is None and audio.candidates == [] and video.candidates == []
    assert sd.attribute("rtcp-xr") is not None  # everything else stays


def test_chrome_webrtc() -> None:
    sd = parse(CHROME_WEBRTC)
    audio, video, data = sd.media
    assert audio.proto == "UDP/TLS/RTP/SAVPF" and audio.is_rtp and audio.is_secure
    assert audio.rtcp_mux and audio.mid == "0"
    assert audio.ice_ufrag == "EsAw" and audio.ice_pwd == "bP+XJMM09aR8AiX1jdukzR6Y"
    assert audio.fingerprint is not None and audio.fingerprint.startswith("sha-1 4A:AD")
    assert audio.setup == "actpass"
    assert audio.rtcp == Rtcp(9, "0.0.0.0", "IP4", "IN")
    assert audio.codec(63) == Codec("red", 48000, 2, "111/111", 63)
    assert video.codec(97) == Codec("rtx", 90000, None, "apt=96", 97)
    assert sd.attribute("msid-semantic") == " WMS stream1"
    assert not data.is_rtp and data.codecs() == [] and data.formats == ["webrtc-datachannel"]
    assert data.attribute("sctp-port") == "5000"
    assert sd.connection is None and sd.media_connection(0) == Connection("0.0.0.0")


def test_rejected_video_and_media_level_connection() -> None:
    sd = parse(CISCO_VIDEO_REJECTED)
    assert sd.connection is None
    assert sd.media_connection(0) == Connection("10.10.10.50")
    assert sd.media[1].rejected and sd.media_connection(1) is None
    assert sd.media[0].lines[1] == Line("b", "TIAS:64000")


def test_ipv6() -> None:
    sd = parse(IPV6)
    assert sd.origin.addrtype == "IP6" and sd.origin.address == "2001:db8::2"
    assert sd.connection == Connection("2001:db8::2", "IP6")
    assert sd.media[0].rtcp == Rtcp(49173, "2001:db8::2", "IP6")
    assert str(Connection("ff15::101", "IP6", count=3)) == "IN IP6 ff15::101/3"
    assert Connection.parse("IN IP6 ff15::101/3") == Connection("ff15::101", "IP6", count=3)


def test_generic_line_values_and_bandwidth() -> None:
    sd = parse(ALL_FIELDS)
    assert sd.values("k") == ["clear:secret"] and sd.values("x") == ["an unknown line type"]
    assert sd.bandwidths == {"CT": 128}
    assert parse(CISCO_VIDEO_REJECTED).media[0].bandwidths == {"TIAS": 64000}
    assert parse(BARESIP).media[0].bandwidths == {"AS": 134}
    odd = parse(BARESIP.replace(b"b=AS:134", b"b=AS:lots"))
    assert odd.media[0].bandwidths == {} and odd.media[0].values("b") == ["AS:lots"]


def test_empty_session_name_keeps_its_space() -> None:
    assert parse(EMPTY_SESSION_NAME).session_name == " "


# -- liberal parsing -------------------------------------------------------------------------


def test_lf_only_cr_only_blank_lines_and_trailing_whitespace() -> None:
    canonical = parse(ASTERISK)
    lf = ASTERISK.replace(b"\r\n", b"\n")
    assert serialize(parse(lf)) == ASTERISK
    assert serialize(parse(ASTERISK.replace(b"\r\n", b"\r"))) == ASTERISK
    assert parse(b"\n\n" + lf + b"\n\n\n") == canonical
    m_line = b"m=audio 14330 RTP/AVP 0 8 9 3 101"
    trailing = ASTERISK.replace(m_line, m_line.replace(b" ", b"  ") + b"  \t")
    assert parse(trailing).media == canonical.media  # the m= line is re-spaced canonically
    # trailing whitespace elsewhere is harmless and kept as it was
    spaced = ASTERISK.replace(b"a=ptime:20", b"a=ptime:20 ").replace(b"a=sendrecv", b"a=sendrecv \t")
    sd = parse(spaced)
    assert sd.media[0].ptime == 20 and sd.media[0].direction is Direction.SENDRECV
    assert sd.media[0].has_attribute("sendrecv") and not sd.media[0].has_attribute("send")
    assert serialize(sd) == spaced


def test_missing_s_and_t_lines_are_tolerated() -> None:
    sd = parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 5004 RTP/AVP 0\r\n")
    assert sd.session_name is None and sd.timing == []
    assert sd.media[0].codecs()[0].name == "PCMU"


def test_non_utf8_bytes_survive() -> None:
    wire = ASTERISK.replace(b"s=Asterisk", b"s=Caf\xe9 \xff")
    sd = parse(wire)
    assert serialize(sd) == wire


def test_format_without_port_zero_formats() -> None:
    sd = parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP\r\n")
    assert sd.media[0].rejected and sd.media[0].formats == []


# -- malformed input: SdpError with the line number -------------------------------------------

BAD = [
    (b"", 1, "empty"),
    (b"\r\n\r\n", 1, "empty"),
    (b"o=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n", 1, "missing v="),
    (b"v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n", 1, "version"),
    (b"v=0\r\ns=-\r\nt=0 0\r\n", 2, "missing o="),
    (b"v=0\r\no=- 1 1 IN IP4\r\n", 2, "o= needs 6 fields"),
    (b"v=0\r\no=- abc 1 IN IP4 192.0.2.1\r\n", 2, "session id"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\no=- 1 1 IN IP4 a\r\n", 3, "once"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nv=0\r\n", 3, "second v="),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4\r\n", 4, "c= needs 3 fields"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4 233.252.0.1/x\r\n", 3, "multicast"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 5004\r\n", 5, "m= needs"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio abc RTP/AVP 0\r\n", 5, "port is not a number"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n", 5, "port out of range"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 5004/0 RTP/AVP 0\r\n", 5, "number of ports"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 96\r\na=rtpmap:96 opus\r\n", 4, "rtpmap needs"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 96\r\na=rtpmap:x opus/1\r\n", 4, "payload type"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 96\r\na=rtpmap:200 opus/1\r\n", 4, "payload type"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 96\r\na=rtpmap:96 opus/fast\r\n", 4, "clock rate"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 96\r\na=fmtp:\r\n", 4, "fmtp"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 0\r\na=rtcp:port\r\n", 4, "rtcp port"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 0\r\na=rtcp:5 IN IP4\r\n", 4, "a=rtcp"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 0\r\no=- 1 1 IN IP4 a\r\n", 4, "once"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\ngarbage\r\n", 3, "not a <type>=<value> line"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\nA=uppercase\r\n", 3, "not a <type>=<value> line"),
    (b"v=0\r\no=- 1 1 IN IP4 a\r\n a=leading space\r\n", 3, "not a <type>=<value> line"),
    (b"v=0\r\no=- \xd9\xa1 1 IN IP4 a\r\n", 2, "session id"),  # Arabic-Indic digit one
]


@pytest.mark.parametrize(("wire", "line", "words"), BAD)
def test_malformed_input_names_the_line(wire: bytes, line: int, words: str) -> None:
    with pytest.raises(SdpError) as err:
        parse(wire)
    assert err.value.line == line
    assert words in str(err.value)
    assert f"line {line}" in str(err.value)


def test_sdp_error_is_a_value_error() -> None:
    assert issubclass(SdpError, ValueError)


# -- editing ---------------------------------------------------------------------------------


def test_set_connection_in_place_or_inserted_where_rfc_puts_it() -> None:
    sd = parse(CISCO_VIDEO_REJECTED)
    sd.set_connection(Connection.for_address("2001:db8::9"))
    assert [ln.type for ln in sd.lines] == ["v", "o", "s", "c", "t"]
    assert sd.lines[3] == Line("c", "IN IP6 2001:db8::9")
    m = MediaSection("audio", 5, "RTP/AVP", ["0"], lines=[Line("i", "x"), Line("a", "sendrecv")])
    m.set_connection(Connection.for_address("192.0.2.7"))
    assert [str(ln) for ln in m.lines] == ["i=x", "c=IN IP4 192.0.2.7", "a=sendrecv"]
    m.set_connection(Connection.for_address("192.0.2.8"))
    assert [str(ln) for ln in m.lines] == ["i=x", "c=IN IP4 192.0.2.8", "a=sendrecv"]
    m.set_connection(None)
    assert [str(ln) for ln in m.lines] == ["i=x", "a=sendrecv"]


def test_direction_edits() -> None:
    sd = parse(ASTERISK)
    m = sd.media[0]
    m.set_direction(Direction.SENDONLY)
    assert m.lines[-1] == Line("a", "sendonly") and len(m.lines) == 9
    m.set_direction(None)
    assert m.direction is None and sd.media_direction(0) is Direction.SENDRECV
    m.set_direction(Direction.INACTIVE)
    assert m.lines[-1] == Line("a", "inactive")
    assert Direction.SENDONLY.reverse() is Direction.RECVONLY
    assert Direction.INACTIVE.reverse() is Direction.INACTIVE
    assert Direction.of(sends=True, receives=False) is Direction.SENDONLY


def test_remove_formats_takes_their_lines_along() -> None:
    sd = parse(CHROME_WEBRTC)
    video = sd.media[1]
    video.remove_formats(["96", "97"])
    assert video.formats == ["102", "103"]
    gone = ("rtpmap:96", "rtcp-fb:96", "fmtp:97", "rtpmap:97")
    assert not any(ln.value.startswith(gone) for ln in video.lines)
    assert video.has_attribute("ssrc-group")


def test_add_codec_goes_after_existing_codec_lines() -> None:
    sd = parse(ASTERISK)
    m = sd.media[0]
    m.add_codec(Codec("opus", 48000, 2, "useinbandfec=1", 96))
    assert m.formats[-1] == "96"
    text = [str(ln) for ln in m.lines]
    at = text.index("a=fmtp:101 0-16")
    assert text[at + 1 : at + 3] == ["a=rtpmap:96 opus/48000/2", "a=fmtp:96 useinbandfec=1"]
    with pytest.raises(ValueError, match="already in use"):
        m.add_codec(Codec("opus", 48000, 2, None, 96))
    with pytest.raises(ValueError, match="no payload type"):
        m.add_codec(Codec("opus", 48000, 2))


def test_set_codecs_replaces_formats_only() -> None:
    sd = parse(ASTERISK)
    m = sd.media[0]
    m.set_codecs([Codec("PCMA", 8000, None, None, 8), Codec("telephone-event", 8000, None, "0-15", 101)])
    assert m.m_value == "audio 14330 RTP/AVP 8 101"
    assert [str(ln) for ln in m.lines] == [
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=maxptime:150",
        "a=sendrecv",
    ]


def test_attribute_helpers() -> None:
    sd = parse(BARESIP)
    m = sd.media[0]
    assert m.attributes("rtpmap") == ["96 opus/48000/2", "101 telephone-event/8000"]
    assert m.has_attribute("RTCP-MUX")  # attribute names compare case-insensitively
    m.set_attribute("ptime", "40")
    assert m.ptime == 40 and m.lines[-1] == Line("a", "ptime:40")
    m.set_attribute("label", "2")
    assert m.attributes("label") == ["2"] and m.lines[6] == Line("a", "label:2")
    assert m.remove_attributes("ssrc", "rtcp-rsize") == 2
    assert Line("c", "IN IP4 x").attr_name is None


def test_new_description_and_origin_setter() -> None:
    origin = Origin("-", 5, 6, "IN", "IP4", "192.0.2.1")
    sd = SessionDescription.new(origin, connection=Connection("192.0.2.1"))
    assert sd.to_text() == "v=0\r\no=- 5 6 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    sd.origin = Origin("-", 5, 7, "IN", "IP4", "192.0.2.1")
    assert sd.lines[1] == Line("o", "- 5 7 IN IP4 192.0.2.1")


def test_known_codecs() -> None:
    opus = known_codec("OPUS")
    assert opus is not None and opus.encoding == "opus/48000/2"
    assert known_codec("telephone-event", 48000) == Codec("telephone-event", 48000, None, "0-16")
    assert known_codec("nonexistent") is None
    assert known_codec("x-codec", 16000) == Codec("x-codec", 16000)


def test_parse_fmtp() -> None:
    assert parse_fmtp("minptime=10; useinbandfec=1") == {"minptime": "10", "useinbandfec": "1"}
    assert parse_fmtp("0-16") == {"0-16": ""}
    assert parse_fmtp("") == {}
