"""The rollout's edges and rules: the gates' statistics, Monitoring queries and answers, the Cloud Run adapter's
reads and writes, the revision file, the synthetic load, gcloud's time limits and the CLI."""

import http.server
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.__main__ import main, parser, terminate_once, timestamp
from deploy.cloud_run import CloudRunAdmin, CloudRunError, Service, TrafficConflict
from deploy.gates import Thresholds, judge, wilson_interval
from deploy.gcloud import GcloudError, GcloudRunner
from deploy.google_api import ApiError, GcloudConnection, JsonApi, gcloud_config
from deploy.load import USERS_PER_TARGET, SyntheticLoad
from deploy.lock import RolloutBlocked, StorageError
from deploy.metrics import (
    REQUEST_COUNT,
    REQUEST_LATENCIES,
    Distribution,
    MonitoringMetrics,
    Percentile,
    RequestStats,
    Window,
    align_down,
    bucket_upper_bounds,
    lower_confidence_rank,
    parse_distributions,
    parse_request_counts,
    percentile,
    time_series_query,
)
from deploy.revision import REVISION_FILE, RevisionTemplate
from deploy.rollout import OperatorIntervened, Rollout, RolloutFailed, RolloutPlan, Terminated
from tests.support.fake_cloud import PROJECT_NUMBER, FakeCloudRun, JumpingClock, cloud_run_admin

WINDOW = Window(datetime(2026, 11, 30, 9, 2, tzinfo=UTC), datetime(2026, 11, 30, 9, 7, tzinfo=UTC))
MINUTE = timedelta(minutes=1)
# Exponential buckets that double from 1 ms: the layout of the example (250 ms reads as 256 by its bound).
DOUBLING = {"exponentialBuckets": {"numFiniteBuckets": 20, "growthFactor": 2, "scale": 1}}
# The layout Google documents for another serving latency, load balancing's backend_latencies (slo-generator #56).
ROOT_TWO = {"exponentialBuckets": {"numFiniteBuckets": 64, "growthFactor": math.sqrt(2), "scale": 1}}


def distribution(options: dict[str, Any], samples: list[float]) -> Distribution:
    layout = next(iter(options.values()))
    buckets = len(layout["bounds"]) + 1 if "bounds" in layout else int(layout["numFiniteBuckets"]) + 2
    bounds = bucket_upper_bounds(options, buckets)
    counts = [0] * len(bounds)
    for sample in samples:
        counts[next(index for index, bound in enumerate(bounds) if sample < bound)] += 1
    return Distribution(tuple(counts), bounds, sum(samples) / len(samples))


def stats(samples: list[float], total: int = 1000, errors: int = 0, options: dict[str, Any] = DOUBLING) -> RequestStats:
    return RequestStats.measured(total, errors, [distribution(options, samples)], 5)


def spread(p99: float, count: int = 1000) -> list[float]:
    """Latencies from 20 ms up, whose 99th percentile is p99: the shape of a service's latency, not one value."""
    return [20 + (p99 - 20) * index / (0.99 * count) for index in range(count)]


# -- 5. the gates' statistics --------------------------------------------------------------------------


@given(st.lists(st.floats(min_value=0, max_value=4000), min_size=1, max_size=300), st.integers(1, 99))
def test_the_percentile_lies_in_the_bucket_of_the_true_value(samples: list[float], q: int) -> None:
    quantile = q / 100
    true_value = sorted(samples)[math.ceil(quantile * len(samples)) - 1]
    found = percentile([distribution(DOUBLING, samples)], quantile)
    assert found is not None
    assert found.lower <= true_value < found.upper
    assert found.lower <= found.estimate <= found.upper


@pytest.mark.parametrize("options", [DOUBLING, ROOT_TWO], ids=["doubling", "root-two"])
def test_a_stable_250_ms_and_a_candidate_260_ms_pass_the_ratio_gate(options: dict[str, Any]) -> None:
    stable = stats(spread(250), options=options)
    candidate = stats(spread(260), options=options)
    assert judge(candidate, stable, Thresholds()) == []
    assert stable.p99 is not None
    assert abs(stable.p99.estimate - 250) < 0.2 * 250, "interpolated, not the bucket's upper bound"


@pytest.mark.parametrize("options", [DOUBLING, ROOT_TWO], ids=["doubling", "root-two"])
def test_a_candidate_three_times_slower_fails_the_ratio_gate(options: dict[str, Any]) -> None:
    lenient = Thresholds(max_p99_ms=5000)
    failures = judge(stats(spread(750), options=options), stats(spread(250), options=options), lenient)
    assert len(failures) == 1
    assert failures[0].startswith("latency vs stable: p99 ")
    assert "more than 1.5x" in failures[0]


KNATIVE = {"explicitBuckets": {"bounds": [5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300]}}
"""The queue-proxy layout the rehearsal's router records: doubling below 40 ms, as coarse as that."""


