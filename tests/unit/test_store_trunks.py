"""Trunks in the store: added with their defaults, listed, updated, removed; bad values
and duplicate names are refused with a clear error and change nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from vpbx.store import ConflictError, Database, sqlite_url
from vpbx.store import trunks as repo
from vpbx.store.trunks import TrunkSpec

T = TypeVar("T")
SPEC = TrunkSpec(name="sipnet", host="sip.example.net", username="7001", secret="pw")


def run(path: Path, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def body() -> T:
        db = await Database.open(sqlite_url(path / "vpbx.db"))
        try:
            async with db.begin() as conn:
                return await work(conn)
        finally:
            await db.close()

    return asyncio.run(body())


def test_add_keeps_every_field_and_defaults(tmp_path: Path) -> None:
    spec = TrunkSpec(
        name="mts",
        host="10.0.0.5",
        port=5080,
        transport="tcp",
        username="user1",
        auth_username="auth1",
        secret="s3cret",
        from_user="74951112233",
        from_domain="mts.example",
        register=False,
        register_interval_s=120,
        outbound_prefixes=("+7", "8", "+7"),
        strip_digits=1,
        add_prefix="+7",
        caller_id="+74951112233",
        allow_international=True,
        inbound_cidrs=("10.0.0.0/24", "10.0.1.7"),
    )

    async def work(conn: AsyncConnection) -> tuple[repo.Trunk, repo.Trunk]:
        added = await repo.add_trunk(conn, spec, now=5.0)
        plain = await repo.add_trunk(conn, SPEC, now=6.0)
        return added, plain

    added, plain = run(tmp_path, work)
    assert added.outbound_prefixes == ("+7", "8")  # de-duplicated, order kept
    assert added.inbound_cidrs == ("10.0.0.0/24", "10.0.1.7/32")
    assert (added.port, added.transport, added.auth_username) == (5080, "tcp", "auth1")
    assert added.secret == "s3cret"
    assert (added.register, added.register_interval_s, added.allow_international) == (False, 120, True)
    assert (added.strip_digits, added.add_prefix, added.caller_id) == (1, "+7", "+74951112233")
    assert added.created_at == added.updated_at == 5.0
    assert (plain.port, plain.transport, plain.register) == (5060, "udp", True)
    assert plain.register_interval_s == 300
    assert (plain.allow_international, plain.enabled, plain.outbound_prefixes) == (False, True, ())
    assert run(tmp_path, repo.list_trunks) == [added, plain]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "bad name"}, "trunk name"),
        ({"host": "a b"}, "host"),
        ({"port": 0}, "port"),
        ({"transport": "sctp"}, "transport"),
        ({"secret": ""}, "secret"),
        ({"secret": "a\r\nVia: x"}, "secret"),
        ({"username": "a b"}, "username"),
        ({"register_interval_s": 5}, "register interval"),
        ({"outbound_prefixes": ("+7x",)}, "prefix"),
        ({"strip_digits": -1}, "strip digits"),
        ({"add_prefix": "9a"}, "add prefix"),
        ({"caller_id": "anonymous"}, "caller id"),
        ({"inbound_cidrs": ("10.0.0.0/33",)}, "inbound source"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run(tmp_path, lambda conn: repo.add_trunk(conn, dataclasses.replace(SPEC, **change), now=1.0))
    assert run(tmp_path, repo.list_trunks) == []


def test_duplicate_name_conflicts(tmp_path: Path) -> None:
    run(tmp_path, lambda conn: repo.add_trunk(conn, SPEC, now=1.0))
    with pytest.raises(ConflictError, match="already exists"):
        run(tmp_path, lambda conn: repo.add_trunk(conn, SPEC, now=2.0))


def test_update_and_remove(tmp_path: Path) -> None:
    run(tmp_path, lambda conn: repo.add_trunk(conn, SPEC, now=1.0))
    before = run(tmp_path, repo.fingerprint)
    updated = run(tmp_path, lambda conn: repo.update_trunk(conn, "sipnet", now=2.0, enabled=False))
    assert updated is not None and not updated.enabled and updated.updated_at == 2.0
    assert run(tmp_path, repo.fingerprint) != before
    with pytest.raises(ValueError, match="port"):
        run(tmp_path, lambda conn: repo.update_trunk(conn, "sipnet", now=3.0, port=70000))
    with pytest.raises(ValueError, match="unknown trunk fields"):
        run(tmp_path, lambda conn: repo.update_trunk(conn, "sipnet", now=3.0, colour="red"))
    got = run(tmp_path, lambda conn: repo.get_trunk(conn, "sipnet"))
    assert got is not None and got.port == 5060  # the bad update changed nothing
    assert run(tmp_path, lambda conn: repo.list_trunks(conn, enabled_only=True)) == []
    assert run(tmp_path, lambda conn: repo.update_trunk(conn, "nope", now=3.0, port=5070)) is None
    assert run(tmp_path, lambda conn: repo.remove_trunk(conn, "sipnet"))
    assert not run(tmp_path, lambda conn: repo.remove_trunk(conn, "sipnet"))
    assert run(tmp_path, repo.list_trunks) == []


def test_parse_list_accepts_repeats_and_commas() -> None:
    assert repo.parse_list(["+7,8", " 9 ", ""]) == ("+7", "8", "9")
