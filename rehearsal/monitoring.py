"""Cloud Monitoring's projects.timeSeries.list, answered from the router's records of each revision's requests.

Written from the Monitoring API v3 reference (TimeSeries, Aggregation, Distribution) and the Cloud Run metrics
list: `run.googleapis.com/request_count` (DELTA, INT64, labels response_code and response_code_class) and
`run.googleapis.com/request_latencies` (DELTA, DISTRIBUTION, ms), on the `cloud_run_revision` resource, are
sampled every 60 s and a sample may stay invisible for up to 180 s after it is taken. So a window read too
early comes back incomplete, as in Google Cloud.

Time is compressed like the rollout's own options: with compression c, every duration of Monitoring's is divided
by c (a sample covers 60/c seconds, the ingestion delay and the shortest alignment period too), while the caller
asks in real seconds, as the rollout does when its own metrics period is compressed. Timestamps stay real.

A filter, aligner, reducer or parameter this stand-in does not model is refused with 400 naming it, and
reported, so the test that caused it fails: an answer that only looks right would prove nothing.
"""

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rehearsal.api import ApiError, Json, invalid
from rehearsal.served import LATENCY_BOUNDS_MS, RequestLog, Served, bucket_of, response_code_class

REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
RESOURCE_TYPE = "cloud_run_revision"
RESOURCE_LABELS = ("project_id", "location", "service_name", "configuration_name", "revision_name")
METRIC_LABELS = ("response_code", "response_code_class")
PARAMETERS = {
    "filter",
    "interval.startTime",
    "interval.endTime",
    "aggregation.alignmentPeriod",
    "aggregation.perSeriesAligner",
    "aggregation.crossSeriesReducer",
    "aggregation.groupByFields",
    "pageSize",
    "pageToken",
    "view",
}
PERCENTILES = {"REDUCE_PERCENTILE_99": 0.99, "REDUCE_PERCENTILE_95": 0.95, "REDUCE_PERCENTILE_50": 0.5}


class Unmodelled(ApiError):
    """A query the stand-in does not model: 400, and reported so that the test that made it fails."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "INVALID_ARGUMENT", message)


CLAUSE = re.compile(r'\s*(metric\.type|resource\.type|(?:resource|metric)\.labels?\.[a-z_]+)\s*=\s*"([^"]*)"\s*')


@dataclass(frozen=True)
class MonitoringTime:
    compression: float = 1
    """How many times faster than Google Cloud the stand-in's clock runs."""
    sample_period: float = 60
    ingestion_delay: float = 180
    """Cloud Run's worst case: a sample may not be visible for up to 180 s after it is taken."""

    def real(self, cloud_seconds: float) -> float:
        return cloud_seconds / self.compression


def parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise invalid(f"cannot parse the timestamp {text!r} (RFC 3339 expected)") from None


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_duration(text: str) -> float:
    if not (found := re.fullmatch(r"(\d+(?:\.\d+)?)s", text)):
        raise invalid(f"cannot parse the duration {text!r} (like '60s')")
    return float(found[1])


def parse_filter(text: str) -> dict[str, str]:
    """A conjunction of `field = "value"` comparisons; anything richer is not modelled."""
    wanted: dict[str, str] = {}
    for clause in re.split(r"\s+AND\s+", text.strip()):
        if not (found := CLAUSE.fullmatch(clause)):
            raise Unmodelled(f"filter clause not modelled by the stand-in: {clause!r}")
        field = found[1].replace(".label.", ".labels.")
        wanted[field] = found[2]
    return wanted


def labels_of(one: Served, region: str) -> dict[str, str]:
    return {
        "resource.labels.project_id": one.namespace,
        "resource.labels.location": region,
        "resource.labels.service_name": one.service,
        "resource.labels.configuration_name": one.service,
        "resource.labels.revision_name": one.revision,
        "metric.labels.response_code": str(one.status),
        "metric.labels.response_code_class": response_code_class(one.status),
    }


def distribution(latencies: Sequence[float]) -> Json:
    counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for latency in latencies:
        counts[bucket_of(latency)] += 1
    while counts and counts[-1] == 0:  # "any suffix of trailing zero bucket_count fields may be omitted"
        counts.pop()
    mean = sum(latencies) / len(latencies)
    return {
        "count": str(len(latencies)),
        "mean": mean,
        "sumOfSquaredDeviation": sum((latency - mean) ** 2 for latency in latencies),
        "bucketOptions": {"explicitBuckets": {"bounds": list(LATENCY_BOUNDS_MS)}},
        "bucketCounts": [str(count) for count in counts],
    }


