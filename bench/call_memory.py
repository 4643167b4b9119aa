"""Python heap retained per answered call, by source file: the B2BUA, the NG layer and the
real media engine's Python side run in-process with a fake SIP port (no sockets, no
transaction layer: its state is transient and gone once Timer L/M fire, so `vpbx serve`'s
held calls carry only what is measured here plus the engine's native memory).

Each call: INVITE with a SIPp-like PCMU offer, 180, 200 with an answer (the ACK from A
changes no call state: B2bua.on_ack).
A tracemalloc snapshot is taken before and after --calls answered calls; the difference,
grouped by file, divided by the number of calls, is the retained cost per call.

    .venv/bin/python bench/call_memory.py --calls 2000
Prints a table and writes bench/results/call_memory.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from vpbx.media import Engine
from vpbx.media.ng_backend import EngineBackend
from vpbx.ng import NgCommands
from vpbx.pbx.calls import B2bua, B2buaConfig, Dialplan, DialplanSnapshot, NgMediaControl, NumberEntry
from vpbx.pbx.calls.model import ClientHandler
from vpbx.pbx.location import Binding, MemoryLocationStore
from vpbx.security import GuardConfig, SourceGuard
from vpbx.sip import DigestAuthenticator, Request, Response, parse_message
from vpbx.sip.transaction_actions import Deliver
from vpbx.sip.transaction_match import Dest, TransactionKey

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REALM = "pbx.test"
CALLER: Dest = ("127.0.0.1", 5061)
CALLEE: Dest = ("127.0.0.1", 5062)


def sdp(user: str, port: int) -> bytes:
    return (
        f"v=0\r\no={user} 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        f"t=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    ).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class Sent:
    request: Request
    dest: Dest
    key: TransactionKey
    handler: ClientHandler


class Port:
    """The SIP port seam; keeps only the last client transaction (to answer it)."""

    def __init__(self) -> None:
        self.last: Sent | None = None

    def respond(self, key: TransactionKey, response: Response) -> None:
        pass

    def request(self, request: Request, dest: Dest, transport: str, handler: ClientHandler) -> TransactionKey:
        key = TransactionKey(False, request.via[0].branch or "", "", request.method)
        self.last = Sent(request, dest, key, handler)
        return key

    def stateless(self, message: Request | Response, dest: Dest, transport: str) -> None:
        pass


def response_to(sent: Sent, status: int, body: bytes) -> Response:
    r = sent.request
    to = r.headers.get("to") or ""
    lines = [
        f"SIP/2.0 {status} X",
        f"Via: {r.headers.get('via')}",
        f"From: {r.headers.get('from')}",
        f"To: {to};tag=uas{abs(hash(r.call_id))}",
        f"Call-ID: {r.call_id}",
        f"CSeq: {r.cseq.seq} INVITE",
        f"Contact: <sip:1001@{CALLEE[0]}:{CALLEE[1]}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    message = parse_message(("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    assert isinstance(message, Response)
    return message


def invite(n: int) -> Request:
    body = sdp("uac", 6000 + 2 * (n % 10000))
    lines = [
        f"INVITE sip:5551000@{REALM} SIP/2.0",
        f"Via: SIP/2.0/UDP {CALLER[0]}:{CALLER[1]};branch=z9hG4bK-{n}-1-0",
        "Max-Forwards: 70",
        f"From: sipp <sip:sipp@{CALLER[0]}:{CALLER[1]}>;tag={n}SIPpTag00{n}",
        f"To: <sip:5551000@{REALM}>",
        f"Call-ID: {n}-4242@127.0.0.1",
        "CSeq: 1 INVITE",
        f"Contact: sip:sipp@{CALLER[0]}:{CALLER[1]}",
        "Subject: Performance Test",
        "Content-Type: application/sdp",
    ]
    message = parse_message(("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    assert isinstance(message, Request)
    return message


class Rig:
    def __init__(self, calls: int) -> None:
        self.clock = Clock()
        self.port = Port()
        self.engine = Engine(interfaces=["127.0.0.1"], port_min=20000, port_max=60000, media_timeout_s=3600)
        self.backend = EngineBackend(self.engine, clock=self.clock)
        self.media = NgMediaControl(NgCommands(self.backend, max_calls=calls + 100), clock=self.clock)
        location = MemoryLocationStore()
        location.replace(
            "1001",
            [
                Binding(
                    "1001",
                    f"sip:1001@{CALLEE[0]}:{CALLEE[1]}",
                    f"<sip:1001@{CALLEE[0]}:{CALLEE[1]}>",
                    self.clock.now + 10**6,
                    "r",
                    1,
                    CALLEE,
                    "UDP",
                )
            ],
        )
        snapshot = DialplanSnapshot(
            accounts={"1001": calls + 100},
            numbers={"5551000": NumberEntry("5551000", "extension", "1001", calls + 100)},
        )
        self.b2bua = B2bua(
            B2buaConfig(host="127.0.0.1", port=5060, realm=REALM, max_calls=calls + 100),
            dialplan=Dialplan(snapshot),
            location=location,
            authenticator=DigestAuthenticator(REALM, b"k" * 32, algorithms=("MD5",)),
            lookup_ha1=lambda user, alg: None,
            media=self.media,
            port=self.port,
            clock=self.clock,
            guard=SourceGuard(GuardConfig(trusted=("127.0.0.0/8",))),
            on_cdr=lambda cdr: None,
        )

    def call(self, n: int) -> None:
        a = invite(n)
        key = TransactionKey(True, f"z9hG4bK-{n}-1-0", f"{CALLER[0]}:{CALLER[1]}", "INVITE")
        self.b2bua.on_invite(a, key, CALLER, "UDP")
        sent = self.port.last
        assert sent is not None and sent.request.method == "INVITE", "the call was not forwarded"
        self.port.last = None
        sent.handler(Deliver(response_to(sent, 180, b""), sent.key, sent.dest, "UDP"))
        sent.handler(Deliver(response_to(sent, 200, sdp("uas", 7000)), sent.key, sent.dest, "UDP"))
        assert self.b2bua.calls[key].answered, "the call was not answered"
        self.port.last = None

    def close(self) -> None:
        self.b2bua.shutdown()
        self.engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS / "call_memory.json")
    args = parser.parse_args()
    rig = Rig(args.calls)
    for n in range(20):  # warm caches, interned strings, lazily built tables
        rig.call(10**6 + n)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    for n in range(args.calls):
        rig.call(n)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    active = rig.b2bua.stats.active
    stats = after.compare_to(before, "filename")
    rows = []
    for s in stats:
        name = s.traceback[0].filename
        rel = name.split("/python/", 1)[1] if "/python/" in name else name.rsplit("/", 2)[-1]
        rows.append({"file": rel, "bytes_per_call": s.size_diff / args.calls, "blocks": s.count_diff})
    rows.sort(key=lambda r: -r["bytes_per_call"])
    total = sum(r["bytes_per_call"] for r in rows)
    print(f"answered calls held: {active} (measured {args.calls})")
    print(f"{'file':<48} {'B/call':>9}")
    for r in rows[: args.top]:
        print(f"{r['file']:<48} {r['bytes_per_call']:>9.0f}")
    print(f"{'total':<48} {total:>9.0f}  ({total / 1024:.2f} KiB)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"calls": args.calls, "active": active, "bytes_per_call": total, "by_file": rows[:40]}, indent=1
        )
        + "\n"
    )
    rig.close()


if __name__ == "__main__":
    main()
