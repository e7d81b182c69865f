"""What the gates read from Cloud Monitoring: one revision's requests over one window.

The Monitoring API is called over REST (projects.timeSeries.list) as the Cloud Run Admin API is (deploy/google_api.py):
at the endpoint, through the proxy and with the CA bundle and token gcloud is configured with, so the rollout
needs no client library beyond the standard one. Filters use the
Monitoring filter language, not MQL, which is deprecated.
"""

import math
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from deploy.gcloud import Runner
from deploy.google_api import Api, JsonApi

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


def align_down(moment: datetime, period: timedelta) -> datetime:
    """The start of the period (of the day, in UTC) that holds the moment: windows start on whole periods."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((moment - midnight) // period) * period


@dataclass(frozen=True)
class Percentile:
    """A percentile read from a histogram: interpolated within its bucket, and the bucket's own bounds."""

    estimate: float
    lower: float
    upper: float

    def __str__(self) -> str:
        return f"{self.estimate:.0f} ms"


@dataclass(frozen=True)
class RequestStats:
    total: int
    server_errors: int
    p99: Percentile | None
    periods_with_data: int = 0
    """How many of the window's alignment periods have a request count point: all of them once the data is in."""
    p99_low: Percentile | None = None
    """The p99's lower 95 % confidence bound, where few requests leave it uncertain (None: p99 is taken as is)."""
    mean_ms: float | None = None
    """The exact mean latency, where every point of the window carries one."""
    p50: Percentile | None = None
    """The median: with the mean, whether the whole distribution moved (deploy/gates.py)."""

    @classmethod
    def measured(
        cls, total: int, server_errors: int, latencies: Sequence["Distribution"], periods_with_data: int
    ) -> "RequestStats":
        """The figures as a gate reads them from the histograms: the p99, its lower 95 % confidence bound, the exact
        mean and the median."""
        p99, low = percentile(latencies, 0.99), percentile(latencies, 0.99, confidence=0.95)
        return cls(total, server_errors, p99, periods_with_data, low, mean(latencies), percentile(latencies, 0.5))

    @property
    def error_rate(self) -> float:
        return self.server_errors / self.total if self.total else 0.0

    @property
    def p99_ms(self) -> float | None:
        return None if self.p99 is None else self.p99.estimate

    @property
    def p99_at_least(self) -> Percentile | None:
        """What the p99 is at least, with 95 % confidence: the figure a gate may fail a candidate on."""
        return self.p99_low or self.p99

    def __str__(self) -> str:
        return f"{self.total} requests, {self.server_errors} 5xx ({self.error_rate:.2%}), p99 {self.p99 or 'no data'}"


class Metrics(Protocol):
    def request_stats(self, revision: str, window: Window) -> RequestStats: ...


@dataclass(frozen=True)
class Distribution:
    """A Monitoring distribution: counts per bucket and the buckets' upper bounds (the last is infinite)."""

    bucket_counts: tuple[int, ...]
    upper_bounds: tuple[float, ...]
    mean: float | None = None
    """The exact mean of the values (Distribution.mean), which no bucket layout blurs."""


def bucket_upper_bounds(options: Mapping[str, Any], buckets: int) -> tuple[float, ...]:
    """Upper bounds of the buckets of a BucketOptions: underflow, the finite buckets, then overflow.

    Exponential bucket i (1..N) is [scale * growth^(i-1), scale * growth^i), linear bucket i is
    [offset + width * (i-1), offset + width * i); bucket 0 is the underflow below the first bound.
    """
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


def mean(distributions: Sequence[Distribution]) -> float | None:
    """The mean of the merged distributions, each mean weighted by its count; None unless every one has a mean."""
    weighted = [(one.mean, sum(one.bucket_counts)) for one in distributions]
    known = [(value, count) for value, count in weighted if value is not None]
    total = sum(count for _, count in known)
    if not total or len(known) < len(weighted):
        return None
    return sum(value * count for value, count in known) / total


def lower_confidence_rank(total: int, quantile: float, confidence: float) -> int:
    """The highest rank k such that the k-th smallest of `total` samples is at most the true quantile with the
    given confidence: the largest k with P(Binomial(total, quantile) >= k) >= confidence, summed from the top.

    Of 40 requests the p99 is then at least the 38th smallest (3rd slowest) with 95 % confidence; one or two slow
    requests among them are chance, not evidence. With many requests the rank nears quantile * total."""
    log_below, log_above = math.log(quantile), math.log1p(-quantile)
    tail = 0.0
    for rank in range(total, 0, -1):
        log_choose = math.lgamma(total + 1) - math.lgamma(rank + 1) - math.lgamma(total - rank + 1)
        tail += math.exp(log_choose + rank * log_below + (total - rank) * log_above)
        if tail >= confidence:
            return rank
    return 0


