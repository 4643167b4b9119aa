"""The `vpbx` command line."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from vpbx import __version__
from vpbx.cli_api import role_app, token_app
from vpbx.cli_directory import directory_app
from vpbx.media import WavWriter
from vpbx.media.chain import CODECS, run_chain
from vpbx.media.netsim import PROFILES
from vpbx.settings import ServeSettings, Settings, SettingsError, load_settings

app = typer.Typer(help="vpbx: an open-source cloud PBX.", no_args_is_help=True, add_completion=False)
console = Console()
err_console = Console(stderr=True)

DEMO_TEXT = (
    "Hello, this is the v p b x media demo. Your voice travels through a codec, "
    "across a lossy and jittery network, and out of the jitter buffer."
)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Reads a 16-bit PCM WAV, mixing stereo down to mono."""
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2:
            raise typer.BadParameter(
                f"{path}: only 16-bit PCM WAV is supported (got {8 * w.getsampwidth()}-bit)"
            )
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        rate, ch = w.getframerate(), w.getnchannels()
    if ch > 1:
        pcm = pcm.reshape(-1, ch).mean(axis=1).astype(np.int16)
    return pcm, rate


def demo_source(tmp: Path) -> tuple[np.ndarray, int, str]:
    """Speech from espeak-ng when it is installed, else a synthetic signal."""
    if shutil.which("espeak-ng"):
        out = tmp / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(out), DEMO_TEXT], check=True, capture_output=True)
        pcm, rate = read_wav(out)
        return pcm, rate, "espeak-ng speech"
    rate = 16000
    t = np.arange(rate * 6) / rate
    sweep = 6000 * np.sin(2 * np.pi * (200 * t + 150 * t**2))  # a 200 Hz -> 2 kHz chirp
    return sweep.astype(np.int16), rate, "synthetic chirp (install espeak-ng for speech)"


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the WAV files.")] = Path("demo-out"),
    input_wav: Annotated[
        Path | None, typer.Option("--input", help="16-bit WAV to send (default: generated speech).")
    ] = None,
    network: Annotated[str, typer.Option(help="Network profile (see --list-networks).")] = "lossy-jittery",
    codecs: Annotated[str, typer.Option(help="Comma-separated codec chain names.")] = "PCMU,PCMA,G722,opus",
    list_networks: Annotated[bool, typer.Option(help="List network profiles and exit.")] = False,
) -> None:
    """Push a WAV through codecs and a simulated lossy, jittery network; write what comes out."""
    if list_networks:
        for p in PROFILES.values():
            console.print(f"[bold]{p.name}[/]: {p}")
        return
    if network not in PROFILES:
        raise typer.BadParameter(f"unknown network {network!r}; one of: {', '.join(PROFILES)}")
    names = [c.strip() for c in codecs.split(",") if c.strip()]
    for c in names:
        if c not in CODECS:
            raise typer.BadParameter(f"unknown codec {c!r}; one of: {', '.join(CODECS)}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if input_wav is not None:
            source, rate = read_wav(input_wav)
            label = str(input_wav)
        else:
            source, rate, label = demo_source(Path(tmp))
    console.print(f"source: {label}, {len(source) / rate:.1f} s at {rate} Hz; network: [bold]{network}[/]")
    table = Table(title=f"vpbx media demo over {network}")
    for col in ("codec", "packets", "lost", "late", "concealed ms", "mean delay ms", "target ms"):
        table.add_column(col, justify="left" if col == "codec" else "right")
    for c in names:
        r = run_chain(source, rate, c, PROFILES[network])
        with WavWriter(out / f"{c}-{network}.wav", r.rate) as w:
            w.write(r.output)
        with WavWriter(out / f"{c}-reference.wav", r.rate) as w:
            w.write(r.reference)
        s = r.stats
        table.add_row(
            c,
            str(r.packets_sent),
            str(int(s["lost"])),
            str(int(s["late"])),
            f"{1000 * s['concealed_samples'] / r.rate:.0f}",
            f"{s['mean_delay_ms']:.1f}",
            f"{s['target_delay_ms']:.1f}",
        )
    console.print(table)
    console.print(f"wrote {out}/<codec>-{network}.wav (received) and {out}/<codec>-reference.wav (sent)")


@app.command("media-node")
def media_node(  # noqa: PLR0917 (one parameter per flag)
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with a media_node table.", dir_okay=False)
    ] = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(
            "--interface",
            help="[NAME/]LOCAL[!ADVERTISED], as rtpengine's; repeat for several. The first is the default.",
        ),
    ] = None,
    listen_ng: Annotated[str | None, typer.Option(help="NG control address HOST:PORT (UDP).")] = None,
    listen_http: Annotated[str | None, typer.Option(help="/metrics and /health address HOST:PORT.")] = None,
    port_min: Annotated[int | None, typer.Option(help="Lowest RTP/RTCP port.")] = None,
    port_max: Annotated[int | None, typer.Option(help="Highest RTP/RTCP port.")] = None,
    recording_dir: Annotated[
        Path | None, typer.Option(help="Folder for recordings (recordings are written here).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Media worker threads (0: one per core).")] = None,
    max_sessions: Annotated[int | None, typer.Option(help="Calls at most; more are refused.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds without RTP before a media timeout.")
    ] = None,
    strict_source: Annotated[
        bool | None, typer.Option(help="Drop packets from other sources once latched.")
    ] = None,
    offer_timeout: Annotated[
        float | None, typer.Option("--offer-timeout", help="Seconds an offer may wait for its answer.")
    ] = None,
    opus_complexity: Annotated[
        int | None, typer.Option(help="Opus encoder complexity 0-10 for transcoded streams.")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
) -> None:
    """Run the media node: an RTP relay with transcoding driven over rtpengine's NG protocol.

    Flags override VPBX_MEDIA_NODE__<KEY> variables, which override --config. SIGTERM stops it.
    """
    from vpbx.io.media_node import run  # noqa: PLC0415 (aiohttp & co. load only for this command)

    given = {
        "interfaces": interface or None,
        "listen_ng": listen_ng,
        "listen_http": listen_http,
        "port_min": port_min,
        "port_max": port_max,
        "recording_dir": recording_dir,
        "workers": workers,
        "max_sessions": max_sessions,
        "media_timeout_s": timeout,
        "strict_source": strict_source,
        "offer_timeout_s": offer_timeout,
        "opus_complexity": opus_complexity,
        "log_level": log_level,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        settings = load_settings(config, media_node=overrides)
    except SettingsError as e:
        Console(stderr=True).print(f"[red]error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    raise typer.Exit(run(settings.media_node))


# --- the PBX: serve, and the admin commands on its database ------------------------------


@dataclass(slots=True)
class _Global:
    """Options given before the command: `vpbx --data-dir DIR user add ...`."""

    data_dir: Path | None = None
    config: Path | None = None


def _fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _serve_settings(ctx: typer.Context, config: Path | None = None, **overrides: Any) -> ServeSettings:
    """The [serve] settings: command flags, then the global flags, then VPBX_SERVE__*,
    then the config file, then the defaults."""
    return _settings(ctx, config, **overrides).serve


def _settings(ctx: typer.Context, config: Path | None = None, **overrides: Any) -> Settings:
    """Every table of the config, with `overrides` applied to [serve] (see _serve_settings)."""
    g = ctx.find_object(_Global) or _Global()
    given = {k: v for k, v in overrides.items() if v is not None}
    if "data_dir" not in given and g.data_dir is not None:
        given["data_dir"] = g.data_dir
    try:
        return load_settings(config or g.config, serve=given)
    except SettingsError as e:
        _fail(str(e), 2)


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Store and input errors as one line on stderr: 2 for a conflict or bad input, 1 else."""
    from vpbx.store.errors import ConflictError, StoreError  # noqa: PLC0415 (SQLAlchemy loads late)

    try:
        yield
    except ConflictError as e:
        _fail(str(e), 2)
    except ValueError as e:
        _fail(str(e), 2)
    except StoreError as e:
        _fail(str(e), 1)


@app.callback()
def _main_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Folder of the database (DATA_DIR/vpbx.db). Default: ./data."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file ([serve] table).", dir_okay=False)
    ] = None,
) -> None:
    """vpbx: an open-source cloud PBX."""
    ctx.obj = _Global(data_dir, config)


def _parse_accounts(items: list[str] | None) -> list[tuple[str, str]]:
    accounts: list[tuple[str, str]] = []
    for item in items or []:
        ext, sep, password = item.partition(":")
        if not sep or not ext or not password:
            raise typer.BadParameter(f"expected EXT:PASSWORD, got {item!r}")
        accounts.append((ext, password))
    return accounts


def _parse_pairs(items: list[str] | None, shape: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in items or []:
        left, sep, right = item.partition(":")
        if not sep or not left or not right:
            raise typer.BadParameter(f"expected {shape}, got {item!r}")
        pairs.append((left, right))
    return pairs


@app.command()
def serve(  # noqa: PLR0917 (one parameter per flag)
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with a [serve] table.", dir_okay=False)
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder of the database.")] = None,
    sip_listen: Annotated[str | None, typer.Option(help="SIP over UDP and TCP, HOST:PORT.")] = None,
    http_listen: Annotated[str | None, typer.Option(help="/metrics and /health, HOST:PORT.")] = None,
    realm: Annotated[str | None, typer.Option(help="Digest realm (the SIP domain).")] = None,
    sip_tls_listen: Annotated[
        str | None, typer.Option(help="SIP over TLS, HOST:PORT (needs --sip-tls-cert, --sip-tls-key).")
    ] = None,
    sip_tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate (chain) for SIP over TLS.", dir_okay=False)
    ] = None,
    sip_tls_key: Annotated[
        Path | None, typer.Option(help="PEM private key of --sip-tls-cert.", dir_okay=False)
    ] = None,
    md5_only: Annotated[
        bool | None, typer.Option("--md5-only", help="Offer only MD5 digest (old phones, SIPp).")
    ] = None,
    trusted: Annotated[
        list[str] | None, typer.Option("--trusted", help="CIDR never rate-limited or banned (repeatable).")
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option("--user", help="Create (or re-key) an account EXT:PASSWORD at start (repeatable)."),
    ] = None,
    number: Annotated[
        list[str] | None,
        typer.Option("--number", help="Route a number to an extension NUMBER:EXT at start (repeatable)."),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
) -> None:
    """Run the PBX: SIP registrar with digest auth and calls (B2BUA, media anchored) on UDP
    and TCP, /metrics and /health.

    Accounts and registrations live in DATA_DIR/vpbx.db; accounts added with `vpbx user add`
    while it runs work within about a second. Flags override VPBX_SERVE__<KEY> variables,
    which override --config. SIGTERM stops it after writing pending registrations.
    """
    from vpbx.io.serve import run  # noqa: PLC0415 (uvloop, aiohttp & co. load only here)

    accounts = _parse_accounts(user)
    numbers = _parse_pairs(number, "NUMBER:EXT")
    settings = _settings(
        ctx,
        config,
        data_dir=data_dir,
        sip_listen=sip_listen,
        http_listen=http_listen,
        realm=realm,
        md5_only=md5_only,
        trusted=trusted or None,
        log_level=log_level,
        sip_tls_listen=sip_tls_listen,
        sip_tls_cert=sip_tls_cert,
        sip_tls_key=sip_tls_key,
    )
    directory = settings.directory if settings.directory.enabled else None
    raise typer.Exit(run(settings.serve, accounts, numbers, directory=directory))


user_app = typer.Typer(help="SIP users (extensions) in the database.", no_args_is_help=True)
number_app = typer.Typer(help="Company numbers (DIDs) and where they ring.", no_args_is_help=True)
calls_app = typer.Typer(help="Call detail records.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(number_app, name="number")
app.add_typer(calls_app, name="calls")
app.add_typer(token_app, name="token")
user_app.add_typer(role_app, name="role")
from vpbx.cli_trunk import trunk_app  # noqa: E402 (it uses the helpers above)

app.add_typer(trunk_app, name="trunk")
app.add_typer(directory_app, name="directory")


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    extension: Annotated[str, typer.Argument(help="The extension, also the SIP username.")],
    password: Annotated[str, typer.Option("--password", help="SIP password (stored only as digests).")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="CIDR the account may register from (repeatable; default: anywhere)."),
    ] = None,
) -> None:
    """Add a user with a SIP account. A running server accepts it within about a second."""
    from vpbx.io import admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        user = admin.add_user(
            settings.data_dir, extension, password, realm=settings.realm, name=name, allowed_cidrs=allow or ()
        )
    console.print(f"added user {user.extension}" + (f" ({user.display_name})" if user.display_name else ""))


@user_app.command("allow")
def user_allow(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The SIP account (the extension).")],
    cidrs: Annotated[list[str] | None, typer.Argument(help="CIDRs; none: from anywhere again.")] = None,
) -> None:
    """Set the networks an account may register from; elsewhere even the right password
    fails (like a wrong one). A running server applies it within about a second."""
    from vpbx.io import admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        found = admin.allow_sources(settings.data_dir, username, cidrs or [])
    if not found:
        _fail(f"no SIP account {username}", 1)
    console.print(
        f"{username}: " + (f"allowed from {', '.join(cidrs)}" if cidrs else "allowed from anywhere")
    )


@user_app.command("list")
def user_list(ctx: typer.Context) -> None:
    """List users and their SIP accounts."""
    from vpbx.io import admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        rows = admin.list_users(settings.data_dir)
    table = Table(title=f"users in {settings.database_path}")
    for col in ("extension", "name", "enabled", "SIP username", "realm", "allowed from"):
        table.add_column(col)
    for user, accounts in rows:
        table.add_row(
            user.extension,
            user.display_name,
            "yes" if user.enabled else "no",
            ", ".join(a.username for a in accounts),
            ", ".join(sorted({a.realm for a in accounts})),
            ", ".join(c for a in accounts for c in a.allowed_cidrs) or "anywhere",
        )
    console.print(table)


@user_app.command("remove")
def user_remove(
    ctx: typer.Context, extension: Annotated[str, typer.Argument(help="The extension to remove.")]
) -> None:
    """Remove a user and their SIP accounts (a running server stops accepting them)."""
    from vpbx.io import admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        removed = admin.remove_user(settings.data_dir, extension)
    if not removed:
        _fail(f"no user with extension {extension}", 1)
    console.print(f"removed user {extension}")


@number_app.command("add")
def number_add(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The number, e.g. +74951234567.")],
    to: Annotated[str, typer.Option("--to", help="The extension it rings.")],
) -> None:
    """Route a company number to an extension."""
    from vpbx.io import admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        added = admin.add_number(settings.data_dir, number, to)
    console.print(f"added number {added.e164} -> extension {added.target_value}")


@number_app.command("list")
def number_list(ctx: typer.Context) -> None:
    """List company numbers."""
    from vpbx.io import admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        rows = admin.list_numbers(settings.data_dir)
    table = Table(title=f"numbers in {settings.database_path}")
    for col in ("number", "to", "max calls", "enabled"):
        table.add_column(col)
    for n in rows:
        table.add_row(
            n.e164, f"{n.target_kind} {n.target_value}", str(n.max_calls), "yes" if n.enabled else "no"
        )
    console.print(table)


@number_app.command("remove")
def number_remove(ctx: typer.Context, number: Annotated[str, typer.Argument(help="The number.")]) -> None:
    """Remove a company number."""
    from vpbx.io import admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        removed = admin.remove_number(settings.data_dir, number)
    if not removed:
        _fail(f"no number {number}", 1)
    console.print(f"removed number {number}")


def _when(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


@calls_app.command("list")
def calls_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Newest N calls.")] = 50,
) -> None:
    """List the newest calls (CDRs), newest first. Times are UTC."""
    from vpbx.io import admin  # noqa: PLC0415

    settings = _serve_settings(ctx)
    with _store_errors():
        rows = admin.list_calls(settings.data_dir, limit)
    table = Table(title=f"calls in {settings.database_path}")
    for col in ("started (UTC)", "direction", "from", "to", "disposition", "duration s", "billsec", "cause"):
        table.add_column(col, justify="right" if col in {"duration s", "billsec"} else "left")
    for c in rows:
        table.add_row(
            _when(c.started_at),
            c.direction,
            c.from_number,
            c.to_number,
            c.disposition,
            f"{c.duration_s:.0f}",
            f"{c.billsec:.0f}",
            c.hangup_cause or "",
        )
    console.print(table)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"vpbx {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
