"""Cloud Build's own record of a build, as `gcloud builds describe` reads it: whether a lock's holder is gone.

A rollout runs as a step of a build. Once Cloud Build reports that build in a final status, none of its steps
runs any more, so the lock it holds is abandoned even if its expiry is hours away. The statuses are the Build
resource's (Cloud Build API v1, Build.Status): SUCCESS, FAILURE, INTERNAL_ERROR, TIMEOUT, CANCELLED and EXPIRED
end a build; STATUS_UNKNOWN, PENDING, QUEUED and WORKING do not.
"""

from dataclasses import dataclass
from typing import Protocol

from deploy.gcloud import Runner

ENDED = frozenset({"SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED"})


class BuildRecords(Protocol):
    def ended(self, build_id: str) -> str | None:
        """The final status of the build, or None while it may still run; GcloudError when Cloud Build cannot say."""


@dataclass(frozen=True)
class GcloudBuilds:
    project: str
    region: str
    runner: Runner

    def describe_command(self, build_id: str) -> list[str]:
        return [
            "gcloud",
            "builds",
            "describe",
            build_id,
            f"--project={self.project}",
            f"--region={self.region}",
            "--format=value(status)",
        ]

    def issued_commands(self) -> list[list[str]]:
        """Every command sent to Cloud Build (for the deployer's custom role)."""
        return [self.describe_command("BUILD_ID")]

    def ended(self, build_id: str) -> str | None:
        status = self.runner(self.describe_command(build_id)).strip()
        return status if status in ENDED else None
