"""The REST API over a real socket: the RBAC matrix (every role against every endpoint,
including someone else's recording and another department's calls), no leaks through
listing, filtering or error messages, CSV export, paging, login and bad tokens."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from api_fixture import CALLS, PEOPLE, PHOTOS, ApiServer, api_server

from vpbx.api import handlers
from vpbx.api.models import (
    AnalyticsOut,
    BillingOut,
    CallList,
    MeOut,
    RunList,
    SipCredentialsOut,
    UserList,
    UserOut,
)
from vpbx.store import users
from vpbx.store.schema import sip_accounts

ROLES = ("employee", "team_lead", "marketer", "accountant", "admin")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(tmp_path_factory.mktemp("api")) as server:
        yield server


def _ids(api: ApiServer, *keys: str) -> set[int]:
    return {api.call_ids[k] for k in keys}


# (method, path template, expected status per role in ROLES order)
MATRIX: list[tuple[str, str, tuple[int, ...]]] = [
    ("GET", "/api/v1/me", (200, 200, 200, 200, 200)),
    ("GET", "/api/v1/users", (200, 200, 200, 200, 200)),
    ("GET", "/api/v1/users/1001", (200, 200, 404, 404, 200)),  # employee: self; lead: same dept
    ("GET", "/api/v1/users/1003", (404, 200, 404, 404, 200)),  # a colleague in Sales
    ("GET", "/api/v1/users/2001", (404, 404, 404, 404, 200)),  # another department
    ("GET", "/api/v1/users/7777", (404, 404, 404, 404, 404)),  # nobody
    ("GET", "/api/v1/users/1001/sip-credentials", (200, 404, 404, 404, 200)),
    ("GET", "/api/v1/users/1003/sip-credentials", (404, 404, 404, 404, 200)),
    ("GET", "/api/v1/users/1001/photo", (200, 200, 404, 404, 200)),  # same visibility as the user
    ("GET", "/api/v1/users/2001/photo", (404, 404, 404, 404, 200)),  # another department
    ("GET", "/api/v1/users/1003/photo", (404, 404, 404, 404, 404)),  # visible to some, no photo
    ("GET", "/api/v1/calls", (200, 200, 200, 200, 200)),
    ("GET", "/api/v1/calls/{sales_internal}/recording", (200, 200, 404, 404, 200)),
    ("GET", "/api/v1/calls/{cross_dept}/recording", (200, 200, 404, 404, 200)),
    ("GET", "/api/v1/calls/{support_out}/recording", (404, 404, 404, 404, 200)),  # other dept
    ("GET", "/api/v1/calls/{sales_missed}/recording", (404, 404, 404, 404, 404)),  # none recorded
    ("GET", "/api/v1/analytics/calls", (403, 200, 200, 403, 200)),
    ("GET", "/api/v1/billing/summary", (403, 403, 403, 200, 200)),
    ("POST", "/api/v1/directory/sync?dry_run=true", (403, 403, 403, 403, 200)),
    ("GET", "/api/v1/directory/runs", (403, 403, 403, 403, 200)),
]


def test_rbac_matrix(api: ApiServer) -> None:
    got: dict[tuple[str, str], tuple[int, ...]] = {}
    for method, template, _ in MATRIX:
        path = template.format(**api.call_ids)
        got[(method, template)] = tuple(
            api.request(method, path, token=api.tokens[role])[0] for role in ROLES
        )
    assert got == {(m, t): want for m, t, want in MATRIX}


def test_call_lists_are_scoped(api: ApiServer) -> None:
    everything = set(api.call_ids.values())
    want = {
        "employee": _ids(api, "sales_internal", "cross_dept"),
        "team_lead": _ids(api, "sales_internal", "sales_missed", "cross_dept"),
        "marketer": everything,
        "accountant": _ids(api, "finance_out"),
        "admin": everything,
        "service-admin": everything,
        "service-employee": set(),  # no self: reaches nothing
    }
    for who, ids in want.items():
        status, doc = api.get("/api/v1/calls", who)
        assert status == 200, (who, doc)
        CallList.model_validate(doc)
        assert {c["id"] for c in doc["items"]} == ids, who
        assert doc["total"] == len(ids), who
        # filters narrow within the scope, never widen it
        status, doc = api.get("/api/v1/calls?direction=outbound", who)
        outbound = {c["id"] for c in doc["items"]}
        assert outbound <= ids and all(c["direction"] == "outbound" for c in doc["items"])


def test_user_lists_are_scoped_and_fields_filtered(api: ApiServer) -> None:
    want = {
        "employee": {"1001"},
        "team_lead": {"1001", "1002", "1003"},
        "marketer": {"3001"},
        "accountant": {"4001"},
        "admin": set(PEOPLE),
    }
    for role, exts in want.items():
        status, doc = api.get("/api/v1/users", role)
        assert status == 200
        UserList.model_validate(doc)
        assert {u["extension"] for u in doc["items"]} == exts, role
        assert doc["total"] == len(exts)
    _, doc = api.get("/api/v1/users/1003", "team_lead")
    assert doc["email"] == "1003@corp.test" and "roles" not in doc  # contact yes, roles no
    _, doc = api.get("/api/v1/users/1001", "employee")
    assert doc["roles"] == ["employee"] and doc["mobile"] == "+79001001" and doc["name"] == "Анна Смирнова"
    _, doc = api.get("/api/v1/users/2001", "admin")
    assert doc["roles"] == ["employee"] and doc["sip_username"] == "2001"
    UserOut.model_validate(doc)


def test_photo_bytes_and_manager(api: ApiServer) -> None:
    for who in ("employee", "team_lead", "admin", "service-admin"):
        status, headers, body = api.request("GET", "/api/v1/users/1001/photo", token=api.tokens[who])
        assert (status, headers["Content-Type"], body) == (200, "image/jpeg", PHOTOS["1001"]), who
        assert headers["ETag"] == f'"{hashlib.sha256(PHOTOS["1001"]).hexdigest()}"'
    for who in ("marketer", "accountant", "service-employee"):
        status, headers, body = api.request("GET", "/api/v1/users/1001/photo", token=api.tokens[who])
        assert status == 404 and headers["Content-Type"].startswith("application/json"), who
        assert json.loads(body)["error"]["message"] == "user not found"  # not "no photo": nothing leaks
    _, doc = api.get("/api/v1/users/1003/photo", "team_lead")
    assert doc["error"]["message"] == "photo of this user not found"
    _, doc = api.get("/api/v1/users/1001", "employee")
    assert doc["manager"] == {"extension": "1002", "name": "Boris Lead"}
    _, doc = api.get("/api/v1/users?department=Sales", "team_lead")
    assert {u["extension"]: u["manager"] for u in doc["items"]} == {
        "1001": {"extension": "1002", "name": "Boris Lead"},
        "1002": None,
        "1003": {"extension": "1002", "name": "Boris Lead"},
    }
    _, doc = api.get("/api/v1/users/3001", "admin")  # the manager's DN is no vpbx user
    assert doc["manager"] is None
    UserOut.model_validate(doc)


def test_no_leak_through_filters(api: ApiServer) -> None:
    for role in ("employee", "team_lead", "marketer", "accountant"):
        _, doc = api.get("/api/v1/users?department=Support", role)
        assert doc == {"items": [], "total": 0, "limit": 100, "offset": 0}, role
    # searching by e-mail would reveal it to someone who cannot see it
    _, doc = api.get("/api/v1/users?q=1003@corp", "employee")
    assert doc["total"] == 0
    _, doc = api.get("/api/v1/users?q=1003@corp", "team_lead")
    assert [u["extension"] for u in doc["items"]] == ["1003"]
    _, doc = api.get("/api/v1/users?q=%D0%90%D0%BD%D0%BD", "admin")  # "Анн"
    assert [u["extension"] for u in doc["items"]] == ["1001"]
    _, doc = api.get("/api/v1/users?q=Dina", "team_lead")
    assert doc["total"] == 0


def test_refusals_say_nothing_about_the_target(api: ApiServer) -> None:
    missing = api.get("/api/v1/users/7777", "employee")
    other = api.get("/api/v1/users/2001", "employee")
    assert missing == other == (404, {"error": {"code": "not_found", "message": "user not found"}})
    rec_other = api.get(f"/api/v1/calls/{api.call_ids['support_out']}/recording", "employee")
    rec_missing = api.get("/api/v1/calls/999999/recording", "employee")
    assert rec_other == rec_missing
    status, doc = api.get("/api/v1/billing/summary", "team_lead")
    assert status == 403
    assert doc == {"error": {"code": "forbidden", "message": "permission billing:read is required"}}
    status, doc = api.get(f"/api/v1/calls/{api.call_ids['support_out']}/recording", "service-accountant")
    assert status == 403 and "recordings:read" in doc["error"]["message"]


def test_sip_credentials(api: ApiServer) -> None:
    status, doc = api.get("/api/v1/users/1001/sip-credentials", "employee")
    assert status == 200
    SipCredentialsOut.model_validate(doc)
    assert doc == {
        "extension": "1001",
        "username": "1001",
        "password": None,  # chosen by a person: not kept
        "realm": "pbx.test",
        "server": "pbx.test:5060",
        "enabled": True,
    }


def test_recording_is_the_wav(api: ApiServer) -> None:
    key = "cross_dept"
    status, headers, body = api.request(
        "GET", f"/api/v1/calls/{api.call_ids[key]}/recording", token=api.tokens["employee"]
    )
    assert status == 200 and headers["Content-Type"] == "audio/wav"
    assert body == (api.recordings / str(CALLS[key][5])).read_bytes()


def test_bad_tokens_are_401(api: ApiServer) -> None:
    for token in (None, "expired", "revoked", "vpbx_nonsense", "not-even-prefixed"):
        status, headers, raw = api.request("GET", "/api/v1/me", token=api.tokens.get(token or "", token))
        assert status == 401, token
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert json.loads(raw)["error"]["code"] == "unauthorized"
    status, _, raw = api.request("GET", "/api/v1/me", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert status == 401 and b"Bearer" in raw


def test_bad_parameters_are_400_naming_the_parameter(api: ApiServer) -> None:
    cases = {
        "/api/v1/calls?limit=0": "'limit'",
        "/api/v1/calls?limit=abc": "'limit'",
        "/api/v1/calls?offset=-1": "'offset'",
        "/api/v1/calls?from=yesterday": "'from'",
        "/api/v1/calls?direction=sideways": "'direction'",
        "/api/v1/calls?result=maybe": "'result'",
        "/api/v1/calls?format=xml": "'format'",
        "/api/v1/calls?from=2026-09-22&to=2026-09-21": "'to'",
        "/api/v1/users?enabled=perhaps": "'enabled'",
        "/api/v1/calls/abc/recording": "'id'",
        "/api/v1/calls?department=Support": "'department'",  # not a filter of /calls: said so
        "/api/v1/me?x=1": "'x'",
    }
    for path, name in cases.items():
        status, doc = api.get(path, "admin")
        assert status == 400, path
        assert doc["error"]["code"] == "bad_request" and name in doc["error"]["message"], path


def test_paging(api: ApiServer) -> None:
    seen: list[int] = []
    for offset in range(0, 10, 2):
        status, doc = api.get(f"/api/v1/calls?limit=2&offset={offset}", "admin")
        assert status == 200 and doc["total"] == len(CALLS)
        seen += [c["id"] for c in doc["items"]]
    assert len(seen) == len(set(seen)) == len(CALLS)
    starts = [c["started_at"] for c in api.get("/api/v1/calls", "admin")[1]["items"]]
    assert starts == sorted(starts, reverse=True)
    _, doc = api.get("/api/v1/users?limit=3&offset=3", "admin")
    assert [u["extension"] for u in doc["items"]] == sorted(PEOPLE)[3:6] and doc["total"] == len(PEOPLE)


def test_csv_export_in_small_pages(api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "CSV_PAGE", 2)  # the export walks several pages
    _, _, raw = api.request("GET", "/api/v1/calls?format=csv", token=api.tokens["admin"])
    ids = [int(r["id"]) for r in csv.DictReader(io.StringIO(raw.decode()))]
    assert sorted(ids) == sorted(api.call_ids.values())
    _, _, raw = api.request("GET", "/api/v1/calls?format=csv&offset=1&limit=3", token=api.tokens["admin"])
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(raw.decode()))] == ids[1:4]


def test_csv_export(api: ApiServer) -> None:
    status, headers, raw = api.request(
        "GET", "/api/v1/calls", token=api.tokens["team_lead"], headers={"Accept": "text/csv"}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert {int(r["id"]) for r in rows} == _ids(api, "sales_internal", "sales_missed", "cross_dept")
    missed = next(r for r in rows if int(r["id"]) == api.call_ids["sales_missed"])
    assert missed["from_number"] == "+79161234567" and missed["result"] == "no-answer"
    status, _, raw = api.request("GET", "/api/v1/calls?format=csv&limit=2", token=api.tokens["admin"])
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert status == 200 and len(rows) == 2
    _, _, raw = api.request("GET", "/api/v1/calls?format=csv&offset=2", token=api.tokens["admin"])
    assert len(list(csv.DictReader(io.StringIO(raw.decode())))) == len(CALLS) - 2
    _, _, raw = api.request("GET", "/api/v1/calls?format=csv&direction=inbound", token=api.tokens["admin"])
    cells = {r["from_number"] for r in csv.DictReader(io.StringIO(raw.decode()))}
    assert cells == {"+79161234567", '\'=HYPERLINK("http://x")'}  # a formula is defused


def test_analytics_and_billing(api: ApiServer) -> None:
    status, doc = api.get("/api/v1/analytics/calls", "team_lead")
    assert status == 200
    AnalyticsOut.model_validate(doc)
    assert doc["scope"] == "department" and doc["total"]["calls"] == 3
    assert doc["by_result"]["answered"]["calls"] == 2 and doc["by_result"]["no-answer"]["calls"] == 1
    assert sum(d["calls"] for d in doc["by_day"]) == 3 and doc["by_day"][0]["day"] == "2026-09-21"
    _, doc = api.get("/api/v1/analytics/calls", "marketer")
    assert doc["scope"] == "all" and doc["total"]["calls"] == len(CALLS)
    status, doc = api.get("/api/v1/billing/summary", "accountant")
    BillingOut.model_validate(doc)
    billsecs = [c[4] for c in CALLS.values()]
    assert doc["billsec"] == sum(billsecs) and doc["calls"] == len(CALLS)
    assert doc["billable_minutes"] == 2 + 1 + 2 + 1  # 61 s, 30 s, 120 s, 5 s rounded up
    _, doc = api.get("/api/v1/billing/summary?direction=outbound", "admin")
    assert doc["billsec"] == 30.0


def test_directory_endpoints(api: ApiServer) -> None:
    status, _, raw = api.request("POST", "/api/v1/directory/sync?dry_run=true", token=api.tokens["admin"])
    assert status == 200 and json.loads(raw)["dry_run"] is True and api.sync_calls[-1] is True
    status, doc = api.get("/api/v1/directory/runs", "admin")
    RunList.model_validate(doc)


def test_directory_sync_not_configured(tmp_path: Path) -> None:
    with api_server(tmp_path, with_sync=False) as api:
        status, _, raw = api.request("POST", "/api/v1/directory/sync", token=api.tokens["admin"])
        assert status == 503 and "not configured" in json.loads(raw)["error"]["message"]


def test_me(api: ApiServer) -> None:
    _, doc = api.get("/api/v1/me", "team_lead")
    MeOut.model_validate(doc)
    assert doc["kind"] == "session" and doc["roles"] == ["team_lead"]
    assert "calls:read:department" in doc["permissions"] and doc["user"]["extension"] == "1002"
    _, doc = api.get("/api/v1/me", "service-admin")
    assert doc["kind"] == "service" and doc["user"] is None


def test_login_logout_and_rate_limit(tmp_path: Path) -> None:
    with api_server(tmp_path) as api:
        status, _, raw = api.request(
            "POST", "/api/v1/auth/login", body={"login": "1003", "password": "carl-pw"}
        )
        assert status == 200, raw
        token = json.loads(raw)["token"]
        status, _, raw = api.request("GET", "/api/v1/me", token=token)
        assert status == 200 and json.loads(raw)["user"]["extension"] == "1003"
        bad_user = api.request("POST", "/api/v1/auth/login", body={"login": "5555", "password": "x"})
        bad_pw = api.request("POST", "/api/v1/auth/login", body={"login": "1003", "password": "x"})
        assert bad_user[0] == bad_pw[0] == 401 and bad_user[2] == bad_pw[2]
        assert api.request("POST", "/api/v1/auth/login", body={"login": "1003"})[0] == 400
        assert api.request("POST", "/api/v1/auth/logout", token=token)[0] == 200
        assert api.request("GET", "/api/v1/me", token=token)[0] == 401
        # service tokens do not log out
        assert api.request("POST", "/api/v1/auth/logout", token=api.tokens["service-admin"])[0] == 400
        # 2 failures so far; 3 more ban the address, even for the right password
        for _ in range(3):
            assert (
                api.request("POST", "/api/v1/auth/login", body={"login": "1003", "password": "no"})[0] == 401
            )
        status, headers, _ = api.request(
            "POST", "/api/v1/auth/login", body={"login": "1003", "password": "carl-pw"}
        )
        assert status == 429 and int(headers["Retry-After"]) > 0


def test_openapi_matches_the_routes(api: ApiServer) -> None:
    status, doc = api.get("/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    # the routes the running server really has, read from its routers
    assert api.http is not None
    served: set[tuple[str, str]] = set()
    for resource in api.http.app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            info = resource.get_info()
            for route in info["app"].router.routes():
                assert route.resource is not None
                served.add((route.method, route.resource.canonical))  # prefixed when mounted
    assert served == documented
    assert {p for _, p in served} >= {"/api/v1/users", "/api/v1/openapi.json"}
    # the matrix covers every protected endpoint
    templates = {(m, re.sub(r"\{\w+\}", "{id}", t.split("?")[0])) for m, t, _ in MATRIX}
    matrix = {(m, re.sub(r"/users/\d+", "/users/{extension}", t)) for m, t in templates}
    protected = {(m.upper(), p) for p, ops in doc["paths"].items() for m, op in ops.items() if op["security"]}
    assert protected - matrix == {("POST", "/api/v1/auth/logout")}  # tested in the login test
    for ops in doc["paths"].values():
        for op in ops.values():
            assert "401" in op["responses"] or op["security"] == []
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_directory_login_seam(tmp_path: Path) -> None:
    with api_server(tmp_path) as api:

        async def mark_directory_user() -> None:
            async with api.db.begin() as conn:
                assert await users.update_user(conn, "2001", now=0.0, directory_id="guid-2001")

        api.run(mark_directory_user())
        down = False

        async def ldap(login: str, password: str) -> str | None:
            if down:
                raise OSError("ldap://dc1: connection refused")
            return "guid-2001" if (login, password) == ("dina", "ldap-pw") else None

        api.ctx.directory_login = ldap
        login = "/api/v1/auth/login"
        status, _, raw = api.request("POST", login, body={"login": "dina", "password": "ldap-pw"})
        assert status == 200 and json.loads(raw)["extension"] == "2001"
        # a directory user's SIP password is not a login password
        assert api.request("POST", login, body={"login": "2001", "password": "dina-pw"})[0] == 401
        down = True
        assert api.request("POST", login, body={"login": "1003", "password": "carl-pw"})[0] == 200
        status, _, raw = api.request("POST", login, body={"login": "dina", "password": "ldap-pw"})
        assert status == 503 and b"directory cannot be reached" in raw and b"dc1" not in raw


def test_role_changes_and_disabling_apply_to_live_sessions(tmp_path: Path) -> None:
    with api_server(tmp_path) as api:
        status, _, raw = api.request(
            "POST", "/api/v1/auth/login", body={"login": "1003", "password": "carl-pw"}
        )
        token = json.loads(raw)["token"]
        assert api.get("/api/v1/billing/summary", token)[0] == 403

        async def change(work: str) -> None:
            async with api.db.begin() as conn:
                if work == "grant":
                    await users.grant_role(conn, "1003", "accountant")
                elif work == "revoke":
                    await users.revoke_role(conn, "1003", "accountant")
                else:
                    await users.set_user_enabled(conn, "1003", False, now=0.0)

        api.run(change("grant"))
        assert api.get("/api/v1/billing/summary", token)[0] == 200
        api.run(change("revoke"))
        assert api.get("/api/v1/billing/summary", token)[0] == 403
        api.run(change("disable"))
        status, doc = api.get("/api/v1/me", token)
        assert status == 401 and "disabled" in doc["error"]["message"]
        # and a disabled local user cannot log in again
        bad = api.request("POST", "/api/v1/auth/login", body={"login": "1003", "password": "carl-pw"})
        assert bad[0] == 401


def test_kept_password_and_a_second_sync_while_one_runs(tmp_path: Path) -> None:
    with api_server(tmp_path) as api:

        async def keep_secret() -> None:
            async with api.db.begin() as conn:
                await conn.execute(
                    sa.update(sip_accounts)
                    .where(sip_accounts.c.username == "2001")
                    .values(secret="Gen3rated!")
                )

        api.run(keep_secret())
        for who in ("admin", "service-admin"):
            status, doc = api.get("/api/v1/users/2001/sip-credentials", who)
            assert status == 200 and doc["password"] == "Gen3rated!", who
        assert api.get("/api/v1/users/2001/sip-credentials", "team_lead")[0] == 404

        release = asyncio.Event()

        async def slow_sync(dry_run: bool) -> dict[str, Any]:
            await asyncio.wait_for(release.wait(), 10)
            return {"status": "ok", "dry_run": dry_run}

        api.ctx.sync = slow_sync
        first: list[int] = []
        runner = threading.Thread(
            target=lambda: first.append(
                api.request("POST", "/api/v1/directory/sync", token=api.tokens["admin"])[0]
            )
        )
        runner.start()
        try:
            deadline = time.monotonic() + 10
            while not api.ctx.sync_lock.locked() and time.monotonic() < deadline:
                time.sleep(0.01)
            status, _, raw = api.request("POST", "/api/v1/directory/sync", token=api.tokens["admin"])
            assert status == 409 and b"already running" in raw
        finally:
            api.loop.call_soon_threadsafe(release.set)
            runner.join(15)
        assert first == [200]
