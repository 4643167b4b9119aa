"""Media-anchoring rewrite: each test states exactly which lines change; the rest stays byte for byte."""

from __future__ import annotations

import difflib
from typing import Any

import pytest

from vpbx.sdp import (
    Codec,
    CodecSpec,
    RewriteOptions,
    RtcpMux,
    SessionDescription,
    parse,
    rewrite,
    serialize,
)


def sdp(text: str) -> bytes:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n")).encode()


def changes(before: bytes, after: SessionDescription) -> list[str]:
    """The removed (-) and added (+) lines: for each changed block, its old lines then its new."""
    a = before.decode().split("\r\n")
    b = serialize(after).decode().split("\r\n")
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            out += [f"- {x}" for x in a[i1:i2]] + [f"+ {x}" for x in b[j1:j2]]
    return out


ASTERISK = sdp("""
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

PUBLIC = "203.0.113.1"


def opts(n: int = 1, **kw: Any) -> RewriteOptions:
    return RewriteOptions(PUBLIC, [30000 + 2 * i for i in range(n)], **kw)


def test_default_anchoring_touches_port_media_connection_and_rtcp_only() -> None:
    out = rewrite(parse(ASTERISK), opts())
    assert changes(ASTERISK, out.sdp) == [
        "- m=audio 14330 RTP/AVP 0 8 9 3 101",
        "+ m=audio 30000 RTP/AVP 0 8 9 3 101",
        "+ c=IN IP4 203.0.113.1",  # media-level c= overrides the session's (RFC 8866 §5.7)
        "+ a=rtcp:30001",  # RFC 3605
    ]
    assert serialize(parse(ASTERISK)) == ASTERISK  # the input is not modified
    plan = out.media[0]
    assert plan is not None and not plan.transcoding and plan.stripped == [] and len(plan.kept) == 5
    assert out.warnings == []


def test_replace_origin_and_session_connection() -> None:
    out = rewrite(parse(ASTERISK), opts(replace_origin=True, replace_session_connection=True))
    assert changes(ASTERISK, out.sdp) == [
        "- o=- 1183186437 1183186437 IN IP4 192.0.2.10",
        "+ o=- 1183186437 1183186437 IN IP4 203.0.113.1",
        "- c=IN IP4 192.0.2.10",
        "+ c=IN IP4 203.0.113.1",
        "- m=audio 14330 RTP/AVP 0 8 9 3 101",
        "+ m=audio 30000 RTP/AVP 0 8 9 3 101",
        "+ a=rtcp:30001",
    ]


CISCO = sdp("""
v=0
o=Cisco-SIPUA 24365 0 IN IP4 10.10.10.50
s=SIP Call
t=0 0
m=audio 25950 RTP/AVP 0 8 18 101
c=IN IP4 10.10.10.50
b=TIAS:64000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
m=video 0 RTP/AVP 126
a=rtpmap:126 H264/90000
""")


def test_media_level_connection_replaced_in_place_rejected_stream_untouched() -> None:
    out = rewrite(parse(CISCO), opts(2, full_rtcp_attribute=True))
    assert changes(CISCO, out.sdp) == [
        "- m=audio 25950 RTP/AVP 0 8 18 101",
        "- c=IN IP4 10.10.10.50",
        "+ m=audio 30000 RTP/AVP 0 8 18 101",
        "+ c=IN IP4 203.0.113.1",
        "+ a=rtcp:30001 IN IP4 203.0.113.1",
    ]
    assert out.media[1] is None


IPV6 = sdp("""
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


def test_ipv6_to_ipv4_bridging_rewrites_address_family() -> None:
    out = rewrite(parse(IPV6), opts(replace_session_connection=True, replace_origin=True))
    assert changes(IPV6, out.sdp) == [
        "- o=bob 2808844564 2808844564 IN IP6 2001:db8::2",
        "+ o=bob 2808844564 2808844564 IN IP4 203.0.113.1",
        "- c=IN IP6 2001:db8::2",
        "+ c=IN IP4 203.0.113.1",
        "- m=audio 49172 RTP/AVP 8 101",
        "+ m=audio 30000 RTP/AVP 8 101",
        "- a=rtcp:49173 IN IP6 2001:db8::2",
        "+ a=rtcp:30001",  # replaced in place
    ]
    v6 = rewrite(parse(ASTERISK), RewriteOptions("2001:db8::99", [30000], replace_session_connection=True))
    assert v6.sdp.connection is not None and str(v6.sdp.connection) == "IN IP6 2001:db8::99"


LINPHONE = sdp("""
v=0
o=alice 2260 3178 IN IP4 192.168.0.20
s=Talk
c=IN IP4 192.168.0.20
t=0 0
a=ice-pwd:31ec21eb38b2ec6d36e8dc7b
a=ice-ufrag:7d64dcb5
a=record:off
m=audio 7078 RTP/AVP 96 0 8 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:101 telephone-event/48000
a=rtcp:7079
a=candidate:1 1 UDP 2130706431 192.168.0.20 7078 typ host
a=candidate:1 2 UDP 2130706430 192.168.0.20 7079 typ host
a=candidate:2 1 UDP 1694498815 198.51.100.7 7078 typ srflx raddr 192.168.0.20 rport 7078
a=rtcp-fb:* trr-int 1000
""")


def test_ice_remove() -> None:
    out = rewrite(parse(LINPHONE), opts(ice_remove=True, replace_session_connection=True))
    assert changes(LINPHONE, out.sdp) == [
        "- c=IN IP4 192.168.0.20",
        "+ c=IN IP4 203.0.113.1",
        "- a=ice-pwd:31ec21eb38b2ec6d36e8dc7b",
        "- a=ice-ufrag:7d64dcb5",
        "- m=audio 7078 RTP/AVP 96 0 8 101",
        "+ m=audio 30000 RTP/AVP 96 0 8 101",
        "- a=rtcp:7079",
        "- a=candidate:1 1 UDP 2130706431 192.168.0.20 7078 typ host",
        "- a=candidate:1 2 UDP 2130706430 192.168.0.20 7079 typ host",
        "- a=candidate:2 1 UDP 1694498815 198.51.100.7 7078 typ srflx raddr 192.168.0.20 rport 7078",
        "+ a=rtcp:30001",  # in place of a=rtcp:7079; the candidates after it are gone
    ]
    kept = rewrite(parse(LINPHONE), opts())
    assert kept.sdp.media[0].candidates == parse(LINPHONE).media[0].candidates  # ICE kept unless asked


CHROME = sdp("""
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
m=audio 9 UDP/TLS/RTP/SAVPF 111 110
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
a=fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:110 telephone-event/48000
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
a=mid:1
a=sctp-port:5000
""")


def test_webrtc_offer_keeps_dtls_and_mux_replaces_ice_placeholder_address() -> None:
    out = rewrite(parse(CHROME), opts(2))
    assert changes(CHROME, out.sdp) == [
        "- m=audio 9 UDP/TLS/RTP/SAVPF 111 110",
        "- c=IN IP4 0.0.0.0",
        "- a=rtcp:9 IN IP4 0.0.0.0",
        "+ m=audio 30000 UDP/TLS/RTP/SAVPF 111 110",
        "+ c=IN IP4 203.0.113.1",  # 0.0.0.0 with ICE is a placeholder (RFC 8840), not a hold
        "+ a=rtcp:30001",  # an offer still names a fallback RTCP port (RFC 5761 §5.1.1)
        "- m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "- c=IN IP4 0.0.0.0",
        "+ m=application 30002 UDP/DTLS/SCTP webrtc-datachannel",
        "+ c=IN IP4 203.0.113.1",
    ]
    required = rewrite(parse(CHROME), opts(2, rtcp_mux=RtcpMux.REQUIRE)).sdp
    assert required.media[0].attribute("rtcp") == "30000"
    answered = rewrite(parse(CHROME), opts(2, answer=True)).sdp
    assert answered.media[0].attribute("rtcp") == "30000"  # mux agreed: RTCP on the RTP port
    assert answered.media[0].rtcp_mux


def test_rtcp_mux_offer_remove_and_no_rtcp_attribute() -> None:
    offered = rewrite(parse(ASTERISK), opts(rtcp_mux=RtcpMux.OFFER)).sdp
    assert changes(ASTERISK, offered)[-2:] == ["+ a=rtcp:30001", "+ a=rtcp-mux"]
    removed = rewrite(parse(CHROME), opts(2, rtcp_mux=RtcpMux.REMOVE)).sdp
    assert not removed.media[0].rtcp_mux and removed.media[0].attribute("rtcp") == "30001"
    bare = rewrite(parse(IPV6), opts(rtcp_attribute=False)).sdp
    assert bare.media[0].rtcp is None
    given = rewrite(parse(ASTERISK), opts(rtcp_ports=[40001])).sdp
    assert given.media[0].attribute("rtcp") == "40001"


FS_SRTP = sdp("""
v=0
o=FreeSWITCH 1706081234 1706081235 IN IP4 203.0.113.5
s=FreeSWITCH
c=IN IP4 203.0.113.5
t=0 0
m=audio 20590 RTP/SAVP 102 9 0 8 100 101
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
a=rtpmap:102 opus/48000/2
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:100 telephone-event/48000
a=fmtp:100 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")


def test_codec_strip_removes_codec_and_its_orphaned_telephone_event() -> None:
    out = rewrite(parse(FS_SRTP), opts(strip=["opus", "g722"]))
    assert changes(FS_SRTP, out.sdp) == [
        "- m=audio 20590 RTP/SAVP 102 9 0 8 100 101",
        "+ m=audio 30000 RTP/SAVP 0 8 101",
        "+ c=IN IP4 203.0.113.1",
        "- a=rtpmap:102 opus/48000/2",
        "- a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000",
        "- a=rtpmap:9 G722/8000",
        "- a=rtpmap:100 telephone-event/48000",  # no 48 kHz codec left for it (RFC 4733 §7.1.1)
        "- a=fmtp:100 0-16",
        "+ a=rtcp:30001",
    ]
    plan = out.media[0]
    assert plan is not None
    assert [c.pt for c in plan.stripped] == [102, 9, 100]
    assert [c.pt for c in plan.accepted] == [0, 8, 101]
    assert out.sdp.media[0].crypto == parse(FS_SRTP).media[0].crypto  # crypto kept by default


def test_codec_strip_by_payload_type_and_with_parameters() -> None:
    out = rewrite(parse(FS_SRTP), opts(strip=["101", "opus/48000/2///useinbandfec=1"])).sdp
    assert out.media[0].formats == ["9", "0", "8"]
    out = rewrite(parse(FS_SRTP), opts(strip=["opus/48000/2///useinbandfec=0"])).sdp
    assert "102" in out.media[0].formats  # fmtp parameters did not match


def test_strip_all_except_offer_reorders() -> None:
    out = rewrite(parse(FS_SRTP), opts(strip=["all"], offer=["PCMA", "PCMU"]))
    assert out.sdp.media[0].formats == ["8", "0"]
    reordered = rewrite(parse(ASTERISK), opts(offer=["G722"])).sdp
    assert reordered.media[0].formats == ["9", "0", "8", "3", "101"]
    # only the m= line changes: the rtpmap lines stay where they were
    assert [ln[0] for ln in changes(ASTERISK, reordered)] == ["-", "+", "+", "+"]


def test_strip_all_and_transcode_restores_a_present_codec_but_full_adds_a_copy() -> None:
    restored = rewrite(parse(ASTERISK), opts(strip=["all"], transcode=["PCMU"]))
    assert restored.sdp.media[0].formats == ["0"]
    plan = restored.media[0]
    assert plan is not None and not plan.transcoding and plan.added == []
    full = rewrite(parse(ASTERISK), opts(strip=["full"], transcode=["PCMU"]))
    assert full.sdp.media[0].formats == ["96"]  # static 0 is taken by the original PCMU
    assert full.sdp.media[0].attributes("rtpmap") == ["96 PCMU/8000"]


def test_mask_and_transcode_rtpengine_example() -> None:
    # rtpengine's documented example: opus offered, mask=opus, transcode=PCMA: the far side sees
    # only PCMA; opus is still accepted from the offerer and transcoded.
    offer = sdp("""
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 10228 RTP/AVP 96 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:101 telephone-event/48000
a=fmtp:101 0-15
a=sendrecv
""")
    out = rewrite(parse(offer), opts(mask=["opus"], transcode=["PCMA"]))
    assert changes(offer, out.sdp) == [
        "- m=audio 10228 RTP/AVP 96 101",
        "- a=rtpmap:96 opus/48000/2",
        "- a=fmtp:96 useinbandfec=1",
        "- a=rtpmap:101 telephone-event/48000",  # no 48 kHz codec left (RFC 4733 §7.1.1)
        "- a=fmtp:101 0-15",
        "+ m=audio 30000 RTP/AVP 8 97",
        "+ c=IN IP4 203.0.113.1",
        "+ a=rtpmap:8 PCMA/8000",
        "+ a=rtpmap:97 telephone-event/8000",  # events follow the new clock rate, with the same fmtp
        "+ a=fmtp:97 0-15",
        "+ a=rtcp:30001",
    ]
    plan = out.media[0]
    assert plan is not None and plan.transcoding
    assert [c.pt for c in plan.masked] == [96, 101] and plan.stripped == []
    assert [c.pt for c in plan.accepted] == [96, 101]
    assert [str(c) for c in plan.added] == ["8 PCMA/8000", "97 telephone-event/8000"]


def test_transcode_adds_with_dynamic_pt_and_fmtp_avoiding_every_used_number() -> None:
    two = sdp("""
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 5000 RTP/AVP 0 96
a=rtpmap:96 telephone-event/8000
m=video 5002 RTP/AVP 97
a=rtpmap:97 VP8/90000
""")
    out = rewrite(parse(two), opts(2, transcode=["opus", "PCMU", Codec("iLBC", 8000, None, "mode=20", 98)]))
    audio = out.sdp.media[0]
    assert audio.formats == ["0", "96", "99", "98", "100"]  # 96, 97 in use; 98 was asked for
    assert audio.attributes("rtpmap") == [
        "96 telephone-event/8000",
        "99 opus/48000/2",
        "98 iLBC/8000",
        "100 telephone-event/48000",
    ]
    assert audio.fmtp(99) == "useinbandfec=1" and audio.fmtp(98) == "mode=20" and audio.fmtp(100) is None
    assert out.sdp.media[1].formats == ["97"]  # audio codecs are added to audio m-lines only
    plan = out.media[1]
    assert plan is not None and plan.added == []
    vp9 = rewrite(parse(two), opts(2, transcode=["VP9"])).sdp
    assert vp9.media[0].formats == ["0", "96"] and vp9.media[1].formats == ["97", "98"]


def test_stripping_everything_is_refused() -> None:
    out = rewrite(parse(ASTERISK), opts(strip=["all"]))
    assert out.sdp.media[0].formats == ["0", "8", "9", "3", "101"]
    assert out.warnings and "left unchanged" in out.warnings[0]
    out = rewrite(parse(ASTERISK), opts(mask=["PCMU", "PCMA", "G722", "GSM"]))
    assert out.sdp.media[0].formats == ["0", "8", "9", "3", "101"]


def test_rtx_goes_with_its_stripped_codec() -> None:
    video = sdp("""
v=0
o=- 1 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=video 5002 RTP/AVPF 96 97 102 103
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=fmtp:102 packetization-mode=1
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
""")
    out = rewrite(parse(video), opts(strip=["VP8"]))
    assert out.sdp.media[0].formats == ["102", "103"]
    assert out.sdp.media[0].attributes("rtcp-fb") == []


def test_ptime_and_transport_protocol() -> None:
    out = rewrite(parse(FS_SRTP), opts(ptime=30, transport_protocol="RTP/AVP"))
    assert changes(FS_SRTP, out.sdp) == [
        "- m=audio 20590 RTP/SAVP 102 9 0 8 100 101",
        "- a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        "+ m=audio 30000 RTP/AVP 102 9 0 8 100 101",
        "+ c=IN IP4 203.0.113.1",
        "- a=ptime:20",
        "+ a=ptime:30",
        "+ a=rtcp:30001",
    ]


HOLD = sdp("""
v=0
o=- 1 2 IN IP4 192.0.2.5
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 5000 RTP/AVP 0
a=sendonly
""")


def test_zero_address_hold_passes_through_unless_asked() -> None:
    out = rewrite(parse(HOLD), opts(replace_session_connection=True)).sdp
    assert changes(HOLD, out) == [
        "- m=audio 5000 RTP/AVP 0",
        "+ m=audio 30000 RTP/AVP 0",
        "+ a=rtcp:30001",
    ]
    out = rewrite(parse(HOLD), opts(replace_session_connection=True, replace_zero_address=True)).sdp
    assert str(out.connection) == "IN IP4 203.0.113.1"
    out = rewrite(parse(HOLD), opts(replace_zero_address=True)).sdp
    assert str(out.connection) == "IN IP4 0.0.0.0" and str(out.media[0].connection) == "IN IP4 203.0.113.1"


def test_argument_checks_and_codec_specs() -> None:
    with pytest.raises(ValueError, match="ports"):
        rewrite(parse(ASTERISK), RewriteOptions(PUBLIC, []))
    with pytest.raises(ValueError, match="RTCP ports"):
        rewrite(parse(ASTERISK), RewriteOptions(PUBLIC, [1], rtcp_ports=[]))
    with pytest.raises(ValueError, match="unknown codec"):
        rewrite(parse(ASTERISK), opts(transcode=["x-codec"]))
    assert CodecSpec.parse("opus/48000/2/32000") == CodecSpec("opus", 48000, 2)
    assert CodecSpec.parse("iLBC/8000/1///mode=30") == CodecSpec("iLBC", 8000, 1, "mode=30")
    assert CodecSpec.parse("x-codec/16000").to_codec() == Codec("x-codec", 16000)
    assert CodecSpec.parse("101").pt == 101
    with pytest.raises(ValueError, match="bad number"):
        CodecSpec.parse("opus/fast")
    with pytest.raises(ValueError, match="empty"):
        CodecSpec.parse("/8000")


T38 = sdp("""
v=0
o=- 1 2 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 5000 RTP/AVP 0
a=sendrecv
m=image 5002 udptl t38
a=T38FaxVersion:0
a=T38FaxRateManagement:transferredTCF
""")


def test_non_rtp_media_is_anchored_without_rtcp_or_codecs() -> None:
    out = rewrite(parse(T38), opts(2, replace_session_connection=True, strip=["PCMU"], ptime=20))
    assert changes(T38, out.sdp) == [
        "- c=IN IP4 192.0.2.5",
        "+ c=IN IP4 203.0.113.1",
        "- m=audio 5000 RTP/AVP 0",
        "+ m=audio 30000 RTP/AVP 0",  # PCMU is the only codec: stripping it is refused
        "- m=image 5002 udptl t38",  # (after a=sendrecv, which stays)
        "+ a=ptime:20",
        "+ a=rtcp:30001",
        "+ m=image 30002 udptl t38",  # no a=rtcp, no codec handling for non-RTP media
    ]
    assert out.warnings == ["m-line 0: codec options would leave no codec; left unchanged"]


def test_port_zero_rejects_a_stream_in_the_rewrite() -> None:
    out = rewrite(parse(T38), RewriteOptions(PUBLIC, [30000, 0]))
    assert out.sdp.media[1].m_value == "image 0 udptl t38" and out.media[1] is None
