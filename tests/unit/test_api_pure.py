"""The API's pure parts: query parameters (400 naming the parameter), the CSV cell guard,
the OpenAPI document from the route table, and the HTTPS settings pair."""

from __future__ import annotations

from pathlib import Path

import pytest
from openapi_spec_validator import validate

from vpbx.api import openapi_document
from vpbx.api.errors import ERROR_STATUS, ApiError
from vpbx.api.handlers import ROUTES, _csv_cell
from vpbx.api.params import boolean, choice, paging, timestamp
from vpbx.settings import SettingsError, load_settings


def test_params() -> None:
    assert timestamp({"from": "2026-09-21"}, "from") == 1_789_948_800.0
    assert timestamp({"from": "2026-09-21T03:00:00+03:00"}, "from") == 1_789_948_800.0
    assert timestamp({"from": "1789948800.5"}, "from") == 1_789_948_800.5
    assert timestamp({}, "from") is None
    page = paging({"limit": "5", "offset": "10"})
    assert (page.limit, page.offset) == (5, 10)
    assert boolean({"x": "TRUE"}, "x") is True and boolean({"x": "0"}, "x") is False
    assert choice({"d": "inbound"}, "d", {"inbound"}) == "inbound"
    for call in (
        lambda: timestamp({"from": "nan"}, "from"),
        lambda: timestamp({"from": "2026-13-01"}, "from"),
        lambda: paging({"limit": "1001"}),
        lambda: paging({"offset": "x"}),
        lambda: boolean({"x": "maybe"}, "x"),
        lambda: choice({"d": "up"}, "d", {"inbound"}),
    ):
        with pytest.raises(ApiError) as info:
            call()
        assert info.value.status == 400 and "parameter '" in info.value.message


def test_error_codes_are_one_table() -> None:
    assert ApiError("forbidden", "x").status == 403
    with pytest.raises(ValueError, match="unknown API error code"):
        ApiError("teapot", "x")
    assert set(ERROR_STATUS.values()) >= {400, 401, 403, 404, 503}


def test_csv_cells_defuse_formulas_but_keep_numbers() -> None:
    assert _csv_cell("+74951234567") == "+74951234567"
    assert _csv_cell("-5") == "-5"
    assert _csv_cell("=1+2") == "'=1+2"
    assert _csv_cell("+SUM(A1)") == "'+SUM(A1)"
    assert _csv_cell("@cmd") == "'@cmd"
    assert _csv_cell(None) == "" and _csv_cell(True) == "true" and _csv_cell(61.0) == "61.0"


def test_openapi_document_covers_every_route() -> None:
    doc = openapi_document(ROUTES, version="1")
    ops = {(m.upper(), p) for p, o in doc["paths"].items() for m in o}
    assert ops == {(r.method, "/api/v1" + r.path) for r in ROUTES}
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == [] and login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    calls = doc["paths"]["/api/v1/calls"]["get"]
    assert calls["x-vpbx-permission"] == "calls:read:{self,department,all}"
    assert set(calls["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    for ref in ("UserOut", "CallOut", "ErrorOut", "LoginIn"):
        assert ref in doc["components"]["schemas"]
    validate(doc)  # a valid OpenAPI 3.1 document (its JSON schemas included)


def test_https_keys_go_together(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match="set both or neither"):
        load_settings(None, serve={"http_tls_cert": cert})
    with pytest.raises(SettingsError, match="is not a file"):
        load_settings(None, serve={"http_tls_cert": cert, "http_tls_key": tmp_path / "missing.pem"})
    serve = load_settings(None, serve={"http_tls_cert": cert, "http_tls_key": cert}).serve
    assert serve.http_tls_key == cert
