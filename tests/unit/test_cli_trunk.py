"""`vpbx trunk ...` on a temporary data dir: add with every flag, list, disable/enable,
remove; bad input exits 2 and writes nothing; the database turns private (0600)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from typer.testing import CliRunner

from vpbx.cli import app
from vpbx.metrics import Metrics
from vpbx.store import Database, data_dir_url
from vpbx.store import trunks as repo
from vpbx.store.trunks import Trunk

runner = CliRunner()


def vpbx(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args], env={"COLUMNS": "250"})
    return result.exit_code, result.output


def stored(data_dir: Path) -> list[Trunk]:
    async def body() -> list[Trunk]:
        db = await Database.open(data_dir_url(data_dir))
        try:
            async with db.connect() as conn:
                return await repo.list_trunks(conn)
        finally:
            await db.close()

    return asyncio.run(body())


def test_trunk_add_list_disable_remove(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    code, out = vpbx(
        data_dir, "trunk", "add", "sipnet", "--host", "sip.example.net", "--port", "5070",
        "--transport", "TCP", "--username", "7001", "--auth-username", "a7001", "--secret", "pw",
        "--from-user", "74951112233", "--from-domain", "example.net", "--register-interval", "120",
        "--prefix", "+7,8", "--prefix", "+7495", "--strip", "1", "--add-prefix", "+7",
        "--caller-id", "+74951112233", "--allow-international", "--inbound-cidr", "192.0.2.0/24",
    )  # fmt: skip
    assert code == 0 and "added trunk sipnet (sip.example.net:5070/tcp, registers)" in out, out
    (trunk,) = stored(data_dir)
    assert (trunk.transport, trunk.auth_username, trunk.from_user, trunk.from_domain) == (
        "tcp",
        "a7001",
        "74951112233",
        "example.net",
    )
    assert trunk.outbound_prefixes == ("+7", "8", "+7495") and trunk.inbound_cidrs == ("192.0.2.0/24",)
    assert (trunk.strip_digits, trunk.add_prefix, trunk.allow_international) == (1, "+7", True)
    assert stat.S_IMODE((data_dir / "vpbx.db").stat().st_mode) == 0o600  # it holds a secret now
    code, out = vpbx(data_dir, "trunk", "add", "quiet", "--host", "10.0.0.1", "--username", "u",
                     "--secret", "pw", "--no-register")  # fmt: skip
    assert code == 0 and "does not register" in out, out
    code, out = vpbx(data_dir, "trunk", "list", "--http", "127.0.0.1:1")  # no server there
    assert code == 0 and "sipnet" in out and "every 120 s" in out and "+7, 8, +7495" in out, out
    assert "-1+'+7'" in out and "state" not in out and "pw" not in out.split()  # secret not shown
    assert vpbx(data_dir, "trunk", "disable", "sipnet")[0] == 0
    assert {t.name: t.enabled for t in stored(data_dir)} == {"quiet": True, "sipnet": False}
    assert vpbx(data_dir, "trunk", "enable", "sipnet")[0] == 0
    assert vpbx(data_dir, "trunk", "remove", "sipnet") == (0, "removed trunk sipnet\n")
    code, out = vpbx(data_dir, "trunk", "remove", "sipnet")
    assert code == 1 and "no trunk sipnet" in out
    assert [t.name for t in stored(data_dir)] == ["quiet"]


def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    base = ["trunk", "add", "t1", "--host", "10.0.0.1", "--username", "u", "--secret", "pw"]
    for extra, message in [
        (["--prefix", "+7x"], "prefix"),
        (["--inbound-cidr", "10.0.0.0/99"], "inbound source"),
        (["--transport", "sctp"], "transport"),
        (["--register-interval", "1"], "register interval"),
        (["--caller-id", "anonymous"], "caller id"),
    ]:
        code, out = vpbx(data_dir, *base, *extra)
        assert code == 2 and message in out, out
    assert stored(data_dir) == []
    assert vpbx(data_dir, *base)[0] == 0
    code, out = vpbx(data_dir, *base)
    assert code == 2 and "trunk t1 already exists" in out


class Figures:
    def registered(self) -> dict[str, bool]:
        return {"a": True, "b": False}

    def registration_failures(self) -> dict[str, int]:
        return {"a": 0, "b": 3}


def test_trunk_metrics_exposition() -> None:
    metrics = Metrics()
    metrics.add_trunks(Figures())
    text = metrics.exposition().decode()
    assert 'vpbx_trunk_registered{trunk="a"} 1.0' in text
    assert 'vpbx_trunk_registered{trunk="b"} 0.0' in text
    assert 'vpbx_trunk_registration_failures_total{trunk="b"} 3.0' in text
    assert "# TYPE vpbx_trunk_registration_failures_total counter" in text
