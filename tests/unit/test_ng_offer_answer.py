"""offer/answer over NG against the FakeBackend: SDP rewriting, codec options, legs and ports."""

from __future__ import annotations

from typing import Any

import pytest

from vpbx.ng import NgServer, decode, encode
from vpbx.ng.backend import Endpoint, LegCodecs
from vpbx.ng.fake import FakeBackend
from vpbx.sdp import parse

SRC = ("127.0.0.1", 5060)
PUB = "203.0.113.1"


def sdp(text: str) -> str:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


# A desk phone (caller) and a softphone (callee)
CALLER = sdp("""
v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")

CALLEE_PCMU = sdp("""
v=0
o=bob 3344 3344 IN IP4 198.51.100.20
s=-
c=IN IP4 198.51.100.20
t=0 0
m=audio 5004 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
""")


def plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    return v


class Ng:
    """A client talking to an NgServer the way Kamailio's rtpengine module does."""

    def __init__(self, backend: FakeBackend | None = None) -> None:
        self.be = backend or FakeBackend()
        self.server = NgServer(self.be)
        self.n = 0
        self.now = 1_700_000_000.0

    def __call__(self, command: str, **kw: Any) -> dict[str, Any]:
        self.n += 1
        doc = {"command": command, **{k.replace("_", "-"): v for k, v in kw.items()}}
        raw = self.server.handle_datagram(b"%d_1 " % self.n + encode(doc), SRC, self.now)
        assert raw is not None
        cookie, _, body = raw.partition(b" ")
        assert cookie == b"%d_1" % self.n
        out = plain(decode(body))
        assert isinstance(out, dict)
        return out

    def offer(
        self, sdp_text: str = CALLER, call_id: str = "c1", from_tag: str = "ta", **kw: Any
    ) -> dict[str, Any]:
        return self("offer", sdp=sdp_text, call_id=call_id, from_tag=from_tag, **kw)

    def answer(
        self,
        sdp_text: str = CALLEE_PCMU,
        call_id: str = "c1",
        from_tag: str = "ta",
        to_tag: str = "tb",
        **kw: Any,
    ) -> dict[str, Any]:
        return self("answer", sdp=sdp_text, call_id=call_id, from_tag=from_tag, to_tag=to_tag, **kw)


def lines(reply: dict[str, Any]) -> list[str]:
    assert reply["result"] == "ok", reply
    text = reply["sdp"]
    assert isinstance(text, str)
    return text.split("\r\n")[:-1]


def media_lines(reply: dict[str, Any], i: int = 0) -> list[str]:
    sd = parse(reply["sdp"])
    return [f"m={sd.media[i].m_value}"] + [str(ln) for ln in sd.media[i].lines]


def test_kamailio_style_offer_datagram() -> None:
    # The bytes Kamailio's rtpengine module sends for rtpengine_offer("trust-address replace-origin
    # replace-session-connection"), built by hand.
    body = CALLER.encode()
    datagram = (
        b"5323_1 d7:command5:offer3:sdp%d:%s7:call-id12:a84b4c76e6678:from-tag10:1928301774"
        b"5:flagsl13:trust-addresse7:replacel6:origin18:session-connectione"
        b"13:received-froml3:IP410:192.0.2.10ee" % (len(body), body)
    )
    be = FakeBackend()
    raw = NgServer(be).handle_datagram(datagram, SRC, 0.0)
    assert raw is not None and raw.startswith(b"5323_1 d")
    reply = plain(decode(raw[7:]))
    assert "warning" not in reply
    assert lines(reply) == [
        "v=0",
        f"o=alice 2890844526 2890844526 IN IP4 {PUB}",
        "s=-",
        f"c=IN IP4 {PUB}",
        "t=0 0",
        "m=audio 30002 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "a=rtcp:30003",
    ]
    # caller's leg (where it will send) and the callee's leg (advertised above)
    assert be.leg("a84b4c76e667", "1928301774", 0).remote == Endpoint("192.0.2.10", 49170, 49171, False)
    assert be.ports_in_use == 4


def test_offer_then_answer_anchor_both_sides() -> None:
    ng = Ng()
    offer = ng.offer(replace=["origin", "session-connection"])
    assert media_lines(offer)[0] == "m=audio 30002 RTP/AVP 0 8 101"
    answer = ng.answer(replace=["origin", "session-connection"])
    assert lines(answer) == [
        "v=0",
        f"o=bob 3344 3344 IN IP4 {PUB}",
        "s=-",
        f"c=IN IP4 {PUB}",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=sendrecv",
        "a=rtcp:30001",
    ]
    be = ng.be
    call = ng.server.commands.calls["c1"]
    callee = call.by_tag("tb")
    assert callee is not None
    assert be.leg("c1", callee.pid, 0).remote == Endpoint("198.51.100.20", 5004, 5005, False)
    assert be.calls_to("connect") == [("c1", "ta", callee.pid, (False,))]  # same codec: relay
    pcmu = be.leg("c1", "ta", 0).codecs
    assert pcmu is not None and [c.name for c in pcmu.send] == ["PCMU", "telephone-event"]


def test_strip_and_transcode_then_answer_in_the_added_codec() -> None:
    ng = Ng()
    offer = ng.offer(flags=["codec-strip-PCMA"], codec={"transcode": ["opus"]})
    ml = media_lines(offer)
    assert ml[0] == "m=audio 30002 RTP/AVP 0 101 96 97"
    assert "a=rtpmap:8 PCMA/8000" not in ml
    assert {"a=rtpmap:96 opus/48000/2", "a=rtpmap:97 telephone-event/48000", "a=fmtp:97 0-16"} <= set(ml)
    opus_answer = CALLEE_PCMU.replace("RTP/AVP 0 101", "RTP/AVP 96 97").replace(
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16",
        "a=rtpmap:96 opus/48000/2\r\na=rtpmap:97 telephone-event/48000\r\na=fmtp:97 0-16",
    )
    answer = ng.answer(opus_answer)
    # the caller never offered opus: it hears back its own PCMU (+ its telephone-event)
    assert media_lines(answer)[:4] == [
        "m=audio 30000 RTP/AVP 0 101",
        f"c=IN IP4 {PUB}",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
    ]
    callee = ng.server.commands.calls["c1"].by_tag("tb")
    assert callee is not None
    assert ng.be.calls_to("connect") == [("c1", "ta", callee.pid, (True,))]
    theirs = ng.be.leg("c1", callee.pid, 0).codecs
    assert theirs is not None
    assert [(c.name, c.pt) for c in theirs.send] == [("opus", 96), ("telephone-event", 97)]
    assert [(c.name, c.pt) for c in theirs.receive] == [("opus", 96), ("telephone-event", 97)]


def test_mask_hides_a_codec_but_accepts_it_from_the_caller() -> None:
    ng = Ng()
    offer = ng.offer(codec={"mask": ["all"], "transcode": ["G722"]})
    assert media_lines(offer)[0] == "m=audio 30002 RTP/AVP 9"
    g722 = CALLEE_PCMU.replace("RTP/AVP 0 101", "RTP/AVP 9").replace(
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16", "a=rtpmap:9 G722/8000"
    )
    answer = ng.answer(g722)
    assert media_lines(answer)[0] == "m=audio 30000 RTP/AVP 0 101"
    assert ng.be.calls_to("connect")[0][3] == (True,)


def test_relay_answer_drops_codecs_the_caller_never_offered() -> None:
    ng = Ng()
    ng.offer(codec={"transcode": ["opus"]})
    both = CALLEE_PCMU.replace("RTP/AVP 0 101", "RTP/AVP 0 96 101").replace(
        "a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 opus/48000/2\r\n"
    )
    answer = ng.answer(both)
    assert media_lines(answer)[0] == "m=audio 30000 RTP/AVP 0 101"
    assert "a=rtpmap:96 opus/48000/2" not in media_lines(answer)
    assert ng.be.calls_to("connect")[0][3] == (False,)


def test_reoffer_keeps_ports_and_reinvite_from_callee_reuses_legs() -> None:
    ng = Ng()
    first = ng.offer()
    ng.answer()
    again = ng.offer(via_branch="z9hG4bK-2")  # re-INVITE from the caller (no to-tag: same peer)
    assert media_lines(again)[0] == media_lines(first)[0] == "m=audio 30002 RTP/AVP 0 8 101"
    with_tag = ng.offer(to_tag="tb")
    assert media_lines(with_tag)[0] == "m=audio 30002 RTP/AVP 0 8 101"
    # the callee puts the call on hold: its offer goes to the caller's leg, 30000
    hold = CALLEE_PCMU.replace("a=sendrecv", "a=sendonly").replace("3344 3344", "3344 3345")
    reinvite = ng.offer(hold, from_tag="tb", to_tag="ta")
    assert media_lines(reinvite)[0] == "m=audio 30000 RTP/AVP 0 101"
    assert "a=sendonly" in media_lines(reinvite)
    back = ng.answer(CALLER.replace("a=sendrecv", "a=recvonly"), from_tag="tb", to_tag="ta")
    assert media_lines(back)[0] == "m=audio 30002 RTP/AVP 0 101"
    assert ng.be.ports_in_use == 4  # nothing new was allocated


def test_answer_errors() -> None:
    ng = Ng()
    assert ng.answer(call_id="nope") == {"result": "error", "error-reason": "Unknown call-id"}
    ng.offer()
    assert ng.answer(from_tag="stranger")["error-reason"] == "Invalid dialogue association"
    assert (
        ng("answer", sdp=CALLEE_PCMU, call_id="c1", from_tag="ta")["error-reason"] == "No to-tag in message"
    )
    two = CALLEE_PCMU + "m=video 0 RTP/AVP 31\r\n"
    reason = ng.answer(two)["error-reason"]
    assert reason.startswith("Incomplete SDP specification")
    bad = ng.answer("v=0\r\nm=audio x\r\n")
    assert bad["result"] == "error" and bad["error-reason"].startswith("Failed to parse SDP")


def test_answer_from_another_tag_once_answered_is_an_alias() -> None:
    ng = Ng()
    ng.offer()
    ng.answer()
    again = ng.answer(to_tag="tb2")  # e.g. 183 then 200 with a different To-tag on the same branch
    assert again["result"] == "ok"
    call = ng.server.commands.calls["c1"]
    assert call.by_tag("tb2") is call.by_tag("tb")


def test_garbage_sdp_leaves_nothing_behind() -> None:
    ng = Ng()
    reply = ng.offer("this is not SDP")
    assert reply["result"] == "error" and reply["error-reason"].startswith("Failed to parse SDP: ")
    assert ng.server.commands.calls == {} and ng.be.ports_in_use == 0


def test_out_of_ports_and_unknown_interface_leave_nothing_behind() -> None:
    ng = Ng(FakeBackend(port_min=30000, port_max=30001))  # one pair only
    assert ng.offer()["error-reason"] == "Ran out of ports"
    assert ng.server.commands.calls == {} and ng.be.ports_in_use == 0
    ng = Ng()
    assert ng.offer(direction=["priv", "pub"])["error-reason"] == "Unknown interface 'priv'"
    assert ng.be.ports_in_use == 0


def test_direction_picks_the_interfaces() -> None:
    be = FakeBackend({"priv": {"IP4": "10.0.0.1"}, "pub": {"IP4": PUB}})
    ng = Ng(be)
    offer = ng.offer(direction=["priv", "pub"])
    assert f"c=IN IP4 {PUB}" in media_lines(offer)
    answer = ng.answer()
    assert "c=IN IP4 10.0.0.1" in media_lines(answer)
    assert be.leg("c1", "ta", 0).interface == "priv"


def test_ipv6_caller_gets_ipv6_addresses() -> None:
    v6 = CALLER.replace("IN IP4 192.0.2.10", "IN IP6 2001:db8::10")
    ng = Ng()
    assert "c=IN IP6 2001:db8::1" in media_lines(ng.offer(v6))
    assert "c=IN IP4 203.0.113.1" in media_lines(ng.offer(v6, call_id="c2", address_family="IP4"))


def test_rtcp_mux_demux_and_require() -> None:
    mux = CALLER.replace("a=sendrecv", "a=sendrecv\r\na=rtcp-mux")
    ng = Ng()
    offer = ng.offer(mux, rtcp_mux=["demux"])
    assert "a=rtcp-mux" not in media_lines(offer) and "a=rtcp:30003" in media_lines(offer)
    answer = ng.answer()  # the callee knows nothing of rtcp-mux
    # ...but the caller gets it accepted: RTCP on the RTP port (RFC 5761 §5.1.3)
    assert "a=rtcp-mux" in media_lines(answer) and "a=rtcp:30000" in media_lines(answer)

    ng = Ng()
    offer = ng.offer(rtcp_mux=["offer", "require"])
    assert "a=rtcp-mux" in media_lines(offer) and "a=rtcp:30002" in media_lines(offer)
    assert ng.be.calls_to("allocate_leg")[1][-1] is True  # no RTCP port reserved for the callee
    answer = ng.answer(CALLEE_PCMU.replace("a=sendrecv", "a=sendrecv\r\na=rtcp-mux"))
    assert "a=rtcp-mux" not in media_lines(answer)  # the caller never offered it


def test_ice_is_removed_and_srtp_passes_with_a_warning() -> None:
    ice = CALLER.replace(
        "a=sendrecv",
        "a=sendrecv\r\na=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
        "a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host",
    )
    ng = Ng()
    reply = ng.offer(ice)
    assert not any(ln.startswith(("a=ice-", "a=candidate")) for ln in lines(reply))
    assert reply["warning"] == "ICE is not supported: ICE attributes removed"
    reply = ng.offer(ice, call_id="c2", ICE="remove")
    assert "warning" not in reply
    srtp = CALLER.replace("RTP/AVP", "RTP/SAVP").replace(
        "a=sendrecv",
        "a=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
    )
    reply = ng.offer(srtp, call_id="c3", DTLS="passive", SDES=["off"])
    assert any(ln.startswith("a=crypto:1 AES_CM_128_HMAC_SHA1_80") for ln in lines(reply))
    assert "SRTP" in reply["warning"]


def test_forked_branches_get_their_own_legs() -> None:
    ng = Ng()
    b1 = ng.offer(via_branch="z9hG4bK1")
    b2 = ng.offer(via_branch="z9hG4bK2")
    assert media_lines(b1)[0] == "m=audio 30002 RTP/AVP 0 8 101"
    assert media_lines(b2)[0] == "m=audio 30004 RTP/AVP 0 8 101"
    answer = ng.answer(to_tag="phone2", via_branch="z9hG4bK2")
    assert answer["result"] == "ok"
    call = ng.server.commands.calls["c1"]
    p2 = call.by_tag("phone2")
    assert p2 is not None and p2.legs[0].rtp_port == 30004
    # the losing branch is deleted by its Via branch; the call and the winning branch stay
    assert ng("delete", call_id="c1", from_tag="ta", via_branch="z9hG4bK1")["result"] == "ok"
    assert "c1" in ng.server.commands.calls and ng.be.ports_in_use == 4


def test_ptime_engages_repacketization() -> None:
    ng = Ng()
    offer = ng.offer(ptime=30)
    assert "a=ptime:30" in media_lines(offer)
    ng.answer()
    assert ng.be.calls_to("connect")[0][3] == (True,)


def test_force_transcoding_and_single_codec() -> None:
    ng = Ng()
    ng.offer(flags=["force-transcoding"])
    many = CALLEE_PCMU.replace("RTP/AVP 0 101", "RTP/AVP 0 8 101").replace(
        "a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    )
    answer = ng.answer(many, flags=["single-codec"])
    assert media_lines(answer)[0] == "m=audio 30000 RTP/AVP 0 101"
    assert ng.be.calls_to("connect")[0][3] == (True,)


def test_media_address_and_sip_source() -> None:
    ng = Ng()
    ng.offer(media_address="192.0.2.99")
    assert ng.be.leg("c1", "ta", 0).remote == Endpoint("192.0.2.99", 49170, 49171, False)
    ng.offer(
        call_id="c2",
        flags=["SIP-source-address", "asymmetric", "strict-source"],
        received_from=["IP4", "192.0.2.77"],
    )
    leg = ng.be.leg("c2", "ta", 0)
    assert leg.remote == Endpoint("192.0.2.77", 49170, 49171, False)
    assert leg.latching == "asymmetric" and leg.strict_source
    ng.offer(call_id="c3", flags=["media-handover"])
    assert ng.be.leg("c3", "ta", 0).latching == "handover"
    ng.offer(call_id="c4", flags=["symmetric"])
    assert ng.be.leg("c4", "ta", 0).latching == "symmetric"
    assert not ng.be.leg("c4", "ta", 0).strict_source


def test_record_call_in_offer_and_label_and_metadata() -> None:
    ng = Ng()
    ng.offer(record_call="yes", label="caller", metadata="crm:42")
    ng.answer(label="callee")
    assert ng.be.calls["c1"].recording == "on"
    assert ng.be.calls["c1"].recording_options is not None
    assert ng.be.calls["c1"].recording_options.metadata == "crm:42"
    call = ng.server.commands.calls["c1"]
    assert [p.label for p in call.parties] == ["caller", "callee"]
    ng.offer(record_call="no", to_tag="tb")
    assert ng.be.calls["c1"].recording == "off"


def test_leg_codecs_follow_rfc3264_numbering() -> None:
    ng = Ng()
    ng.offer()
    renumbered = (
        CALLEE_PCMU.replace("RTP/AVP 0 101", "RTP/AVP 0 96")
        .replace("telephone-event/8000\r\na=fmtp:101", "telephone-event/8000\r\na=fmtp:96")
        .replace("a=rtpmap:101", "a=rtpmap:96")
    )
    ng.answer(renumbered)
    callee = ng.server.commands.calls["c1"].by_tag("tb")
    assert callee is not None
    codecs = ng.be.leg("c1", callee.pid, 0).codecs
    assert isinstance(codecs, LegCodecs)
    # the callee sends events with the offer's number (101) and receives them as 96
    assert [c.pt for c in codecs.receive] == [0, 101] and [c.pt for c in codecs.send] == [0, 96]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"call_id": None}, "No call-id in message"),
        ({"from_tag": None}, "No from-tag in message"),
        ({"sdp": None}, "No SDP body in message"),
    ],
)
def test_offer_missing_keys(kw: dict[str, Any], reason: str) -> None:
    args: dict[str, Any] = {"sdp": CALLER, "call_id": "c1", "from_tag": "ta"}
    args.update(kw)
    ng = Ng()
    assert ng("offer", **{k: v for k, v in args.items() if v is not None}) == {
        "result": "error",
        "error-reason": reason,
    }


