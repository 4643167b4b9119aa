"""Directory sync speed against a local slapd (issue 5 benchmarks).

For each size: a bare ldap3 paged search of the users (the floor: no sync can read the
directory faster with ldap3), a full first sync into an empty SQLite store (read, map,
plan, create users + SIP accounts with generated passwords + roles, record the run), a
second full sync with nothing changed, and an incremental sync of 100 changed entries
(its duration is when the changes are visible to the API: the run commits at its end).
Memory: the tracemalloc peak of a full sync divided by the number of users. Every tenth
generated user has a thumbnailPhoto of --photo-size bytes (default 8 KiB, a typical AD
thumbnail), and two in ten a manager: the sync stores both.

    .venv/bin/python bench/directory_sync.py --sizes 10000 50000

Prints a table and writes bench/results/directory_sync.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import ldap3

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests" / "integration"))

from slapd import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd, people_ldif, user_dn  # noqa: E402

from vpbx.directory.mapping import wanted_attributes  # noqa: E402
from vpbx.io.directory_sync import run_directory_sync  # noqa: E402
from vpbx.io.ldap_client import rules_of  # noqa: E402
from vpbx.settings import DirectorySettings  # noqa: E402
from vpbx.store import Database, sqlite_url  # noqa: E402

CHANGES = 100


def floor_search(ldap: Slapd, settings: DirectorySettings) -> tuple[float, int]:
    """A bare paged search with the same attributes, page size and StartTLS."""
    preset, rules = rules_of(settings)
    attributes = [*wanted_attributes(preset, rules), "modifyTimestamp"]
    tls = ldap3.Tls(ca_certs_file=str(ldap.ca_file))
    start = time.perf_counter()
    conn = ldap3.Connection(
        ldap3.Server(ldap.ldap_url, tls=tls, get_info=ldap3.DSA), SERVICE_DN, SERVICE_PASSWORD
    )
    conn.open()
    conn.start_tls()
    conn.bind()
    count = 0
    for item in conn.extend.standard.paged_search(
        PEOPLE, "(objectClass=user)", attributes=attributes, paged_size=settings.page_size, generator=True
    ):
        count += item.get("type") == "searchResEntry"
    conn.unbind()
    return time.perf_counter() - start, count


async def timed_sync(url: str, settings: DirectorySettings, **kw: Any) -> tuple[float, Any]:
    db = await Database.open(url)
    try:
        start = time.perf_counter()
        report = await run_directory_sync(db, settings, **kw)
        return time.perf_counter() - start, report
    finally:
        await db.close()


def bench_size(n: int, work: Path, photo_size: int) -> dict[str, Any]:
    ldif, _pop = people_ldif(n, photo_size=photo_size)
    with Slapd.start(work / f"slapd-{n}", ldif) as ldap:
        settings = ldap.settings(extension_range="100000-199999", roles={})
        with_roles = ldap.settings(extension_range="100000-199999")
        floor = min(floor_search(ldap, settings)[0] for _ in range(3))
        _, seen = floor_search(ldap, settings)
        url = sqlite_url(work / f"full-{n}.db")
        full, report = asyncio.run(timed_sync(url, with_roles))
        assert report.ok, report.message
        again, report2 = asyncio.run(timed_sync(url, with_roles))
        assert report2.ok and report2.created == 0
        # incremental: move the change mark past the bulk load, then change 100 entries
        admin = ldap.admin()
        time.sleep(1.1)
        admin.modify(user_dn(1), {"title": [(ldap3.MODIFY_REPLACE, ["warm-up"])]})
        asyncio.run(timed_sync(url, with_roles, incremental=True))
        time.sleep(1.1)
        for i in range(CHANGES):
            admin.modify(user_dn(2 * i + 3), {"title": [(ldap3.MODIFY_REPLACE, [f"Changed {i}"])]})
        admin.unbind()
        incr, report3 = asyncio.run(timed_sync(url, with_roles, incremental=True))
        assert report3.ok and report3.updated + report3.skipped >= CHANGES, (
            report3.message
        )  # some are AD-disabled
        tracemalloc.start()
        asyncio.run(timed_sync(sqlite_url(work / f"mem-{n}.db"), with_roles))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "entries": n,
        "photos": n // 10,
        "photo_bytes": photo_size,
        "seen": seen,
        "floor_paged_search_s": floor,
        "full_sync_s": full,
        "full_ratio_to_floor": full / floor,
        "resync_unchanged_s": again,
        "incremental_100_s": incr,
        "incremental_seen": report3.seen,
        "created": report.created,
        "peak_bytes_per_user": peak / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    ap.add_argument("--photo-size", type=int, default=8192, help="bytes of each generated photo")
    args = ap.parse_args()
    rows = []
    header = (
        f"{'entries':>8} {'floor s':>8} {'full s':>8} {'ratio':>6} {'resync s':>9} "
        f"{'incr100 s':>10} {'B/user peak':>12}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            r = bench_size(n, Path(tmp), args.photo_size)
            rows.append(r)
            print(
                f"{n:>8} {r['floor_paged_search_s']:>8.2f} {r['full_sync_s']:>8.2f} "
                f"{r['full_ratio_to_floor']:>6.2f} {r['resync_unchanged_s']:>9.2f} "
                f"{r['incremental_100_s']:>10.3f} {r['peak_bytes_per_user']:>12.0f}",
                flush=True,
            )
    out = ROOT / "results" / "directory_sync.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {"rows": rows, "python": platform.python_version(), "machine": platform.machine()}, indent=2
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
