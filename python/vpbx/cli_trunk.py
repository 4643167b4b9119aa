"""`vpbx trunk ...`: upstream SIP provider trunks (add, list, remove, enable, disable).

    vpbx --data-dir data trunk add sipnet --host sip.example.net --username 7001 --secret PW \\
        --prefix +7 --prefix 8 --caller-id +74951234567
    vpbx --data-dir data trunk list
    vpbx --data-dir data trunk remove sipnet

A running `vpbx serve` registers, re-registers or unregisters within about a second.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from vpbx.cli import _fail, _serve_settings, _store_errors, console

trunk_app = typer.Typer(help="Upstream SIP provider trunks.", no_args_is_help=True)


@trunk_app.command("add")
def trunk_add(  # noqa: PLR0917 (one parameter per flag)
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A short name for the trunk (letters, digits, _ . -).")],
    host: Annotated[str, typer.Option("--host", help="The provider's SIP server (name or address).")],
    username: Annotated[str, typer.Option("--username", help="The account name at the provider.")],
    secret: Annotated[
        str, typer.Option("--secret", help="The account password (stored: keep DATA_DIR private).")
    ],
    port: Annotated[int, typer.Option("--port", help="The provider's SIP port.")] = 5060,
    transport: Annotated[str, typer.Option("--transport", help="udp or tcp.")] = "udp",
    auth_username: Annotated[
        str | None, typer.Option("--auth-username", help="Digest user name when it differs from --username.")
    ] = None,
    from_user: Annotated[
        str | None, typer.Option("--from-user", help="From user on calls (default: --username).")
    ] = None,
    from_domain: Annotated[
        str | None, typer.Option("--from-domain", help="From/To domain (default: --host).")
    ] = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register with the provider.")
    ] = True,
    register_interval: Annotated[
        int, typer.Option("--register-interval", help="Registration time asked for, seconds.")
    ] = 300,
    prefix: Annotated[
        list[str] | None,
        typer.Option("--prefix", help="Dialled numbers starting with this go out here (repeatable, or a,b)."),
    ] = None,
    strip: Annotated[int, typer.Option("--strip", help="Digits removed from the front of the number.")] = 0,
    add_prefix: Annotated[str, typer.Option("--add-prefix", help="Put in front after --strip.")] = "",
    caller_id: Annotated[
        str | None, typer.Option("--caller-id", help="Number presented on outbound calls.")
    ] = None,
    allow_international: Annotated[
        bool, typer.Option("--allow-international", help="Allow international numbers (denied by default).")
    ] = False,
    inbound_cidr: Annotated[
        list[str] | None,
        typer.Option("--inbound-cidr", help="Calls from this network come from the trunk (repeatable)."),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it switched off.")] = False,
) -> None:
    """Add a trunk to an upstream SIP provider (set up like a FreePBX/Asterisk trunk)."""
    from vpbx.io import trunk_admin  # noqa: PLC0415 (SQLAlchemy loads late)
    from vpbx.store.trunks import TrunkSpec, parse_list  # noqa: PLC0415

    settings = _serve_settings(ctx)
    spec = TrunkSpec(
        name=name,
        host=host,
        port=port,
        transport=transport.lower(),
        username=username,
        auth_username=auth_username,
        secret=secret,
        from_user=from_user,
        from_domain=from_domain,
        register=register,
        register_interval_s=register_interval,
        outbound_prefixes=parse_list(prefix or []),
        strip_digits=strip,
        add_prefix=add_prefix,
        caller_id=caller_id,
        allow_international=allow_international,
        inbound_cidrs=parse_list(inbound_cidr or []),
        enabled=not disabled,
    )
    with _store_errors():
        trunk = trunk_admin.add_trunk(settings.data_dir, spec)
    registering = "registers" if trunk.register and trunk.enabled else "does not register"
    console.print(f"added trunk {trunk.name} ({trunk.host}:{trunk.port}/{trunk.transport}, {registering})")


@trunk_app.command("list")
def trunk_list(
    ctx: typer.Context,
    http: Annotated[
        str | None,
        typer.Option("--http", help="The running server's /health HOST:PORT (default: serve's http_listen)."),
    ] = None,
) -> None:
    """List trunks; when a server answers on its HTTP address, their registration state too."""
    from vpbx.io import trunk_admin  # noqa: PLC0415
    from vpbx.settings import SettingsError, parse_host_port  # noqa: PLC0415

    settings = _serve_settings(ctx)
    try:
        address = settings.http_address if http is None else parse_host_port(http)
    except SettingsError as e:
        _fail(str(e), 2)
    with _store_errors():
        rows = trunk_admin.list_trunks(settings.data_dir)
    status = trunk_admin.server_status(address) if rows else None
    table = Table(title=f"trunks in {settings.database_path}")
    columns = ["name", "server", "user", "register", "prefixes", "rewrite", "caller id", "intl", "enabled"]
    for col in [*columns, *(["state", "last error"] if status is not None else [])]:
        table.add_column(col)
    for t in rows:
        rewrite = (f"-{t.strip_digits}" if t.strip_digits else "") + (
            f"+'{t.add_prefix}'" if t.add_prefix else ""
        )
        cells = [
            t.name,
            f"{t.host}:{t.port}/{t.transport}",
            t.username + (f" (auth {t.auth_username})" if t.auth_username else ""),
            f"every {t.register_interval_s} s" if t.register else "no",
            ", ".join(t.outbound_prefixes),
            rewrite,
            t.caller_id or "",
            "yes" if t.allow_international else "no",
            "yes" if t.enabled else "no",
        ]
        if status is not None:
            live = status.get(t.name, {})
            cells += [str(live.get("state", "")), str(live.get("last_error") or "")]
        table.add_row(*cells)
    console.print(table)


@trunk_app.command("remove")
def trunk_remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The trunk.")]) -> None:
    """Remove a trunk; a running server unregisters it (Expires: 0)."""
    from vpbx.io import trunk_admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        removed = trunk_admin.remove_trunk(settings.data_dir, name)
    if not removed:
        _fail(f"no trunk {name}", 1)
    console.print(f"removed trunk {name}")


def _set_enabled(ctx: typer.Context, name: str, *, enabled: bool) -> None:
    from vpbx.io import trunk_admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        trunk = trunk_admin.set_enabled(settings.data_dir, name, enabled=enabled)
    if trunk is None:
        _fail(f"no trunk {name}", 1)
    console.print(f"{'enabled' if enabled else 'disabled'} trunk {name}")


@trunk_app.command("enable")
def trunk_enable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The trunk.")]) -> None:
    """Switch a trunk on (a running server registers it)."""
    _set_enabled(ctx, name, enabled=True)


@trunk_app.command("disable")
def trunk_disable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The trunk.")]) -> None:
    """Switch a trunk off (a running server unregisters it; the config stays)."""
    _set_enabled(ctx, name, enabled=False)