def percentile(latencies: Sequence[float], quantile: float) -> float:
    """From the buckets, as Monitoring does: linear interpolation inside the bucket that holds the rank."""
    counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for latency in latencies:
        counts[bucket_of(latency)] += 1
    rank = quantile * len(latencies)
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = 0.0 if index == 0 else float(LATENCY_BOUNDS_MS[index - 1])
            high = float(LATENCY_BOUNDS_MS[index]) if index < len(LATENCY_BOUNDS_MS) else low
            return low + (high - low) * (rank - seen) / count
        seen += count
    return 0.0


LABELS = {f"resource.labels.{name}" for name in RESOURCE_LABELS} | {f"metric.labels.{name}" for name in METRIC_LABELS}


@dataclass(frozen=True)
class Query:
    """A timeSeries.list request, checked: anything the stand-in does not model is refused, naming it."""

    metric: str
    wanted: dict[str, str]
    start: float
    end: float
    aligner: str
    reducer: str
    group_by: list[str]
    period: float

    @property
    def raw(self) -> bool:
        return self.aligner == "ALIGN_NONE"

    @classmethod
    def parse(cls, query: Mapping[str, Sequence[str]]) -> "Query":
        if unknown := sorted(set(query) - PARAMETERS):
            raise Unmodelled(f"query parameters not modelled by the stand-in: {unknown}")

        def one(name: str, default: str | None = None) -> str:
            values = query.get(name)
            if values:
                return values[0]
            if default is None:
                raise invalid(f"{name} is required")
            return default

        wanted = parse_filter(one("filter"))
        metric = wanted.pop("metric.type", "")
        if metric not in (REQUEST_COUNT, REQUEST_LATENCIES):
            raise invalid(
                f"metric.type {metric!r} is not one the stand-in serves: {REQUEST_COUNT}, {REQUEST_LATENCIES}"
            )
        if wanted.pop("resource.type", RESOURCE_TYPE) != RESOURCE_TYPE:
            raise invalid(f"the Cloud Run request metrics are on resource.type {RESOURCE_TYPE!r}")
        group_by = [field.replace(".label.", ".labels.") for field in query.get("aggregation.groupByFields", [])]
        if unknown_labels := sorted((set(wanted) | set(group_by)) - LABELS):
            raise Unmodelled(f"labels not on {metric}: {unknown_labels}")
        asked = cls(
            metric=metric,
            wanted=wanted,
            start=parse_time(one("interval.startTime", one("interval.endTime"))),
            end=parse_time(one("interval.endTime")),
            aligner=one("aggregation.perSeriesAligner", "ALIGN_NONE"),
            reducer=one("aggregation.crossSeriesReducer", "REDUCE_NONE"),
            group_by=group_by,
            period=parse_duration(one("aggregation.alignmentPeriod", "60s")),
        )
        asked.check()
        return asked

    def check(self) -> None:
        if self.start > self.end:
            raise invalid("interval.startTime is after interval.endTime")
        if self.aligner not in ("ALIGN_NONE", "ALIGN_DELTA"):
            raise Unmodelled(f"aggregation.perSeriesAligner {self.aligner} is not modelled by the stand-in")
        if self.reducer not in ("REDUCE_NONE", "REDUCE_SUM", *PERCENTILES):
            raise Unmodelled(f"aggregation.crossSeriesReducer {self.reducer} is not modelled by the stand-in")
        if self.reducer in PERCENTILES and self.metric != REQUEST_LATENCIES:
            raise invalid(f"{self.reducer} needs a distribution metric, not {self.metric}")
        if self.reducer != "REDUCE_NONE" and self.raw:
            raise invalid("a cross-series reducer needs a per-series aligner")


