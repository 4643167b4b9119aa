"""What the NG server reports about each datagram (for logs and metrics), and the calls the
node removes on its own account (media timeouts, shutdown)."""

from __future__ import annotations

from vpbx.ng import BackendError, NgServer, RecordingOptions, encode
from vpbx.ng.fake import FakeBackend

CALLER = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
SRC = ("198.51.100.1", 5060)


def datagram(cookie: str, **request: object) -> bytes:
    return cookie.encode() + b" " + encode({k.replace("_", "-"): v for k, v in request.items()})


def test_outcomes_name_the_command_the_call_and_the_result() -> None:
    server = NgServer(FakeBackend())
    o = server.handle(datagram("c1", command="offer", call_id="x1", from_tag="t1", sdp=CALLER), SRC, 1.0)
    assert (o.result, o.command, o.call_id, o.from_tag) == ("ok", "offer", "x1", "t1")
    assert o.reply is not None and o.reply.startswith(b"c1 d")
    again = server.handle(datagram("c1", command="offer", call_id="x1", from_tag="t1", sdp=CALLER), SRC, 1.1)
    assert (again.result, again.reply) == ("retransmission", o.reply)
    bad = server.handle(datagram("c2", command="Offer", from_tag="t1", sdp=CALLER), SRC, 1.2)
    assert (bad.result, bad.command, bad.reason) == ("error", "offer", "No call-id in message")
    unknown = server.handle(datagram("c3", command="fly"), SRC, 1.3)
    assert (unknown.result, unknown.command, unknown.reason) == ("error", None, "Unrecognized command")
    broken = server.handle(b"c4 d7:comm", SRC, 1.4)
    assert broken.result == "error" and broken.command is None and broken.reply is not None
    dropped = server.handle(b"nocookie", SRC, 1.5)
    assert (dropped.result, dropped.reply) == ("dropped", None)
    assert server.handle_datagram(datagram("c5", command="ping"), SRC, 1.6) == b"c5 d6:result4:ponge"


class NoRecording(FakeBackend):
    def start_recording(self, call_id: str, options: RecordingOptions) -> None:
        raise BackendError("recording is not supported here")


def test_record_call_on_offer_is_a_warning_when_recording_fails() -> None:
    server = NgServer(NoRecording())
    o = server.handle(
        datagram("c1", command="offer", call_id="r1", from_tag="t1", sdp=CALLER, flags=["record call"]),
        SRC,
        1.0,
    )
    assert o.result == "ok" and o.reason == "recording is not supported here"
    assert "r1" in server.commands.calls  # the call goes on, unrecorded
    start = server.handle(datagram("c2", command="start recording", call_id="r1"), SRC, 1.1)
    assert (start.result, start.reason) == ("error", "recording is not supported here")


def test_calls_removed_by_the_node_are_counted_apart() -> None:
    backend = FakeBackend()
    server = NgServer(backend)
    for n, cid in enumerate(("a", "b")):
        server.handle(datagram(f"o{n}", command="offer", call_id=cid, from_tag="t", sdp=CALLER), SRC, 1.0)
    assert backend.ports_in_use == 8
    assert server.commands.remove_call("a", "timeout")
    assert server.commands.remove_call("b", "forced")
    assert not server.commands.remove_call("b", "forced")
    assert backend.ports_in_use == 0 and not server.commands.calls
    stats = server.commands.handle({b"command": b"statistics"}, SRC, 2.0)["statistics"]
    assert stats["totalstatistics"]["timeoutsessions"] == 1
    assert stats["totalstatistics"]["forcedterminatedsessions"] == 1
    assert stats["totalstatistics"]["regularterminatedsessions"] == 0