def test_a_candidate_three_times_slower_in_the_neighbouring_bucket_fails_on_its_mean_and_median() -> None:
    # As the rehearsal saw it: the stable's p99 14 ms in [10, 20), the candidate's 37 ms in [20, 40). The buckets
    # touch, so only the whole distribution can tell this from 250 and 260 ms.
    stable = stats([4 + 10 * index / 990 for index in range(1000)], options=KNATIVE)
    candidate = stats([12 + 25 * index / 990 for index in range(1000)], options=KNATIVE)
    assert stable.p99 is not None
    assert candidate.p99_at_least is not None
    assert candidate.p99_at_least.lower == stable.p99.upper == 20, "neighbouring buckets"
    failures = judge(candidate, stable, Thresholds())
    assert [failure.split(":")[0] for failure in failures] == ["latency vs stable"]
    assert failures[0].endswith("(mean 25 ms against 9 ms, median 25 ms against 9 ms)")
    assert judge(replace(candidate, mean_ms=None), stable, Thresholds()) == [], "without the mean: no evidence"


def test_a_new_revisions_few_slow_first_requests_in_the_neighbouring_bucket_fail_nothing() -> None:
    # As the rehearsal saw a good release at 10 %: 32 requests, three of them slow while the process was new;
    # its mean doubled with them, its median did not.
    stable = stats([2.0] * 146 + [9.0] * 2, total=148, options=KNATIVE)
    candidate = stats([3.0] * 29 + [17.0, 18.0, 19.0], total=32, options=KNATIVE)
    assert candidate.mean_ms is not None
    assert stable.mean_ms is not None
    assert candidate.mean_ms > 1.5 * stable.mean_ms
    assert judge(candidate, stable, Thresholds()) == []


def test_the_ratio_gate_never_fails_on_a_difference_within_one_bucket() -> None:
    # All of the stable's requests at 250 ms and all of the candidate's at 260 ms: doubling buckets put them
    # in neighbouring buckets and interpolate both near the top, twice apart. Neighbours never fail the gate.
    stable, candidate = stats([250.0] * 1000), stats([260.0] * 1000)
    assert candidate.p99 is not None
    assert stable.p99 is not None
    assert candidate.p99.estimate > 1.5 * stable.p99.estimate
    assert judge(candidate, stable, Thresholds()) == [], "their means are 4 % apart"


def binomial_tail(total: int, quantile: float, rank: int) -> float:
    """P(Binomial(total, quantile) >= rank), summed term by term."""
    return sum(math.comb(total, k) * quantile**k * (1 - quantile) ** (total - k) for k in range(rank, total + 1))


@given(st.integers(1, 300))
def test_the_p99s_lower_bound_is_the_highest_order_statistic_below_it_with_95_percent_confidence(total: int) -> None:
    rank = lower_confidence_rank(total, 0.99, 0.95)
    assert binomial_tail(total, 0.99, rank) >= 0.95
    assert rank == total or binomial_tail(total, 0.99, rank + 1) < 0.95


def test_one_slow_request_among_40_fails_no_latency_gate() -> None:
    stable = stats(spread(120))
    candidate = stats([120.0] * 39 + [3000.0], total=40)
    assert candidate.p99 is not None
    assert candidate.p99.estimate > 1000, "the bare p99 of 40 requests is their slowest"
    assert judge(candidate, stable, Thresholds()) == []
    assert judge(stats([120.0] * 38 + [3000.0] * 2, total=40), stable, Thresholds()) == []


def test_three_slow_requests_among_40_fail_both_latency_gates() -> None:
    candidate = stats([120.0] * 37 + [3000.0] * 3, total=40)
    failures = judge(candidate, stats(spread(120)), Thresholds())
    assert [failure.split(":")[0] for failure in failures] == ["latency", "latency vs stable"]
    assert "with 95 % confidence" in failures[0]


@pytest.mark.parametrize(
    ("errors", "total", "fails"),
    [(1, 30, False), (2, 30, True), (6, 600, False), (18, 600, True), (0, 30, False), (30, 30, True)],
)
def test_the_error_rate_fails_only_when_its_95_percent_lower_bound_is_over_the_limit(
    errors: int, total: int, fails: bool
) -> None:
    failures = judge(stats(spread(100), total=total, errors=errors), None, Thresholds())
    assert bool(failures) is fails, failures


def test_the_wilson_interval_holds_the_observed_share_and_narrows_with_more_requests() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(1, 30)
    assert low < 1 / 30 < high
    wide, narrow = wilson_interval(10, 100), wilson_interval(100, 1000)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_a_higher_error_rate_than_stable_fails_only_when_both_intervals_say_so() -> None:
    stable = stats(spread(100), total=10_000, errors=10)
    assert judge(stats(spread(100), total=600, errors=3), stable, Thresholds()) == []
    failures = judge(stats(spread(100), total=2000, errors=40), stable, Thresholds())
    assert [failure.split(":")[0] for failure in failures] == ["error rate", "error rate vs stable"]


def test_no_data_never_passes_any_gate() -> None:
    no_latency = RequestStats(600, 0, None, 5)
    assert judge(no_latency, None, Thresholds()) == ["latency: no latency data for 600 requests"]
    assert judge(stats(spread(100)), no_latency, Thresholds()) == [
        "latency vs stable: no latency data for the stable revision's 600 requests"
    ]
    assert judge(RequestStats(29, 0, Percentile(1, 0, 2), 5), None, Thresholds())[0].startswith("traffic: 29")


def test_the_stable_revision_is_a_yardstick_only_with_enough_requests_of_its_own() -> None:
    assert judge(stats(spread(600)), stats(spread(10), total=5), Thresholds()) == []


