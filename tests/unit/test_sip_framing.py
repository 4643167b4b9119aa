"""StreamFramer: messages cut out of a TCP/TLS stream by Content-Length (RFC 3261 §18.3),
CRLF keep-alives (§7.5, RFC 5626 §3.5.1) and the bounds that protect memory."""

from __future__ import annotations

from vpbx.sip import PING, PONG, Request, SipParseError, StreamFramer, is_keepalive, parse_message


def message(n: int, body: bytes = b"", *, length: bool = True) -> bytes:
    head = (
        f"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{n}\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag={n}\r\n"
        f"Call-ID: c{n}\r\nCSeq: {n} OPTIONS\r\n"
    )
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def test_several_messages_in_one_chunk() -> None:
    data = message(1) + message(2, b"hello") + message(3)
    assert StreamFramer().feed(data) == [message(1), message(2, b"hello"), message(3)]


def test_one_octet_at_a_time() -> None:
    framer = StreamFramer()
    stream = message(1, b"body\r\n\r\nwith blank lines") + b"\r\n\r\n" + message(2)
    out = []
    for i in range(len(stream)):
        out += framer.feed(stream[i : i + 1])
    assert out == [message(1, b"body\r\n\r\nwith blank lines"), PING, message(2)]
    assert framer.buffered == 0
    msg = parse_message(out[0], stream=True)  # type: ignore[arg-type]
    assert isinstance(msg, Request) and msg.body == b"body\r\n\r\nwith blank lines"


def test_keepalives() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [PING]  # RFC 5626 ping: answer PONG
    assert PONG == b"\r\n"
    assert framer.feed(b"\r\n") == []  # a lone CRLF (a pong, or §7.5 padding) is skipped ...
    assert framer.feed(b"\r\n") == [PING]  # ... unless a second one makes a ping
    assert framer.feed(b"\r\n") == []
    assert framer.feed(message(1)) == [message(1)]  # the waiting CRLF is skipped before a start-line
    assert framer.feed(b"\r\n\r\n\r\n\r\n" + message(2)) == [PING, PING, message(2)]
    assert framer.feed(b"\r") == [] and framer.feed(b"\n\r\n") == [PING]
    assert (
        is_keepalive(b"\r\n\r\n")
        and is_keepalive(b"\r\n")
        and not is_keepalive(b"")
        and not is_keepalive(b"x")
    )


def test_missing_content_length_is_answered_with_400() -> None:
    framer = StreamFramer()
    out = framer.feed(message(1, length=False) + message(2))
    assert out == [message(1, length=False), message(2)]
    try:
        parse_message(out[0], stream=True)  # type: ignore[arg-type]
    except SipParseError as err:
        assert err.status == 400 and not err.drop and err.response() is not None
    else:
        raise AssertionError("missing Content-Length accepted on a stream")
    assert not framer.failed


def test_oversized_body_is_refused_and_skipped() -> None:
    framer = StreamFramer(max_body=100)
    big = message(1, b"x" * 1000)
    out = framer.feed(big[:300])
    assert len(out) == 1 and isinstance(out[0], SipParseError) and out[0].status == 413
    response = out[0].response(to_tag="big")
    assert response is not None and response.reason == "Request Entity Too Large"
    assert framer.feed(big[300:700]) == []
    assert framer.feed(big[700:] + message(2)) == [message(2)]  # framing went on
    assert framer.buffered == 0 and not framer.failed


def test_oversized_header_section_fails_the_stream() -> None:
    framer = StreamFramer(max_header=1024)
    out = framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: " + b"y" * 2000)
    assert len(out) == 1 and isinstance(out[0], SipParseError) and out[0].status == 513 and out[0].drop
    assert framer.failed and framer.buffered == 0
    assert framer.feed(message(1)) == []  # the transport closes the connection
    slow = StreamFramer(max_header=1024)
    for _ in range(100):  # a header trickling in without an end is cut off too
        result = slow.feed(b"X-Long: " + b"z" * 50 + b"\r\n")
        assert slow.buffered <= 1024 + 60
        if result:
            break
    assert slow.failed


def test_complete_header_over_the_limit() -> None:
    framer = StreamFramer(max_header=200)
    out = framer.feed(message(1).replace(b"Max-Forwards: 70", b"X: " + b"a" * 300))
    assert isinstance(out[0], SipParseError) and out[0].status == 513


def test_bad_content_length_fails_the_stream() -> None:
    for bad in (b"Content-Length: -5", b"Content-Length: 5, 5", b"Content-Length: five"):
        framer = StreamFramer()
        out = framer.feed(message(1).replace(b"Content-Length: 0", bad))
        assert len(out) == 1 and isinstance(out[0], SipParseError) and out[0].status == 400
        assert not out[0].drop and framer.failed  # answer, then close
    framer = StreamFramer()
    out = framer.feed(message(1).replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0"))
    assert isinstance(out[0], SipParseError) and "twice" in out[0].detail


def test_compact_and_folded_content_length() -> None:
    framer = StreamFramer()
    data = message(1, b"abc").replace(b"Content-Length: 3", b"L  :\r\n  3")
    assert framer.feed(data + message(2)) == [data, message(2)]
    msg = parse_message(data, stream=True)
    assert msg.body == b"abc"


def test_responses_are_framed_too() -> None:
    resp = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nl: 2\r\n\r\nok"
    )
    assert StreamFramer().feed(resp * 2) == [resp, resp]
