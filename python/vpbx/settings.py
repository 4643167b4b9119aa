"""The one typed settings model of vpbx: every config key lives here (DESIGN.md §3.6).

Values come, lowest precedence first, from the defaults below, a TOML file, environment
variables and command-line flags. Environment variables are ``VPBX_`` + the table + ``__`` +
the key, upper-case: ``VPBX_MEDIA_NODE__PORT_MIN=42000``; list values are JSON or
comma-separated (``VPBX_MEDIA_NODE__INTERFACES=pub/10.0.0.5!203.0.113.5,127.0.0.1``).

Keys are named as rtpengine names its options where there is an equivalent, so operators find
their way: the TOML file also accepts rtpengine's spellings (``interface``, ``port-min``,
``listen-ng``, ``num-threads``, ``timeout`` ...; see :data:`SYNONYMS`)::

    [media_node]
    interfaces = ["pub/10.0.0.5!203.0.113.5"]
    listen_ng = "127.0.0.1:2223"
    port_min = 30000
    port_max = 40000
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "DIRECTORY_FIELDS",
    "DIRECTORY_ROLES",
    "ENV_PREFIX",
    "SYNONYMS",
    "DirectorySettings",
    "FieldMapping",
    "MediaNodeSettings",
    "ServeSettings",
    "Settings",
    "SettingsError",
    "load_settings",
    "parse_host_port",
]

ENV_PREFIX = "VPBX_"

_file_data: ContextVar[dict[str, Any] | None] = ContextVar("vpbx_config_file", default=None)


def _split_list(v: Any, separators: str) -> Any:
    """An environment variable's list: a JSON array, or items separated by white space or
    any of ``separators``. Anything else passes through to pydantic's own validation."""
    if not isinstance(v, str):
        return v
    text = v.strip()
    if text.startswith("["):
        return json.loads(text)
    for sep in separators:
        text = text.replace(sep, " ")
    return text.split()


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which key or file and why."""


def parse_host_port(text: str, *, any_port: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` with a numeric IPv4 host or a bracketed IPv6 one (``[::1]:2223``).
    ``any_port``: port 0 (the system picks a free one, for tests) is accepted too."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    number = int(port)
    if not (0 if any_port else 1) <= number < 65536:
        raise ValueError(f"{text!r}: port {number} is not in 1..65535")
    return host, number


#: rtpengine's spellings accepted in the file, per table (after "-" -> "_").
SYNONYMS: dict[str, dict[str, str]] = {
    "media_node": {"interface": "interfaces", "num_threads": "workers", "timeout": "media_timeout_s"},
}


def _canonical(data: dict[str, Any], source: str) -> dict[str, Any]:
    """File keys in their canonical spelling: ``port-min`` -> ``port_min``, synonyms mapped."""
    out: dict[str, Any] = {}
    for table, values in data.items():
        name = table.replace("-", "_")
        if not isinstance(values, dict):
            out[name] = values  # validation says what is wrong with it
            continue
        synonyms = SYNONYMS.get(name, {})
        keys: dict[str, Any] = {}
        for key, value in values.items():
            canon = key.replace("-", "_")
            canon = synonyms.get(canon, canon)
            if canon in keys:
                raise SettingsError(f"{source}: [{table}] gives {canon!r} twice (as {key!r} too)")
            keys[canon] = value
        out[name] = keys
    return out


class _FileSource(PydanticBaseSettingsSource):
    """The TOML file's values, already read and put in canonical spelling."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


