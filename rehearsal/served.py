"""Every request the router served, per revision: what Cloud Run's request metrics are made from.

Latencies go into the bucket layout of `request_latencies`. Google does not publish the bucket options of
Cloud Run's managed metric; the public definition of the metric it descends from is Knative Serving's
queue-proxy `request_latencies` (knative/serving, pkg/queue/stats_reporter.go), explicit bounds in
milliseconds, used here (docs/decisions.md, "The rollout rehearsal").
"""

import bisect
from dataclasses import dataclass

LATENCY_BOUNDS_MS = (
    5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500,
    600, 700, 800, 900, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
)  # fmt: skip
"""Explicit bucket bounds: bucket 0 is below 5 ms, bucket i is [bounds[i-1], bounds[i]), the last is 100 s up."""


def bucket_of(latency_ms: float) -> int:
    return bisect.bisect_right(LATENCY_BOUNDS_MS, latency_ms)


def response_code_class(status: int) -> str:
    return f"{status // 100}xx"


@dataclass(frozen=True)
class Served:
    at: float
    """When the response was finished, in seconds since the epoch."""
    namespace: str
    service: str
    revision: str
    status: int
    latency_ms: float
    tag: str | None
    """The tag URL it came through, None for the service URL."""


class RequestLog:
    def __init__(self) -> None:
        self.entries: list[Served] = []

    def add(self, served: Served) -> None:
        self.entries.append(served)

    def of(self, namespace: str, revision: str | None = None) -> list[Served]:
        return [
            one for one in self.entries if one.namespace == namespace and (revision is None or one.revision == revision)
        ]
