"""The per-service rollout lock and the operator's freeze, as objects in the rollout bucket.

The lock is an object created only if absent (a generation-0 precondition), so of two builds exactly
one creates it. It records its holder and an expiry, so a build that crashed holding it blocks the next
one only until the expiry. The freeze is an object an operator creates by hand; while it exists no
rollout starts.
"""

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class ObjectStore(Protocol):
    def create_if_absent(self, name: str, content: str) -> int | None:
        """The new object's generation, or None if an object of that name already exists."""

    def read(self, name: str) -> tuple[str, int] | None:
        """Content and generation, or None."""

    def delete(self, name: str, generation: int) -> bool:
        """Delete that generation only; False if the object is gone or has been replaced."""


class RolloutBlocked(Exception):
    """A rollout must not start; nothing was changed."""


def lock_name(service: str) -> str:
    return f"locks/{service}.json"


def freeze_name(service: str) -> str:
    return f"freeze/{service}"


def check_not_frozen(store: ObjectStore, service: str) -> None:
    if (freeze := store.read(freeze_name(service))) is not None:
        reason = freeze[0].strip() or "no reason given"
        raise RolloutBlocked(f"rollouts of {service} are frozen ({freeze_name(service)}: {reason})")


@dataclass
class RolloutLock:
    store: ObjectStore
    service: str
    holder: str
    ttl: timedelta
    generation: int | None = None

    def acquire(self, now: datetime) -> None:
        name = lock_name(self.service)
        content = json.dumps({"holder": self.holder, "expires": (now + self.ttl).isoformat()})
        for _ in range(2):
            self.generation = self.store.create_if_absent(name, content)
            if self.generation is not None:
                return
            held = self.store.read(name)
            if held is None:
                continue
            text, generation = held
            record = json.loads(text)
            if datetime.fromisoformat(record["expires"]) > now:
                raise RolloutBlocked(f"{self.service} is locked by {record['holder']} until {record['expires']}")
            # Expired: its holder died. Delete exactly the expired generation, then race for it again.
            self.store.delete(name, generation)
        raise RolloutBlocked(f"{self.service}: could not take the lock {name}")

    def release(self) -> None:
        if self.generation is not None:
            self.store.delete(lock_name(self.service), self.generation)
            self.generation = None


class GcsObjectStore:
    """The rollout bucket through gcloud storage, with generation preconditions."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def url(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"

    def create_command(self, name: str) -> list[str]:
        return ["gcloud", "storage", "cp", "-", self.url(name), "--if-generation-match=0", "--quiet"]

    def describe_command(self, name: str) -> list[str]:
        return ["gcloud", "storage", "objects", "describe", self.url(name), "--format=value(generation)"]

    def read_command(self, name: str, generation: int) -> list[str]:
        # The #generation suffix reads exactly the generation described, even if it was replaced since.
        return ["gcloud", "storage", "cat", f"{self.url(name)}#{generation}"]

    def delete_command(self, name: str, generation: int | str) -> list[str]:
        return ["gcloud", "storage", "rm", self.url(name), f"--if-generation-match={generation}", "--quiet"]

    def create_if_absent(self, name: str, content: str) -> int | None:
        created = subprocess.run(self.create_command(name), input=content, capture_output=True, text=True, check=False)
        if created.returncode != 0:
            if self.read(name) is not None:
                return None
            raise RuntimeError(f"could not create {self.url(name)}: {created.stderr.strip()}")
        return self._generation(name)

    def read(self, name: str) -> tuple[str, int] | None:
        generation = self._generation(name)
        if generation is None:
            return None
        content = subprocess.run(self.read_command(name, generation), capture_output=True, text=True, check=False)
        return (content.stdout, generation) if content.returncode == 0 else None

    def delete(self, name: str, generation: int) -> bool:
        return subprocess.run(self.delete_command(name, generation), capture_output=True, check=False).returncode == 0

    def _generation(self, name: str) -> int | None:
        found = subprocess.run(self.describe_command(name), capture_output=True, text=True, check=False)
        return int(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None
