"""Reading NG requests: key and flag spellings, codec options, rtpp-flags, bad values."""

from __future__ import annotations

import pytest

from vpbx.ng.bencode import Value, decode, encode
from vpbx.ng.options import parse_options
from vpbx.ng.rtpp_flags import parse_rtpp_flags


def req(**kw: object) -> dict[bytes, Value]:
    doc = decode(encode({k.replace("_", "-"): v for k, v in kw.items()}))  # type: ignore[arg-type]
    assert isinstance(doc, dict)
    return doc


def test_key_spellings_are_equivalent() -> None:
    for key in ("call-id", "call id", "call_id", "Call-ID"):
        doc = decode(encode({key: "abc"}))
        assert isinstance(doc, dict)
        assert parse_options(doc).call_id == "abc"
    o = parse_options(decode(encode({"received-from": ["IP4", "10.0.0.1"], "address family": "ip6"})))  # type: ignore[arg-type]
    assert o.received_from == ("IP4", "10.0.0.1") and o.address_family == "IP6"


def test_flag_spellings_and_unknown_flags() -> None:
    o = parse_options(
        req(
            flags=[
                "trust-address",
                "trust address",
                "symmetric",
                "asymmetric",
                "strict-source",
                "record-call",
                "SIP-source-address",
                "no-rtcp-attribute",
                "full rtcp attribute",
                "force-transcoding",
                "frobnicate",
            ]
        )
    )
    assert o.asymmetric and o.strict_source and o.record_flag and o.sip_source
    assert o.no_rtcp_attribute and o.full_rtcp_attribute and o.force_transcoding
    assert o.warnings == ["Unknown flag encountered: 'frobnicate'"]


def test_prefixed_flags() -> None:
    o = parse_options(
        req(
            flags=[
                "codec-strip-PCMA",
                "codec-mask-opus",
                "codec-transcode-G722",
                "transcode-PCMU",
                "codec-offer-telephone-event",
                "codec-except-iLBC/8000/1///mode--30",
                "codec-accept-all",
                "codec-consume-GSM",
                "replace-origin",
                "replace-session-connection",
                "rtcp-mux-demux",
                "ICE-remove",
                "SDES-off",
                "always-transcode",
            ]
        )
    )
    c = o.codec
    assert c.strip == ["PCMA"] and c.mask == ["opus"] and c.transcode == ["G722", "PCMU"]
    assert c.offer == ["telephone-event"] and c.except_ == ["iLBC/8000/1///mode=30"]
    assert c.accept == ["all", "all"] and c.consume == ["GSM"]
    assert o.replace == {"origin", "session connection"}
    assert o.rtcp_mux == {"demux"} and o.ice == {"remove"} and o.sdes == ["off"]
    assert o.warnings == []


def test_structured_options() -> None:
    o = parse_options(
        req(
            replace=["origin", "session-connection", "zero-address", "nonsense"],
            rtcp_mux=["offer", "maybe"],
            ICE="remove",
            codec={"strip": ["PCMA", "all"], "transcode": "opus", "mask": ["G722"], "frob": ["x"]},
            ptime=30,
            record_call="yes",
            direction=["priv", "pub"],
            label="caller",
            metadata="a:b|c:d",
            DTLS="passive",
            SDES=["no-NULL_HMAC_SHA1_32"],
        )
    )
    assert o.replace == {"origin", "session connection", "zero address"}
    assert o.rtcp_mux == {"offer"} and o.ice == {"remove"}
    assert o.codec.strip == ["PCMA", "all"] and o.codec.transcode == ["opus"] and o.codec.mask == ["G722"]
    assert o.ptime == 30 and o.record_call is True
    assert (o.from_interface, o.to_interface) == ("priv", "pub")
    assert o.label == "caller" and o.metadata == "a:b|c:d" and o.dtls == "passive"
    assert o.warnings == [
        "Unknown replace value 'nonsense'",
        "Unknown rtcp-mux value 'maybe'",
        "Unknown codec option 'frob'",
    ]


@pytest.mark.parametrize(("value", "expected"), [("yes", True), ("on", True), ("no", False), ("off", False)])
def test_record_call_values(value: str, expected: bool) -> None:
    assert parse_options(req(record_call=value)).record_call is expected


def test_wrong_types_become_warnings_not_errors() -> None:
    o = parse_options(req(ptime="fast", **{"call-id": ["x"]}, codec="PCMU", record_call="maybe"))
    assert o.call_id is None and o.ptime is None and o.record_call is None
    assert len(o.warnings) == 4
    assert parse_options(req(ptime="20")).ptime == 20  # numbers may come as strings


def test_bad_codec_names_are_dropped_with_a_warning() -> None:
    o = parse_options(req(codec={"transcode": ["nosuchcodec", "opus", "PCMU/x"]}))
    assert o.codec.transcode == ["opus"]
    assert len(o.warnings) == 2


def test_dtmf_codes() -> None:
    for value, code in (("5", 5), ("*", 10), ("#", 11), ("d", 15), (3, 3), ("12", 12), ("E", -1), (16, -1)):
        o = parse_options(req(code=value))
        assert o.code_given and o.code == code, value
    assert parse_options(req(digit="A")).code == 12
    assert not parse_options(req()).code_given


def test_rtpp_flags_string() -> None:
    text = (
        "replace-origin via-branch=auto-next strict-source label=callee OSRTP=[accept] "
        "transport-protocol=RTP/AVP codec=[transcode=[PCMA PCMU] accept=[AMR-WB AMR] strip=[EVS]]"
    )
    assert parse_rtpp_flags(text) == {
        b"via-branch": b"auto-next",
        b"label": b"callee",
        b"OSRTP": [b"accept"],
        b"transport-protocol": b"RTP/AVP",
        b"codec": {b"transcode": [b"PCMA", b"PCMU"], b"accept": [b"AMR-WB", b"AMR"], b"strip": [b"EVS"]},
        b"flags": [b"replace-origin", b"strict-source"],
    }
    o = parse_options(req(rtpp_flags=text, label="explicit", flags=["asymmetric"]))
    assert o.label == "explicit"  # explicit keys win
    assert o.replace == {"origin"} and o.strict_source and o.asymmetric
    assert o.codec.transcode == ["PCMA", "PCMU"] and o.codec.strip == ["EVS"]
    assert o.transport_protocol == "RTP/AVP" and o.osrtp == ["accept"]


@pytest.mark.parametrize("text", ["codec=[strip=[PCMA]", "a]", "=x", "x=[" * 20 + "]" * 20])
def test_bad_rtpp_flags(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rtpp_flags(text)
    assert parse_options(req(rtpp_flags=text)).warnings[0].startswith("rtpp-flags:")


def test_webrtc_shortcut() -> None:
    o = parse_options(req(flags=["WebRTC"]))
    assert o.transport_protocol == "UDP/TLS/RTP/SAVPF"
    assert {"offer", "require"} <= o.rtcp_mux and "force" in o.ice and o.no_rtcp_attribute