class MediaNodeSettings(BaseModel):
    """``[media_node]``: the RTP relay driven over the NG protocol (``vpbx media-node``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # NoDecode: the environment may give a comma-separated list as well as JSON
    interfaces: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="rtpengine 'interface' syntax [NAME/]LOCAL[!ADVERTISED]; the first is the default.",
    )
    listen_ng: str = Field(
        default="127.0.0.1:2223",
        description="UDP address of the NG control protocol.",
    )
    listen_http: str = Field(
        default="127.0.0.1:2225",
        description="TCP address of /metrics and /health.",
    )
    port_min: int = Field(default=30000, ge=1, le=65535)
    port_max: int = Field(default=40000, ge=1, le=65535)
    recording_dir: Path = Field(
        default=Path("/var/lib/vpbx/recordings"),
        description="Folder where call recordings (WAV) are written.",
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Media worker threads; 0 means one per core.",
    )
    max_sessions: int = Field(default=10_000, ge=1, description="Admission limit.")
    media_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="No RTP on a leg for this long is a media timeout; a call whose legs all "
        "time out is deleted.",
    )
    strict_source: bool = Field(
        default=False,
        description="Once latched, drop packets from any other source address.",
    )
    offer_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A call offered but not answered for this long is deleted and its ports freed.",
    )
    detect_dtmf: bool = Field(
        default=True,
        description="Log and count key presses on legs that negotiated telephone-event (RFC 4733).",
    )
    opus_complexity: int = Field(
        default=5,
        ge=0,
        le=10,
        description="Opus encoder complexity (0-10) for transcoded streams: the main CPU cost of "
        "PCMU<->opus calls (rtpengine 'opus-complexity'). 5: about 280-300 calls per core, PESQ "
        "0.3 below 10 (about 200 calls per core); see bench/transcode_capacity.py.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("interfaces", mode="before")
    @classmethod
    def _split_interfaces(cls, v: Any) -> Any:
        return _split_list(v, ",;")

    @field_validator("interfaces")
    @classmethod
    def _some_interface(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one interface is needed")
        return v

    @field_validator("listen_ng", "listen_http")
    @classmethod
    def _host_port(cls, v: str) -> str:
        parse_host_port(v)
        return v.strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _port_range(self) -> MediaNodeSettings:
        if self.port_min > self.port_max:
            raise ValueError(f"port_min {self.port_min} is above port_max {self.port_max}")
        return self

    @property
    def ng_address(self) -> tuple[str, int]:
        return parse_host_port(self.listen_ng)

    @property
    def http_address(self) -> tuple[str, int]:
        return parse_host_port(self.listen_http)


class ServeSettings(BaseModel):
    """``[serve]``: the PBX itself (``vpbx serve``) and the admin commands that share its
    database (``vpbx user add`` ...). Environment: ``VPBX_SERVE__SIP_LISTEN=0.0.0.0:5070``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(
        default=Path("data"),
        description="Folder of the embedded database (DATA_DIR/vpbx.db); created when missing.",
    )
    sip_listen: str = Field(default="0.0.0.0:5060", description="SIP over UDP and TCP, HOST:PORT.")
    http_listen: str = Field(
        default="127.0.0.1:8080", description="/metrics, /health and the REST API (/api/v1), HOST:PORT."
    )
    http_tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) to serve HTTPS on http_listen; needs http_tls_key."
    )
    http_tls_key: Path | None = Field(default=None, description="PEM private key of http_tls_cert.")
    realm: str = Field(
        default="vpbx",
        min_length=1,
        description="Digest realm (the SIP domain); passwords are stored as HA1s of this realm.",
    )
    md5_only: bool = Field(
        default=False, description="Offer only MD5 digest (old phones, SIPp); otherwise SHA-256 and MD5."
    )
    trusted: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="CIDRs never rate-limited or banned."
    )
    min_expires: int = Field(default=60, ge=1, description="Shortest registration accepted (423 below).")
    max_expires: int = Field(default=3600, ge=1, description="Longest registration granted.")
    default_expires: int = Field(default=3600, ge=1, description="Registration time when none is asked.")
    reload_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often the server looks for changes made by the CLI (accounts).",
    )
    qualify_interval_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How often each registered contact is probed with OPTIONS (0: never); calls "
        "skip contacts that stopped answering.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # calls (the B2BUA) and their media, anchored on the in-process engine
    sip_advertise: str | None = Field(
        default=None,
        description="Host put in Via/Contact of calls; default: the SIP listen host, or this "
        "machine's outgoing address when listening on 0.0.0.0.",
    )
    media_interface: str | None = Field(
        default=None,
        description="Media address, rtpengine syntax [NAME/]LOCAL[!ADVERTISED]; default: the "
        "advertised SIP host.",
    )
    port_min: int = Field(default=30000, ge=1, le=65535, description="First UDP port for RTP/RTCP.")
    port_max: int = Field(default=40000, ge=1, le=65535, description="Last UDP port for RTP/RTCP.")
    recording_dir: Path | None = Field(default=None, description="Where call recordings go (optional).")
    media_timeout_s: float = Field(
        default=60.0, gt=0, description="An answered call with no RTP either way for this long is hung up."
    )
    no_answer_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Ring time before a call is given up."
    )
    no_answer_status: Literal[480, 408] = Field(
        default=480, description="What the caller gets when nobody answers in time."
    )
    max_calls: int = Field(
        default=10_000, ge=1, description="Concurrent calls of this node; beyond: 503 with Retry-After."
    )
    # -- the SIP front door's failed-auth bans (vpbx.security.GuardConfig; issue 4 "Security").
    # Added at the end on purpose (other keys above are shared); see vpbx.security.guard_config.
    max_auth_failures: int = Field(
        default=5, ge=1, le=1000, description="Failed authentications from one source that get it banned."
    )
    auth_failure_window_s: float = Field(
        default=60.0, gt=0, description="Window in which max_auth_failures are counted (fail2ban findtime)."
    )
    ban_time_s: float = Field(
        default=300.0, gt=0, description="First ban of a source; each further ban lasts twice as long."
    )
    max_ban_time_s: float = Field(default=86400.0, gt=0, description="Longest ban (escalation stops here).")
    # -- SIP over TLS (RFC 3261 §26.2.1), besides UDP and TCP on sip_listen
    sip_tls_listen: str | None = Field(
        default=None,
        description="SIP over TLS, HOST:PORT (usually 5061); needs sip_tls_cert, sip_tls_key.",
    )
    sip_tls_cert: Path | None = Field(default=None, description="PEM certificate (chain) for SIP over TLS.")
    sip_tls_key: Path | None = Field(default=None, description="PEM private key of sip_tls_cert.")
    # -- overload shedding of new calls (vpbx.pbx.calls.admission; issue 4 "Benchmarks")
    max_calls_in_setup: int = Field(
        default=2000, ge=0, description="Calls ringing at once; beyond, new INVITEs get 503 (0: no limit)."
    )
    max_sip_lag_ms: float = Field(
        default=250.0,
        ge=0,
        description="How late SIP input may be read (socket queue + loop) before new INVITEs get 503 "
        "+ Retry-After for a second (0: off).",
    )

    @field_validator("trusted", mode="before")
    @classmethod
    def _split_trusted(cls, v: Any) -> Any:
        return _split_list(v, ",")

    @field_validator("trusted")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for text in v:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not a CIDR") from None
        return v

    @field_validator("sip_listen", "http_listen", "sip_tls_listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parse_host_port(v, any_port=True)
        return v.strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _tls_pair(self) -> ServeSettings:
        if (self.http_tls_cert is None) != (self.http_tls_key is None):
            raise ValueError("http_tls_cert and http_tls_key go together: set both or neither")
        if self.sip_tls_listen is not None and (self.sip_tls_cert is None or self.sip_tls_key is None):
            raise ValueError("sip_tls_listen needs sip_tls_cert and sip_tls_key")
        for path in (self.http_tls_cert, self.http_tls_key, self.sip_tls_cert, self.sip_tls_key):
            if path is not None and not path.is_file():
                raise ValueError(f"{path} is not a file")
        return self

    @model_validator(mode="after")
    def _expires_order(self) -> ServeSettings:
        if self.port_min > self.port_max:
            raise ValueError(f"port_min {self.port_min} is above port_max {self.port_max}")
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError(
                f"need min_expires ({self.min_expires}) <= default_expires ({self.default_expires}) "
                f"<= max_expires ({self.max_expires})"
            )
        if self.max_ban_time_s < self.ban_time_s:
            raise ValueError(
                f"max_ban_time_s ({self.max_ban_time_s}) is below ban_time_s ({self.ban_time_s})"
            )
        return self

    @property
    def sip_address(self) -> tuple[str, int]:
        return parse_host_port(self.sip_listen, any_port=True)

    @property
    def http_address(self) -> tuple[str, int]:
        return parse_host_port(self.http_listen, any_port=True)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "vpbx.db"


#: PBX fields a directory attribute (or template) can fill (``[directory.mapping]`` keys).
DIRECTORY_FIELDS = (
    "name",
    "position",
    "department",
    "phone",
    "mobile",
    "email",
    "extension",
    "manager",
    "photo",
)
#: Roles a directory group can grant (``[directory.roles]`` keys).
DIRECTORY_ROLES = ("employee", "team_lead", "marketer", "accountant", "admin")


class FieldMapping(BaseModel):
    """One ``[directory.mapping]`` entry: ``source`` is an attribute name (``"title"``) or a
    template of attributes (``"{givenName} {sn}"``); ``rule`` says when the PBX field follows
    it: ``always`` (every sync), ``create_only`` (when the user is created) or ``never``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)
    rule: Literal["always", "create_only", "never"] = "always"


class DirectorySettings(BaseModel):
    """``[directory]``: LDAP / Active Directory sync (issue 5). Disabled while ``url`` is empty.

    ``[directory.mapping]`` maps a PBX field to an attribute or a template, either as a string
    (``title = "title"``) or a table (``name = { source = "{givenName} {sn}", rule = "create_only" }``);
    fields not given follow the preset. ``[directory.roles]`` maps a role to one group DN or a list;
    nested groups count."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="ldap://HOST[:PORT] or ldaps://HOST[:PORT], one or a list (failover in order).",
    )
    bind_dn: str = Field(default="", description="DN of the service account the sync binds as.")
    bind_password: SecretStr = Field(
        default=SecretStr(""), description="Its password (prefer bind_password_env); never printed."
    )
    bind_password_env: str | None = Field(
        default=None, description="Name of an environment variable holding the bind password."
    )
    base_dn: str = Field(default="", description="Where users are searched (subtree).")
    root_filter: str = Field(default="", description="Extra LDAP filter ANDed to the user filter (scope).")
    user_filter: str | None = Field(default=None, description="LDAP filter of users; default: the preset's.")
    preset: Literal["ad", "openldap"] = "ad"
    ca_file: Path | None = Field(default=None, description="CA bundle (PEM) for ldaps:// and StartTLS.")
    start_tls: bool = Field(default=False, description="StartTLS on ldap:// URLs (RFC 4513 §3).")
    connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    timeout_s: float = Field(default=30.0, gt=0, le=3600, description="Per LDAP operation.")
    interval_s: float = Field(default=300.0, gt=0, description="Periodic (incremental) sync interval.")
    full_interval_s: float = Field(
        default=3600.0, gt=0, description="A full reconcile at least this often (detects deletions)."
    )
    grace_period_s: float = Field(
        default=7 * 86400.0, ge=0, description="Disabled users are removed after this long."
    )
    max_shrink_ratio: float = Field(
        default=0.2, ge=0, le=1, description="Abort a run that would disable more than this share."
    )
    extension_range: str = Field(default="1000-1999", description="LOW-HIGH, extensions to allocate.")
    page_size: int = Field(default=500, ge=1, le=10_000, description="Paged search size (RFC 2696).")
    mapping: dict[str, FieldMapping] = Field(default_factory=dict)
    roles: dict[str, list[str]] = Field(default_factory=dict)

    _realm: str = PrivateAttr(default="vpbx")

    @field_validator("url", mode="before")
    @classmethod
    def _split_url(cls, v: Any) -> Any:
        return _split_list(v, ",")

    @field_validator("url")
    @classmethod
    def _ldap_urls(cls, v: list[str]) -> list[str]:
        for text in v:
            if not text.lower().startswith(("ldap://", "ldaps://")):
                raise ValueError(f"{text!r} is not an ldap:// or ldaps:// URL")
        return v

    @field_validator("mapping", mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}
        for key, value in v.items():
            if key not in DIRECTORY_FIELDS:
                raise ValueError(f"unknown PBX field {key!r}; one of {', '.join(DIRECTORY_FIELDS)}")
            out[key] = {"source": value} if isinstance(value, str) else value
        return out

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}
        for key, value in v.items():
            if key not in DIRECTORY_ROLES:
                raise ValueError(f"unknown role {key!r}; one of {', '.join(DIRECTORY_ROLES)}")
            out[key] = [value] if isinstance(value, str) else value
        return out

    @field_validator("extension_range")
    @classmethod
    def _range(cls, v: str) -> str:
        low, sep, high = v.strip().partition("-")
        if not sep or not low.strip().isdigit() or not high.strip().isdigit():
            raise ValueError(f"{v!r} is not LOW-HIGH (e.g. 1000-1999)")
        if int(low) > int(high):
            raise ValueError(f"{v!r}: LOW is above HIGH")
        return f"{int(low)}-{int(high)}"

    @model_validator(mode="after")
    def _complete(self) -> DirectorySettings:
        if self.url and not self.base_dn:
            raise ValueError("base_dn is needed when url is set")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @property
    def extension_bounds(self) -> tuple[int, int]:
        low, _, high = self.extension_range.partition("-")
        return int(low), int(high)

    @property
    def realm(self) -> str:
        """The digest realm of generated SIP accounts: ``[serve] realm``."""
        return self._realm

    def with_realm(self, realm: str) -> DirectorySettings:
        self._realm = realm
        return self

    def password(self) -> str:
        """The bind password: from ``bind_password_env`` when set, else ``bind_password``.
        Raises SettingsError when the variable is missing."""
        if self.bind_password_env:
            value = os.environ.get(self.bind_password_env)
            if value is None:
                raise SettingsError(f"directory.bind_password_env: ${self.bind_password_env} is not set")
            return value
        return self.bind_password.get_secret_value()


