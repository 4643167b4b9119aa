"""The admin commands on a temporary data dir: `vpbx --data-dir DIR user|number|calls ...`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vpbx.cli import app
from vpbx.store import Cdr, Database, cdrs, data_dir_url

NOW = 1_700_000_000.0

runner = CliRunner()


def vpbx(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args])
    return result.exit_code, result.output


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "missing" / "data"  # created on first use


def test_user_add_list_remove(data_dir: Path) -> None:
    code, out = vpbx(data_dir, "user", "add", "1001", "--password", "pw", "--name", "Ann Lee")
    assert code == 0 and "added user 1001" in out, out
    assert (data_dir / "vpbx.db").is_file()
    assert vpbx(data_dir, "user", "add", "1002", "--password", "pw2")[0] == 0
    code, out = vpbx(data_dir, "user", "list")
    assert code == 0 and "1001" in out and "Ann Lee" in out and "1002" in out, out
    code, out = vpbx(data_dir, "user", "remove", "1001")
    assert code == 0, out
    code, out = vpbx(data_dir, "user", "list")
    assert "1001" not in out and "1002" in out
    code, out = vpbx(data_dir, "user", "remove", "1001")
    assert code == 1 and "no user with extension 1001" in out


def test_duplicate_extension_exits_2_with_a_message(data_dir: Path) -> None:
    assert vpbx(data_dir, "user", "add", "1001", "--password", "pw")[0] == 0
    code, out = vpbx(data_dir, "user", "add", "1001", "--password", "other")
    assert code == 2 and "extension 1001 is already taken" in out, out


def test_number_add_and_list(data_dir: Path) -> None:
    assert vpbx(data_dir, "user", "add", "1001", "--password", "pw")[0] == 0
    code, out = vpbx(data_dir, "number", "add", "+7 (495) 123-45-67", "--to", "1001")
    assert code == 0 and "+74951234567" in out, out
    code, out = vpbx(data_dir, "number", "list")
    assert code == 0 and "+74951234567" in out and "extension 1001" in out, out
    code, out = vpbx(data_dir, "number", "add", "+74951234567", "--to", "1001")
    assert code == 2 and "already exists" in out
    code, out = vpbx(data_dir, "number", "add", "555", "--to", "1009")
    assert code == 1 and "extension 1009 does not exist" in out
    code, out = vpbx(data_dir, "number", "add", "not-a-number", "--to", "1001")
    assert code == 2 and "not a phone number" in out


def test_calls_list_empty_and_with_a_record(data_dir: Path) -> None:
    code, out = vpbx(data_dir, "calls", "list")
    assert code == 0 and "calls in" in out, out

    async def insert() -> None:
        db = await Database.open(data_dir_url(data_dir))
        async with db.begin() as conn:
            cdr = Cdr(
                "c1", "internal", "1001", "1002", 1_700_000_000.0, "answered", billsec=42, duration_s=50
            )
            await cdrs.insert_cdr(conn, cdr)
        await db.close()

    asyncio.run(insert())
    code, out = vpbx(data_dir, "calls", "list", "--limit", "5")
    assert code == 0 and "1001" in out and "answered" in out and "42" in out, out


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    code, out = vpbx(target, "user", "list")
    assert code == 1 and "is not a directory" in out


def test_serve_rejects_bad_flags(tmp_path: Path) -> None:
    code, out = vpbx(tmp_path, "serve", "--sip-listen", "nowhere")
    assert code == 2 and "sip_listen" in out, out
    code, out = vpbx(tmp_path, "serve", "--trusted", "10.0.0.0/33")
    assert code == 2 and "CIDR" in out, out
