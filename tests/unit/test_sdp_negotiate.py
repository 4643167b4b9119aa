"""Offer/answer (RFC 3264) on scenarios modelled on RFC 4317's examples, plus the rules around them."""

from __future__ import annotations

import pytest

from vpbx.sdp import (
    Capabilities,
    Codec,
    Direction,
    SdpError,
    answer,
    assign_payload_types,
    choose_codecs,
    common_codec,
    default_capabilities,
    hold,
    is_held,
    is_on_hold,
    known_codec,
    negotiated,
    offer,
    parse,
    resume,
    same_codec,
    update_version,
)


def sdp(text: str) -> str:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


PCMU = Codec("PCMU", 8000)
PCMA = Codec("PCMA", 8000)
G722 = Codec("G722", 8000)
ILBC = Codec("iLBC", 8000)
OPUS = Codec("opus", 48000, 2, "useinbandfec=1")
EVENTS = Codec("telephone-event", 8000, None, "0-16")
H261 = Codec("H261", 90000)
MPV = Codec("MPV", 90000)

# Alice offers three audio codecs and two video codecs (after RFC 4317 §2.1).
ALICE_AV = sdp("""
v=0
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
s=
c=IN IP4 host.atlanta.example.com
t=0 0
m=audio 49170 RTP/AVP 0 8 97
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:97 iLBC/8000
m=video 51372 RTP/AVP 31 32
a=rtpmap:31 H261/90000
a=rtpmap:32 MPV/90000
""")


def bob(
    codecs: dict[str, list[Codec]] | None = None,
    *,
    multiple_codecs: bool = False,
    local_preference: bool = False,
) -> Capabilities:
    return Capabilities(
        codecs if codecs is not None else {"audio": [PCMU, ILBC], "video": [MPV]},
        multiple_codecs=multiple_codecs,
        local_preference=local_preference,
    )


def test_audio_and_video_first_common_codec_in_offer_order() -> None:
    biloxi = "host.biloxi.example.com"
    ans = answer(parse(ALICE_AV), bob(), address=biloxi, ports=[49172, 49174], session_id=7)
    assert ans.to_text() == sdp("""
v=0
o=- 7 7 IN IP4 host.biloxi.example.com
s=-
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49172 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
m=video 49174 RTP/AVP 32
a=rtpmap:32 MPV/90000
a=sendrecv
""")
    audio, video = negotiated(parse(ALICE_AV), ans)
    assert audio is not None and video is not None
    assert (audio.codec.name, audio.codec.pt, audio.offer_pt) == ("PCMU", 0, 0)
    assert (video.codec.name, video.codec.pt) == ("MPV", 32)
    assert audio.offerer_sends and audio.answerer_sends


def test_multiple_codecs_keep_offer_order_and_numbers() -> None:
    ans = answer(
        parse(ALICE_AV), bob(multiple_codecs=True), address="192.0.2.2", ports=[5000, 5002], session_id=1
    )
    assert ans.media[0].formats == ["0", "97"]  # PCMA dropped (unsupported), order as offered
    assert ans.media[0].codecs()[1] == Codec("iLBC", 8000, None, None, 97)  # §6.1: same number
    assert ans.media[1].formats == ["32"]


def test_local_preference_when_asked() -> None:
    caps = bob(codecs={"audio": [ILBC, PCMU]}, local_preference=True, multiple_codecs=True)
    ans = answer(parse(ALICE_AV), caps, address="192.0.2.2", ports=[5000, 5002], session_id=1)
    assert ans.media[0].formats == ["97", "0"]


def test_video_rejected_keeps_m_line_count_and_order() -> None:
    # After RFC 4317 §2.3: Bob has no video; the video stream is rejected with port zero.
    caps = bob(codecs={"audio": [PCMA]})
    ans = answer(parse(ALICE_AV), caps, address="192.0.2.2", ports=[5000, 5002], session_id=1)
    assert [m.m_value for m in ans.media] == ["audio 5000 RTP/AVP 8", "video 0 RTP/AVP 31 32"]
    assert ans.media[1].lines == []
    assert negotiated(parse(ALICE_AV), ans)[1] is None


