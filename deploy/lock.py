"""The per-service rollout lock and the operator's freeze, as objects in the rollout bucket.

The lock is an object created only if absent (a generation-0 precondition), so of two builds exactly one
creates it. It names its holder and the holder's build, and records what the holder is doing (candidate, stable
revision, step). It is abandoned once Cloud Build reports that build ended (killed, cancelled, timed out), or at
the latest when the holder's deadline has passed; the run that finds it abandoned finishes the job.
The freeze is an object an operator creates by hand; while it exists no rollout starts, and a running one
sends traffic back. Storage that cannot answer is never read as "no freeze": only NotFound means absent.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from deploy.builds import BuildRecords
from deploy.gcloud import GcloudError, Runner, run_gcloud

# How gcloud 528 words a missing object: GcsNotFoundError's format, and name expansion's (cat, rm).
_NOT_FOUND = ("not found: 404", "matched no objects or files")
# A generation precondition that did not hold: HTTP 412 from the JSON API.
_PRECONDITION = ("412:", "pre-conditions you specified did not hold", "precondition failed")


class StorageError(Exception):
    """The bucket could not be read or written (permission, outage...): nothing may be concluded."""


class RolloutBlocked(Exception):
    """A rollout must not start; nothing was changed."""


class ObjectStore(Protocol):
    def url(self, name: str) -> str: ...

    def create_if_absent(self, name: str, content: str) -> int | None:
        """The new object's generation, or None if an object of that name already exists."""

    def overwrite(self, name: str, content: str, generation: int) -> int | None:
        """Replace exactly that generation; the new generation, or None if it is gone or was replaced."""

    def read(self, name: str) -> tuple[str, int] | None:
        """Content and generation, or None when the object does not exist."""

    def delete(self, name: str, generation: int) -> bool:
        """Delete that generation only; False if the object is gone or has been replaced."""


def lock_name(service: str) -> str:
    return f"locks/{service}.json"


def freeze_name(service: str) -> str:
    return f"freeze/{service}"


def release_name(service: str) -> str:
    """The last revision the rollout promoted, with its commit and build time: what the next one is ordered by."""
    return f"releases/{service}.json"


def freeze_reason(store: ObjectStore, service: str) -> str | None:
    """Why rollouts of the service are frozen, or None. Raises StorageError when the bucket cannot tell."""
    if (freeze := store.read(freeze_name(service))) is None:
        return None
    return freeze[0].strip() or "no reason given"


def check_not_frozen(store: ObjectStore, service: str) -> None:
    try:
        reason = freeze_reason(store, service)
    except StorageError as error:
        raise RolloutBlocked(f"cannot tell whether rollouts of {service} are frozen, so none starts: {error}") from None
    if reason is not None:
        raise RolloutBlocked(f"rollouts of {service} are frozen ({freeze_name(service)}: {reason})")


@dataclass
class RolloutLock:
    store: ObjectStore
    service: str
    holder: str
    """Unique to this attempt, so a lock this run wrote is recognised as its own even if it never learnt so."""
    expires: datetime
    build: str | None = None
    """The Cloud Build build this rollout runs in: once Cloud Build says it has ended, its lock is abandoned."""
    builds: BuildRecords | None = None
    generation: int | None = None
    """The generation this run last wrote, or None when it holds no lock or does not know which one it wrote."""
    state: dict[str, Any] = field(default_factory=dict)
    _may_hold: bool = field(default=False, init=False)

    @property
    def name(self) -> str:
        return lock_name(self.service)

    def _content(self) -> str:
        return json.dumps(
            {"holder": self.holder, "expires": self.expires.isoformat(), "build": self.build, "state": self.state}
        )

    def acquire(self, now: datetime) -> Mapping[str, Any] | None:
        """Take the lock. Returns the state an abandoned holder recorded, and why it counts as abandoned, if any."""
        abandoned: Mapping[str, Any] | None = None
        self._may_hold = True
        for _ in range(3):
            try:
                self.generation = self.store.create_if_absent(self.name, self._content())
            except StorageError:
                self.generation = None  # perhaps written but not confirmed: the read below tells
            if self.generation is not None:
                return abandoned
            try:
                held = self.store.read(self.name)
            except StorageError as error:
                raise RolloutBlocked(
                    f"could not take or read the lock {self.name}: {error}. If this build wrote it, it expires at "
                    f"{self.expires.isoformat()}"
                ) from None
            if held is None:
                continue
            text, generation = held
            record = json.loads(text)
            if record.get("holder") == self.holder:
                self.generation = generation
                return abandoned
            why, alive = self._holder_gone(record, now)
            if why is None:
                self._may_hold = False
                raise RolloutBlocked(f"{self.service} is locked by {record['holder']} until {record['expires']}{alive}")
            # Its holder is dead. Delete exactly that generation, then race again.
            if self.store.delete(self.name, generation):
                abandoned = {"holder": record["holder"], "why": why, **record.get("state", {})}
        raise RolloutBlocked(f"{self.service}: could not take the lock {self.name}")

    def _holder_gone(self, record: Mapping[str, Any], now: datetime) -> tuple[str | None, str]:
        """Why the holder of that lock is surely dead; else None, and what Cloud Build said of it."""
        if datetime.fromisoformat(record["expires"]) <= now:
            return f"its lock expired at {record['expires']}", ""
        build = record.get("build")
        if not build or self.builds is None:
            return None, ""
        try:
            status = self.builds.ended(build)
        except GcloudError as error:
            return None, f" (Cloud Build could not say whether its build {build} has ended: {error})"
        if status is None:
            return None, f" (its build {build} is still running)"
        return f"its build {build} has ended ({status})", ""

    def _own_generation(self) -> int | None:
        """The lock object's generation if this run wrote it (its holder is this attempt), else None."""
        held = self.store.read(self.name)
        if held is None or json.loads(held[0]).get("holder") != self.holder:
            return None
        return held[1]

    def record(self, **state: Any) -> str | None:
        """Write what the rollout is doing into the lock; a warning if it could not be recorded."""
        self.state.update(state)
        if not self._may_hold:
            return "the lock is not held: nothing recorded"
        try:
            previous = self.generation if self.generation is not None else self._own_generation()
            if previous is None:
                self._may_hold = False
                return f"{self.name} is no longer this rollout's: nothing recorded"
            # Until the write is confirmed, which generation is there is unknown; it is then found by its holder.
            self.generation = None
            self.generation = self.store.overwrite(self.name, self._content(), previous)
        except StorageError as error:
            return f"could not record the rollout's state in {self.name}: {error}"
        if self.generation is None:
            self._may_hold = False
            return f"could not record the rollout's state: {self.name} is no longer generation {previous}"
        return None

    def release(self) -> str:
        """Delete this run's lock, even one it wrote without learning its generation; says what happened."""
        if not self._may_hold:
            return f"lock {self.name} was not held"
        for _ in range(3):
            try:
                if self.generation is None:
                    self.generation = self._own_generation()
                if self.generation is None:
                    self._may_hold = False
                    return f"lock {self.name} was already gone or taken over: nothing released"
                if self.store.delete(self.name, self.generation):
                    self._may_hold, self.generation = False, None
                    return f"lock released for {self.service}"
                self.generation = None
            except StorageError as error:
                where = f" --if-generation-match={self.generation}" if self.generation is not None else ""
                return (
                    f"LOCK NOT RELEASED: {error}. It expires at {self.expires.isoformat()}, or once its build has "
                    f"ended; to free it now: gcloud storage rm {self.store.url(self.name)}{where}"
                )
        return f"LOCK NOT RELEASED: {self.name} kept changing while it was released"


