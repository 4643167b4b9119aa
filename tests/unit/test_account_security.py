"""Per-account security from the store to the registrar: source allowlists and max_calls
loaded with the credentials (store -> CredentialCache -> Registrar), refilled in place on
reload, a broken list locks its account out; the call-limit counter; the guard's settings;
`vpbx user add --allow` and `vpbx user allow`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from vpbx.cli import app
from vpbx.pbx import CredentialCache, MemoryLocationStore, Registrar
from vpbx.security import AccountAllowlists, AccountCallLimits, GuardConfig, guard_config
from vpbx.settings import ServeSettings, SettingsError, load_settings
from vpbx.sip import DigestAuthenticator, DigestClient, Request, compute_ha1s
from vpbx.store import Database, data_dir_url, users
from vpbx.store.schema import sip_accounts

REALM = "vpbx"
NOW = 1_700_000_000.0
runner = CliRunner()


def limits_in(data_dir: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    async def body() -> tuple[dict[str, list[str]], dict[str, int]]:
        db = await Database.open(data_dir_url(data_dir))
        try:
            async with db.connect() as conn:
                return await users.load_account_limits(conn)
        finally:
            await db.close()

    return asyncio.run(body())


def vpbx(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args])
    return result.exit_code, result.output


# -- store ------------------------------------------------------------------------------------


def test_cidrs_are_normalized_and_bad_ones_refused() -> None:
    assert users.normalize_cidrs([" 10.1.2.3/8", "10.0.0.0/8", "2001:DB8::1/32", "192.0.2.7"]) == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "192.0.2.7/32",
    ]
    with pytest.raises(ValueError, match=re.escape("'10.0.0.300/8' is not a CIDR")):
        users.normalize_cidrs(["10.0.0.0/8", "10.0.0.300/8"])


def test_limits_of_active_accounts_and_a_broken_list(tmp_path: Path) -> None:
    async def body() -> None:
        db = await Database.open(data_dir_url(tmp_path))
        try:
            async with db.begin() as conn:
                await users.create_user(conn, "201", "pw", realm=REALM, now=NOW, allowed_cidrs=["10.0.0.1/8"])
                await users.create_user(conn, "202", "pw", realm=REALM, now=NOW, max_calls=2)
                await users.create_user(
                    conn, "203", "pw", realm=REALM, now=NOW, allowed_cidrs=["192.0.2.0/24"]
                )
                await users.set_user_enabled(conn, "203", False, now=NOW)
                await users.create_user(conn, "204", "pw", realm=REALM, now=NOW)
                # written by something else than vpbx: not JSON
                await conn.execute(
                    sa.update(sip_accounts)
                    .where(sip_accounts.c.username == "204")
                    .values(allowed_cidrs="10.0.0.0/8")
                )
                with pytest.raises(ValueError, match="not a CIDR"):
                    await users.set_allowed_cidrs(conn, "202", ["nonsense"], now=NOW)
                assert not await users.set_allowed_cidrs(conn, "999", ["10.0.0.0/8"], now=NOW)
            async with db.connect() as conn:
                allowed, max_calls = await users.load_account_limits(conn)
        finally:
            await db.close()
        # 202 has no list (anywhere); 203 is disabled: absent; 204's list is kept as broken
        assert allowed == {"201": ["10.0.0.0/8"], "204": ["<not JSON>"]}
        assert max_calls == {"201": 4, "202": 2, "204": 4}
        cache = CredentialCache()
        cache.replace({}, allowed_cidrs=allowed, max_calls=max_calls)
        assert cache.broken_allowlists == ["204"]
        assert not cache.allowlists.permits("204", "10.1.1.1")  # locked out, not opened
        assert cache.allowlists.permits("201", "10.1.1.1") and not cache.allowlists.permits("201", "11.0.0.1")
        assert cache.allowlists.permits("202", "203.0.113.9")
        assert cache.max_calls("202") == 2 and cache.max_calls("nobody") == 4

    asyncio.run(body())


# -- cache -> registrar -----------------------------------------------------------------------


def _register(reg: Registrar, source: str) -> int:
    client = DigestClient("201", "pw-201")
    status = 0
    for cseq in (1, 2):
        request = Request(
            "REGISTER",
            f"sip:{REALM}",
            [
                ("Via", f"SIP/2.0/UDP {source}:5060;branch=z9hG4bK-{cseq}"),
                ("From", f"<sip:201@{REALM}>;tag=a"),
                ("To", f"<sip:201@{REALM}>"),
                ("Call-ID", f"c-{source}"),
                ("CSeq", f"{cseq} REGISTER"),
                ("Contact", f"<sip:201@{source}:5060>"),
            ],
        )
        client.authorize(request)
        response = reg.handle(request, (source, 5060), NOW)
        assert response is not None
        status = response.status
        if status != 401 or not client.on_challenge(response):
            break
    return status


def test_a_reload_reaches_a_registrar_built_before_it() -> None:
    cache = CredentialCache()
    ha1s = compute_ha1s("201", REALM, "pw-201")
    table = {alg: {"201": ha1} for alg, ha1 in ha1s.items()}
    cache.replace(table, allowed_cidrs={"201": ["10.0.0.0/8"]})
    auth = DigestAuthenticator(REALM, b"k" * 32)
    reg = Registrar(REALM, auth, cache.lookup, MemoryLocationStore(), allowlists=cache.allowlists)
    assert _register(reg, "192.0.2.1") == 401  # outside: like a wrong password
    assert _register(reg, "10.9.9.9") == 200
    cache.replace(table, allowed_cidrs={"201": ["192.0.2.0/24"]})
    assert _register(reg, "192.0.2.1") == 200
    cache.replace(table)  # no lists: from anywhere
    assert _register(reg, "203.0.113.5") == 200


def test_allowlists_replace_in_place() -> None:
    lists = AccountAllowlists({"1": ["10.0.0.0/8"]})
    held = lists
    assert lists.replace({"2": ["192.0.2.0/24"], "3": [], "4": ["bad"], "5": [7]}) == ["4", "5"]  # type: ignore[list-item]
    assert held is lists and len(lists) == 3  # 2, and 4 and 5 locked
    assert held.permits("1", "8.8.8.8") and held.permits("3", "8.8.8.8")
    assert (
        not held.permits("2", "8.8.8.8") and not held.permits("4", "8.8.8.8") and not held.permits("5", "::1")
    )


# -- max calls per account --------------------------------------------------------------------


def test_call_limits_count_per_account_once_per_call() -> None:
    limit = {"201": 2}
    calls = AccountCallLimits(lambda account: limit.get(account, 4))
    assert calls.start("201", "a") and calls.start("201", "b")
    assert calls.start("201", "a")  # the same call again (retransmission): not counted twice
    assert not calls.start("201", "c") and calls.refused_total == 1
    assert not calls.start("202", "a")  # a call-id owned by another account
    assert (
        calls.start("202", "d") and calls.active("201") == 2 and calls.active("202") == 1 and len(calls) == 3
    )
    assert calls.end("a") and not calls.end("a") and not calls.end("zzz")
    assert calls.start("201", "c")
    limit["201"] = 1  # a lower limit applies to the next call, the running ones stay
    assert not calls.start("201", "e") and calls.active("201") == 2
    for call_id in ("b", "c", "d"):
        assert calls.end(call_id)
    assert len(calls) == 0 and calls.active("201") == 0


# -- settings ---------------------------------------------------------------------------------


def test_guard_settings_reach_the_guard(tmp_path: Path) -> None:
    config = tmp_path / "vpbx.toml"
    config.write_text(
        '[serve]\nmax_auth_failures = 3\nban_time_s = 2.5\nmax_ban_time_s = 60\ntrusted = ["10.0.0.0/8"]\n'
    )
    got = guard_config(load_settings(config).serve)
    assert (got.max_failures, got.ban_time, got.max_ban_time, got.trusted) == (3, 2.5, 60.0, ("10.0.0.0/8",))
    assert got.failure_window == 60.0 and got.rate == GuardConfig().rate
    defaults = guard_config(ServeSettings())
    assert (defaults.max_failures, defaults.ban_time) == (GuardConfig().max_failures, GuardConfig().ban_time)
    config.write_text("[serve]\nban_time_s = 600\nmax_ban_time_s = 60\n")
    with pytest.raises(SettingsError, match="max_ban_time_s"):
        load_settings(config)
    config.write_text("[serve]\nmax_auth_failures = 0\n")
    with pytest.raises(SettingsError, match="max_auth_failures"):
        load_settings(config)


# -- CLI --------------------------------------------------------------------------------------


def test_cli_allow_sets_lists_and_refuses_bad_input(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    code, out = vpbx(
        data_dir, "user", "add", "201", "--password", "pw", "--allow", "10.1.2.3/8", "--allow", "::1"
    )
    assert code == 0, out
    assert limits_in(data_dir)[0] == {"201": ["10.0.0.0/8", "::1/128"]}
    code, out = vpbx(data_dir, "user", "list")
    assert "10.0.0.0/8" in out, out
    code, out = vpbx(data_dir, "user", "allow", "201", "192.0.2.0/24")
    assert code == 0 and "allowed from 192.0.2.0/24" in out, out
    assert limits_in(data_dir)[0] == {"201": ["192.0.2.0/24"]}
    code, out = vpbx(data_dir, "user", "allow", "201", "192.0.2.0/24", "300.0.0.0/8")
    assert code == 2 and "is not a CIDR" in out, out
    assert limits_in(data_dir)[0] == {"201": ["192.0.2.0/24"]}  # nothing changed
    code, out = vpbx(data_dir, "user", "add", "202", "--password", "pw", "--allow", "nonsense")
    assert code == 2 and "is not a CIDR" in out, out
    assert "202" not in limits_in(data_dir)[1]  # no half-made user
    code, out = vpbx(data_dir, "user", "allow", "999", "10.0.0.0/8")
    assert code == 1 and "no SIP account 999" in out, out
    code, out = vpbx(data_dir, "user", "allow", "201")
    assert code == 0 and "allowed from anywhere" in out, out
    assert limits_in(data_dir)[0] == {}
    code, out = vpbx(data_dir, "user", "list")
    assert "anywhere" in out, out
