"""Transactions per second through the sans-IO SIP transaction layer on one core.

Each scenario runs whole transactions against a simulated clock (a new one every
1/RATE s, timers fired as the clock passes them), so the layer holds what it would
hold in steady state at that rate (64*T1 = 32 s of Completed transactions):

  register          receive REGISTER (parsed) -> Deliver; respond 200 -> Send; Timer J -> Terminated
  register+parse    the same plus parse_message of the request bytes
  invite-uas        INVITE -> 180 -> 200 (2xx retransmission armed) -> ACK for the 2xx -> Timer L
  options-uac       send OPTIONS -> receive 200 (parsed beforehand) -> Timer K

Also the memory a live Completed REGISTER transaction holds (tracemalloc). Inputs are
prepared before the clock starts and frozen out of the garbage collector's sight.
Prints a table and writes bench/results/sip_transactions.json.
    PYTHONPATH=python python bench/sip_transactions.py [--n 200000] [--rate 5000]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from vpbx.sip import Request, Response, build_response, parse_message
from vpbx.sip.transaction import Deliver, TransactionLayer, build_ack

ROOT = Path(__file__).resolve().parent
PEER = ("198.51.100.7", 5060)


def register(i: int) -> bytes:
    return (
        "REGISTER sip:pbx.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 198.51.100.7:5060;rport;branch=z9hG4bK{i:012x}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{1000 + i % 9000}@pbx.example.com>;tag={i:08x}\r\n"
        f"To: <sip:{1000 + i % 9000}@pbx.example.com>\r\n"
        f"Call-ID: {i:016x}@198.51.100.7\r\n"
        "CSeq: 2 REGISTER\r\n"
        f"Contact: <sip:{1000 + i % 9000}@198.51.100.7:5060;transport=udp>;expires=3600\r\n"
        "User-Agent: bench\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def invite(i: int) -> bytes:
    return (
        "INVITE sip:2000@pbx.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 198.51.100.7:5060;rport;branch=z9hG4bK{i:012x}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:1000@pbx.example.com>;tag={i:08x}\r\n"
        "To: <sip:2000@pbx.example.com>\r\n"
        f"Call-ID: {i:016x}@198.51.100.7\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:1000@198.51.100.7:5060>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options(i: int) -> Request:
    msg = parse_message(
        (
            "OPTIONS sip:trunk.example.net SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{i:012x}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:pbx@pbx.example.com>;tag={i:08x}\r\n"
            "To: <sip:trunk.example.net>\r\n"
            f"Call-ID: {i:016x}@192.0.2.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(msg, Request)
    return msg


def _settle() -> None:
    """Move the prepared inputs out of the collector's sight (gc.freeze), so that the
    garbage collector works on what the layer holds, as it would in a server, and not
    on the benchmark's pile of pre-parsed messages."""
    gc.collect()
    gc.freeze()


def run_register(n: int, rate: float, parse: bool) -> float:
    raw = [register(i) for i in range(n)]
    parsed = None if parse else [parse_message(r) for r in raw]
    layer = TransactionLayer(max_server_transactions=10 * n)
    dt = 1.0 / rate
    _settle()
    t0 = time.perf_counter()
    for i in range(n):
        now = i * dt
        msg = parse_message(raw[i]) if parsed is None else parsed[i]
        (deliver,) = layer.receive(msg, PEER, "UDP", now)
        assert isinstance(deliver, Deliver) and deliver.key is not None
        assert isinstance(msg, Request)
        layer.respond(deliver.key, build_response(msg, 200, to_tag="bench"), now)
        layer.on_timer(now)
    layer.on_timer(n * dt + 100)
    elapsed = time.perf_counter() - t0
    gc.unfreeze()
    assert len(layer) == 0
    return elapsed