def not_found(error: GcloudError) -> bool:
    return any(marker in error.stderr for marker in _NOT_FOUND)


def precondition_failed(error: GcloudError) -> bool:
    text = error.stderr.lower()
    return any(marker in text for marker in _PRECONDITION)


class GcsObjectStore:
    """The rollout bucket through gcloud storage, with generation preconditions. Every command is built here."""

    def __init__(self, bucket: str, runner: Runner = run_gcloud) -> None:
        self.bucket = bucket
        self._run = runner

    def url(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"

    def write_command(self, name: str, generation: int | str) -> list[str]:
        """Content on stdin; generation 0 means "only if absent"."""
        return ["gcloud", "storage", "cp", "-", self.url(name), f"--if-generation-match={generation}", "--quiet"]

    def describe_command(self, name: str) -> list[str]:
        return ["gcloud", "storage", "objects", "describe", self.url(name), "--format=value(generation)"]

    def read_command(self, name: str, generation: int | str) -> list[str]:
        # The #generation suffix reads exactly the generation described, even if it was replaced since.
        return ["gcloud", "storage", "cat", f"{self.url(name)}#{generation}"]

    def delete_command(self, name: str, generation: int | str) -> list[str]:
        return ["gcloud", "storage", "rm", self.url(name), f"--if-generation-match={generation}", "--quiet"]

    def issued_commands(self) -> list[list[str]]:
        """One of each command the rollout can send to the bucket (for the deployer's custom role)."""
        name = "NAME"
        write, read = self.write_command(name, 0), self.read_command(name, 1)
        return [write, self.describe_command(name), read, self.delete_command(name, 1)]

    def create_if_absent(self, name: str, content: str) -> int | None:
        return self.overwrite(name, content, 0)

    def overwrite(self, name: str, content: str, generation: int) -> int | None:
        try:
            self._run(self.write_command(name, generation), content)
        except GcloudError as error:
            if precondition_failed(error):
                return None
            raise StorageError(f"could not write {self.url(name)}: {error}") from None
        written = self._generation(name)
        if written is None:
            raise StorageError(f"{self.url(name)} was written but is not there")
        return written

    def read(self, name: str) -> tuple[str, int] | None:
        generation = self._generation(name)
        if generation is None:
            return None
        try:
            return self._run(self.read_command(name, generation)), generation
        except GcloudError as error:
            if not_found(error):  # replaced or deleted since it was described
                return None
            raise StorageError(f"could not read {self.url(name)}: {error}") from None

    def delete(self, name: str, generation: int) -> bool:
        try:
            self._run(self.delete_command(name, generation))
        except GcloudError as error:
            if not_found(error) or precondition_failed(error):
                return False
            raise StorageError(f"could not delete {self.url(name)}: {error}") from None
        return True

    def _generation(self, name: str) -> int | None:
        try:
            found = self._run(self.describe_command(name)).strip()
        except GcloudError as error:
            if not_found(error):
                return None
            raise StorageError(f"could not describe {self.url(name)}: {error}") from None
        return int(found) if found else None
