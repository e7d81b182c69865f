"""The Monitoring stand-in against the v3 reference: timeSeries.list's field names and value encodings, ALIGN_DELTA
periods that end at the interval's end, REDUCE_SUM by response class, the request_latencies bucket layout, the
ingestion delay, and a 400 for what it does not model."""

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from deploy.gcloud import run_gcloud
from deploy.google_api import gcloud_config
from deploy.metrics import MonitoringMetrics, Window
from rehearsal.api import ApiError
from rehearsal.cloud import Cloud
from rehearsal.monitoring import REQUEST_COUNT, REQUEST_LATENCIES, Monitoring, MonitoringTime, percentile, rfc3339
from rehearsal.served import LATENCY_BOUNDS_MS, RequestLog, Served, bucket_of

T0 = 1_800_000_000.0  # a whole minute
PROJECT, SERVICE, REVISION = "p", "svc", "svc-00001-abc"


def served(at: float, status: int = 200, latency: float = 7.0, revision: str = REVISION) -> Served:
    return Served(at, PROJECT, SERVICE, revision, status, latency, None)


def query(
    metric: str, start: float, end: float, *, group_by: str | None = None, reducer: str = "REDUCE_SUM", **more: str
) -> dict[str, list[str]]:
    filter_text = (
        f'metric.type="{metric}" AND resource.type="cloud_run_revision" '
        f'AND resource.labels.service_name="{SERVICE}" AND resource.labels.revision_name="{REVISION}"'
    )
    asked = {
        "filter": [filter_text],
        "interval.startTime": [rfc3339(start)],
        "interval.endTime": [rfc3339(end)],
        "aggregation.alignmentPeriod": ["60s"],
        "aggregation.perSeriesAligner": ["ALIGN_DELTA"],
        "aggregation.crossSeriesReducer": [reducer],
        **{name: [value] for name, value in more.items()},
    }
    if group_by:
        asked["aggregation.groupByFields"] = [group_by]
    return asked


def monitoring(entries: Sequence[Served], now: float, delay: float = 0) -> tuple[Monitoring, list[str]]:
    log = RequestLog()
    for one in entries:
        log.add(one)
    refused: list[str] = []
    return Monitoring(log, "europe-west1", MonitoringTime(ingestion_delay=delay), refused.append, lambda: now), refused


def test_request_count_is_a_delta_int64_series_per_response_class_with_string_values() -> None:
    entries = [served(T0 + 10 + index, 200) for index in range(8)] + [served(T0 + 30, 503), served(T0 + 31, 404)]
    stand_in, _ = monitoring(entries, now=T0 + 600)
    body = stand_in.list_time_series(
        PROJECT, query(REQUEST_COUNT, T0, T0 + 60, group_by="metric.labels.response_code_class")
    )
    by_class = {one["metric"]["labels"]["response_code_class"]: one for one in body["timeSeries"]}
    assert set(by_class) == {"2xx", "4xx", "5xx"}
    series = by_class["2xx"]
    assert series["metricKind"] == "DELTA"
    assert series["valueType"] == "INT64"
    assert series["resource"]["type"] == "cloud_run_revision"
    assert series["metric"]["type"] == REQUEST_COUNT
    (point,) = series["points"]
    assert point["value"] == {"int64Value": "8"}
    assert point["interval"] == {"startTime": rfc3339(T0), "endTime": rfc3339(T0 + 60)}
    assert by_class["5xx"]["points"][0]["value"] == {"int64Value": "1"}


def test_aligned_periods_end_at_the_interval_end_newest_first_and_empty_ones_are_left_out() -> None:
    entries = [served(T0 + 5), served(T0 + 70), served(T0 + 75), served(T0 + 200)]
    stand_in, _ = monitoring(entries, now=T0 + 900)
    body = stand_in.list_time_series(PROJECT, query(REQUEST_COUNT, T0, T0 + 180))
    points = body["timeSeries"][0]["points"]
    assert [point["interval"]["endTime"] for point in points] == [rfc3339(T0 + 120), rfc3339(T0 + 60)]
    assert [point["value"]["int64Value"] for point in points] == ["2", "1"]


def test_request_latencies_are_distributions_in_the_explicit_layout_with_trailing_zero_buckets_left_out() -> None:
    latencies = [3.0, 7.0, 7.5, 12.0, 45.0]
    stand_in, _ = monitoring([served(T0 + 1 + index, latency=value) for index, value in enumerate(latencies)], T0 + 600)
    body = stand_in.list_time_series(PROJECT, query(REQUEST_LATENCIES, T0, T0 + 60))
    assert body["unit"] == "ms"
    value = body["timeSeries"][0]["points"][0]["value"]["distributionValue"]
    assert value["bucketOptions"] == {"explicitBuckets": {"bounds": list(LATENCY_BOUNDS_MS)}}
    assert value["count"] == "5"
    assert value["mean"] == pytest.approx(sum(latencies) / 5)
    # Below 5 ms, [5, 10), [10, 20), [20, 40), [40, 60): the buckets above hold nothing and are not sent.
    assert value["bucketCounts"] == ["1", "2", "1", "0", "1"]


def test_the_bucket_layout_puts_a_bound_in_the_bucket_above_it() -> None:
    assert [bucket_of(value) for value in (0, 4.99, 5, 9.99, 10, 100000, 10**7)] == [0, 0, 1, 1, 2, 26, 26]


