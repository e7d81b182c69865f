"""What the gates read from Cloud Monitoring: one revision's requests over one window.

The Monitoring API is called over REST (projects.timeSeries.list) with a token from gcloud, at the endpoint
gcloud is configured with, so the rollout needs no client library beyond the standard one. Filters use the
Monitoring filter language, not MQL, which is deprecated.
"""

import json
import math
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

MONITORING_API = "https://monitoring.googleapis.com/v3"
REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def __str__(self) -> str:
        return f"{self.start:%H:%M:%S}-{self.end:%H:%M:%S}Z"


@dataclass(frozen=True)
class RequestStats:
    total: int
    server_errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.server_errors / self.total if self.total else 0.0

    def __str__(self) -> str:
        p99 = "n/a" if self.p99_ms is None else f"{self.p99_ms:.0f} ms"
        return f"{self.total} requests, {self.server_errors} 5xx ({self.error_rate:.2%}), p99 {p99}"


class Metrics(Protocol):
    def request_stats(self, revision: str, window: Window) -> RequestStats: ...


@dataclass(frozen=True)
class Distribution:
    """A Monitoring distribution: counts per bucket and the buckets' upper bounds (the last is infinite)."""

    bucket_counts: tuple[int, ...]
    upper_bounds: tuple[float, ...]


def bucket_upper_bounds(options: Mapping[str, Any], buckets: int) -> tuple[float, ...]:
    """Upper bounds of the buckets of a BucketOptions: underflow, the finite buckets, then overflow."""
    if exponential := options.get("exponentialBuckets"):
        scale, growth = float(exponential["scale"]), float(exponential["growthFactor"])
        finite = [scale * growth**index for index in range(int(exponential["numFiniteBuckets"]) + 1)]
    elif linear := options.get("linearBuckets"):
        offset, width = float(linear.get("offset", 0)), float(linear["width"])
        finite = [offset + width * index for index in range(int(linear["numFiniteBuckets"]) + 1)]
    elif explicit := options.get("explicitBuckets"):
        finite = [float(bound) for bound in explicit["bounds"]]
    else:
        raise ValueError(f"unknown bucket options {sorted(options)}")
    bounds = (*finite, math.inf)
    return bounds[:buckets] if buckets <= len(bounds) else (*bounds, *[math.inf] * (buckets - len(bounds)))


def percentile_upper_bound(distributions: Iterable[Distribution], quantile: float) -> float | None:
    """The upper bound of the bucket holding the quantile: never below the true value, so gates err safe."""
    merged: dict[float, int] = {}
    for distribution in distributions:
        for bound, count in zip(distribution.upper_bounds, distribution.bucket_counts, strict=False):
            merged[bound] = merged.get(bound, 0) + count
    total = sum(merged.values())
    if total == 0:
        return None
    rank = math.ceil(quantile * total)
    seen = 0
    for bound in sorted(merged):
        seen += merged[bound]
        if seen >= rank:
            return bound
    raise AssertionError("unreachable: the ranks add up to the total")


def revision_filter(metric: str, service: str, revision: str) -> str:
    return " AND ".join(
        [
            f'metric.type="{metric}"',
            'resource.type="cloud_run_revision"',
            f'resource.labels.service_name="{service}"',
            f'resource.labels.revision_name="{revision}"',
        ]
    )


def time_series_query(metric: str, service: str, revision: str, window: Window) -> list[tuple[str, str]]:
    """Query parameters of projects.timeSeries.list: one delta per response class (or one merged distribution)."""
    params = [
        ("filter", revision_filter(metric, service, revision)),
        ("interval.startTime", window.start.isoformat().replace("+00:00", "Z")),
        ("interval.endTime", window.end.isoformat().replace("+00:00", "Z")),
        ("aggregation.alignmentPeriod", f"{max(window.seconds, 60)}s"),
        ("aggregation.perSeriesAligner", "ALIGN_DELTA"),
        ("aggregation.crossSeriesReducer", "REDUCE_SUM"),
    ]
    if metric == REQUEST_COUNT:
        params.append(("aggregation.groupByFields", "metric.labels.response_code_class"))
    return params


def parse_request_counts(series: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    total = errors = 0
    for one in series:
        count = sum(int(point["value"].get("int64Value", 0)) for point in one.get("points", []))
        total += count
        if one.get("metric", {}).get("labels", {}).get("response_code_class") == "5xx":
            errors += count
    return total, errors


def parse_distributions(series: Sequence[Mapping[str, Any]]) -> list[Distribution]:
    distributions = []
    for one in series:
        for point in one.get("points", []):
            value = point["value"].get("distributionValue", {})
            counts = tuple(int(count) for count in value.get("bucketCounts", []))
            if counts:
                bounds = bucket_upper_bounds(value["bucketOptions"], len(counts))
                distributions.append(Distribution(counts, bounds))
    return distributions


def gcloud_access_token() -> str:
    """A short-lived token of whoever gcloud runs as: in Cloud Build, the deployer service account."""
    return subprocess.run(
        ["gcloud", "auth", "print-access-token"], capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass(frozen=True)
class MonitoringEndpoint:
    """Where timeSeries.list is called, and how it is authorised."""

    api: str
    token: Callable[[], str] | None

    @classmethod
    def from_gcloud_config(cls, config: Mapping[str, Any]) -> "MonitoringEndpoint":
        """The endpoint gcloud itself would use: one setting points gcloud and the gates at the same place.

        `config` is `gcloud config list --format=json`, which includes CLOUDSDK_* environment variables:
        api_endpoint_overrides/monitoring replaces the API's root, and auth/disable_credentials sends none.
        """
        override = config.get("api_endpoint_overrides", {}).get("monitoring")
        api = f"{override.rstrip('/')}/v3" if override else MONITORING_API
        disabled = str(config.get("auth", {}).get("disable_credentials", "false")).lower() in ("true", "1")
        return cls(api, None if disabled else gcloud_access_token)

    @classmethod
    def from_gcloud(cls) -> "MonitoringEndpoint":
        listed = subprocess.run(
            ["gcloud", "config", "list", "--format=json"], capture_output=True, text=True, check=True
        ).stdout
        return cls.from_gcloud_config(json.loads(listed))


class MonitoringMetrics:
    def __init__(
        self,
        project: str,
        service: str,
        timeout: float = 30,
        endpoint: MonitoringEndpoint = MonitoringEndpoint(MONITORING_API, gcloud_access_token),
    ) -> None:
        self._project = project
        self._service = service
        self._timeout = timeout
        self._endpoint = endpoint

    def request_stats(self, revision: str, window: Window) -> RequestStats:
        total, errors = parse_request_counts(self._list(REQUEST_COUNT, revision, window))
        p99 = percentile_upper_bound(parse_distributions(self._list(REQUEST_LATENCIES, revision, window)), 0.99)
        return RequestStats(total, errors, p99)

    def _list(self, metric: str, revision: str, window: Window) -> list[dict[str, Any]]:
        series: list[dict[str, Any]] = []
        params = time_series_query(metric, self._service, revision, window)
        token = self._endpoint.token() if self._endpoint.token else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        page = ""
        while True:
            query = urllib.parse.urlencode([*params, *([("pageToken", page)] if page else [])])
            request = urllib.request.Request(  # noqa: S310 (the Monitoring API's URL, as gcloud is configured)
                f"{self._endpoint.api}/projects/{self._project}/timeSeries?{query}", headers=headers
            )
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 (as above)
                body = json.load(response)
            series.extend(body.get("timeSeries", []))
            page = body.get("nextPageToken", "")
            if not page:
                return series
