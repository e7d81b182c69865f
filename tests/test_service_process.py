"""The service as the container runs it (`python -m app`): start-up, signals, outages and load, end to end."""

import asyncio
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx2
import pytest

from app.birthdays import days_until_birthday, greeting
from app.health import READINESS_PATH
from dev.emulator import FirestoreEmulator
from dev.network import free_port, wait_until
from dev.service import REPOSITORY, ServiceProcess
from tests.conftest import TEST_PROJECT
from tests.support.outage import SwitchableStorage, assert_every_storage_call_is_503_within
from tests.support.slow_proxy import slow_proxy

pytestmark = pytest.mark.slow


def service_env(firestore_host: str, collection: str, **extra: str) -> dict[str, str]:
    return {
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "BIRTHDAY_PROJECT_ID": TEST_PROJECT,
        "BIRTHDAY_COLLECTION": collection,
        **extra,
    }


def run_app_until_it_exits(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m app` with nothing in its environment but `env`, for a start-up that is expected to fail."""
    return subprocess.run(
        [sys.executable, "-m", "app"],
        env={"PATH": "", **env},
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value", "variable"),
    [
        ("PORT", "eighty", "PORT"),
        ("BIRTHDAY_TIMEZONE", "Mars/Olympus_Mons", "BIRTHDAY_TIMEZONE"),
        ("BIRTHDAY_REQUEST_DEADLINE_SECONDS", "0", "BIRTHDAY_REQUEST_DEADLINE_SECONDS"),
        ("BIRTHDAY_STORE", "postgres", "BIRTHDAY_STORE"),
    ],
)
def test_invalid_settings_stop_start_up_with_one_line_naming_the_variable(name: str, value: str, variable: str) -> None:
    result = run_app_until_it_exits({name: value})
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"invalid setting {variable}: ")


def test_firestore_without_a_project_refuses_to_start() -> None:
    result = run_app_until_it_exits({"PORT": str(free_port()), "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"})
    assert result.returncode != 0
    assert "set BIRTHDAY_PROJECT_ID" in result.stdout


def test_firestore_without_credentials_stops_start_up_at_once(tmp_path: Path) -> None:
    # No emulator, so the real Firestore, with credentials that do not exist: a configuration that can never work.
    result = run_app_until_it_exits(
        {
            "PORT": str(free_port()),
            "BIRTHDAY_PROJECT_ID": "demo-no-credentials",
            "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json"),
        }
    )
    assert result.returncode == 3
    assert "missing.json" in result.stdout
    assert "Application startup failed" in result.stdout


def test_sigterm_lets_requests_in_flight_finish(emulator: FirestoreEmulator, tmp_path: Path) -> None:
    with slow_proxy(emulator.host, delay=0.4) as slow_firestore:
        process = ServiceProcess(
            service_env(slow_firestore, f"sigterm-{time.time_ns()}", BIRTHDAY_REQUEST_DEADLINE_SECONDS="30"),
            tmp_path / "service.log",
        )
        process.start()
        try:
            assert httpx2.put(f"{process.base_url}/hello/Seed", json={"dateOfBirth": "1990-12-04"}).status_code == 204

            async def in_flight() -> list[int]:
                async with httpx2.AsyncClient(base_url=process.base_url, timeout=30) as client:
                    puts = [
                        client.put(f"/hello/User{chr(65 + n)}", json={"dateOfBirth": "1990-01-01"}) for n in range(10)
                    ]
                    gets = [client.get("/hello/Seed") for _ in range(10)]
                    requests = asyncio.gather(*puts, *gets)
                    await asyncio.sleep(0.3)
                    process.process.terminate()
                    return [response.status_code for response in await requests]

            started = time.monotonic()
            statuses = asyncio.run(in_flight())
            assert statuses == [204] * 10 + [200] * 10
            assert process.process.wait(timeout=10) == 0
            assert time.monotonic() - started < 10
        finally:
            process.kill()
    assert "Application shutdown complete" in process.log()


OUTAGE_SECONDS = 40
RECOVERY_BOUND_SECONDS = 3


def test_after_a_40_s_firestore_outage_the_first_2xx_comes_within_3_s(
    emulator: FirestoreEmulator, tmp_path: Path
) -> None:
    """Firestore goes away for 40 s while clients keep asking, then answers again at the same address. With gRPC's
    default reconnect backoff (1 s growing by 1.6 up to 120 s) the channel would by then try again only every
    15 to 30 s, and the service would go on answering 503 for as long after Firestore is back."""
    with SwitchableStorage(emulator.host) as firestore:
        process = ServiceProcess(
            service_env(firestore.address, f"outage-{time.time_ns()}", BIRTHDAY_REQUEST_DEADLINE_SECONDS="1"),
            tmp_path / "service.log",
        )
        try:
            process.start()
            with httpx2.Client(base_url=process.base_url, timeout=10) as client:
                wait_until(lambda: client.get(READINESS_PATH).status_code == 200, timeout=30, what="readiness")
                assert client.put("/hello/Ada", json={"dateOfBirth": "1815-12-10"}).status_code == 204
                firestore.switch_off()
                went_away = time.monotonic()
                assert_every_storage_call_is_503_within(client, 2.5)
                while time.monotonic() < went_away + OUTAGE_SECONDS:
                    # Clients and Cloud Run's probes keep asking throughout; each answer is a prompt 503.
                    assert client.get("/hello/Ada").status_code == 503
                    time.sleep(1)
                late_attempts = [at for at in firestore.refused_at if at > went_away + OUTAGE_SECONDS - 10]
                assert len(late_attempts) >= 5, f"the channel gave up trying: {len(late_attempts)} tries in 10 s"
                firestore.switch_on()
                back = time.monotonic()
                while (status := client.get("/hello/Ada").status_code) != 200:
                    assert status == 503
                    assert time.monotonic() - back < RECOVERY_BOUND_SECONDS, "Firestore is back, the service is not"
                    time.sleep(0.05)
                assert time.monotonic() - back < RECOVERY_BOUND_SECONDS
                assert client.put("/hello/Ada", json={"dateOfBirth": "1815-12-10"}).status_code == 204
                assert client.get(READINESS_PATH).status_code == 200
            assert process.process.poll() is None, "the same process served before, during and after the outage"
        finally:
            process.kill()


def test_200_concurrent_puts_and_gets_keep_every_user_consistent(service: ServiceProcess) -> None:
    users = ["Alice", "Bob", "Carol", "Dave"]
    written = {user: {f"19{n:02d}-0{1 + n % 9}-1{n % 10}" for n in range(25)} for user in users}

    async def hammer() -> list[httpx2.Response]:
        limits = httpx2.Limits(max_connections=200)
        async with httpx2.AsyncClient(base_url=service.base_url, timeout=30, limits=limits) as client:
            requests = [
                client.put(f"/hello/{user}", json={"dateOfBirth": day}) for user in users for day in written[user]
            ]
            requests += [client.get(f"/hello/{user}") for user in users for _ in range(25)]
            return list(await asyncio.gather(*requests))

    responses = asyncio.run(hammer())
    assert len(responses) == 200
    assert not [response for response in responses if response.status_code >= 500]
    assert {response.status_code for response in responses} <= {200, 204, 404}
    from google.cloud import firestore

    with pytest.MonkeyPatch.context() as env:
        env.setenv("FIRESTORE_EMULATOR_HOST", service_env_host(service))
        direct = firestore.Client(project=TEST_PROJECT)
        collection = service_env_collection(service)
        for user in users:
            stored = direct.collection(collection).document(user).get().to_dict()
            assert stored is not None
            assert stored["dateOfBirth"] in written[user]
        direct.close()  # type: ignore[no-untyped-call]


def test_every_get_after_a_204_sees_that_put_while_others_write_concurrently(service: ServiceProcess) -> None:
    """Read-after-write under load: 40 clients at once, each writing its own user three times and reading it back
    after each 204, while their writes and reads share batched commits and batched reads."""
    users = [f"Reader{chr(65 + n // 26)}{chr(97 + n % 26)}" for n in range(40)]
    today = datetime.now(UTC).date()

    async def write_then_read(client: httpx2.AsyncClient, user: str) -> list[tuple[str, str]]:
        seen = []
        for month in (3, 7, 11):
            day = date(1990, month, 1 + len(user) % 27)
            assert (await client.put(f"/hello/{user}", json={"dateOfBirth": day.isoformat()})).status_code == 204
            answer = (await client.get(f"/hello/{user}")).json()["message"]
            seen.append((answer, greeting(user, days_until_birthday(day, today))))
        return seen

    async def everyone() -> list[list[tuple[str, str]]]:
        limits = httpx2.Limits(max_connections=len(users))
        async with httpx2.AsyncClient(base_url=service.base_url, timeout=30, limits=limits) as client:
            return list(await asyncio.gather(*(write_then_read(client, user) for user in users)))

    for seen in asyncio.run(everyone()):
        for answer, expected in seen:
            assert answer == expected


def service_env_host(service: ServiceProcess) -> str:
    return service.env["FIRESTORE_EMULATOR_HOST"]


def service_env_collection(service: ServiceProcess) -> str:
    return service.env["BIRTHDAY_COLLECTION"]
