"""Properties of the transaction layer under random event sequences (hypothesis), and
of the timer heap under it: nothing raises, the live transactions stay within the
configured bounds, and once time has run far enough every transaction has ended,
each with exactly one Terminated."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vpbx.sip import Request, Response, build_response, parse_message
from vpbx.sip.timers import TimerHeap
from vpbx.sip.transaction import (
    Action,
    Deliver,
    Terminated,
    TransactionKey,
    TransactionLayer,
    TransactionLimitError,
    build_ack,
    build_cancel,
)

PEER = ("203.0.113.9", 5060)
METHODS = ("INVITE", "REGISTER", "BYE", "OPTIONS")
TRANSPORTS = ("UDP", "TCP")
CODES = (100, 180, 200, 302, 404, 487, 503)
MAX_SERVER, MAX_CLIENT = 4, 3


def request(method: str, branch: int, transport: str, cseq: int = 1) -> Request:
    via_branch = f";branch=z9hG4bKprop{branch}" if branch >= 0 else ""  # < 0: RFC 2543
    msg = parse_message(
        (
            f"{method} sip:svc@pbx.example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} ua{abs(branch) % 2}.example.com:5060{via_branch}\r\n"
            "Max-Forwards: 70\r\n"
            "To: <sip:svc@pbx.example.com>\r\n"
            f"From: <sip:ua@example.com>;tag=f{branch}\r\n"
            f"Call-ID: call{branch}@example.com\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Contact: <sip:ua@192.0.2.1>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(msg, Request)
    return msg


def reply(req: Request, code: int) -> Response:
    out = parse_message(build_response(req, code, to_tag=None if code == 100 else "rt").to_bytes())
    assert isinstance(out, Response)
    return out


branch = st.integers(-2, 5)
method = st.sampled_from(METHODS)
transport = st.sampled_from(TRANSPORTS)
code = st.sampled_from(CODES)
ops = st.one_of(
    st.tuples(st.just("recv"), method, branch, transport),
    st.tuples(st.just("ack"), branch, st.booleans(), code),
    st.tuples(st.just("cancel_in"), branch, transport),
    st.tuples(st.just("respond"), st.integers(0, 20), code),
    st.tuples(st.just("send"), method, st.integers(0, 5), transport),
    st.tuples(st.just("cancel_out"), st.integers(0, 5)),
    st.tuples(st.just("resp"), method, st.integers(0, 5), code),
    st.tuples(st.just("terr"), st.integers(0, 20)),
    st.tuples(st.just("advance"), st.sampled_from((0.0, 0.1, 0.5, 1.0, 4.0, 31.0, 200.0))),
    st.tuples(st.just("deadline")),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ops, max_size=80))
def test_random_events_never_raise_stay_bounded_and_end(script: list[tuple[object, ...]]) -> None:
    layer = TransactionLayer(max_server_transactions=MAX_SERVER, max_client_transactions=MAX_CLIENT)
    now = 0.0
    keys: list[TransactionKey] = []
    terminated: list[TransactionKey] = []

    def take(actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Deliver) and action.key is not None and action.key not in keys:
                keys.append(action.key)
            if isinstance(action, Terminated):
                terminated.append(action.key)

    for op in script:
        kind = op[0]
        if kind == "recv":
            take(layer.receive(request(op[1], op[2], op[3]), PEER, op[3], now))  # type: ignore[arg-type]
        elif kind == "ack":
            invite = request("INVITE", op[1], "UDP")  # type: ignore[arg-type]
            ack = build_ack(invite, reply(invite, op[3]))  # type: ignore[arg-type]
            if op[2]:
                ack.headers.set("Via", "SIP/2.0/UDP ua0.example.com:5060;branch=z9hG4bKack")
            take(layer.receive(ack, PEER, "UDP", now))
        elif kind == "cancel_in":
            cancel = build_cancel(request("INVITE", op[1], op[2]))  # type: ignore[arg-type]
            take(layer.receive(cancel, PEER, op[2], now))  # type: ignore[arg-type]
        elif kind == "respond" and keys:
            key = keys[op[1] % len(keys)]  # type: ignore[operator]
            req = request(key.method if key.method != "ACK" else "INVITE", 0, "UDP")
            take(layer.respond(key, reply(req, op[2]), now))  # type: ignore[arg-type]
        elif kind == "send":
            req = request(op[1], op[2], op[3])  # type: ignore[arg-type]
            try:
                key, out = layer.send_request(req, PEER, op[3], now)  # type: ignore[arg-type]
            except (TransactionLimitError, ValueError):
                continue
            keys.append(key)
            take(out)
        elif kind == "cancel_out":
            try:
                key, out = layer.send_request(build_cancel(request("INVITE", op[1], "UDP")), PEER, "UDP", now)  # type: ignore[arg-type]
            except (TransactionLimitError, ValueError):
                continue
            keys.append(key)
            take(out)
        elif kind == "resp":
            take(layer.receive(reply(request(op[1], op[2], "UDP"), op[3]), PEER, "UDP", now))  # type: ignore[arg-type]
        elif kind == "terr" and keys:
            take(layer.transport_error(keys[op[1] % len(keys)], now))  # type: ignore[operator]
        elif kind == "advance":
            now += op[1]  # type: ignore[operator]
            take(layer.on_timer(now))
        elif kind == "deadline":
            deadline = layer.next_deadline()
            if deadline is not None:
                now = max(now, deadline)
                take(layer.on_timer(now))
        assert len(layer._server) <= MAX_SERVER and len(layer._client) <= MAX_CLIENT
        assert layer._heap.entries <= 2 * len(layer._heap) + 1024 + 1

    # Far enough in time, everything has ended: C (180 s) + 64*T1 bounds every state.
    take(layer.on_timer(now + 10_000.0))
    assert len(layer) == 0 and not layer._uas_2xx
    assert layer.next_deadline() is None and len(layer._heap) == 0
    assert len(terminated) == layer.created  # one Terminated per transaction


def test_timer_heap_orders_cancels_and_compacts() -> None:
    rng = random.Random(7)
    heap: TimerHeap[int, str] = TimerHeap()
    handles = {i: heap.push(rng.uniform(0, 100), i, "t") for i in range(5000)}
    for i in range(0, 5000, 2):
        heap.cancel(handles[i])
    assert len(heap) == 2500 and heap.entries == 5000  # cancelled entries wait in the heap
    for i in range(5000, 12000):  # pushes after many cancels trigger compaction
        h = heap.push(rng.uniform(0, 100), i, "t")
        heap.cancel(h)
    assert heap.entries <= 2 * len(heap) + 1025
    fired: list[float] = []
    while (entry := heap.pop_due(100.0)) is not None:
        fired.append(entry[0])
        assert entry[1] % 2 == 1
    assert fired == sorted(fired) and len(fired) == 2500
    assert heap.next_deadline() is None and len(heap) == 0