# -- Monitoring --------------------------------------------------------------------------------------------


def test_distributions_from_several_points_are_merged_and_an_empty_one_has_no_percentile() -> None:
    fast = distribution(DOUBLING, [1.5] * 98)
    slow = distribution(DOUBLING, [300.0] * 2)
    merged = percentile([fast, slow], 0.99)
    assert merged is not None
    assert (merged.lower, merged.upper) == (256, 512)
    assert percentile([], 0.99) is None


def test_a_percentile_in_the_overflow_bucket_is_its_lower_bound() -> None:
    overflow = Distribution((0, 0, 10), (1.0, 2.0, math.inf))
    assert percentile([overflow], 0.99) == Percentile(2.0, 2.0, math.inf)


def test_bucket_bounds_follow_the_three_bucket_layouts() -> None:
    exponential = {"exponentialBuckets": {"numFiniteBuckets": 2, "growthFactor": 2, "scale": 1}}
    assert bucket_upper_bounds(exponential, 4) == (1.0, 2.0, 4.0, math.inf)
    linear = {"linearBuckets": {"numFiniteBuckets": 2, "width": 10, "offset": 5}}
    assert bucket_upper_bounds(linear, 4) == (5.0, 15.0, 25.0, math.inf)
    assert bucket_upper_bounds({"explicitBuckets": {"bounds": [10, 100]}}, 2) == (10.0, 100.0)
    assert bucket_upper_bounds({"explicitBuckets": {"bounds": [10]}}, 4) == (10.0, math.inf, math.inf, math.inf)
    with pytest.raises(ValueError, match="unknown bucket options"):
        bucket_upper_bounds({}, 1)


def test_windows_start_on_whole_periods() -> None:
    moment = datetime(2026, 11, 30, 9, 7, 42, 5, tzinfo=UTC)
    assert align_down(moment, MINUTE) == datetime(2026, 11, 30, 9, 7, tzinfo=UTC)
    assert align_down(moment, timedelta(seconds=10)) == datetime(2026, 11, 30, 9, 7, 40, tzinfo=UTC)


def test_the_count_query_reads_one_revision_minute_by_minute_by_response_class() -> None:
    params = dict(time_series_query(REQUEST_COUNT, "birthday-api", "birthday-api-abc", WINDOW, MINUTE))
    assert params["filter"] == (
        'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" AND '
        'resource.labels.service_name="birthday-api" AND resource.labels.revision_name="birthday-api-abc"'
    )
    assert (params["interval.startTime"], params["interval.endTime"]) == (
        "2026-11-30T09:02:00Z",
        "2026-11-30T09:07:00Z",
    )
    assert params["aggregation.alignmentPeriod"] == "60s", "one point a minute: a missing minute shows"
    assert params["aggregation.groupByFields"] == "metric.labels.response_code_class"
    latency = dict(time_series_query(REQUEST_LATENCIES, "birthday-api", "birthday-api-abc", WINDOW, MINUTE))
    assert "aggregation.groupByFields" not in latency
    assert latency["aggregation.crossSeriesReducer"] == "REDUCE_SUM"


def point(end: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"interval": {"endTime": end}, "value": value}


def test_answers_are_parsed_into_totals_errors_periods_and_distributions() -> None:
    counts: list[dict[str, Any]] = [
        {
            "metric": {"labels": {"response_code_class": "2xx"}},
            "points": [point("09:03", {"int64Value": "900"}), point("09:04", {"int64Value": "70"})],
        },
        {"metric": {"labels": {"response_code_class": "4xx"}}, "points": [point("09:04", {"int64Value": "20"})]},
        {"metric": {"labels": {"response_code_class": "5xx"}}, "points": [point("09:05", {"int64Value": "10"})]},
    ]
    assert parse_request_counts(counts) == (1000, 10, 3)
    options = {"exponentialBuckets": {"numFiniteBuckets": 3, "growthFactor": 2, "scale": 100}}
    latencies = [{"points": [{"value": {"distributionValue": {"bucketOptions": options, "bucketCounts": ["5", "3"]}}}]}]
    assert parse_distributions(latencies) == [Distribution((5, 3), (100.0, 200.0))]
    assert parse_distributions([{"points": [{"value": {"distributionValue": {}}}]}]) == []


def test_request_stats_describe_themselves() -> None:
    assert str(RequestStats(200, 3, Percentile(250.4, 128, 256), 5)) == "200 requests, 3 5xx (1.50%), p99 250 ms"
    assert str(RequestStats(0, 0, None)) == "0 requests, 0 5xx (0.00%), p99 no data"
    assert str(WINDOW) == "09:02:00-09:07:00Z"


