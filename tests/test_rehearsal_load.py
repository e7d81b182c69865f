"""The rehearsal's client load: a steady rate of GETs and PUTs, and a read is stale when it does not answer the
last value acknowledged for that user."""

import asyncio
import io
import json
from datetime import UTC, date, datetime

from aiohttp import web

from app.birthdays import days_until_birthday, greeting
from rehearsal.load import Load, name_of


async def run_against(stale: bool, seconds: float = 1.5) -> list[dict[str, object]]:
    stored: dict[str, list[date]] = {}

    async def put(request: web.Request) -> web.Response:
        stored.setdefault(request.match_info["name"], []).append(
            date.fromisoformat((await request.json())["dateOfBirth"])
        )
        return web.Response(status=204)

    async def get(request: web.Request) -> web.Response:
        history = stored.get(request.match_info["name"])
        if not history:
            return web.json_response({"title": "not found"}, status=404)
        born = history[0] if stale else history[-1]
        today = datetime.now(UTC).date()
        return web.json_response({"message": greeting(request.match_info["name"], days_until_birthday(born, today))})

    app = web.Application()
    app.router.add_put("/hello/{name}", put)
    app.router.add_get("/hello/{name}", get)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    out = io.StringIO()
    load = Load(f"http://127.0.0.1:{port}", rate=40, users=5, out=out, prefix="Test")
    await load.run(limit=seconds)
    await runner.cleanup()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_consistent_service_shows_no_stale_read_and_every_fourth_request_of_a_user_writes() -> None:
    records = asyncio.run(run_against(stale=False))
    assert 40 <= len(records) <= 70
    assert all(record["status"] in (200, 204) for record in records)
    assert not any(record.get("stale") for record in records)
    by_user: dict[str, list[str]] = {}
    for record in records:
        by_user.setdefault(str(record["user"]), []).append(str(record["method"]))
    for methods in by_user.values():
        assert methods[0] == "PUT", "a user is written before it is read"
        assert methods[1:4] == ["GET", "GET", "PUT"][: len(methods[1:4])]


def test_a_read_of_an_older_value_is_stale() -> None:
    records = asyncio.run(run_against(stale=True))
    assert any(record.get("stale") for record in records)


def test_a_refused_connection_is_recorded_as_an_error_without_status() -> None:
    async def nowhere() -> list[dict[str, object]]:
        out = io.StringIO()
        await Load("http://127.0.0.1:9", rate=20, users=2, out=out, prefix="Test").run(limit=0.3)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    records = asyncio.run(nowhere())
    assert records
    assert all(record["status"] is None and "Error" in str(record["error"]) for record in records)


def test_user_names_are_letters_only() -> None:
    assert [name_of("Load", index) for index in (0, 25, 26, 700)] == ["Loada", "Loadz", "Loadba", "Loadbay"]
