"""DatabaseLocationStore: the registrar's bindings through the write-behind writer, kept
across a restart; the credential cache."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from vpbx.io.registration_writer import RegistrationWriter
from vpbx.pbx import Binding, CredentialCache, DatabaseLocationStore
from vpbx.pbx.location_db import from_row, to_row
from vpbx.store import Database, sqlite_url

NOW = 1_700_000_000.0


def binding(
    uri: str, *, expires_in: float = 600, contact: str | None = None, q: float | None = None
) -> Binding:
    return Binding(
        aor=uri.removeprefix("sip:").split("@")[0],
        uri=uri,
        contact=contact or f"<{uri}>",
        expires_at=NOW + expires_in,
        call_id="cid",
        cseq=2,
        source=("192.0.2.7", 5062),
        transport="UDP",
        q=q,
        user_agent="phone/1",
    )


def test_row_round_trip_keeps_instance_and_reg_id() -> None:
    b = binding(
        "sip:1001@192.0.2.7:5062",
        contact='<sip:1001@192.0.2.7:5062>;q=0.5;+sip.instance="<urn:uuid:abc>";reg-id=1',
        q=0.5,
    )
    row = to_row(b)
    assert row.instance_id == '"<urn:uuid:abc>"' and row.reg_id == 1 and row.received == "192.0.2.7:5062"
    back = from_row(row)
    assert back.contact == b.contact
    assert (back.uri, back.source, back.q, back.cseq, back.expires_at) == (
        b.uri,
        b.source,
        0.5,
        2,
        b.expires_at,
    )
    v6 = dataclasses.replace(binding("sip:1001@[2001:db8::1]"), source=("2001:db8::1", 5060))
    assert to_row(v6).received == "[2001:db8::1]:5060"
    assert from_row(to_row(v6)).source == ("2001:db8::1", 5060)


def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "vpbx.db")

    async def first() -> None:
        db = await Database.open(url)
        writer = await RegistrationWriter.open(db, now=NOW)
        store = DatabaseLocationStore(writer)
        store.replace(
            "1001", [binding("sip:1001@192.0.2.7:5062"), binding("sip:1001@192.0.2.8", expires_in=5)]
        )
        store.replace("1002", [binding("sip:1002@192.0.2.9")])
        assert [b.uri for b in store.bindings("1001", NOW)] == [
            "sip:1001@192.0.2.7:5062",
            "sip:1001@192.0.2.8",
        ]
        assert store.count() == 3
        store.replace("1001", [binding("sip:1001@192.0.2.7:5062", expires_in=900)])  # the other one goes
        store.replace("1002", [])  # Contact: *
        gone = store.expire(NOW + 10)
        assert gone == []
        await writer.close()
        await db.close()

    async def second() -> None:
        db = await Database.open(url)
        writer = await RegistrationWriter.open(db, now=NOW)
        store = DatabaseLocationStore(writer)
        found = store.bindings("1001", NOW)
        assert [(b.uri, b.expires_at, b.source) for b in found] == [
            ("sip:1001@192.0.2.7:5062", NOW + 900, ("192.0.2.7", 5062))
        ]
        assert store.bindings("1002", NOW) == []
        gone = store.expire(NOW + 1000)
        assert [b.uri for b in gone] == ["sip:1001@192.0.2.7:5062"] and store.count() == 0
        await writer.close()
        await db.close()

    asyncio.run(first())
    asyncio.run(second())


def test_credential_cache() -> None:
    cache = CredentialCache({"MD5": {"1001": "a" * 32}, "SHA-256": {"1001": "b" * 64}})
    assert cache.lookup("1001", "MD5") == "a" * 32
    assert cache.lookup("1002", "MD5") is None and cache.lookup("1001", "SHA-512-256") is None
    assert cache.accounts() == 1
    cache.replace({"MD5": {}})
    assert cache.lookup("1001", "MD5") is None and cache.generation == 2