def test_read_too_early_a_window_is_incomplete_as_in_google_cloud() -> None:
    entries = [served(T0 + second) for second in range(0, 120, 2)]
    stand_in, _ = monitoring(entries, now=T0 + 120 + 10, delay=180)
    early = stand_in.list_time_series(PROJECT, query(REQUEST_COUNT, T0, T0 + 120))
    assert early == {"unit": "1"}
    stand_in, _ = monitoring(entries, now=T0 + 120 + 180)
    late = stand_in.list_time_series(PROJECT, query(REQUEST_COUNT, T0, T0 + 120))
    assert sum(int(point["value"]["int64Value"]) for point in late["timeSeries"][0]["points"]) == 60


def test_compressed_time_divides_every_period_and_the_delay() -> None:
    log = RequestLog()
    for index in range(20):
        log.add(served(T0 + index * 0.5))
    clock = MonitoringTime(compression=60, ingestion_delay=180)
    stand_in = Monitoring(log, "europe-west1", clock, pytest.fail, lambda: T0 + 10 + 3)
    body = stand_in.list_time_series(
        PROJECT, query(REQUEST_COUNT, T0, T0 + 10, **{"aggregation.alignmentPeriod": "1s"})
    )
    points = body["timeSeries"][0]["points"]
    assert len(points) == 10, "Monitoring's 60 s are one second on this clock: a sample each"
    assert sum(int(point["value"]["int64Value"]) for point in points) == 20
    with pytest.raises(ApiError, match="at least 60 seconds"):  # the reference's rule, not a gap of the stand-in
        stand_in.list_time_series(PROJECT, query(REQUEST_COUNT, T0, T0 + 10, **{"aggregation.alignmentPeriod": "0.5s"}))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"filter": ['metric.type="x" OR resource.type="y"']}, "filter clause"),
        ({"aggregation.perSeriesAligner": ["ALIGN_RATE"]}, "ALIGN_RATE"),
        ({"aggregation.crossSeriesReducer": ["REDUCE_MEAN"]}, "REDUCE_MEAN"),
        ({"secondaryAggregation.alignmentPeriod": ["60s"]}, "secondaryAggregation"),
        ({"aggregation.groupByFields": ["metadata.user_labels.team"]}, "metadata.user_labels.team"),
    ],
)
def test_what_the_stand_in_does_not_model_is_400_naming_it_and_reported(
    change: dict[str, list[str]], named: str
) -> None:
    stand_in, refused = monitoring([], now=T0)
    asked = {**query(REQUEST_COUNT, T0, T0 + 60), **change}
    with pytest.raises(ApiError) as raised:
        stand_in.list_time_series(PROJECT, asked)
    assert raised.value.code == 400
    assert named in raised.value.message
    assert named in refused[0]


def test_percentile_reducers_interpolate_within_the_bucket() -> None:
    assert percentile([12.0] * 100, 0.99) == pytest.approx(10 + 10 * 0.99)
    stand_in, _ = monitoring([served(T0 + 1, latency=value) for value in [12.0] * 100], now=T0 + 600)
    body = stand_in.list_time_series(PROJECT, query(REQUEST_LATENCIES, T0, T0 + 60, reducer="REDUCE_PERCENTILE_99"))
    assert body["timeSeries"][0]["points"][0]["value"]["doubleValue"] == pytest.approx(19.9)


def test_pages_follow_next_page_token() -> None:
    entries = [served(T0 + 1, status) for status in (200, 404, 500)]
    stand_in, _ = monitoring(entries, now=T0 + 600)
    asked = query(REQUEST_COUNT, T0, T0 + 60, group_by="metric.labels.response_code_class", pageSize="2")
    first = stand_in.list_time_series(PROJECT, asked)
    assert len(first["timeSeries"]) == 2
    second = stand_in.list_time_series(PROJECT, {**asked, "pageToken": [first["nextPageToken"]]})
    assert len(second["timeSeries"]) == 1
    assert "nextPageToken" not in second


@pytest.mark.slow
def test_the_rollouts_client_reads_the_router_records_over_http(
    stand_ins: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = f"monitoring-{uuid.uuid4().hex[:8]}"
    start = (datetime.now(UTC).timestamp() // 60 - 7) * 60  # a whole minute, long enough ago to be ingested
    records = [
        Served(start + index, project, SERVICE, REVISION, 500 if index % 10 == 0 else 200, 3.0 * index, None)
        for index in range(40)
    ]
    stand_ins.call(lambda: stand_ins.requests.entries.extend(records))
    # Configured as the rollout is in the rehearsal: gcloud's configuration, its proxy and override included.
    for name, value in stand_ins.gcloud_environment().items():
        monkeypatch.setenv(name, value)
    now = datetime.now(UTC)
    metrics = MonitoringMetrics.from_gcloud_config(
        gcloud_config(run_gcloud),
        project,
        SERVICE,
        run_gcloud,
        timedelta(minutes=1),
        now=lambda: now,
        deadline=now + timedelta(minutes=1),
    )
    stats = metrics.request_stats(
        REVISION, Window(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + 60, UTC))
    )
    assert (stats.total, stats.server_errors) == (40, 4)
    assert stats.p99_ms is not None
    assert 100 < stats.p99_ms <= 150, "the slowest, 117 ms, is in the bucket [100, 150)"
    url = f"http://127.0.0.1:{stand_ins.monitoring_port}/v3/projects/{project}/metricDescriptors"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 400
    assert "metricDescriptors" in json.load(refused.value)["error"]["message"]
    assert "metricDescriptors" in stand_ins.not_understood.pop()