class ScriptedMonitoring(http.server.BaseHTTPRequestHandler):
    """Answers projects.timeSeries.list like the Monitoring API: two pages of counts, one page of latencies."""

    seen: ClassVar[list[tuple[str, dict[str, list[str]], str | None]]] = []

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        type(self).seen.append((url.path, query, self.headers.get("Authorization")))
        if "request_count" in query["filter"][0]:
            if "pageToken" not in query:
                body: dict[str, Any] = {"timeSeries": [series("2xx", 900)], "nextPageToken": "page-2"}
            else:
                body = {"timeSeries": [series("5xx", 100)]}
        else:
            options = {"explicitBuckets": {"bounds": [100, 200, 400]}}
            value = {"distributionValue": {"bucketOptions": options, "bucketCounts": ["980", "15", "5"]}}
            body = {"timeSeries": [{"points": [{"value": value}]}]}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what was asked, not a log."""


def series(response_class: str, count: int) -> dict[str, Any]:
    return {
        "metric": {"labels": {"response_code_class": response_class}},
        "points": [point("2026-11-30T09:07:00Z", {"int64Value": str(count)})],
    }


@pytest.fixture
def scripted_monitoring() -> Iterator[str]:
    """The root URL of a Monitoring API that answers ScriptedMonitoring's pages."""
    ScriptedMonitoring.seen.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedMonitoring)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_the_monitoring_adapter_pages_through_answers_and_sends_its_token(scripted_monitoring: str) -> None:
    now = datetime.now(UTC)
    api = JsonApi(GcloudConnection.from_config({}), lambda: "t0ken", lambda: now, now + MINUTE)
    found = MonitoringMetrics("p", "birthday-api", api, scripted_monitoring, MINUTE).request_stats(
        "birthday-api-abc", WINDOW
    )
    # 980 under 100 ms, 15 in 100-200 ms: the 990th is 10/15 into the 100-200 ms bucket.
    # Its lower 95 % confidence bound is the 985th of 1000 (lower_confidence_rank): 5/15 into the bucket. The
    # median is the 500th, 500/980 into the first bucket; the answer gives no mean.
    p99, low = Percentile(100 + 100 * 10 / 15, 100, 200), Percentile(100 + 100 * 5 / 15, 100, 200)
    assert found == RequestStats(1000, 100, p99, 1, low, None, Percentile(100 * 500 / 980, 0, 100))
    assert {path for path, _, _ in ScriptedMonitoring.seen} == {"/v3/projects/p/timeSeries"}
    assert [query.get("pageToken") for _, query, _ in ScriptedMonitoring.seen] == [None, ["page-2"], None]
    assert {authorization for _, _, authorization in ScriptedMonitoring.seen} == {"Bearer t0ken"}


def answering(stdout: str) -> Any:
    def runner(command: Sequence[str], stdin: str | None = None) -> str:
        ran.append(list(command))
        return stdout

    ran: list[list[str]] = []
    runner.ran = ran  # type: ignore[attr-defined]
    return runner


def test_monitoring_is_called_where_gcloud_is_configured_to_call_it(scripted_monitoring: str) -> None:
    config = {"api_endpoint_overrides": {"monitoring": scripted_monitoring}, "auth": {"disable_credentials": "true"}}
    runner = answering("ya29.token\n")
    now = datetime.now(UTC)
    metrics = MonitoringMetrics.from_gcloud_config(
        config, "p", "birthday-api", runner, MINUTE, now=lambda: now, deadline=now + MINUTE
    )
    assert metrics.request_stats("birthday-api-abc", WINDOW).total == 1000
    assert {authorization for _, _, authorization in ScriptedMonitoring.seen} == {None}, "credentials disabled"
    assert runner.ran == [], "no token asked for"


def test_gcloud_reports_its_monitoring_override_and_disabled_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING", "http://127.0.0.1:9090/")
    monkeypatch.setenv("CLOUDSDK_AUTH_DISABLE_CREDENTIALS", "true")
    runner = GcloudRunner(lambda: datetime.now(UTC), datetime.now(UTC) + MINUTE, MINUTE)
    connection = GcloudConnection.from_config(gcloud_config(runner))
    assert (connection.root("monitoring"), connection.credentials) == ("http://127.0.0.1:9090/", False)
    assert GcloudConnection.from_config({}).root("monitoring") == "https://monitoring.googleapis.com/"


# -- Cloud Run: gcloud run deploy, and the Admin API for the rest ---------------------------------------------


def test_a_service_reads_spec_and_status_apart() -> None:
    service = Service(
        {
            "metadata": {"generation": 7, "resourceVersion": "AAY1"},
            "spec": {
                "traffic": [{"latestRevision": True, "percent": 100}, {"revisionName": "svc-new", "tag": "c-new"}]
            },
            "status": {
                "observedGeneration": 6,
                "latestReadyRevisionName": "svc-old",
                "traffic": [{"revisionName": "svc-old", "percent": 100, "latestRevision": True}],
                "conditions": [{"type": "Ready", "status": "False", "message": "Revision 'svc-new' is not ready"}],
            },
        }
    )
    assert (service.generation, service.observed_generation, service.resource_version) == (7, 6, "AAY1")
    assert service.split() == service.desired_split() == {"svc-old": 100}, "LATEST is the latest ready revision"
    assert service.tags() == {"c-new": "svc-new"}
    assert service.served_tags() == {}
    assert service.tag_url("c-new") is None, "a tag has a URL only once Cloud Run serves it"
    assert not service.settled()
    assert service.ready_message() == "Revision 'svc-new' is not ready"
    assert service.condition("RoutesReady") == {}


