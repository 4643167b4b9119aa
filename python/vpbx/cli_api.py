"""`vpbx token ...` (API tokens) and `vpbx user role ...` (manual roles): the command
line side of the REST API (issue 5). cli.py mounts these apps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from vpbx.api.rbac import ROLES

__all__ = ["role_app", "token_app"]

token_app = typer.Typer(help="API tokens (Authorization: Bearer ...).", no_args_is_help=True)
role_app = typer.Typer(help="Roles set in vpbx (directory roles come from groups).", no_args_is_help=True)

_ROLE_HELP = "One of: " + ", ".join(ROLES) + "."


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise typer.BadParameter(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
    return role


def _when(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help=_ROLE_HELP, callback=_check_role)],
    description: Annotated[str, typer.Option("--description", help="What the token is for.")] = "",
    user: Annotated[
        str | None, typer.Option("--user", help="Extension the token acts for (own/department scopes).")
    ] = None,
    expires_in: Annotated[
        float | None, typer.Option("--expires-in", min=1, help="Seconds until it expires (default: never).")
    ] = None,
) -> None:
    """Create a token and print it once (only its SHA-256 is stored)."""
    from vpbx.cli import _serve_settings, _store_errors, console  # noqa: PLC0415 (cli imports this module)
    from vpbx.io import admin_tokens  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        record, plaintext = admin_tokens.create_token(
            settings.data_dir, role, description=description, extension=user, expires_in_s=expires_in
        )
    console.print(
        f"token {record.id} (role {role}"
        + (f", acting for {user}" if user else "")
        + "); shown only now, keep it safe:",
        highlight=False,
    )
    print(plaintext, flush=True)


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """List tokens (never their values). Times are UTC."""
    from vpbx.cli import _serve_settings, _store_errors, console  # noqa: PLC0415
    from vpbx.io import admin_tokens  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        rows = admin_tokens.list_tokens(settings.data_dir)
    table = Table(title=f"API tokens in {settings.database_path}")
    for col in ("id", "role", "user", "description", "created", "last used", "expires", "revoked"):
        table.add_column(col)
    for row in rows:
        t = row.token
        table.add_row(
            str(t.id),
            t.role,
            row.extension or "",
            t.description,
            _when(t.created_at),
            _when(t.last_used_at),
            _when(t.expires_at),
            _when(t.revoked_at),
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, token_id: Annotated[int, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a token: the next request with it gets 401."""
    from vpbx.cli import _fail, _serve_settings, _store_errors, console  # noqa: PLC0415
    from vpbx.io import admin_tokens  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        done = admin_tokens.revoke_token(settings.data_dir, token_id)
    if not done:
        _fail(f"no live token with id {token_id}", 1)
    console.print(f"revoked token {token_id}")


@role_app.command("add")
def role_add(
    ctx: typer.Context,
    extension: Annotated[str, typer.Argument(help="The user's extension.")],
    role: Annotated[str, typer.Argument(help=_ROLE_HELP, callback=_check_role)],
) -> None:
    """Grant a role (source "manual": directory syncs leave it alone)."""
    from vpbx.cli import _fail, _serve_settings, _store_errors, console  # noqa: PLC0415
    from vpbx.io import admin_tokens  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        done = admin_tokens.grant_role(settings.data_dir, extension, role)
    if not done:
        _fail(f"no user with extension {extension}", 1)
    console.print(f"{extension} has role {role}")


@role_app.command("remove")
def role_remove(
    ctx: typer.Context,
    extension: Annotated[str, typer.Argument(help="The user's extension.")],
    role: Annotated[str, typer.Argument(help=_ROLE_HELP, callback=_check_role)],
) -> None:
    """Take a role away."""
    from vpbx.cli import _fail, _serve_settings, _store_errors, console  # noqa: PLC0415
    from vpbx.io import admin_tokens  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        done = admin_tokens.revoke_role(settings.data_dir, extension, role)
    if not done:
        _fail(f"{extension} does not have role {role} (or there is no such user)", 1)
    console.print(f"{extension} no longer has role {role}")


@role_app.command("list")
def role_list(
    ctx: typer.Context, extension: Annotated[str, typer.Argument(help="The user's extension.")]
) -> None:
    """Show a user's roles."""
    from vpbx.cli import _fail, _serve_settings, _store_errors, console  # noqa: PLC0415
    from vpbx.io import admin_tokens  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        found = admin_tokens.roles_of(settings.data_dir, extension)
    if found is None:
        _fail(f"no user with extension {extension}", 1)
    console.print(", ".join(found) if found else "(no roles: an employee)", highlight=False)
