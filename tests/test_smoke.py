"""The smoke suite is a black box: it passes on a healthy service, names what failed on a broken one, catches a
wrong greeting the service's own code would agree with, and no client of the public API can break it."""

import ast
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from deploy.client import days_message, fresh_username, hello_path, request
from deploy.smoke import days_until, main, probes, run_smoke
from dev.emulator import FirestoreEmulator
from dev.service import REPOSITORY, ServiceProcess
from tests.conftest import TEST_PROJECT
from tests.support.blackhole import blackhole

pytestmark = pytest.mark.slow

# A bug in the service's own date arithmetic (every count of days one too many), then a module run as __main__.
OFF_BY_ONE = (
    "import runpy, sys, app.birthdays as birthdays; counted = birthdays.days_until_birthday; "
    "birthdays.days_until_birthday = lambda born, today: counted(born, today) + 1; "
    "sys.argv[1:] = {arguments!r}; runpy.run_module({module!r}, run_name='__main__')"
)


def with_the_bug(module: str, *arguments: str) -> tuple[str, ...]:
    return (sys.executable, "-c", OFF_BY_ONE.format(module=module, arguments=list(arguments)))


def service_env(emulator: FirestoreEmulator) -> dict[str, str]:
    return {
        "FIRESTORE_EMULATOR_HOST": emulator.host,
        "BIRTHDAY_PROJECT_ID": TEST_PROJECT,
        "BIRTHDAY_COLLECTION": f"smoke-{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture
def off_by_one(emulator: FirestoreEmulator, tmp_path: Path) -> Iterator[ServiceProcess]:
    """The real service with a bug in its own date arithmetic: every count of days is one too many."""
    process = ServiceProcess(service_env(emulator), tmp_path / "service.log", command=with_the_bug("app"))
    process.start()
    yield process
    process.kill()


def test_a_healthy_service_passes_every_check(service: ServiceProcess) -> None:
    report = run_smoke(service.base_url)
    assert report.ok, report.summary()
    assert len(report.passed) == 5


def test_a_wrong_greeting_in_the_service_fails_the_suite(off_by_one: ServiceProcess) -> None:
    # The rollout runs the suite from the same commit as the service, bug included: the suite must not borrow it.
    ran = subprocess.run(
        with_the_bug("deploy.smoke", off_by_one.base_url), cwd=REPOSITORY, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    failures = [line for line in ran.stdout.splitlines() if line.startswith("  FAIL ")]
    assert len(failures) == 1
    assert failures[0].startswith("  FAIL PUT then GET greets with the days to each stored birthday: GET answered")
    assert "! Your birthday is in 1 day'" in failures[0], "one too many for a birthday today"


def test_a_greeting_for_another_day_fails_the_round_trip(service: ServiceProcess) -> None:
    # Told that today is months away, the suite expects a count the service (on the real date) cannot give.
    report = run_smoke(service.base_url, today=date(2001, 3, 1))
    assert len(report.failures) == 1
    assert report.failures[0].startswith("PUT then GET greets with the days to each stored birthday: GET answered")


def test_no_client_can_break_the_suite_for_later_runs(service: ServiceProcess) -> None:
    # What the suite once used: a reserved user anyone could overwrite, and an "absent" one anyone could create.
    for name in ("Smoketest", "Smoketestabsent", "Smoke", "Absent"):
        assert request(service.base_url, "PUT", hello_path(name), {"dateOfBirth": "2000-01-01"}).status == 204
    assert run_smoke(service.base_url).ok
    assert run_smoke(service.base_url).ok


def test_usernames_are_fresh_letters_for_every_run() -> None:
    names = {fresh_username("Smoke") for _ in range(100)}
    assert len(names) == 100
    assert all(name.isascii() and name.isalpha() and len(name) == 25 for name in names)


@pytest.mark.parametrize(
    ("born", "today", "days"),
    [
        (date(1992, 11, 30), date(2026, 11, 30), 0),
        (date(1992, 11, 29), date(2026, 11, 30), 364),
        (date(1992, 3, 10), date(2026, 11, 30), 100),
        (date(1992, 2, 29), date(2027, 2, 27), 1),
        (date(1992, 2, 29), date(2028, 2, 29), 0),
        (date(1992, 12, 31), date(2027, 1, 1), 364),
    ],
)
def test_the_suite_counts_days_to_a_birthday_by_the_contracts_own_rule(born: date, today: date, days: int) -> None:
    assert days_until(born, today) == days


def test_the_probes_tell_a_count_one_too_many_from_a_service_a_day_behind() -> None:
    today = date(2026, 11, 30)
    counted = [days_until(born, today) for born in probes(today)]
    one_too_many = [count + 1 for count in counted]
    for shift in (-1, 0, 1):
        assert [days_until(born, today + timedelta(days=shift)) for born in probes(today)] != one_too_many


def test_the_greeting_is_worded_as_the_contract_says() -> None:
    assert days_message("Ann", 0) == "Hello, Ann! Happy birthday!"
    assert days_message("Ann", 1) == "Hello, Ann! Your birthday is in 1 day"
    assert days_message("Ann", 5) == "Hello, Ann! Your birthday is in 5 days"


def test_the_smoke_suite_and_the_rollout_import_nothing_from_the_app() -> None:
    for module in sorted((REPOSITORY / "deploy").glob("*.py")):
        tree = ast.parse(module.read_text())
        imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not {name for name in imported if name == "app" or name.startswith("app.")}, module.name


def test_a_service_that_cannot_reach_firestore_fails_with_the_reasons(tmp_path: Path) -> None:
    with blackhole() as storage:
        process = ServiceProcess(
            {
                "FIRESTORE_EMULATOR_HOST": storage,
                "BIRTHDAY_PROJECT_ID": TEST_PROJECT,
                "BIRTHDAY_REQUEST_DEADLINE_SECONDS": "0.5",
                "BIRTHDAY_READINESS_TIMEOUT_SECONDS": "0.5",
            },
            tmp_path / "service.log",
        )
        process.start()
        try:
            report = run_smoke(process.base_url, ready_within=2)
        finally:
            process.kill()
    assert not report.ok
    assert report.passed == ["liveness answers 200", "an invalid date of birth is a 400 problem"]
    assert report.failures[0].startswith(
        "readiness answers 200 within 2 s (Firestore reachable): expected 200, got 503"
    )
    assert report.failures[1].startswith("PUT then GET greets with the days to each stored birthday: PUT expected 204")
    assert "FAILED" in report.summary()


def test_nothing_listening_is_a_failure_not_a_crash() -> None:
    report = run_smoke("http://127.0.0.1:9", timeout=2, ready_within=0)
    assert len(report.failures) == 5
    assert all("URLError" in failure or "ConnectionRefused" in failure for failure in report.failures)


def test_the_command_exits_non_zero_on_failure_and_zero_on_success(
    service: ServiceProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([service.base_url]) == 0
    assert "smoke passed" in capsys.readouterr().out
    assert main(["http://127.0.0.1:9", "--timeout=1", "--ready-within=0"]) == 1
    assert "smoke FAILED" in capsys.readouterr().out


def test_a_base_url_without_a_scheme_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["127.0.0.1:8080", "--ready-within=0"]) == 1
    assert "must start with http:// or https://" in capsys.readouterr().out


def test_make_smoke_runs_the_suite_and_needs_a_url(emulator: FirestoreEmulator, tmp_path: Path) -> None:
    without = subprocess.run(
        ["make", "--no-print-directory", "smoke"], check=False, cwd=REPOSITORY, capture_output=True, text=True
    )
    assert without.returncode == 2
    assert "usage: make smoke BASE_URL=" in without.stderr
    process = ServiceProcess(service_env(emulator), tmp_path / "service.log")
    process.start()
    try:
        ran = subprocess.run(
            ["make", "--no-print-directory", "smoke", f"BASE_URL={process.base_url}"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        process.kill()
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"smoke passed on {process.base_url}: 5 passed, 0 failed" in ran.stdout