def run_invite(n: int, rate: float) -> float:
    msgs = [parse_message(invite(i)) for i in range(n)]
    acks = []
    for m in msgs:
        assert isinstance(m, Request)
        ack = build_ack(m, build_response(m, 200, to_tag="bench"))
        ack.headers.set("Via", str(m.via[0]).replace("branch=z9hG4bK", "branch=z9hG4bKack"))
        acks.append(parse_message(ack.to_bytes()))
    layer = TransactionLayer(max_server_transactions=10 * n)
    dt = 1.0 / rate
    _settle()
    t0 = time.perf_counter()
    for i in range(n):
        now = i * dt
        msg = msgs[i]
        assert isinstance(msg, Request)
        (deliver,) = layer.receive(msg, PEER, "UDP", now)
        key = deliver.key  # type: ignore[union-attr]
        assert key is not None
        layer.respond(key, build_response(msg, 180, to_tag="bench"), now)
        layer.respond(key, build_response(msg, 200, to_tag="bench"), now)
        layer.receive(acks[i], PEER, "UDP", now)
        layer.on_timer(now)
    layer.on_timer(n * dt + 100)
    elapsed = time.perf_counter() - t0
    gc.unfreeze()
    assert len(layer) == 0
    return elapsed


def run_options(n: int, rate: float) -> float:
    reqs = [options(i) for i in range(n)]
    oks: list[Response] = []
    for r in reqs:
        ok = parse_message(build_response(r, 200, to_tag="t").to_bytes())
        assert isinstance(ok, Response)
        oks.append(ok)
    layer = TransactionLayer(max_client_transactions=10 * n)
    dt = 1.0 / rate
    _settle()
    t0 = time.perf_counter()
    for i in range(n):
        now = i * dt
        layer.send_request(reqs[i], PEER, "UDP", now)
        layer.receive(oks[i], PEER, "UDP", now)
        layer.on_timer(now)
    layer.on_timer(n * dt + 100)
    elapsed = time.perf_counter() - t0
    gc.unfreeze()
    assert len(layer) == 0
    return elapsed


def completed_register_bytes(n: int) -> float:
    """tracemalloc bytes per live Completed REGISTER transaction (request dropped)."""
    msgs = [parse_message(register(i)) for i in range(n)]
    responses = []
    for m in msgs:
        assert isinstance(m, Request)
        responses.append(build_response(m, 200, to_tag="bench"))
    layer = TransactionLayer(max_server_transactions=10 * n)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, m in enumerate(msgs):
        (deliver,) = layer.receive(m, PEER, "UDP", 0.0)
        layer.respond(deliver.key, responses[i], 0.0)  # type: ignore[union-attr, arg-type]
    del msgs, responses, m
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(layer) == n
    return (after - before) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--rate", type=float, default=5000.0, help="simulated arrival rate (steady-state size)")
    args = ap.parse_args()
    n, rate = args.n, args.rate
    scenarios: dict[str, Callable[[], float]] = {
        "register": lambda: run_register(n, rate, parse=False),
        "register+parse": lambda: run_register(n, rate, parse=True),
        "invite-uas": lambda: run_invite(n // 2, rate),
        "options-uac": lambda: run_options(n, rate),
    }
    rows = []
    print(f"{'scenario':<16} {'transactions':>12} {'seconds':>8} {'txn/s':>9} {'us/txn':>7}")
    for name, fn in scenarios.items():
        count = n // 2 if name == "invite-uas" else n
        elapsed = min(fn() for _ in range(3))
        rows.append({"scenario": name, "n": count, "seconds": elapsed, "per_second": count / elapsed})
        print(f"{name:<16} {count:>12} {elapsed:>8.2f} {count / elapsed:>9.0f} {1e6 * elapsed / count:>7.1f}")
    per_txn = completed_register_bytes(50_000)
    print(f"memory: {per_txn:.0f} bytes per live Completed REGISTER transaction (tracemalloc)")
    out = ROOT / "results" / "sip_transactions.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": rows,
                "bytes_per_completed_register": per_txn,
                "rate_simulated": rate,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
