"""The [serve] keys for calls: defaults, and bad values refused with a clear error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vpbx.settings import ServeSettings


def test_call_defaults() -> None:
    s = ServeSettings()
    assert (s.port_min, s.port_max, s.no_answer_timeout_s, s.no_answer_status) == (30000, 40000, 30.0, 480)
    assert s.media_interface is None and s.recording_dir is None and s.max_calls == 10_000


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"port_min": 40000, "port_max": 30000}, "port_min 40000 is above port_max 30000"),
        ({"no_answer_status": 500}, "no_answer_status"),
        ({"no_answer_timeout_s": 0}, "no_answer_timeout_s"),
        ({"max_calls": 0}, "max_calls"),
    ],
)
def test_bad_call_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServeSettings(**values)  # type: ignore[arg-type]