def test_the_object_written_back_is_the_one_read_with_only_traffic_changed() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    read = Service(fake.get())
    document = read.with_traffic({"svc-a": 100}, {"stable": "svc-a"})
    assert "status" not in document, "output only"
    assert document["metadata"] == fake.get()["metadata"], "resourceVersion and namespace unmodified, as read"
    assert document["spec"]["template"] == fake.get()["spec"]["template"]
    assert document["spec"]["traffic"] == [
        {"revisionName": "svc-a", "percent": 100},
        {"revisionName": "svc-a", "tag": "stable"},
    ]


def admin(fake: FakeCloudRun) -> tuple[CloudRunAdmin, JumpingClock]:
    clock = JumpingClock(datetime(2026, 11, 30, 9, tzinfo=UTC))
    return cloud_run_admin(fake, clock), clock


def test_a_traffic_write_puts_the_read_object_and_reads_until_cloud_run_has_applied_it() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    fake.stale_reads = 2
    cloud_run, clock = admin(fake)
    read = cloud_run.describe()
    written = cloud_run.write_traffic(read, {"svc-a": 100}, {"stable": "svc-a"})
    assert written.complaint is None
    assert (written.service.generation, written.service.observed_generation) == (read.generation + 1,) * 2
    assert fake.puts[-1]["metadata"]["resourceVersion"] == read.resource_version
    assert fake.calls == [
        "namespaces.services.get svc",
        "namespaces.services.replaceService svc",
        *["namespaces.services.get svc"] * 3,
    ]
    assert len(clock.sleeps) == 2, "a second between reads while status still described the previous generation"
    assert cloud_run.write_traffic(written.service, {"svc-a": 100}, {"stable": "svc-a"}).service == written.service
    assert len(fake.calls) == 5, "nothing to change, nothing written"


def test_a_write_cloud_run_refuses_is_reported_and_changes_nothing() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    cloud_run, _ = admin(fake)
    read = cloud_run.describe()
    with pytest.raises(CloudRunError, match=r"traffic write not applied: 400 INVALID_ARGUMENT: Traffic targets sum"):
        cloud_run.write_traffic(read, {"svc-a": 50}, {})
    assert cloud_run.describe().generation == read.generation


def test_a_write_on_a_stale_read_is_refused_and_theirs_stands() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    cloud_run, _ = admin(fake)
    read = cloud_run.describe()
    fake.operator("--update-tags=mine=svc-a")
    with pytest.raises(TrafficConflict, match=r"around this rollout's write: someone else changed it, and their"):
        cloud_run.write_traffic(read, {"svc-a": 100}, {"stable": "svc-a"})
    assert fake.spec_tags() == {"mine": "svc-a"}


def test_a_write_right_after_ours_is_a_conflict_too() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    cloud_run, _ = admin(fake)
    read = cloud_run.describe()

    def operator_right_after(call: str) -> None:
        fake.fail_after_put = lambda call: None
        fake.operator("--update-tags=theirs=svc-a")

    fake.fail_after_put = operator_right_after
    with pytest.raises(TrafficConflict, match=r"right after this rollout's write") as conflict:
        cloud_run.write_traffic(read, {"svc-a": 100}, {"c-x": "svc-a"})
    assert conflict.value.now.tags() == {"c-x": "svc-a", "theirs": "svc-a"}


def test_a_conflict_on_status_alone_is_written_again_on_the_object_as_it_is() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    cloud_run, _ = admin(fake)
    read = cloud_run.describe()

    def status_moved(fake: FakeCloudRun, call: str) -> None:
        fake.before_put = None
        fake.document["metadata"]["resourceVersion"] = "AAYstatus"  # the controller's own write: spec unchanged

    fake.before_put = status_moved
    written = cloud_run.write_traffic(read, {"svc-a": 100}, {"stable": "svc-a"})
    assert written.service.tags() == {"stable": "svc-a"}
    assert [put["metadata"]["resourceVersion"] for put in fake.puts] == ["AAYstatus"]


def after_a_failed_deploy() -> CloudRunAdmin:
    """svc-a serves; svc-b, the latest created revision, never became ready, so the service is not Ready."""
    fake = FakeCloudRun.serving("svc", "svc-a")
    fake.never_ready_images.add("registry/broken@sha256:e")
    with pytest.raises(GcloudError):
        fake(["gcloud", "run", "deploy", "svc", "--image=registry/broken@sha256:e", "--revision-suffix=b"])
    return admin(fake)[0]


def test_a_write_cloud_run_cannot_route_fails_with_its_reason() -> None:
    cloud_run = after_a_failed_deploy()
    with pytest.raises(CloudRunError, match=r"cannot be applied: Revision 'svc-b' is not ready"):
        cloud_run.write_traffic(cloud_run.describe(), {"svc-a": 50, "svc-b": 50}, {})


def test_a_write_applied_while_the_latest_revision_is_a_failed_one_stands_with_a_complaint() -> None:
    cloud_run = after_a_failed_deploy()
    written = cloud_run.write_traffic(cloud_run.describe(), {"svc-a": 100}, {"stable": "svc-a"})
    assert written.service.served_tags() == {"stable": "svc-a"}
    assert written.complaint is not None
    assert written.complaint.startswith("the service is not Ready: Revision 'svc-b' is not ready")


