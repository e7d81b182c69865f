"""Opens the store that the settings name. The service never falls back from one store to another by itself."""

import logging

from app.settings import ENV_PREFIX, Settings
from app.storage.deferred import DeferredStore
from app.storage.memory import MemoryBirthdayStore
from app.storage.port import BirthdayStore

logger = logging.getLogger(__name__)


class StoreConfigurationError(RuntimeError):
    pass


def open_store(settings: Settings) -> BirthdayStore:
    """Must run on the event loop; fails at once on a configuration that can never work."""
    if settings.store == "memory":
        logger.warning("Dates of birth live in this process's memory only and are lost when it stops")
        return MemoryBirthdayStore()
    if not settings.project_id:
        raise StoreConfigurationError(
            f"Firestore needs a project id: set {ENV_PREFIX}PROJECT_ID (or GOOGLE_CLOUD_PROJECT), "
            f"or {ENV_PREFIX}STORE=memory for a throwaway local run"
        )
    return DeferredStore(lambda: _firestore_store(settings))


def _firestore_store(settings: Settings) -> BirthdayStore:
    # Imported here, in a worker thread: gRPC and protobuf are the slowest part of start-up.
    from google.cloud.firestore import AsyncClient

    from app.storage.firestore import FirestoreBirthdayStore

    logger.info(
        "Using Firestore database %s in project %s, collection %s",
        settings.firestore_database,
        settings.project_id,
        settings.collection,
    )
    return FirestoreBirthdayStore(
        AsyncClient(project=settings.project_id, database=settings.firestore_database),
        collection=settings.collection,
        deadline_seconds=settings.request_deadline_seconds,
        readiness_timeout_seconds=settings.readiness_timeout_seconds,
    )
