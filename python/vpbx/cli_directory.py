"""`vpbx directory ...`: LDAP / Active Directory sync on demand and its run history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vpbx.settings import Settings, SettingsError, load_settings

directory_app = typer.Typer(help="LDAP / Active Directory sync ([directory] table).", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

EXIT_FAILED = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings(ctx: typer.Context) -> Settings:
    """Settings with the global --config and --data-dir flags (ctx.obj of the main app)."""
    obj: Any = ctx.find_root().obj
    serve: dict[str, Any] = {}
    if getattr(obj, "data_dir", None) is not None:
        serve["data_dir"] = obj.data_dir
    config: Path | None = getattr(obj, "config", None)
    try:
        return load_settings(config, serve=serve)
    except SettingsError as e:
        _fail(str(e), EXIT_USAGE)


def _when(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


@directory_app.command("sync")
def sync(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Only entries changed since the last run.")
    ] = False,
) -> None:
    """Sync users, extensions, SIP accounts and roles from the directory now.

    Exits 1 when the run failed (directory unreachable, bind or TLS error) or aborted for
    safety (empty result, too many users would be disabled): nothing was changed then."""
    from vpbx.io.directory_sync import sync_data_dir  # noqa: PLC0415 (ldap3 and SQLAlchemy load only here)
    from vpbx.logs import configure_logging  # noqa: PLC0415
    from vpbx.store.errors import StoreError  # noqa: PLC0415

    configure_logging("error")  # the table below is the report; no JSON log lines in between
    settings = _settings(ctx)
    if not settings.directory.enabled:
        _fail("no directory configured: set [directory] url and base_dn (or VPBX_DIRECTORY__URL)", EXIT_USAGE)
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} entries"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("reading the directory", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = sync_data_dir(
                settings.serve.data_dir,
                settings.directory,
                dry_run=dry_run,
                incremental=incremental,
                progress=progress,
            )
        except StoreError as e:
            _fail(str(e), EXIT_FAILED)
    title = f"directory sync ({report.mode}{', dry run: nothing changed' if dry_run else ''})"
    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("status", report.status)
    table.add_row("entries seen", str(report.seen))
    for kind, n in report.counts().items():
        table.add_row(
            "roles changed" if kind == "roles" else ("re-enabled" if kind == "enabled" else kind), str(n)
        )
    table.add_row("errors", str(len(report.errors)))
    table.add_row("duration", f"{report.duration_s:.2f} s")
    console.print(table)
    for line in report.conflicts[:20]:
        console.print(f"[yellow]conflict:[/] {line}", highlight=False)
    for line in report.errors[:20]:
        console.print(f"[yellow]error:[/] {line}", highlight=False)
    if dry_run:
        for kind, lines in report.details.items():
            for line in lines[:20]:
                console.print(f"would be {kind}: {line}", highlight=False)
    if not report.ok:
        _fail(f"sync {report.status} ({report.reason}): {report.message}; nothing was changed", EXIT_FAILED)


@directory_app.command("runs")
def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many runs.")] = 20,
) -> None:
    """The last sync runs and their reports (newest first)."""
    from vpbx.io.directory_sync import runs_in_data_dir  # noqa: PLC0415
    from vpbx.store.errors import StoreError  # noqa: PLC0415

    settings = _settings(ctx)
    try:
        found = runs_in_data_dir(settings.serve.data_dir, limit=limit)
    except StoreError as e:
        _fail(str(e), EXIT_FAILED)
    table = Table(title="directory sync runs (new, updated, disabled, removed, conflicts, errors)")
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("seen", "new", "upd", "dis", "rem", "conf", "err"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("message", overflow="fold")
    for r in found:
        table.add_row(
            _when(r.started_at),
            r.status + (" (dry)" if r.dry_run else ""),
            str(r.seen),
            str(r.created),
            str(r.updated),
            str(r.disabled),
            str(r.removed),
            str(r.conflicts),
            str(r.errors),
            str(r.report.get("message") or "")[:80],
        )
    console.print(table)