class Settings(BaseSettings):
    """All of vpbx's configuration, one table per service."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    # no aliases here: an alias would drop the VPBX_ prefix from the environment variables
    media_node: MediaNodeSettings = MediaNodeSettings()
    serve: ServeSettings = ServeSettings()
    directory: DirectorySettings = DirectorySettings()

    @model_validator(mode="after")
    def _directory_realm(self) -> Settings:
        self.directory.with_realm(self.serve.realm)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # first wins: command line (init arguments), environment, the TOML file
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        data = _file_data.get()
        if data is not None:
            sources.append(_FileSource(settings_cls, data))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config_file`` (TOML; None: no file), the environment and ``overrides``
    (per table, e.g. ``media_node={"port_min": 42000}``: command-line flags that were given).
    Raises :class:`SettingsError` with a readable message."""
    data = None
    if config_file is not None:
        try:
            with config_file.open("rb") as f:
                data = _canonical(tomllib.load(f), str(config_file))
        except OSError as e:
            raise SettingsError(f"cannot read config file {config_file}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"config file {config_file} is not valid TOML: {e}") from None
    token = _file_data.set(data)
    try:
        return Settings(**overrides)
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise SettingsError(_explain(e)) from None
    finally:
        _file_data.reset(token)


def _explain(e: ValueError) -> str:
    errors = getattr(e, "errors", None)
    if not callable(errors):
        return str(e)
    lines = []
    for err in errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        lines.append(f"{where or 'settings'}: {err.get('msg', 'invalid')}")
    return "invalid settings: " + "; ".join(lines)