def test_a_write_cloud_run_does_not_apply_in_time_fails() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    fake.stale_reads = 1000
    cloud_run, clock = admin(fake)
    with pytest.raises(CloudRunError, match=r"did not apply generation 2 within 0:01:30"):
        cloud_run.write_traffic(cloud_run.describe(), {"svc-a": 100}, {"stable": "svc-a"})
    assert clock.now() <= datetime(2026, 11, 30, 9, 1, 31, tzinfo=UTC)


def test_a_read_that_fails_says_so() -> None:
    cloud_run, _ = admin(FakeCloudRun.serving("svc", "svc-a"))
    cloud_run.url = cloud_run.url.replace("/services/svc", "/services/gone")
    with pytest.raises(CloudRunError, match=r"cannot read the service: 404 NOT_FOUND: Resource 'gone'"):
        cloud_run.describe()


def test_the_adapter_builds_every_command_and_call_it_can_make_in_one_place() -> None:
    cloud_run, _ = admin(FakeCloudRun.serving("svc", "svc-a"))
    url = "https://europe-west1-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/p/services/svc"
    assert cloud_run.issued_requests() == [("GET", url), ("PUT", url)]
    assert cloud_run.manual_traffic_command({"svc-a": 100}, ["c-x"]) == [
        *["gcloud", "run", "services", "update-traffic", "svc"],
        *["--project=p", "--region=europe-west1", "--to-revisions=svc-a=100", "--remove-tags=c-x"],
    ]


def test_every_revision_setting_becomes_a_deploy_flag() -> None:
    template = RevisionTemplate.load()
    flags = {flag.partition("=")[0]: flag.partition("=")[2] for flag in template.deploy_flags()}
    assert flags["--set-env-vars"].split(",") == [f"{name}={value}" for name, value in template.env.items()]
    assert flags["--startup-probe"].startswith(f"httpGet.path={template.startup_probe.path},")
    assert flags["--min"] == str(template.min_instances), "the minimum is the service's"
    assert flags["--min-instances"] == "0", "tagged revisions without traffic keep no idle instance"
    assert flags["--timeout"] == f"{template.timeout_seconds}s"
    assert {"--cpu-boost", "--cpu-throttling"} <= set(flags)


def test_an_env_value_with_a_comma_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "revision.yaml"
    broken.write_text(REVISION_FILE.read_text().replace("BIRTHDAY_COLLECTION: users", "BIRTHDAY_COLLECTION: a,b"))
    with pytest.raises(ValueError, match="must not contain a comma: BIRTHDAY_COLLECTION"):
        RevisionTemplate.load(broken)


# -- gcloud's time limits -----------------------------------------------------------------------------------


def test_a_gcloud_call_is_stopped_at_its_limit_and_none_starts_past_the_deadline(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    now = datetime.now(UTC)
    runner = GcloudRunner(lambda: datetime.now(UTC), now + timedelta(hours=1), timedelta(seconds=0.3))
    started = time.monotonic()
    with pytest.raises(GcloudError, match="did not finish within 0 s and was stopped"):
        runner(sleeper)
    assert time.monotonic() - started < 10
    assert runner.limit(["gcloud", "run", "deploy", "svc"]) == timedelta(seconds=0.3)
    longer = GcloudRunner(lambda: now, now + timedelta(hours=1), MINUTE, {"run deploy": timedelta(minutes=10)})
    assert longer.limit(["gcloud", "run", "deploy", "svc"]) == timedelta(minutes=10)
    late = GcloudRunner(lambda: now + timedelta(hours=2), now + timedelta(hours=1), MINUTE)
    with pytest.raises(GcloudError, match="the rollout's deadline has passed"):
        late(sleeper)
    echo = GcloudRunner(lambda: datetime.now(UTC), now + timedelta(hours=1), MINUTE)
    assert echo([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], "stdin") == "STDIN\n"
    with pytest.raises(GcloudError, match="boom"):
        echo([sys.executable, "-c", "import sys; sys.exit('boom')"])


# -- 4. the synthetic load ------------------------------------------------------------------------------------


class Contract(http.server.BaseHTTPRequestHandler):
    """The service's contract, just enough for the load: PUT stores, GET answers what was stored."""

    seen: ClassVar[list[tuple[str, str]]] = []
    stored: ClassVar[set[str]] = set()

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(("PUT", self.path))
        type(self).stored.add(self.path)
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:
        type(self).seen.append(("GET", self.path))
        self.send_response(200 if self.path in type(self).stored else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def contract_server() -> Iterator[str]:
    Contract.seen.clear()
    Contract.stored.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Contract)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_synthetic_load_writes_and_reads_fresh_users_at_its_rate_and_counts_what_it_sent(
    contract_server: str,
) -> None:
    load = SyntheticLoad(rate=40)
    began = datetime.now(UTC)
    load.start({"svc-new": contract_server})
    time.sleep(1)
    load.stop()
    sent = load.sent("svc-new", began, datetime.now(UTC))
    assert 20 <= sent <= 42, "about 40 a second, never more"
    assert sent == len(Contract.seen)
    assert set(load.statuses("svc-new")) == {204, 200}, "every GET finds the user written before it"
    users = {path.removeprefix("/hello/") for _, path in Contract.seen}
    assert len(users) <= USERS_PER_TARGET
    assert all(user.startswith("Load") and user.isalpha() and len(user) == 24 for user in users)
    assert load.sent("svc-new", began - timedelta(hours=1), began) == 0
    assert load.sent("elsewhere", began, datetime.now(UTC)) == 0


def test_a_synthetic_rate_of_zero_sends_nothing(contract_server: str) -> None:
    load = SyntheticLoad(rate=0)
    load.start({"svc-new": contract_server})
    load.stop()
    assert Contract.seen == []


def test_an_unreachable_revision_is_counted_as_sent_and_failed() -> None:
    load = SyntheticLoad(rate=50, timeout=0.5)
    load.start({"svc-new": "http://127.0.0.1:9"})
    time.sleep(0.2)
    load.stop()
    assert set(load.statuses("svc-new")) == {0}


# -- the CLI ----------------------------------------------------------------------------------------------------

REQUIRED = [
    "--project=p",
    "--region=europe-west1",
    "--service=birthday-api",
    "--commit=0123456789",
    "--attempt=b1d2",
    "--service-account=rt@p.iam.gserviceaccount.com",
    "--lock-bucket=bucket",
    "--bootstrap-revision=birthday-api-bootstrap",
    "--source-build-time=2026-11-30T09:00:00.123456789Z",
]


def test_the_cli_refuses_an_image_by_tag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*REQUIRED, "--image=registry/app:latest", "--dry-run"]) == 2
    assert "must name a digest" in capsys.readouterr().err