def test_no_common_codec_rejects_the_stream() -> None:
    caps = bob(codecs={"audio": [G722], "video": [H261]})
    ans = answer(parse(ALICE_AV), caps, address="192.0.2.2", ports=[5000, 5002], session_id=1)
    assert ans.media[0].port == 0 and ans.media[0].formats == ["0", "8", "97"]
    assert ans.media[1].m_value == "video 5002 RTP/AVP 31"


def test_already_rejected_and_unsupported_protocol_streams_stay_rejected() -> None:
    offer_sd = parse(
        sdp("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 0 RTP/AVP 0
m=audio 5004 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
m=audio 5006 RTP/AVP 0
""")
    )
    ans = answer(offer_sd, default_capabilities(), address="192.0.2.2", ports=[1, 2, 4000], session_id=1)
    assert [m.port for m in ans.media] == [0, 0, 4000]
    assert ans.media[1].proto == "RTP/SAVP"


def test_answerer_may_number_dynamic_codecs_differently() -> None:
    # RFC 3264 §6.1 says SHOULD reuse; an answer that does not is still understood: each side
    # sends with the other's numbers (§5.1).
    ans = parse(
        sdp("""
v=0
o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
s=
c=IN IP4 host.biloxi.example.com
t=0 0
m=audio 49172 RTP/AVP 99
a=rtpmap:99 iLBC/8000
m=video 0 RTP/AVP 31
""")
    )
    audio, video = negotiated(parse(ALICE_AV), ans)
    assert audio is not None and video is None
    assert (audio.codec.pt, audio.offer_pt) == (99, 97)


def test_codec_names_match_case_insensitively_channels_and_rate_must_agree() -> None:
    offered = [
        Codec("pcmu", 8000, None, None, 0),
        Codec("OPUS", 48000, 2, None, 111),
        Codec("L16", 16000, None, None, 96),
    ]
    assert choose_codecs(offered, [OPUS], multiple=True) == [Codec("OPUS", 48000, 2, "useinbandfec=1", 111)]
    assert choose_codecs(offered, [Codec("L16", 16000, 2)]) == []
    assert choose_codecs(offered, [Codec("L16", 16000, 1)])[0].pt == 96
    assert choose_codecs(offered, [Codec("PCMU", 16000)]) == []
    assert choose_codecs(offered, [Codec("Pcmu", 8000)])[0].pt == 0


FS_OPUS = sdp("""
v=0
o=FreeSWITCH 1706081234 1706081235 IN IP4 203.0.113.5
s=FreeSWITCH
c=IN IP4 203.0.113.5
t=0 0
m=audio 20590 RTP/AVP 102 0 8 100 101 13
a=rtpmap:102 opus/48000/2
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000
a=rtpmap:100 telephone-event/48000
a=fmtp:100 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
""")


def test_telephone_event_follows_the_chosen_codecs_clock_rate() -> None:
    sd = parse(FS_OPUS)
    with_opus = answer(sd, default_capabilities(), address="192.0.2.2", ports=[4000], session_id=1)
    assert with_opus.media[0].formats == ["102", "100"]
    assert with_opus.media[0].fmtp(102) == "useinbandfec=1"  # our fmtp replaces the offer's
    narrow = Capabilities({"audio": [PCMA, EVENTS, Codec("CN", 8000)]})
    with_pcma = answer(sd, narrow, address="192.0.2.2", ports=[4000], session_id=1)
    assert with_pcma.media[0].formats == ["8", "101", "13"]  # te/8000 and CN/8000 go with PCMA
    no_events = Capabilities({"audio": [OPUS]})
    assert answer(sd, no_events, address="192.0.2.2", ports=[4000], session_id=1).media[0].formats == ["102"]
    n = negotiated(sd, with_opus)[0]
    assert n is not None and n.telephone_event is not None
    te = n.telephone_event
    assert (te.pt, te.clock_rate, n.telephone_event_offer_pt) == (100, 48000, 100)


def test_telephone_event_at_another_rate_only_is_not_answered() -> None:
    offered = [Codec("opus", 48000, 2, None, 96), Codec("telephone-event", 8000, None, "0-15", 101)]
    assert [c.pt for c in choose_codecs(offered, [OPUS, EVENTS])] == [96]


def test_rtx_goes_with_its_codec() -> None:
    offered = [
        Codec("VP8", 90000, None, None, 96),
        Codec("rtx", 90000, None, "apt=96", 97),
        Codec("H264", 90000, None, "packetization-mode=1", 102),
        Codec("rtx", 90000, None, "apt=102", 103),
    ]
    got = choose_codecs(offered, [Codec("H264", 90000), Codec("rtx", 90000)])
    assert [(c.pt, c.fmtp) for c in got] == [(102, "packetization-mode=1"), (103, "apt=102")]


@pytest.mark.parametrize(
    ("offered", "want", "answered"),
    [
        ("sendrecv", Direction.SENDRECV, "sendrecv"),
        ("sendonly", Direction.SENDRECV, "recvonly"),
        ("recvonly", Direction.SENDRECV, "sendonly"),
        ("inactive", Direction.SENDRECV, "inactive"),
        ("sendrecv", Direction.SENDONLY, "sendonly"),
        ("sendrecv", Direction.INACTIVE, "inactive"),
        ("sendonly", Direction.SENDONLY, "inactive"),
        ("recvonly", Direction.RECVONLY, "inactive"),
    ],
)
def test_direction_mapping(offered: str, want: Direction, answered: str) -> None:
    # RFC 3264 §6.1
    sd = parse(ALICE_AV.replace("a=rtpmap:97 iLBC/8000\r\n", f"a=rtpmap:97 iLBC/8000\r\na={offered}\r\n"))
    ans = answer(sd, bob(), address="192.0.2.2", ports=[5000, 5002], session_id=1, direction=want)
    assert ans.media[0].direction == Direction(answered)
    assert ans.media[1].direction == Direction.of(want.sends, want.receives)  # video: sendrecv offered


def test_session_level_direction_is_the_default() -> None:
    sd = parse(ALICE_AV.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n"))
    ans = answer(sd, bob(), address="192.0.2.2", ports=[5000, 5002], session_id=1)
    assert [m.direction for m in ans.media] == [Direction.RECVONLY, Direction.RECVONLY]
    assert is_on_hold(sd)


def test_old_style_hold_with_zero_address() -> None:
    # RFC 3264 §8.4: c=0.0.0.0 means do not send to me; answer without sending.
    sd = parse(ALICE_AV.replace("c=IN IP4 host.atlanta.example.com", "c=IN IP4 0.0.0.0"))
    assert is_held(sd, 0) and is_held(sd, 1) and is_on_hold(sd)
    ans = answer(sd, bob(), address="192.0.2.2", ports=[5000, 5002], session_id=1)
    assert [m.direction for m in ans.media] == [Direction.RECVONLY, Direction.RECVONLY]
    n = negotiated(sd, ans)[0]
    assert n is not None and not n.answerer_sends and n.offerer_sends


def test_webrtc_offer_zero_address_with_ice_is_not_hold() -> None:
    sd = parse(
        sdp("""
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 110 126
c=IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=mid:1
a=sctp-port:5000
""")
    )
    assert not is_held(sd, 0)
    caps = Capabilities(default_capabilities().codecs, protos=("UDP/TLS/RTP/SAVPF",))
    ans = answer(sd, caps, address="192.0.2.2", ports=[4000, 4002], session_id=1)
    assert ans.media[0].m_value == "audio 4000 UDP/TLS/RTP/SAVPF 111 110"
    assert [str(ln) for ln in ans.media[0].lines[-3:]] == ["a=rtcp-mux", "a=mid:0", "a=sendrecv"]
    assert ans.media[1].m_value == "application 0 UDP/DTLS/SCTP webrtc-datachannel"


def test_ptime_echo_or_ours_and_rtcp_mux_acceptance() -> None:
    sd = parse(FS_OPUS.replace("a=ptime:20", "a=ptime:30\r\na=rtcp-mux"))
    ans = answer(sd, default_capabilities(), address="192.0.2.2", ports=[4000], session_id=1)
    assert ans.media[0].ptime == 30 and ans.media[0].rtcp_mux
    ours = Capabilities(default_capabilities().codecs, ptime=20, rtcp_mux=False)
    ans = answer(sd, ours, address="192.0.2.2", ports=[4000], session_id=1)
    assert ans.media[0].ptime == 20 and not ans.media[0].rtcp_mux
    n = negotiated(sd, ans)[0]
    assert n is not None and n.ptime == 20 and not n.rtcp_mux


def test_timing_copied_from_offer_and_argument_checks() -> None:
    sd = parse(ALICE_AV.replace("t=0 0", "t=3034423619 3042462419"))
    ans = answer(sd, bob(), address="2001:db8::2", ports=[5000, 5002], session_id=1)
    assert ans.timing == ["3034423619 3042462419"]  # RFC 3264 §6
    assert ans.origin.addrtype == "IP6" and str(ans.connection) == "IN IP6 2001:db8::2"
    with pytest.raises(ValueError, match="ports"):
        answer(sd, bob(), address="192.0.2.2", ports=[5000], session_id=1)
    with pytest.raises(ValueError, match="session_id"):
        answer(sd, bob(), address="192.0.2.2", ports=[5000, 5002])
    with pytest.raises(SdpError, match="m-lines"):
        negotiated(sd, parse(ALICE_AV.split("m=video")[0]))


# -- our own offers, re-offers, hold -------------------------------------------------------------


def test_our_offer_numbers_codecs() -> None:
    caps = Capabilities({"audio": [PCMU, OPUS, ILBC, EVENTS], "video": [Codec("VP8", 90000)]}, ptime=20)
    o = offer(caps, [("audio", 6000), ("video", 6002)], address="192.0.2.9", session_id=1234, username="vpbx")
    assert o.to_text() == sdp("""
v=0
o=vpbx 1234 1234 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
m=audio 6000 RTP/AVP 0 96 97 98 99
a=rtpmap:0 PCMU/8000
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 iLBC/8000
a=rtpmap:98 telephone-event/8000
a=fmtp:98 0-16
a=rtpmap:99 telephone-event/48000
a=fmtp:99 0-16
a=ptime:20
a=rtcp-mux
a=sendrecv
m=video 6002 RTP/AVP 100
a=rtpmap:100 VP8/90000
a=rtcp-mux
a=sendrecv
""")


def test_payload_type_assignment_rules() -> None:
    taken = {96: Codec("opus", 48000, 2, None, 96), 97: Codec("speex", 16000, None, None, 97)}
    got = assign_payload_types(
        [Codec("speex", 16000), PCMA, Codec("AMR", 8000), Codec("G729", 8000), Codec("x", 8000, pt=97)],
        taken=taken,
    )
    # speex keeps 97 (§8.3.2); PCMA and G729 use their static numbers; AMR gets the first free
    # dynamic number; a requested number already bound to another codec is not reused.
    assert [c.pt for c in got] == [97, 8, 98, 18, 99]
    many = assign_payload_types([Codec(f"c{i}", 8000) for i in range(40)])
    assert [c.pt for c in many][:32] == list(range(96, 128))
    assert [c.pt for c in many][32:] == list(range(35, 43))
    with pytest.raises(ValueError, match="no free payload type"):
        assign_payload_types([Codec(f"c{i}", 8000) for i in range(62)])


def test_reoffer_adds_video_keeps_numbers_and_bumps_version() -> None:
    # After RFC 4317 §4: audio first, then a re-INVITE adds video.
    h264 = Codec("H264", 90000, None, "packetization-mode=1")
    caps = Capabilities({"audio": [OPUS, EVENTS], "video": [h264]})
    first = offer(caps, [("audio", 6000)], address="192.0.2.9", session_id=55)
    second = offer(caps, [("audio", 6000), ("video", 6002)], address="192.0.2.9", previous=first)
    assert (second.origin.session_id, second.origin.version) == (55, 56)
    assert second.media[0] == first.media[0]
    assert second.media[1].formats == ["98"]  # 96, 97 are taken by opus and telephone-event
    # removing video again: the m-line stays with port zero (§8.2)
    third = offer(caps, [("audio", 6000)], address="192.0.2.9", previous=second)
    assert [m.m_value for m in third.media] == ["audio 6000 RTP/AVP 96 97", "video 0 RTP/AVP 98"]
    assert third.origin.version == 57


def test_unchanged_reoffer_keeps_the_version() -> None:
    # RFC 3264 §8: the version changes only when the description does.
    first = offer(default_capabilities(), [("audio", 6000)], address="192.0.2.9", session_id=9)
    again = offer(default_capabilities(), [("audio", 6000)], address="192.0.2.9", previous=first)
    assert again.to_text() == first.to_text()
    assert update_version(first, again.copy(), force=True).origin.version == 10
    moved = offer(default_capabilities(), [("audio", 6100)], address="192.0.2.9", previous=first)
    assert moved.origin.version == 10 and moved.origin.session_id == 9


def test_hold_and_resume_round() -> None:
    # After RFC 4317 §3.1: Alice puts Bob on hold with sendonly, Bob answers recvonly, Alice resumes.
    caps = Capabilities({"audio": [PCMU], "video": [MPV]})
    alice1 = offer(caps, [("audio", 6000), ("video", 6002)], address="192.0.2.9", session_id=100)
    bob1 = answer(alice1, caps, address="192.0.2.20", ports=[7000, 7002], session_id=200)
    assert not is_on_hold(alice1)

    alice2 = hold(alice1)
    assert [m.direction for m in alice2.media] == [Direction.SENDONLY, Direction.SENDONLY]  # §3.2: both
    assert alice2.origin.version == 101 and is_on_hold(alice2)
    bob2 = answer(alice2, caps, address="192.0.2.20", ports=[7000, 7002], previous=bob1)
    assert [m.direction for m in bob2.media] == [Direction.RECVONLY, Direction.RECVONLY]
    assert (bob2.origin.session_id, bob2.origin.version) == (200, 201)
    n = negotiated(alice2, bob2)[0]
    assert n is not None and n.offerer_sends and not n.answerer_sends

    alice3 = resume(alice2)
    assert alice3.origin.version == 102 and not is_on_hold(alice3)
    bob3 = answer(alice3, caps, address="192.0.2.20", ports=[7000, 7002], previous=bob2)
    assert [m.direction for m in bob3.media] == [Direction.SENDRECV, Direction.SENDRECV]
    assert bob3.origin.version == 202
    # the same offer again gets the same answer, same version
    bob4 = answer(alice3, caps, address="192.0.2.20", ports=[7000, 7002], previous=bob3)
    assert bob4.to_text() == bob3.to_text()


def test_hold_of_a_recvonly_stream_is_inactive() -> None:
    o = offer(default_capabilities(), [("audio", 6000)], address="192.0.2.9", session_id=1)
    o.media[0].set_direction(Direction.RECVONLY)
    assert hold(o).media[0].direction is Direction.INACTIVE
    assert hold(o, inactive=True).media[0].direction is Direction.INACTIVE
    assert resume(hold(o), direction=Direction.RECVONLY).media[0].direction is Direction.RECVONLY


def test_two_legs_relay_or_transcode() -> None:
    # Caller offers opus+PCMU; we answer the caller and offer the callee what the caller has.
    caller_offer = parse(FS_OPUS)
    our_answer = answer(caller_offer, default_capabilities(), address="192.0.2.2", ports=[4000], session_id=1)
    leg_a = negotiated(caller_offer, our_answer)[0]
    caps_b = Capabilities({"audio": [PCMU, EVENTS]})
    our_offer = offer(default_capabilities(), [("audio", 4002)], address="192.0.2.2", session_id=2)
    callee_answer = answer(our_offer, caps_b, address="192.0.2.30", ports=[8000], session_id=3)
    leg_b = negotiated(our_offer, callee_answer)[0]
    assert leg_a is not None and leg_b is not None
    assert leg_a.codec.name == "opus" and leg_b.codec.name == "PCMU"
    assert not same_codec(leg_a, leg_b)  # transcode
    only_opus = Capabilities({"audio": [OPUS]})
    opus_b = answer(our_offer, only_opus, address="192.0.2.30", ports=[8000], session_id=3)
    assert same_codec(leg_a, negotiated(our_offer, opus_b)[0])  # relay (pt 102 vs 96: rewrite PT)
    assert not same_codec(leg_a, None)
    assert common_codec(caller_offer.media[0].codecs(), [PCMA, G722]) == Codec("PCMA", 8000, None, None, 8)
    assert common_codec([EVENTS], [EVENTS]) is None


def test_default_capabilities() -> None:
    names = [c.name for c in default_capabilities().supported("audio")]
    assert names == ["PCMU", "PCMA", "G722", "opus", "telephone-event"]
    assert default_capabilities().supported("video") == ()
    assert known_codec("G722") == Codec("G722", 8000, None, None, 9)
