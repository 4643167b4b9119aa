"""Latency and throughput of the REST API on 127.0.0.1 over a seeded SQLite store.

Seeds USERS users in 20 departments and CALLS CDRs between them (random parties, one
year), starts the real HTTP listener (vpbx.io.http.start_http) on one uvloop loop and
drives it from an aiohttp client on the same loop with CONCURRENCY requests in flight
(so the numbers include the client's cost). Scenarios, each REQUESTS requests:

  calls-employee   GET /calls?limit=100 with an employee's session (own calls)
  calls-team-lead  GET /calls?limit=100 as a team lead (department scope: a subquery)
  calls-admin      GET /calls?limit=100 as admin (no scope condition)
  users-admin      GET /users?limit=100 as admin
  analytics-lead   GET /analytics/calls as a team lead (department, whole year)
  csv-lead         GET /calls?format=csv: the team lead's whole department export (fewer runs)

Prints a table (req/s, p50, p99 ms) and writes bench/results/api_bench.json.
    PYTHONPATH=python python bench/api_bench.py [--users 2000] [--calls 100000] [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from vpbx.api import ApiContext
from vpbx.io.http import start_http
from vpbx.store import Cdr, Database, cdrs, sqlite_url, tokens, users

ROOT = Path(__file__).resolve().parent
T0 = 1_767_225_600.0  # 2026-01-01


async def seed(db: Database, n_users: int, n_calls: int) -> dict[str, str]:
    rng = random.Random(5)
    exts = [str(10000 + i) for i in range(n_users)]
    async with db.begin() as conn:
        for i, ext in enumerate(exts):
            await users.create_user(
                conn,
                ext,
                "pw",
                realm="bench",
                now=T0,
                display_name=f"User {i}",
                profile={"department": f"D{i % 20}"},
            )
        await users.grant_role(conn, exts[1], "team_lead")
        await users.grant_role(conn, exts[2], "admin")
        batch: list[Cdr] = []
        for i in range(n_calls):
            a, b = rng.sample(exts, 2)
            billsec = rng.choice((0.0, rng.uniform(5, 600)))
            batch.append(
                Cdr(
                    call_id=f"c{i}",
                    direction="internal",
                    from_number=a,
                    to_number=b,
                    started_at=T0 + rng.uniform(0, 365 * 86400),
                    disposition="answered" if billsec else "no-answer",
                    duration_s=billsec + 5,
                    billsec=billsec,
                )
            )
            if len(batch) == 5000:
                await cdrs.insert_cdrs(conn, batch)
                batch = []
        await cdrs.insert_cdrs(conn, batch)
        out = {}
        for name, ext in (("employee", exts[0]), ("team_lead", exts[1]), ("admin", exts[2])):
            user = await users.get_user(conn, ext)
            assert user is not None
            _, out[name] = await tokens.create_token(
                conn, tokens.SESSION_ROLE, now=time.time(), user_id=user.id, expires_at=time.time() + 3600
            )
    return out


async def scenario(
    session: aiohttp.ClientSession, url: str, token: str, *, requests: int, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    sizes: list[int] = []
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            start = time.perf_counter()
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                body = await resp.read()
                assert resp.status == 200, (resp.status, body[:200])
            latencies.append(time.perf_counter() - start)
            sizes.append(len(body))

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout=600)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": requests,
        "rps": requests / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "bytes": int(statistics.mean(sizes)),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(sqlite_url(Path(tmp) / "vpbx.db"))
        try:
            t = time.perf_counter()
            who = await seed(db, args.users, args.calls)
            print(f"seeded {args.users} users, {args.calls} calls in {time.perf_counter() - t:.1f} s")
            ctx = ApiContext(db=db, realm="bench")
            http = await start_http(
                "127.0.0.1", 0, metrics=lambda: b"", health=lambda: {"status": "ok"}, api=ctx
            )
            base = f"http://{http.address[0]}:{http.address[1]}/api/v1"
            plan = [
                ("calls-employee", "/calls?limit=100", "employee", args.requests),
                ("calls-team-lead", "/calls?limit=100", "team_lead", args.requests),
                ("calls-admin", "/calls?limit=100", "admin", args.requests),
                ("users-admin", "/users?limit=100", "admin", args.requests),
                ("analytics-lead", "/analytics/calls", "team_lead", max(10, args.requests // 10)),
                ("csv-lead", "/calls?format=csv", "team_lead", max(4, args.requests // 50)),
            ]
            results = {}
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
                    for name, path, role, n in plan:
                        results[name] = await scenario(
                            session, base + path, who[role], requests=n, concurrency=args.concurrency
                        )
                        r = results[name]
                        print(
                            f"{name:16} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.1f} ms  "
                            f"p99 {r['p99_ms']:7.1f} ms  {r['bytes']:>9} B/response"
                        )
            finally:
                await http.close()
        finally:
            await db.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    ns = parser.parse_args()
    out = uvloop.run(main(ns))
    (ROOT / "results").mkdir(exist_ok=True)
    doc = {
        "args": vars(ns),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "results": out,
    }
    (ROOT / "results" / "api_bench.json").write_text(json.dumps(doc, indent=2) + "\n")