def percentile(
    distributions: Iterable[Distribution], quantile: float, confidence: float | None = None
) -> Percentile | None:
    """The quantile, interpolated linearly within the bucket that holds it (latencies are never below 0); with a
    confidence, its lower confidence bound instead (lower_confidence_rank).

    The upper bound alone would read a stable 250 ms as 256 and a candidate's 260 ms as 512 on doubling
    buckets; the estimate does not jump at a bucket edge, and the bucket's bounds say how sure it is.
    """
    merged: dict[float, int] = {}
    for distribution in distributions:
        for bound, count in zip(distribution.upper_bounds, distribution.bucket_counts, strict=False):
            merged[bound] = merged.get(bound, 0) + count
    total = sum(merged.values())
    if total == 0:
        return None
    rank = quantile * total if confidence is None else max(lower_confidence_rank(total, quantile, confidence), 1)
    seen, lower = 0, 0.0
    for upper in sorted(merged):
        count = merged[upper]
        if count and seen + count >= rank:
            if math.isinf(upper):
                return Percentile(lower, lower, upper)
            return Percentile(lower + (upper - lower) * max(rank - seen, 0) / count, lower, upper)
        seen += count
        lower = max(upper, 0.0)
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


def time_series_query(
    metric: str, service: str, revision: str, window: Window, period: timedelta
) -> list[tuple[str, str]]:
    """Query parameters of projects.timeSeries.list: one delta per period, per response class for the counts."""
    params = [
        ("filter", revision_filter(metric, service, revision)),
        ("interval.startTime", window.start.isoformat().replace("+00:00", "Z")),
        ("interval.endTime", window.end.isoformat().replace("+00:00", "Z")),
        ("aggregation.alignmentPeriod", f"{int(period.total_seconds())}s"),
        ("aggregation.perSeriesAligner", "ALIGN_DELTA"),
        ("aggregation.crossSeriesReducer", "REDUCE_SUM"),
    ]
    if metric == REQUEST_COUNT:
        params.append(("aggregation.groupByFields", "metric.labels.response_code_class"))
    return params


def parse_request_counts(series: Sequence[Mapping[str, Any]]) -> tuple[int, int, int]:
    """Requests, 5xx among them, and how many distinct periods carry a point."""
    total = errors = 0
    periods: set[str] = set()
    for one in series:
        for point in one.get("points", []):
            count = int(point["value"].get("int64Value", 0))
            total += count
            periods.add(point.get("interval", {}).get("endTime", ""))
            if one.get("metric", {}).get("labels", {}).get("response_code_class") == "5xx":
                errors += count
    return total, errors, len(periods)


def parse_distributions(series: Sequence[Mapping[str, Any]]) -> list[Distribution]:
    distributions = []
    for one in series:
        for point in one.get("points", []):
            value = point["value"].get("distributionValue", {})
            counts = tuple(int(count) for count in value.get("bucketCounts", []))
            if counts:
                bounds = bucket_upper_bounds(value["bucketOptions"], len(counts))
                mean = float(value["mean"]) if "mean" in value else None
                distributions.append(Distribution(counts, bounds, mean))
    return distributions


class MonitoringMetrics:
    """projects.timeSeries.list of the Monitoring API v3, where gcloud is configured to reach Google APIs."""

    def __init__(self, project: str, service: str, api: Api, root: str, period: timedelta) -> None:
        self._project = project
        self._service = service
        self._api = api
        self._url = f"{root.rstrip('/')}/v3/projects/{project}/timeSeries"
        self._period = period

    @classmethod
    def from_gcloud_config(
        cls,
        config: Mapping[str, Any],
        project: str,
        service: str,
        runner: Runner,
        period: timedelta,
        *,
        now: Callable[[], datetime],
        deadline: datetime,
    ) -> "MonitoringMetrics":
        """Monitoring where gcloud itself would call it, with gcloud's proxy, CA bundle and token."""
        api, connection = JsonApi.from_gcloud_config(config, runner, now, deadline)
        return cls(project, service, api, connection.root("monitoring"), period)

    def request_stats(self, revision: str, window: Window) -> RequestStats:
        total, errors, periods = parse_request_counts(self._list(REQUEST_COUNT, revision, window))
        latencies = parse_distributions(self._list(REQUEST_LATENCIES, revision, window))
        return RequestStats.measured(total, errors, latencies, periods)

    def _list(self, metric: str, revision: str, window: Window) -> list[dict[str, Any]]:
        series: list[dict[str, Any]] = []
        params = time_series_query(metric, self._service, revision, window, self._period)
        page = ""
        while True:
            query = urllib.parse.urlencode([*params, *([("pageToken", page)] if page else [])])
            body = self._api("GET", f"{self._url}?{query}")
            series.extend(body.get("timeSeries", []))
            page = body.get("nextPageToken", "")
            if not page:
                return series
