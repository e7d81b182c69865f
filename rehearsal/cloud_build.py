"""Cloud Build's record of builds, as `gcloud builds describe` reads it (projects.locations.builds.get of the
Cloud Build API v1): the rehearsal plays Cloud Build, so it answers for the builds it stands for.

The rollout step asks for its own build's `startTime` and `timeout` (its deadline) and for the `createTime` of
the build that made the image (the order of commits); a scenario decides both. The rollout asks for the `status`
of the build that holds its lock: WORKING while that build's step runs, then the final status Cloud Build gives a
build whose step exited (SUCCESS, FAILURE), or that was cancelled (CANCELLED).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from rehearsal.api import ApiError, Json


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Builds:
    records: dict[tuple[str, str], Json] = field(default_factory=dict)

    def add(self, project: str, build_id: str, **fields: object) -> Json:
        record: Json = {"id": build_id, "projectId": project, "status": "SUCCESS", **fields}
        self.records[(project, build_id)] = record
        return record

    def end(self, project: str, build_id: str, status: str) -> None:
        """What Cloud Build records once a build's last step is over: its final status and finishTime."""
        self.records[(project, build_id)] |= {"status": status, "finishTime": rfc3339(datetime.now(UTC))}

    def get(self, project: str, build_id: str) -> Json:
        if (record := self.records.get((project, build_id))) is None:
            raise ApiError(404, "NOT_FOUND", f"Requested entity was not found: build {build_id} in project {project}.")
        return dict(record)
