"""Settings: names, defaults, validation, and where the project id comes from."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from app.clock import ZoneClock
from app.settings import Settings, discover_project_id, environment_variable


def test_every_setting_has_one_environment_variable_with_the_prefix_or_the_name_others_gave_it() -> None:
    names = {field: environment_variable(field) for field in Settings.model_fields}
    # Cloud Run sets PORT; Google's libraries and the emulator use FIRESTORE_EMULATOR_HOST.
    others = {"port": "PORT", "firestore_emulator_host": "FIRESTORE_EMULATOR_HOST"}
    assert {field: names[field] for field in others} == others
    assert names["project_id"] == "BIRTHDAY_PROJECT_ID"
    assert all(name.startswith("BIRTHDAY_") for field, name in names.items() if field not in others)


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("BIRTHDAY_TIMEZONE", "Pacific/Kiritimati")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-from-google-variable")
    settings = Settings()
    assert (settings.port, settings.timezone, settings.project_id) == (
        9000,
        "Pacific/Kiritimati",
        "demo-from-google-variable",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("timezone", "Mars/Olympus_Mons"), ("timezone", "../etc/passwd"), ("request_deadline_seconds", 0), ("port", 0)],
)
def test_invalid_values_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})


def test_today_is_the_date_in_the_configured_zone() -> None:
    # UTC+14 and UTC-11 are 25 hours apart: their calendars never show the same day.
    ahead, behind = ZoneClock(ZoneInfo("Pacific/Kiritimati")).today(), ZoneClock(ZoneInfo("Pacific/Pago_Pago")).today()
    assert ahead > behind
    assert ZoneClock(ZoneInfo("UTC")).today() == datetime.now(UTC).date()


def test_the_project_comes_from_the_ambient_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(
        json.dumps({"type": "authorized_user", "client_id": "id", "client_secret": "secret", "refresh_token": "token"})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-ambient")
    assert discover_project_id() == "demo-ambient"


def test_no_credentials_means_no_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert discover_project_id() is None