def test_the_cli_refuses_an_empty_required_option(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = [argument if not argument.startswith("--lock-bucket") else "--lock-bucket=" for argument in REQUIRED]
    assert main([*arguments, "--image=registry/app@sha256:ab", "--dry-run"]) == 2
    assert "empty --lock-bucket" in capsys.readouterr().err


def test_the_cli_refuses_steps_that_do_not_end_at_100(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*REQUIRED, "--image=registry/app@sha256:ab", "--steps=10,50", "--dry-run"]) == 2
    assert "end at 100" in capsys.readouterr().err


def test_every_default_of_the_cli_is_the_plans_own() -> None:
    arguments = parser().parse_args([*REQUIRED, "--image=r/a@sha256:ab"])
    plan = RolloutPlan("s", "i", "c", "a", "sa", RevisionTemplate.load(), "b", source_build_time=datetime.now(UTC))
    assert arguments.steps == list(plan.steps)
    assert timedelta(seconds=arguments.dwell_seconds) == plan.dwell
    assert timedelta(seconds=arguments.metrics_lag_seconds) == plan.metrics_lag
    assert timedelta(seconds=arguments.deadline_seconds) == plan.deadline
    assert arguments.synthetic_rps == plan.synthetic_rps
    assert arguments.consecutive_error_limit == plan.consecutive_error_limit
    assert arguments.max_error_rate == plan.thresholds.max_error_rate
    assert arguments.allow_older is False


def test_times_and_switches_are_read_as_cloud_build_writes_them() -> None:
    assert timestamp("2026-11-30T09:00:00.123456789Z") == datetime(2026, 11, 30, 9, 0, 0, 123456, tzinfo=UTC)
    assert timestamp("2026-11-30T09:00:00Z") == datetime(2026, 11, 30, 9, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        timestamp("2026-11-30T09:00:00")
    options = parser().parse_args([*REQUIRED, "--image=r/a@sha256:ab", "--allow-older"])
    assert options.allow_older is True
    assert parser().parse_args([*REQUIRED, "--image=r/a@sha256:ab", "--allow-older=false"]).allow_older is False
    with pytest.raises(SystemExit):
        parser().parse_args([*REQUIRED, "--image=r/a@sha256:ab", "--allow-older=maybe"])


def test_the_dry_run_is_the_real_rollout_printing_its_commands_and_api_calls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*REQUIRED, "--image=registry/app@sha256:ab", "--steps=25,100", "--dwell-seconds=60", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if line.startswith("gcloud ")]
    assert commands[0] == "gcloud storage objects describe gs://bucket/freeze/birthday-api '--format=value(generation)'"
    assert any(line.startswith("gcloud run deploy birthday-api ") for line in commands)
    assert "'--set-env-vars=" in "\n".join(commands), "quoted for a shell: (default) has parentheses"
    service = "https://europe-west1-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/p/services/birthday-api"
    step = lines.index(
        "#   the service as just read, resourceVersion v4: traffic STABLE=75, birthday-api-0123456-b1d2=25; tags "
        "c-0123456-b1d2=birthday-api-0123456-b1d2, stable=STABLE"
    )
    assert lines[step - 2 : step] == [f"GET {service}", f"PUT {service}"], "the object just read, put back"
    assert lines[step + 1] == f"GET {service}", "read until applied"
    assert any("traffic birthday-api-0123456-b1d2=100; tags stable=birthday-api-0123456-b1d2" in line for line in lines)
    assert commands[-1].startswith("gcloud storage rm gs://bucket/locks/birthday-api.json --if-generation-match=")
    assert "# done: birthday-api-0123456-b1d2 serves 100 %, STABLE is no longer needed" in lines


def test_sigterm_raises_terminated_once_and_later_ones_wait_for_the_rollback() -> None:
    handler = terminate_once()
    with pytest.raises(Terminated):
        handler(signal.SIGTERM, None)
    handler(signal.SIGTERM, None)


