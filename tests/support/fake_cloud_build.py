"""A stand-in for `gcloud builds describe ID --project=P --region=R --format=value(status)`, as a Runner.

It models Cloud Build's record as the Build resource of the Cloud Build API v1 has it: a status from Build.Status
(QUEUED, WORKING, then one of SUCCESS, FAILURE, INTERNAL_ERROR, TIMEOUT, CANCELLED, EXPIRED), and gcloud's
wording of an error answer, "ERROR: (gcloud.builds.describe) STATUS: message", for a missing build (404) or a
denied permission (403).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from deploy.gcloud import GcloudError

# Build.Status of the Cloud Build API v1, in its order.
STATUSES = frozenset(
    [
        "STATUS_UNKNOWN",
        "PENDING",
        "QUEUED",
        "WORKING",
        "SUCCESS",
        "FAILURE",
        "INTERNAL_ERROR",
        "TIMEOUT",
        "CANCELLED",
        "EXPIRED",
    ]
)
DENIED = "PERMISSION_DENIED: The caller does not have permission"


@dataclass
class FakeBuilds:
    statuses: dict[str, str] = field(default_factory=dict)
    """Build id to its status."""
    denied: bool = False

    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str:
        flags = [word for word in command if word.startswith("--")]
        words = [word for word in command if not word.startswith("--")]
        if words[:3] != ["gcloud", "builds", "describe"] or len(words) != 4 or "--format=value(status)" not in flags:
            raise AssertionError(f"the fake does not model {command}")
        if not any(flag.startswith("--region=") for flag in flags):
            raise AssertionError("a regional build is found only with --region")
        build = words[3]
        if self.denied:
            raise GcloudError(command, f"ERROR: (gcloud.builds.describe) {DENIED}\n")
        if (status := self.statuses.get(build)) is None:
            raise GcloudError(command, "ERROR: (gcloud.builds.describe) NOT_FOUND: Requested entity was not found.\n")
        assert status in STATUSES, status
        return f"{status}\n"
