"""In-memory stand-ins for what the rollout talks to: Cloud Run's services, revisions, tags and traffic;
the rollout bucket with generation preconditions; scripted Cloud Monitoring series; a clock that jumps."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from deploy.cloud_run import Candidate, CloudRunError, ServiceState, Split, TrafficTarget
from deploy.metrics import RequestStats, Window


@dataclass
class FakeCloudRun:
    """One Cloud Run service. Traffic is percent by revision; tags live beside it, as in status.traffic."""

    service: str
    revisions: dict[str, str] = field(default_factory=dict)
    """Revision name to image."""
    traffic: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    """Tag to revision name."""
    unready_images: set[str] = field(default_factory=set)
    """Images whose revisions never become ready, as when the container fails its startup probe."""
    calls: list[str] = field(default_factory=list)
    on_describe: Callable[["FakeCloudRun", int], None] | None = None
    """Called before each describe with its ordinal: the hook for an operator acting mid-rollout."""
    deployed: list[Candidate] = field(default_factory=list)
    on_set_traffic: Callable[["FakeCloudRun", Split], None] | None = None
    """Called with each valid split before it applies: the hook for a call that fails, before or after applying."""

    @classmethod
    def serving(cls, service: str, revision: str, image: str = "registry/app@sha256:old") -> "FakeCloudRun":
        return cls(service, revisions={revision: image}, traffic={revision: 100})

    def url_of(self, tag: str) -> str:
        return f"https://{tag}---{self.service}-abc123-ew.a.run.app"

    def describe(self) -> ServiceState:
        self.calls.append("describe")
        if self.on_describe is not None:
            self.on_describe(self, self.calls.count("describe"))
        serving = [TrafficTarget(revision, percent) for revision, percent in self.traffic.items() if percent]
        tagged = [TrafficTarget(revision, 0, tag, self.url_of(tag)) for tag, revision in self.tags.items()]
        return ServiceState(tuple(serving + tagged))

    def deploy_without_traffic(self, candidate: Candidate) -> None:
        name = f"{self.service}-{candidate.revision_suffix}"
        self.calls.append(f"deploy {name}")
        if name in self.revisions:
            raise CloudRunError(f"Revision named '{name}' with different configuration already exists.")
        self.revisions[name] = candidate.image
        self.deployed.append(candidate)
        if candidate.image in self.unready_images:
            raise CloudRunError(f"Revision '{name}' is not ready and cannot serve traffic.")
        self._tag(candidate.tag, name)

    def set_traffic(self, split: Split) -> None:
        self.calls.append(f"traffic {dict(sorted(split.items()))}")
        if sum(split.values()) != 100 or not set(split) <= set(self.revisions):
            raise CloudRunError(f"bad split {dict(split)}")
        if self.on_set_traffic is not None:
            self.on_set_traffic(self, split)
        self.traffic = dict(split)

    def retag(self, add: Mapping[str, str], remove: Sequence[str]) -> None:
        self.calls.append(f"retag add={dict(add)} remove={list(remove)}")
        unknown = [revision for revision in add.values() if revision not in self.revisions]
        if unknown:
            raise CloudRunError(f"no such revision {unknown}")
        for tag in remove:
            self.tags.pop(tag, None)
        for tag, revision in add.items():
            self._tag(tag, revision)

    def _tag(self, tag: str, revision: str) -> None:
        self.tags[tag] = revision


@dataclass
class FakeObjectStore:
    objects: dict[str, tuple[str, int]] = field(default_factory=dict)
    generations: int = 1000

    def create_if_absent(self, name: str, content: str) -> int | None:
        if name in self.objects:
            return None
        self.generations += 1
        self.objects[name] = (content, self.generations)
        return self.generations

    def read(self, name: str) -> tuple[str, int] | None:
        return self.objects.get(name)

    def delete(self, name: str, generation: int) -> bool:
        if name in self.objects and self.objects[name][1] == generation:
            del self.objects[name]
            return True
        return False


@dataclass
class ScriptedMetrics:
    """What Cloud Monitoring answers: a function of the revision and the window, every query recorded."""

    answer: Callable[[str, Window], RequestStats]
    queries: list[tuple[str, Window]] = field(default_factory=list)

    def request_stats(self, revision: str, window: Window) -> RequestStats:
        self.queries.append((revision, window))
        return self.answer(revision, window)


@dataclass
class JumpingClock:
    """Sleeping moves time forward at once, so an hour-long rollout runs in milliseconds."""

    current: datetime
    sleeps: list[datetime] = field(default_factory=list)

    def now(self) -> datetime:
        return self.current

    def sleep_until(self, moment: datetime) -> None:
        self.sleeps.append(moment)
        self.current = max(self.current, moment) + timedelta(seconds=1)