@pytest.mark.parametrize(
    ("ended", "status", "heading"),
    [
        (None, 0, ""),
        (RolloutFailed("gate at 10 % failed"), 1, "ROLLOUT FAILED"),
        (RolloutBlocked("frozen"), 2, "ROLLOUT NOT STARTED"),
        (OperatorIntervened("someone changed it"), 3, "ROLLOUT STOPPED"),
        (Terminated("SIGTERM"), 143, "ROLLOUT CANCELLED"),
        (StorageError("503"), 1, "ROLLOUT FAILED"),
    ],
)
def test_each_outcome_has_its_exit_status(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ended: BaseException | None,
    status: int,
    heading: str,
) -> None:
    def run(self: Rollout) -> None:
        if ended is not None:
            raise ended

    installed: list[int] = []
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.append(signum))
    monkeypatch.setattr("deploy.__main__.gcloud_config", lambda runner: {"auth": {"disable_credentials": "true"}})
    monkeypatch.setattr(Rollout, "run", run)
    assert main([*REQUIRED, "--image=registry/app@sha256:ab"]) == status
    assert installed == [signal.SIGTERM]
    assert capsys.readouterr().err.startswith(heading)


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"proxy": {"type": "socks5", "address": "proxy", "port": "1080"}}, "proxy/type socks5"),
        ({"proxy": {"type": "http", "address": "proxy"}}, "all together or not at all"),
    ],
)
def test_a_gcloud_configuration_the_rollout_cannot_follow_stops_it_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config: dict[str, Any], why: str
) -> None:
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    monkeypatch.setattr("deploy.__main__.gcloud_config", lambda runner: config)
    assert main([*REQUIRED, "--image=registry/app@sha256:ab"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ROLLOUT NOT STARTED: cannot use gcloud's configuration: ")
    assert why in err


def test_sigterm_stops_a_real_rollout_process_with_its_own_status(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    gcloud = tools / "gcloud"
    # gcloud that answers its configuration, then hangs: the rollout is in its first call when SIGTERM comes.
    gcloud.write_text('#!/bin/sh\n[ "$1" = config ] && { echo "{}"; exit 0; }\nexec sleep 30\n')
    gcloud.chmod(0o755)
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy", *REQUIRED, "--image=registry/app@sha256:ab"],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 143, out + err
    assert "ROLLOUT CANCELLED: SIGTERM" in err


# -- the Cloud Run fake, against what the Admin API reference and gcloud's source say ------------------------


SERVICE_URL = "https://europe-west1-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/{}/services/svc"


def test_the_fake_refuses_a_stale_resource_version_with_409_and_checks_none_without_one() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    stale = fake.api("GET", SERVICE_URL.format("p"))
    fake.operator("--update-tags=mine=svc-a")
    with pytest.raises(ApiError) as refused:
        fake.api("PUT", SERVICE_URL.format("p"), stale)
    assert (refused.value.code, refused.value.status) == (409, "ABORTED")
    assert fake.spec_tags() == {"mine": "svc-a"}
    del stale["metadata"]["resourceVersion"]
    fake.api("PUT", SERVICE_URL.format("p"), stale)
    assert fake.spec_tags() == {}, "no resourceVersion: the reference says the check is off"


def test_the_fake_answers_a_replace_before_it_is_applied_and_takes_the_project_number() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    read = fake.api("GET", SERVICE_URL.format(PROJECT_NUMBER))
    read["spec"]["traffic"].append({"revisionName": "svc-a", "tag": "t"})
    answer = fake.api("PUT", SERVICE_URL.format(PROJECT_NUMBER), read)
    assert answer["metadata"]["generation"] == read["metadata"]["generation"] + 1
    assert answer["status"] == read["status"], "Cloud Run works on status after it answers"
    now = fake.api("GET", SERVICE_URL.format("p"))
    assert now["status"]["observedGeneration"] == answer["metadata"]["generation"]
    assert now["status"]["traffic"][-1]["tag"] == "t"
    with pytest.raises(ApiError, match="404 NOT_FOUND"):
        fake.api("GET", SERVICE_URL.format("other-project"))


def test_the_fake_keeps_an_unready_revisions_tag_in_spec_but_never_serves_it() -> None:
    fake = FakeCloudRun.serving("svc", "svc-a")
    fake.never_ready_images.add("registry/broken@sha256:e")
    command = ["gcloud", "run", "deploy", "svc", "--image=registry/broken@sha256:e", "--revision-suffix=b", "--tag=c-b"]
    with pytest.raises(GcloudError, match=r"(?s)Deployment failed.*Revision 'svc-b' is not ready"):
        fake([*command, "--no-traffic"])
    assert fake.spec_tags() == {"c-b": "svc-b"}, "TagOnDeployChange wrote it with the template"
    assert fake.served_tags() == {}
    assert fake.served() == fake.asked() == {"svc-a": 100}, "--no-traffic pinned LATEST to the ready revision"
    conditions = {c["type"]: c["status"] for c in fake.document["status"]["conditions"]}
    assert conditions == {"Ready": "False", "ConfigurationsReady": "False", "RoutesReady": "False"}
    with pytest.raises(GcloudError, match="is not ready"):
        fake.operator("--update-tags=mine=svc-a")  # every later write keeps the tag, and fails
