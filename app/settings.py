"""Every setting of the service, read once from the environment into one typed object."""

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BIRTHDAY_"

StoreKind = Literal["firestore", "memory"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Seconds = Annotated[float, Field(gt=0, le=60)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_by_name=True)

    store: StoreKind = Field(
        default="firestore",
        description="Where dates of birth live: firestore, or memory (lost on exit; local runs without gcloud).",
    )
    project_id: str | None = Field(
        default=None,
        # GOOGLE_CLOUD_PROJECT is what Google's libraries and the emulators already use.
        validation_alias=AliasChoices(f"{ENV_PREFIX}PROJECT_ID", "GOOGLE_CLOUD_PROJECT"),
        description="Google Cloud project id; on Cloud Run, found from the metadata server when unset.",
    )
    firestore_database: str = Field(default="(default)", min_length=1, description="Firestore database id.")
    firestore_emulator_host: str | None = Field(
        default=None,
        # The variable Google's client libraries and the emulator's own instructions use.
        validation_alias=AliasChoices("FIRESTORE_EMULATOR_HOST"),
        description="host:port of a Firestore emulator to use instead of Firestore; unset in production.",
    )
    collection: str = Field(
        default="users",
        min_length=1,
        description="Firestore collection holding one document per user.",
    )
    timezone: str = Field(default="UTC", description="IANA time zone whose calendar date is 'today'.")
    request_deadline_seconds: Seconds = Field(
        default=3.0,
        description="Longest a request waits on storage before answering 503.",
    )
    readiness_timeout_seconds: Seconds = Field(
        default=1.0,
        description="Longest the readiness check waits on storage before answering 503.",
    )
    log_level: LogLevel = Field(default="INFO", description="Lowest severity written to the log.")
    access_log: bool = Field(
        default=False,
        description="Log every request; Cloud Run already writes a request log, so off by default.",
    )
    host: str = Field(default="0.0.0.0", description="Address to listen on.")  # noqa: S104 - containers listen on all interfaces
    port: int = Field(
        default=8080,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("PORT", f"{ENV_PREFIX}PORT"),
        description="Port to listen on; Cloud Run sets PORT.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}, e.g. UTC or Europe/Berlin") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def environment_variable(field: str) -> str:
    """The environment variable that sets `field` (the first, where several are accepted).

    Also takes what pydantic reports as an error's location, which for an aliased field is the alias itself.
    """
    if field not in Settings.model_fields:
        return field
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{field.upper()}"


def discover_project_id() -> str | None:
    """The project of the ambient credentials: on Cloud Run, from the metadata server. None when there is none."""
    import google.auth  # imported here: only a Firestore run without a configured project needs it
    from google.auth.exceptions import DefaultCredentialsError

    try:
        _, project_id = google.auth.default()
    except DefaultCredentialsError:
        return None
    return project_id
