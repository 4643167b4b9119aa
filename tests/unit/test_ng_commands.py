"""NG commands other than offer/answer, the server's framing/cache/error paths, and fuzzing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpbx.ng import NgServer, decode, encode
from vpbx.ng.backend import CallStats, LegStats, MediaSource, RecordingOptions, StreamStats
from vpbx.ng.bencode import Value
from vpbx.ng.fake import FakeBackend

SRC = ("127.0.0.1", 5060)

CALLER = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\na=sendrecv\r\n"
)
CALLEE = CALLER.replace("alice", "bob").replace("192.0.2.10", "198.51.100.20").replace("49170", "5004")


def plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    return v


class Ng:
    def __init__(self, backend: FakeBackend | None = None) -> None:
        self.be = backend or FakeBackend()
        self.server = NgServer(self.be)
        self.n = 0
        self.now = 1_700_000_000.0

    def raw(self, datagram: bytes) -> bytes | None:
        return self.server.handle_datagram(datagram, SRC, self.now)

    def __call__(self, command: str, **kw: Any) -> dict[str, Any]:
        self.n += 1
        doc = {"command": command, **{k.replace("_", "-"): v for k, v in kw.items()}}
        out = self.raw(b"k%d " % self.n + encode(doc))
        assert out is not None
        return plain(decode(out.partition(b" ")[2]))  # type: ignore[no-any-return]

    def call(self, call_id: str = "c1") -> None:
        assert self("offer", sdp=CALLER, call_id=call_id, from_tag="ta")["result"] == "ok"
        assert self("answer", sdp=CALLEE, call_id=call_id, from_tag="ta", to_tag="tb")["result"] == "ok"


def test_ping() -> None:
    ng = Ng()
    assert ng.raw(b"5323_1 d7:command4:pinge") == b"5323_1 d6:result4:ponge"


def test_json_request_gets_a_json_reply() -> None:
    ng = Ng()
    assert ng.raw(b'abc {"command": "ping"}') == b'abc {"result":"pong"}'
    out = ng.raw(
        b"x1 " + json.dumps({"command": "offer", "call-id": "j", "from-tag": "t", "sdp": CALLER}).encode()
    )
    assert out is not None
    reply = json.loads(out.partition(b" ")[2])
    assert reply["result"] == "ok" and "m=audio 30002 RTP/AVP 0 101" in reply["sdp"]


def test_retransmission_is_answered_from_cache_and_executed_once() -> None:
    ng = Ng()
    datagram = b"r1 " + encode({"command": "offer", "call-id": "c1", "from-tag": "ta", "sdp": CALLER})
    first = ng.raw(datagram)
    ng.now += 5
    assert ng.raw(datagram) == first
    assert len(ng.be.calls_to("allocate_leg")) == 2  # not allocated again
    assert ng.server.counters.retransmissions == 1
    assert ng.server.commands.totals["offer"] == 1
    other_client = ng.server.handle_datagram(datagram, ("192.0.2.99", 5060), ng.now)
    assert other_client is not None and ng.server.commands.totals["offer"] == 2
    ng.now += 60  # past the TTL: a new request
    ng.raw(datagram)
    assert ng.server.commands.totals["offer"] == 3


@pytest.mark.parametrize(
    ("datagram", "reply"),
    [
        (
            b"c1 d7:command",
            "Could not decode bencode dictionary: at byte 10: expected a value for key b'command'",
        ),
        (b"c2 d7:command4:pingee", "Could not decode bencode dictionary: at byte 17: expected end of data"),
        (b'c3 {"command": ', "Failed to parse JSON document: "),
        (b"c4 l4:pinge", "Invalid NG data format: "),
        (b"c5 ", "Invalid data (no payload)"),
        (b"c6 d4:call2:ide", 'Dictionary contains no key "command"'),
        (b"c7 d7:command5:dancee", "Unrecognized command"),
    ],
)
def test_bad_requests_get_error_replies_with_the_cookie(datagram: bytes, reply: str) -> None:
    ng = Ng()
    out = ng.raw(datagram)
    assert out is not None
    cookie, _, body = out.partition(b" ")
    assert cookie == datagram.partition(b" ")[0]
    decoded = json.loads(body) if body.startswith(b"{") else plain(decode(body))
    assert decoded["result"] == "error" and decoded["error-reason"].startswith(reply)
    assert set(decoded) == {"result", "error-reason"}


def test_datagrams_without_a_cookie_are_dropped_and_counted() -> None:
    ng = Ng()
    assert ng.raw(b"d7:command4:pinge") is None
    assert ng.raw(b"") is None
    assert ng.server.counters.dropped == 2


def test_command_names_are_matched_like_rtpengine_keys() -> None:
    ng = Ng()
    ng.call()
    assert ng("start-recording", call_id="c1")["result"] == "ok"
    assert ng("Play DTMF", call_id="c1", from_tag="ta", code="1")["result"] == "ok"


def test_delete_whole_call_frees_ports_and_returns_stats() -> None:
    ng = Ng()
    ng.call()
    assert ng.be.ports_in_use == 4
    reply = ng("delete", call_id="c1", from_tag="ta", to_tag="tb")
    assert reply["result"] == "ok" and set(reply["tags"]) == {"ta", "tb"}
    assert reply["totals"] == {
        "RTP": {"packets": 0, "bytes": 0, "errors": 0},
        "RTCP": {"packets": 0, "bytes": 0, "errors": 0},
    }
    assert ng.be.ports_in_use == 0 and ng.server.commands.calls == {}
    again = ng("delete", call_id="c1", from_tag="ta")
    assert again == {"result": "ok", "warning": "Call-ID not found or tags didn't match"}
    fatal = ng("delete", call_id="c1", flags=["fatal"])
    assert fatal == {"result": "error", "error-reason": "Call-ID not found or tags didn't match"}
    assert ng("delete")["error-reason"] == "No call-id in message"


def test_delete_fast_and_without_from_tag() -> None:
    ng = Ng()
    ng.call()
    assert ng("delete", call_id="c1", flags=["fast"]) == {"result": "ok"}
    assert ng.be.ports_in_use == 0


def test_delete_unknown_tag_warns_and_keeps_the_call() -> None:
    ng = Ng()
    ng.call()
    reply = ng("delete", call_id="c1", from_tag="zz")
    assert reply["warning"] == "Call-ID not found or tags didn't match"
    assert "c1" in ng.server.commands.calls


def test_delete_of_an_unanswered_offer_with_an_unseen_to_tag() -> None:
    ng = Ng()
    ng("offer", sdp=CALLER, call_id="c1", from_tag="ta")
    assert ng("delete", call_id="c1", from_tag="ta", to_tag="never-seen")["result"] == "ok"
    assert ng.server.commands.calls == {} and ng.be.ports_in_use == 0


def test_query_shape() -> None:
    ng = Ng()
    ng.call()
    callee = ng.server.commands.calls["c1"].by_tag("tb")
    assert callee is not None
    ng.be.stats["c1"] = CallStats(
        {
            ("ta", 0): LegStats(
                rtp=StreamStats(705, 100287, 0, 1_700_000_010.7, ("192.0.2.10", 49170)),
                rtcp=StreamStats(22, 2244),
                ssrc=0x1234,
                mos=4.3,
                jitter_ms=2.4,
                packet_loss_pct=0.0,
                codec="PCMU/8000",
            ),
            (callee.pid, 0): LegStats(rtp=StreamStats(343, 56950, 1)),
        }
    )
    ng.now += 30
    reply = ng("query", call_id="c1")
    assert reply["created"] == 1_700_000_000 and reply["last signal"] == 1_700_000_000
    assert reply["totals"] == {
        "RTP": {"packets": 1048, "bytes": 157237, "errors": 1},
        "RTCP": {"packets": 22, "bytes": 2244, "errors": 0},
    }
    ta = reply["tags"]["ta"]
    assert ta["tag"] == "ta" and ta["in dialogue with"] == "tb" and ta["created"] == 1_700_000_000
    media = ta["medias"][0]
    assert (media["index"], media["type"], media["protocol"], media["codec"]) == (
        1,
        "audio",
        "RTP/AVP",
        "PCMU/8000",
    )
    assert media["flags"] == ["initialized"]
    rtp, rtcp = media["streams"]
    assert rtp["local port"] == 30000 and rtcp["local port"] == 30001
    assert rtp["endpoint"] == {"family": "IPv4", "address": "192.0.2.10", "port": 49170}
    assert rtp["advertised endpoint"]["port"] == 49170 and rtcp["advertised endpoint"]["port"] == 49171
    assert rtp["last packet"] == 1_700_000_010
    assert rtp["flags"] == ["RTP", "filled", "confirmed"] and rtcp["flags"] == ["RTCP", "filled"]
    assert rtp["stats"] == {"packets": 705, "bytes": 100287, "errors": 0}
    assert media["ingress SSRCs"] == [
        {"SSRC": 0x1234, "average MOS": {"MOS": 43, "samples": 1, "jitter": 2, "packet loss": 0}}
    ]
    only = ng("query", call_id="c1", from_tag="tb")
    assert set(only["tags"]) == {"ta", "tb"}
    assert ng("query", call_id="c1", from_tag="nobody")["tags"] == {}
    assert ng("query", call_id="zz")["error-reason"] == "Unknown call-id"
    assert ng("query")["error-reason"] == "No call-id in message"


def test_query_of_an_unanswered_call_shows_the_untagged_side() -> None:
    ng = Ng()
    ng("offer", sdp=CALLER, call_id="c1", from_tag="ta")
    tags = ng("query", call_id="c1")["tags"]
    untagged = [k for k in tags if k.startswith("<untagged")]
    assert len(untagged) == 1 and tags[untagged[0]]["tag"] == ""
    assert tags[untagged[0]]["medias"][0]["streams"][0]["local port"] == 30002


def test_list() -> None:
    ng = Ng(FakeBackend(port_max=40000))
    for i in range(40):
        ng("offer", sdp=CALLER, call_id=f"call-{i}", from_tag="ta")
    assert ng("list")["calls"] == [f"call-{i}" for i in range(32)]  # rtpengine's default limit
    assert ng("list", limit=3)["calls"] == ["call-0", "call-1", "call-2"]
    assert ng("list", limit=0)["calls"] == []
    assert ng("list", limit=-1)["error-reason"] == "invalid limit, must be >= 0"


def test_statistics() -> None:
    ng = Ng()
    ng.call()
    ng("ping")
    ng("dance")
    ng.now += 42
    stats = ng("statistics")["statistics"]
    assert stats["currentstatistics"]["sessionsown"] == 1
    assert stats["totalstatistics"]["uptime"] == "42" and stats["totalstatistics"]["managedsessions"] == 1
    control = stats["controlstatistics"]
    assert control["totaloffercount"] == 1 and control["totalanswercount"] == 1
    assert control["totalpingcount"] == 1 and control["totalerrorcount"] == 1
    assert control["proxies"][0]["proxy"] == "127.0.0.1" and control["proxies"][0]["offercount"] == 1
    assert stats["engine"]["portsused"] == 4


def test_recording_commands() -> None:
    ng = Ng()
    ng.call()
    assert ng("start recording", call_id="c1", metadata="crm:1", recording_file="/rec/c1.wav") == {
        "result": "ok"
    }
    assert ng.be.calls_to("start_recording") == [
        ("c1", RecordingOptions(file="/rec/c1.wav", metadata="crm:1"))
    ]
    assert ng("pause recording", call_id="c1")["result"] == "ok"
    assert ng.be.calls["c1"].recording == "paused"
    ng("start recording", call_id="c1")
    assert ng("stop recording", call_id="c1", flags=["pause"])["result"] == "ok"
    assert ng.be.calls["c1"].recording == "paused"
    ng("start recording", call_id="c1")
    assert ng("stop recording", call_id="c1", pause="yes")["result"] == "ok"
    assert ng.be.calls["c1"].recording == "paused"
    assert ng("stop recording", call_id="c1")["result"] == "ok"
    assert ng.be.calls["c1"].recording == "off"
    assert ng("start recording", call_id="nope")["error-reason"] == "Unknown call-id"
    assert ng("stop recording")["error-reason"] == "No call-id in message"


def test_play_and_stop_media() -> None:
    ng = Ng()
    ng.call()
    reply = ng("play media", call_id="c1", from_tag="ta", file="/prompts/welcome.wav", repeat_times=2)
    assert reply == {"result": "ok", "duration": 1500}
    assert ng.be.calls_to("play_media")[0][:4] == ("c1", "ta", MediaSource(file="/prompts/welcome.wav"), 2)
    blob = ng("play media", call_id="c1", label="nobody", blob=b"RIFF")
    assert blob["error-reason"] == "No monologue matching the given label"
    assert ng("play media", call_id="c1", from_tag="ta")["error-reason"] == "No media file specified"
    assert ng("play media", call_id="c1", file="x.wav")["error-reason"] == "No participant party specified"
    assert ng("play media", call_id="c1", from_tag="zz", file="x.wav")["error-reason"] == (
        "From-tag given, but no such tag exists"
    )
    assert ng("play media", call_id="zz", from_tag="ta", file="x.wav")["error-reason"] == "Unknown call-ID"
    everyone = ng("play media", call_id="c1", flags=["all"], blob64="UklGRg==")
    assert everyone["result"] == "ok" and len(ng.be.calls["c1"].playing) == 2
    assert ng.be.calls["c1"].playing["ta"] == MediaSource(blob=b"RIFF")
    assert ng("stop media", call_id="c1", from_tag="ta") == {"result": "ok", "last-frame-pos": 0}
    assert ng("stop media", call_id="c1", from_tag="ta")["error-reason"] == "Not currently playing media"


@pytest.mark.parametrize(
    ("kw", "sent"),
    [
        ({"code": "5"}, (5, 250, -8, 100)),
        ({"digit": "#", "duration": 50, "volume": 10, "pause": 9000}, (11, 100, -10, 5000)),
        ({"code": 15, "duration": 99999, "volume": -20}, (15, 5000, -20, 100)),
    ],
)
def test_play_dtmf(kw: dict[str, Any], sent: tuple[int, int, int, int]) -> None:
    ng = Ng()
    ng.call()
    assert ng("play DTMF", call_id="c1", from_tag="ta", **kw) == {"result": "ok"}
    assert ng.be.calls_to("play_dtmf") == [("c1", "ta", *sent)]


def test_play_dtmf_errors() -> None:
    ng = Ng()
    ng.call()
    assert (
        ng("play DTMF", call_id="c1", from_tag="ta", code="X")["error-reason"]
        == "Out of range 'code' specified"
    )
    assert (
        ng("play DTMF", call_id="c1", from_tag="ta", code=16)["error-reason"]
        == "Out of range 'code' specified"
    )
    assert ng("play DTMF", call_id="c1", from_tag="ta")["error-reason"] == "No DTMF code or digit specified"


def test_a_backend_bug_becomes_an_internal_error_reply() -> None:
    ng = Ng()

    def boom(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("engine bug")

    ng.be.allocate_leg = boom  # type: ignore[method-assign]
    assert ng("offer", sdp=CALLER, call_id="c1", from_tag="ta") == {
        "result": "error",
        "error-reason": "Internal error",
    }
    assert ng.server.commands.calls == {}


def test_admission_limit() -> None:
    be = FakeBackend()
    server = NgServer(be, max_calls=1)
    offer = {"command": "offer", "from-tag": "t", "sdp": CALLER}
    server.handle_datagram(b"1 " + encode({**offer, "call-id": "a"}), SRC, 0.0)
    out = server.handle_datagram(b"2 " + encode({**offer, "call-id": "b"}), SRC, 0.0)
    assert out is not None and b"Parallel session limit reached" in out


# ---------------------------------------------------------------------------------------------
# Fuzzing: whatever arrives, the server answers (or drops) and never raises.

COMMAND_NAMES = [
    "offer",
    "answer",
    "delete",
    "query",
    "list",
    "statistics",
    "ping",
    "start recording",
    "stop recording",
    "pause recording",
    "play media",
    "stop media",
    "play DTMF",
    "nonsense",
]
KEYS = [
    "call-id",
    "from-tag",
    "to-tag",
    "via-branch",
    "sdp",
    "flags",
    "replace",
    "codec",
    "rtcp-mux",
    "ICE",
    "ptime",
    "record call",
    "direction",
    "label",
    "limit",
    "code",
    "duration",
    "file",
    "blob",
    "received-from",
    "media address",
    "address family",
    "transport protocol",
    "rtpp-flags",
    "pause",
    "all",
]
leaf = st.one_of(
    st.sampled_from(
        [
            b"c1",
            b"ta",
            b"tb",
            b"all",
            b"yes",
            b"PCMA",
            b"opus",
            b"remove",
            b"demux",
            b"IP6",
            CALLER.encode(),
            CALLEE.encode(),
            b"v=0\r\nm=audio\r\n",
            b"\xff\xfe",
        ]
    ),
    st.binary(max_size=16),
    st.integers(min_value=-(2**40), max_value=2**40),
)
ng_values: st.SearchStrategy[Value] = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from([k.encode() for k in KEYS]) | st.binary(max_size=6), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(COMMAND_NAMES), st.dictionaries(st.sampled_from(KEYS), ng_values, max_size=8)
        ),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=300, deadline=None)
def test_fuzz_dispatcher_never_raises(requests: list[tuple[str, dict[str, Value]]]) -> None:
    be = FakeBackend()
    server = NgServer(be)
    for i, (command, body) in enumerate(requests):
        doc: dict[str, Any] = {"command": command, **body}
        out = server.handle_datagram(b"f%d " % i + encode(doc), SRC, float(i))
        assert out is not None
        reply = decode(out.partition(b" ")[2])
        assert isinstance(reply, dict) and reply[b"result"] in (b"ok", b"pong", b"error")
        if reply[b"result"] == b"error":
            assert set(reply) == {b"result", b"error-reason"}
            assert reply[b"error-reason"] != b"Internal error", doc
    # whatever happened, deleting every call gives every port back
    for call_id in list(server.commands.calls):
        server.handle_datagram(b"end " + encode({"command": "delete", "call-id": call_id}), SRC, 99.0)
    assert be.ports_in_use == 0


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_fuzz_raw_datagrams(data: bytes) -> None:
    server = NgServer(FakeBackend())
    out = server.handle_datagram(data, SRC, 0.0)
    if out is not None:
        assert out.partition(b" ")[0] == data.partition(b" ")[0]


def test_unanswered_offers_expire_answered_calls_do_not() -> None:
    ng = Ng()
    assert ng("offer", sdp=CALLER, call_id="lost", from_tag="ta")["result"] == "ok"
    ng.call("kept")
    commands = ng.server.commands
    assert commands.expire_offers(ng.now + 60.0, 60.0) == []  # not older than the timeout yet
    ng.now += 30.0
    assert (
        ng("offer", sdp=CALLER, call_id="lost", from_tag="ta")["result"] == "ok"
    )  # re-offer: clock restarts
    assert commands.expire_offers(ng.now + 59.0, 60.0) == []
    assert commands.expire_offers(ng.now + 61.0, 60.0) == ["lost"]
    assert set(commands.calls) == {"kept"} and commands.offers_timed_out == 1
    assert ng.be.calls.keys() == {"kept"}  # the backend freed the lost call's legs
    assert commands.expire_offers(ng.now + 10_000.0, 60.0) == []  # answered: left to the media timeout


def test_a_deleted_call_is_freed_without_the_cycle_collector() -> None:
    """Offerer and answerer point at each other; once the call is deleted nothing of it may
    wait for a GC pass (after an overload, one pass over such leftovers stalled vpbx ~1 s)."""
    ng = Ng()
    ng.call("c1")
    parties = list(ng.server.commands.calls["c1"].parties)
    assert all(p.peer is not None for p in parties)
    assert ng("delete", call_id="c1")["result"] == "ok"
    assert "c1" not in ng.server.commands.calls
    assert all(p.peer is None for p in parties)
