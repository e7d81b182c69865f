"""The service as the container runs it (`python -m app`): start-up, signals, outages and load, end to end."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from app.health import READINESS_PATH
from dev.emulator import FirestoreEmulator
from dev.network import free_port, wait_until
from dev.service import REPOSITORY, ServiceProcess
from tests.conftest import TEST_PROJECT
from tests.support.outage import assert_every_storage_call_is_503_within
from tests.support.slow_proxy import slow_proxy

pytestmark = pytest.mark.slow


def service_env(firestore_host: str, collection: str, **extra: str) -> dict[str, str]:
    return {
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "BIRTHDAY_PROJECT_ID": TEST_PROJECT,
        "BIRTHDAY_COLLECTION": collection,
        **extra,
    }


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
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={"PATH": "", name: value},
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"invalid setting {variable}: ")


def test_firestore_without_a_project_refuses_to_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={"PATH": "", "PORT": str(free_port()), "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"},
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "set BIRTHDAY_PROJECT_ID" in result.stdout


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


def test_firestore_outage_is_503_and_the_same_process_recovers(tmp_path: Path) -> None:
    outage_emulator = FirestoreEmulator(free_port(), tmp_path / "emulator.log")
    outage_emulator.start()
    process = ServiceProcess(
        service_env(outage_emulator.host, "outage", BIRTHDAY_REQUEST_DEADLINE_SECONDS="1"), tmp_path / "service.log"
    )
    try:
        process.start()
        with httpx2.Client(base_url=process.base_url, timeout=10) as client:
            wait_until(lambda: client.get(READINESS_PATH).status_code == 200, timeout=30, what="readiness")
            assert client.put("/hello/Ada", json={"dateOfBirth": "1815-12-10"}).status_code == 204
            outage_emulator.stop()
            assert_every_storage_call_is_503_within(client, 2.5)
            outage_emulator.start()
            wait_until(lambda: client.get(READINESS_PATH).status_code == 200, timeout=30, what="readiness coming back")
            assert client.put("/hello/Ada", json={"dateOfBirth": "1815-12-10"}).status_code == 204
            assert client.get("/hello/Ada").status_code == 200
        assert process.process.poll() is None, "the same process served before, during and after the outage"
    finally:
        process.kill()
        outage_emulator.stop()


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


def service_env_host(service: ServiceProcess) -> str:
    return service.env["FIRESTORE_EMULATOR_HOST"]


def service_env_collection(service: ServiceProcess) -> str:
    return service.env["BIRTHDAY_COLLECTION"]
