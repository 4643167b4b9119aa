"""`vpbx token create|list|revoke` and `vpbx user role add|remove|list` on a temporary
data dir: the token printed once works against the store, revoking stops it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from typer.testing import CliRunner

from vpbx.cli import app
from vpbx.store import Database, data_dir_url, tokens

runner = CliRunner()


def vpbx(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args])
    return result.exit_code, result.output


def verify(data_dir: Path, plaintext: str) -> tokens.ApiToken | None:
    async def body() -> tokens.ApiToken | None:
        db = await Database.open(data_dir_url(data_dir))
        try:
            async with db.begin() as conn:
                return await tokens.verify_token(conn, plaintext, now=time.time())
        finally:
            await db.close()

    return asyncio.run(body())


def test_token_create_list_revoke(tmp_path: Path) -> None:
    code, out = vpbx(tmp_path, "token", "create", "--role", "admin", "--description", "ci")
    assert code == 0, out
    plaintext = out.strip().splitlines()[-1]
    assert plaintext.startswith("vpbx_")
    found = verify(tmp_path, plaintext)
    assert found is not None and found.role == "admin" and found.user_id is None
    code, out = vpbx(tmp_path, "token", "list")
    assert code == 0 and "admin" in out and "ci" in out and plaintext not in out
    assert vpbx(tmp_path, "token", "revoke", str(found.id))[0] == 0
    assert verify(tmp_path, plaintext) is None
    code, out = vpbx(tmp_path, "token", "revoke", str(found.id))
    assert code == 1 and "no live token" in out


def test_token_for_a_user_and_bad_input(tmp_path: Path) -> None:
    assert vpbx(tmp_path, "user", "add", "1001", "--password", "pw")[0] == 0
    code, out = vpbx(
        tmp_path, "token", "create", "--role", "team_lead", "--user", "1001", "--expires-in", "60"
    )
    assert code == 0, out
    found = verify(tmp_path, out.strip().splitlines()[-1])
    assert found is not None and found.user_id is not None and found.expires_at is not None
    assert found.expires_at - time.time() < 61
    code, out = vpbx(tmp_path, "token", "create", "--role", "team_lead", "--user", "1009")
    assert code == 1 and "no user with extension 1009" in out
    code, out = vpbx(tmp_path, "token", "create", "--role", "boss")
    assert code == 2 and "unknown role" in out


def test_user_roles(tmp_path: Path) -> None:
    assert vpbx(tmp_path, "user", "add", "1001", "--password", "pw")[0] == 0
    assert vpbx(tmp_path, "user", "role", "add", "1001", "accountant")[0] == 0
    assert vpbx(tmp_path, "user", "role", "add", "1001", "marketer")[0] == 0
    code, out = vpbx(tmp_path, "user", "role", "list", "1001")
    assert code == 0 and "accountant, marketer" in out
    assert vpbx(tmp_path, "user", "role", "remove", "1001", "accountant")[0] == 0
    code, out = vpbx(tmp_path, "user", "role", "remove", "1001", "accountant")
    assert code == 1
    code, out = vpbx(tmp_path, "user", "role", "add", "1009", "admin")
    assert code == 1 and "no user with extension 1009" in out
    code, out = vpbx(tmp_path, "user", "role", "add", "1001", "root")
    assert code == 2 and "unknown role" in out
