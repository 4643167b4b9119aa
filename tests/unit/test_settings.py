"""The typed settings: defaults < TOML file < environment < command-line flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vpbx.settings import MediaNodeSettings, ServeSettings, SettingsError, load_settings, parse_host_port


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os  # noqa: PLC0415

    for key in list(os.environ):
        if key.startswith("VPBX_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "vpbx.toml"
    p.write_text(text)
    return p


def test_defaults_match_rtpengine_habits() -> None:
    s = load_settings().media_node
    assert s == MediaNodeSettings()
    assert s.interfaces == ["127.0.0.1"]
    assert s.ng_address == ("127.0.0.1", 2223) and s.http_address == ("127.0.0.1", 2225)
    assert (s.port_min, s.port_max, s.workers, s.media_timeout_s) == (30000, 40000, 0, 60.0)


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(
        tmp_path,
        '[media_node]\ninterfaces = ["10.0.0.5"]\nport_min = 1000\nport_max = 2000\nworkers = 3\n',
    )
    s = load_settings(cfg).media_node
    assert (s.interfaces, s.port_min, s.port_max, s.workers) == (["10.0.0.5"], 1000, 2000, 3)

    monkeypatch.setenv("VPBX_MEDIA_NODE__PORT_MIN", "1500")
    monkeypatch.setenv("VPBX_MEDIA_NODE__WORKERS", "4")
    s = load_settings(cfg).media_node
    assert (s.port_min, s.port_max, s.workers) == (1500, 2000, 4)  # env over file, file kept

    s = load_settings(cfg, media_node={"workers": 1, "interfaces": ["127.0.0.1"]}).media_node
    assert (s.port_min, s.workers, s.interfaces) == (1500, 1, ["127.0.0.1"])  # flags over env


def test_rtpengine_spellings_in_the_file(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "[media-node]\n"
        'interface = "pub/10.0.0.5!203.0.113.5; 127.0.0.1"\n'
        'listen-ng = "[::1]:2223"\n'
        "port-min = 30000\nport-max = 30100\nnum-threads = 2\ntimeout = 30\nmax-sessions = 5\n"
        'log-level = "DEBUG"\n',
    )
    s = load_settings(cfg).media_node
    assert s.interfaces == ["pub/10.0.0.5!203.0.113.5", "127.0.0.1"]
    assert s.ng_address == ("::1", 2223)
    assert (s.workers, s.media_timeout_s, s.max_sessions, s.log_level) == (2, 30.0, 5, "debug")


def test_environment_lists_as_json_or_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPBX_MEDIA_NODE__INTERFACES", "a/127.0.0.1, b/127.0.0.2")
    assert load_settings().media_node.interfaces == ["a/127.0.0.1", "b/127.0.0.2"]
    monkeypatch.setenv("VPBX_MEDIA_NODE__INTERFACES", '["c/127.0.0.3"]')
    assert load_settings().media_node.interfaces == ["c/127.0.0.3"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[media_node]\nport_min = 5000\nport_max = 4000\n", "port_min 5000 is above port_max 4000"),
        ("[media_node]\nport_min = 0\n", "media_node.port_min"),
        ('[media_node]\nlisten_ng = "localhost:2223"\n', "not an IP address"),
        ('[media_node]\nlisten_http = "127.0.0.1"\n', "not HOST:PORT"),
        ("[media_node]\nport_mni = 5\n", "media_node.port_mni: Extra inputs are not permitted"),
        ("[media_node]\ntimeout = 5\nmedia_timeout_s = 6\n", "gives 'media_timeout_s' twice"),
        ("[media_node]\ninterfaces = []\n", "at least one interface"),
        ("[media_node\n", "not valid TOML"),
        ("[nonsense]\nx = 1\n", "nonsense: Extra inputs are not permitted"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(SettingsError) as e:
        load_settings(write(tmp_path, text))
    assert needle in str(e.value)


def test_a_missing_file_and_a_bad_environment_value_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml")
    monkeypatch.setenv("VPBX_MEDIA_NODE__PORT_MAX", "lots")
    with pytest.raises(SettingsError, match=r"media_node\.port_max"):
        load_settings()


def test_host_port() -> None:
    assert parse_host_port("0.0.0.0:1") == ("0.0.0.0", 1)
    for bad in ("1.2.3.4:0", "1.2.3.4:70000", ":5", "1.2.3.4:x", "[::1]"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


def test_the_example_file_in_deploy_is_valid_and_shows_the_defaults() -> None:
    example = Path(__file__).parents[2] / "deploy" / "media-node.toml.example"
    assert load_settings(example).media_node == MediaNodeSettings()


def test_serve_table_file_env_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "vpbx.toml"
    cfg.write_text(
        '[serve]\nrealm = "pbx.example"\nsip-listen = "127.0.0.1:5070"\ntrusted = ["10.0.0.0/8"]\n'
    )
    monkeypatch.setenv("VPBX_SERVE__HTTP_LISTEN", "127.0.0.1:9090")
    monkeypatch.setenv("VPBX_SERVE__SIP_LISTEN", "127.0.0.1:5080")
    s = load_settings(cfg, serve={"data_dir": tmp_path / "d"}).serve
    assert (s.realm, s.sip_address, s.http_address) == (
        "pbx.example",
        ("127.0.0.1", 5080),
        ("127.0.0.1", 9090),
    )
    assert s.trusted == ["10.0.0.0/8"] and s.database_path == tmp_path / "d" / "vpbx.db"
    assert load_settings(cfg, serve={"sip_listen": "127.0.0.1:0"}).serve.sip_address == ("127.0.0.1", 0)


def test_serve_table_refuses_bad_values() -> None:
    with pytest.raises(SettingsError, match="CIDR"):
        load_settings(serve={"trusted": ["10.0.0.0/33"]})
    with pytest.raises(SettingsError, match="min_expires"):
        load_settings(serve={"min_expires": 600, "default_expires": 300})


def test_the_serve_example_in_deploy_is_valid_and_names_every_key() -> None:
    example = Path(__file__).parents[2] / "deploy" / "vpbx.toml.example"
    text = example.read_text()
    serve = load_settings(example).serve
    assert serve.sip_listen == "0.0.0.0:5060" and serve.realm == "pbx.example.com"
    # keys without a default value (None) are shown commented out: TOML has no null
    missing = [key for key in ServeSettings.model_fields if not re.search(rf"^(# )?{key} = ", text, re.M)]
    assert missing == [], f"keys the example does not show: {missing}"
