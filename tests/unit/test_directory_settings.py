"""[directory] settings: keys, environment overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpbx.directory import DirectoryStats
from vpbx.metrics import Metrics
from vpbx.settings import SettingsError, load_settings


def test_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "vpbx.toml"
    cfg.write_text(
        """
[serve]
realm = "pbx.example.com"
[directory]
url = ["ldaps://dc1.corp:636", "ldaps://dc2.corp:636"]
base_dn = "OU=Staff,DC=corp"
bind_dn = "CN=svc,DC=corp"
bind_password_env = "VPBX_TEST_LDAP_PW"
extension_range = "2000 - 2999"
[directory.mapping]
name = { source = "{givenName} {sn}", rule = "create_only" }
department = "physicalDeliveryOfficeName"
[directory.roles]
admin = "CN=PBX Admins,DC=corp"
team_lead = ["CN=Leads A,DC=corp", "CN=Leads B,DC=corp"]
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("VPBX_DIRECTORY__MAX_SHRINK_RATIO", "0.05")
    monkeypatch.setenv("VPBX_TEST_LDAP_PW", "s3cret")
    d = load_settings(cfg).directory
    assert d.enabled and d.url == ["ldaps://dc1.corp:636", "ldaps://dc2.corp:636"]
    assert d.max_shrink_ratio == 0.05 and d.max_shrink_ratio != 0.2
    assert d.extension_bounds == (2000, 2999)
    assert d.mapping["name"].rule == "create_only" and d.mapping["department"].rule == "always"
    assert d.roles == {
        "admin": ["CN=PBX Admins,DC=corp"],
        "team_lead": ["CN=Leads A,DC=corp", "CN=Leads B,DC=corp"],
    }
    assert d.password() == "s3cret"
    assert d.realm == "pbx.example.com"  # generated SIP accounts use the [serve] realm
    monkeypatch.delenv("VPBX_TEST_LDAP_PW")
    with pytest.raises(SettingsError, match="VPBX_TEST_LDAP_PW"):
        d.password()


def test_disabled_by_default_and_password_never_printed() -> None:
    assert not load_settings(None).directory.enabled
    d = load_settings(
        None, directory={"url": "ldap://dc", "base_dn": "dc=x", "bind_password": "hunter2"}
    ).directory
    assert d.password() == "hunter2"
    assert "hunter2" not in repr(d) and "hunter2" not in str(d.model_dump())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "http://dc1"}, "not an ldap"),
        ({"url": "ldap://dc1"}, "base_dn"),
        ({"extension_range": "2999-2000"}, "LOW is above HIGH"),
        ({"extension_range": "abc"}, "LOW-HIGH"),
        ({"mapping": {"shoe_size": "x"}}, "unknown PBX field"),
        ({"roles": {"superuser": "cn=x"}}, "unknown role"),
        ({"mapping": {"name": {"source": "cn", "rule": "sometimes"}}}, "rule"),
        ({"max_shrink_ratio": 2}, "max_shrink_ratio"),
    ],
)
def test_bad_values(values: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, directory=values)


def test_metrics_exposition() -> None:
    stats = DirectoryStats(last_success=1700000000.0, last_duration_s=1.5, entries_seen=1200)
    stats.changes["created"] = 1181
    stats.failures["bind"] = 2

    class Figures:
        def directory_stats(self) -> DirectoryStats:
            return stats

    metrics = Metrics()
    metrics.add_directory(Figures())
    text = metrics.exposition().decode()
    assert "vpbx_directory_last_success_timestamp_seconds 1.7e+09" in text
    assert "vpbx_directory_sync_duration_seconds 1.5" in text
    assert "vpbx_directory_entries_seen 1200.0" in text
    assert 'vpbx_directory_changes_total{kind="created"} 1181.0' in text
    assert 'vpbx_directory_sync_failures_total{reason="bind"} 2.0' in text
