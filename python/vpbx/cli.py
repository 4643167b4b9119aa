"""The `vpbx` command line."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from vpbx import __version__
from vpbx.media import WavWriter
from vpbx.media.chain import CODECS, run_chain
from vpbx.media.netsim import PROFILES
from vpbx.settings import SettingsError, load_settings

app = typer.Typer(help="vpbx: an open-source cloud PBX.", no_args_is_help=True, add_completion=False)
console = Console()

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
        Path | None, typer.Option(help="Folder for recordings (recording is not available yet).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Media worker threads (0: one per core).")] = None,
    max_sessions: Annotated[int | None, typer.Option(help="Calls at most; more are refused.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds without RTP before a media timeout.")
    ] = None,
    strict_source: Annotated[
        bool | None, typer.Option(help="Drop packets from other sources once latched.")
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
        "log_level": log_level,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        settings = load_settings(config, media_node=overrides)
    except SettingsError as e:
        Console(stderr=True).print(f"[red]error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    raise typer.Exit(run(settings.media_node))


# --- serve: MINIMAL SIP service (registrar + OPTIONS), issue 4 first step ---------------
# Users, realm and listen address come from the command line until the store and
# the settings model land; the full `vpbx serve [--config] [--data-dir] ...` replaces it.


def _split_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise typer.BadParameter(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


@app.command()
def serve(
    sip_listen: Annotated[str, typer.Option(help="UDP and TCP address, HOST:PORT.")] = "0.0.0.0:5060",
    user: Annotated[list[str] | None, typer.Option(help="An account, EXT:PASSWORD (repeatable).")] = None,
    realm: Annotated[str, typer.Option(help="Digest realm (the SIP domain).")] = "vpbx",
    trusted: Annotated[
        list[str] | None, typer.Option(help="CIDR never rate-limited or banned (repeatable).")
    ] = None,
    md5_only: Annotated[bool, typer.Option(help="Offer only MD5 digest (old phones, SIPp).")] = False,
) -> None:
    """Run the SIP service (registrar with digest auth, OPTIONS) on uvloop. Minimal for now."""
    import uvloop  # noqa: PLC0415

    from vpbx.sip_service import build_service, run_sip_service  # noqa: PLC0415

    host, port = _split_hostport(sip_listen)
    accounts: list[tuple[str, str]] = []
    for item in user or []:
        ext, sep, password = item.partition(":")
        if not sep or not ext or not password:
            raise typer.BadParameter(f"expected EXT:PASSWORD, got {item!r}")
        accounts.append((ext, password))
    algorithms = ("MD5",) if md5_only else ("SHA-256", "MD5")
    service = build_service(realm, accounts, trusted=tuple(trusted or ()), algorithms=algorithms)

    def ready(bound: tuple[str, int]) -> None:
        print(f"vpbx: SIP listening on udp+tcp {bound[0]}:{bound[1]} realm={realm}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run_sip_service(service, host, port, ready))


# --- end of serve ------------------------------------------------------------------------


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"vpbx {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