def test_resource_bounds_per_request() -> None:
    ng = Ng(FakeBackend(port_max=40000))
    many = CALLER + "m=audio 49172 RTP/AVP 0\r\n" * 40
    reply = ng.offer(many)
    assert reply["error-reason"] == "Incomplete SDP specification: more than 32 m-lines"
    assert ng.be.ports_in_use == 0
    for i in range(31):
        assert ng.offer(via_branch=f"fork{i}")["result"] == "ok"
    assert ng.offer(via_branch="one-too-many")["error-reason"] == "Too many parties in call (at most 32)"
    assert len(ng.server.commands.calls["c1"].parties) == 32


def test_after_the_answer_kept_sdps_still_drive_versions_repeated_answers_and_queries() -> None:
    # once answered, the call's SDPs are kept as text: what later commands see must not change
    ng = Ng()
    replace = ["origin", "SDP version"]
    first = ng.offer(replace=replace)
    answer = ng.answer(replace=replace)
    again = ng.answer(replace=replace)  # a retransmitted 200 answered again: same answer
    assert lines(again) == lines(answer)
    same = ng.offer(replace=replace, to_tag="tb")  # re-INVITE, nothing changed: same o= version
    assert lines(same) == lines(first)
    held = ng.offer(CALLER.replace("a=sendrecv", "a=sendonly"), replace=replace, to_tag="tb")
    origin = next(x for x in lines(held) if x.startswith("o="))
    assert origin.split()[2] == str(int(next(x for x in lines(first) if x.startswith("o=")).split()[2]) + 1)
    query = ng("query", call_id="c1")
    assert query["result"] == "ok" and set(query["tags"]) == {"ta", "tb"}
