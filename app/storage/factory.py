"""Opens the store that the settings name. The service never falls back from one store to another by itself."""

import logging

from app.settings import ENV_PREFIX, Settings
from app.storage.firestore import FirestoreBirthdayStore, firestore_api
from app.storage.memory import MemoryBirthdayStore
from app.storage.port import BirthdayStore

logger = logging.getLogger(__name__)


class StoreConfigurationError(RuntimeError):
    pass


def open_store(settings: Settings) -> BirthdayStore:
    """Runs in the app's lifespan, on the event loop, before the first request is served.

    A configuration that can never work (no project, no credentials) fails start-up here, at once. Storage that
    is merely unreachable does not: readiness reports it, and the service recovers when storage comes back.
    """
    if settings.store == "memory":
        logger.warning("Dates of birth live in this process's memory only and are lost when it stops")
        return MemoryBirthdayStore()
    if not settings.project_id:
        raise StoreConfigurationError(
            f"Firestore needs a project id: set {ENV_PREFIX}PROJECT_ID (or GOOGLE_CLOUD_PROJECT), "
            f"or {ENV_PREFIX}STORE=memory for a throwaway local run"
        )
    logger.info(
        "Using Firestore database %s in project %s, collection %s%s",
        settings.firestore_database,
        settings.project_id,
        settings.collection,
        f", on the emulator at {settings.firestore_emulator_host}" if settings.firestore_emulator_host else "",
    )
    return FirestoreBirthdayStore(
        firestore_api(settings.firestore_emulator_host),
        project=settings.project_id,
        database=settings.firestore_database,
        collection=settings.collection,
        deadline_seconds=settings.request_deadline_seconds,
        readiness_timeout_seconds=settings.readiness_timeout_seconds,
        emulator=settings.firestore_emulator_host is not None,
    )