class Monitoring:
    def __init__(
        self,
        log: RequestLog,
        region: str,
        time: MonitoringTime,
        not_understood: Callable[[str], None],
        now: Callable[[], float],
    ) -> None:
        self._log = log
        self._region = region
        self.time = time
        self._not_understood = not_understood
        self._now = now

    def list_time_series(self, project: str, query: Mapping[str, Sequence[str]]) -> Json:
        try:
            return self._list(project, query)
        except Unmodelled as error:
            self._not_understood(f"Monitoring timeSeries.list: {error.message}")
            raise

    def _list(self, project: str, query: Mapping[str, Sequence[str]]) -> Json:
        asked = Query.parse(query)
        if not asked.raw and asked.period < (shortest := self.time.real(60)):
            raise invalid(f"aggregation.alignmentPeriod must be at least 60 seconds ({shortest:g} s on this clock)")
        visible = self._visible_samples(project, asked.wanted, asked.start if asked.raw else None, asked.end)
        if asked.raw:
            series = self._raw(visible)
        else:
            series = self._aligned(
                samples=visible,
                period=asked.period,
                start=asked.start,
                end=asked.end,
                reducer=asked.reducer,
                group_by=asked.group_by,
            )
        rendered = [self._render(asked.metric, labels, points, asked.reducer) for labels, points in series]
        rendered = [one_series for one_series in rendered if one_series["points"]]
        return self._page(rendered, query, "1" if asked.metric == REQUEST_COUNT else "ms")

    def _visible_samples(
        self, project: str, wanted: Mapping[str, str], start: float | None, end: float
    ) -> dict[tuple[tuple[str, str], ...], dict[float, list[Served]]]:
        """Samples by series labels and sample end time, those ingested by now."""
        sample = self.time.real(self.time.sample_period)
        visible_until = self._now() - self.time.real(self.time.ingestion_delay)
        samples: dict[tuple[tuple[str, str], ...], dict[float, list[Served]]] = defaultdict(lambda: defaultdict(list))
        for served in self._log.of(project):
            labels = labels_of(served, self._region)
            if any(labels.get(field) != value for field, value in wanted.items()):
                continue
            sample_end = (math.floor(served.at / sample) + 1) * sample
            if sample_end > visible_until or sample_end > end or (start is not None and sample_end <= start):
                continue
            samples[tuple(sorted(labels.items()))][sample_end].append(served)
        return samples

    def _raw(
        self, samples: Mapping[tuple[tuple[str, str], ...], Mapping[float, list[Served]]]
    ) -> list[tuple[dict[str, str], list[tuple[float, float, list[Served]]]]]:
        sample = self.time.real(self.time.sample_period)
        return [
            (dict(labels), [(at - sample, at, served) for at, served in sorted(points.items(), reverse=True)])
            for labels, points in samples.items()
        ]

    def _aligned(
        self,
        *,
        samples: Mapping[tuple[tuple[str, str], ...], Mapping[float, list[Served]]],
        period: float,
        start: float,
        end: float,
        reducer: str,
        group_by: Iterable[str],
    ) -> list[tuple[dict[str, str], list[tuple[float, float, list[Served]]]]]:
        """ALIGN_DELTA: periods of `period` seconds ending at the interval's end, each summing its samples."""
        ends: list[float] = []
        period_end = end
        while period_end > start or not ends:
            ends.append(period_end)
            period_end -= period
        grouped: dict[tuple[tuple[str, str], ...], dict[float, list[Served]]] = defaultdict(lambda: defaultdict(list))
        for labels, points in samples.items():
            kept = dict(labels) if reducer == "REDUCE_NONE" else {k: v for k, v in labels if k in set(group_by)}
            key = tuple(sorted(kept.items()))
            for sample_end, served in points.items():
                for one_end in ends:
                    if one_end - period < sample_end <= one_end:
                        grouped[key][one_end].extend(served)
                        break
        return [
            (dict(key), [(at - period, at, served) for at, served in sorted(points.items(), reverse=True)])
            for key, points in grouped.items()
        ]

    def _render(
        self, metric: str, labels: Mapping[str, str], points: list[tuple[float, float, list[Served]]], reducer: str
    ) -> Json:
        resource = {k.removeprefix("resource.labels."): v for k, v in labels.items() if k.startswith("resource.")}
        metric_labels = {k.removeprefix("metric.labels."): v for k, v in labels.items() if k.startswith("metric.")}
        rendered_points = []
        for start, end, served in points:
            if not served:
                continue
            if metric == REQUEST_COUNT:
                value: Json = {"int64Value": str(len(served))}
            elif reducer in PERCENTILES:
                value = {"doubleValue": percentile([one.latency_ms for one in served], PERCENTILES[reducer])}
            else:
                value = {"distributionValue": distribution([one.latency_ms for one in served])}
            rendered_points.append({"interval": {"startTime": rfc3339(start), "endTime": rfc3339(end)}, "value": value})
        value_type = "INT64" if metric == REQUEST_COUNT else "DOUBLE" if reducer in PERCENTILES else "DISTRIBUTION"
        return {
            "metric": {"type": metric, "labels": metric_labels},
            "resource": {"type": RESOURCE_TYPE, "labels": resource},
            "metricKind": "DELTA" if value_type != "DOUBLE" else "GAUGE",
            "valueType": value_type,
            "points": rendered_points,
        }

    @staticmethod
    def _page(series: list[Json], query: Mapping[str, Sequence[str]], unit: str) -> Json:
        size = int((query.get("pageSize") or ["100000"])[0])
        token = (query.get("pageToken") or ["0"])[0]
        if not token.isdigit() or size <= 0:
            raise invalid(f"bad pageToken {token!r} or pageSize {size}")
        offset = int(token)
        body: Json = {"timeSeries": series[offset : offset + size]} if series else {}
        if offset + size < len(series):
            body["nextPageToken"] = str(offset + size)
        body["unit"] = unit
        return body
