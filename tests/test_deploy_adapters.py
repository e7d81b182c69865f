"""The rollout's edges: Monitoring queries and answers, gcloud's Cloud Run JSON, the revision file, the CLI."""

import http.server
import json
import math
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.__main__ import main
from deploy.cloud_run import GcloudCloudRun, parse_service
from deploy.gates import Thresholds, judge
from deploy.metrics import (
    REQUEST_COUNT,
    REQUEST_LATENCIES,
    Distribution,
    MonitoringEndpoint,
    MonitoringMetrics,
    RequestStats,
    Window,
    bucket_upper_bounds,
    gcloud_access_token,
    parse_distributions,
    parse_request_counts,
    percentile_upper_bound,
    time_series_query,
)
from deploy.revision import REVISION_FILE, RevisionTemplate

WINDOW = Window(datetime(2026, 11, 30, 9, 2, tzinfo=UTC), datetime(2026, 11, 30, 9, 7, tzinfo=UTC))
BOUNDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, math.inf)


def bucketed(samples: list[float]) -> Distribution:
    counts = [0] * len(BOUNDS)
    for sample in samples:
        counts[next(index for index, bound in enumerate(BOUNDS) if sample < bound)] += 1
    return Distribution(tuple(counts), BOUNDS)


@given(st.lists(st.floats(min_value=0, max_value=4000), min_size=1, max_size=300), st.integers(1, 99))
def test_the_percentile_bound_is_never_below_the_true_value_nor_past_its_bucket(samples: list[float], q: int) -> None:
    quantile = q / 100
    ordered = sorted(samples)
    true_value = ordered[math.ceil(quantile * len(ordered)) - 1]
    bound = percentile_upper_bound([bucketed(samples)], quantile)
    assert bound is not None
    assert bound > true_value
    assert bound == next(upper for upper in BOUNDS if true_value < upper)


def test_distributions_from_several_points_are_merged() -> None:
    assert percentile_upper_bound([bucketed([1.5] * 99), bucketed([300.0])], 0.99) == 2.0
    assert percentile_upper_bound([bucketed([1.5] * 98), bucketed([300.0] * 2)], 0.99) == 512.0
    assert percentile_upper_bound([], 0.99) is None


def test_bucket_bounds_follow_the_three_bucket_layouts() -> None:
    assert bucket_upper_bounds({"exponentialBuckets": {"numFiniteBuckets": 2, "growthFactor": 2, "scale": 1}}, 4) == (
        1.0,
        2.0,
        4.0,
        math.inf,
    )
    assert bucket_upper_bounds({"linearBuckets": {"numFiniteBuckets": 2, "width": 10, "offset": 5}}, 4) == (
        5.0,
        15.0,
        25.0,
        math.inf,
    )
    assert bucket_upper_bounds({"explicitBuckets": {"bounds": [10, 100]}}, 2) == (10.0, 100.0)
    with pytest.raises(ValueError, match="unknown bucket options"):
        bucket_upper_bounds({}, 1)


def test_the_count_query_reads_one_revision_over_the_window_by_response_class() -> None:
    params = dict(time_series_query(REQUEST_COUNT, "birthday-api", "birthday-api-abc", WINDOW))
    assert params["filter"] == (
        'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" AND '
        'resource.labels.service_name="birthday-api" AND resource.labels.revision_name="birthday-api-abc"'
    )
    assert (params["interval.startTime"], params["interval.endTime"]) == (
        "2026-11-30T09:02:00Z",
        "2026-11-30T09:07:00Z",
    )
    assert params["aggregation.alignmentPeriod"] == "300s"
    assert params["aggregation.groupByFields"] == "metric.labels.response_code_class"
    latency = dict(time_series_query(REQUEST_LATENCIES, "birthday-api", "birthday-api-abc", WINDOW))
    assert "aggregation.groupByFields" not in latency
    assert latency["aggregation.crossSeriesReducer"] == "REDUCE_SUM"


def test_answers_are_parsed_into_totals_errors_and_distributions() -> None:
    counts: list[dict[str, Any]] = [
        {"metric": {"labels": {"response_code_class": "2xx"}}, "points": [{"value": {"int64Value": "970"}}]},
        {"metric": {"labels": {"response_code_class": "4xx"}}, "points": [{"value": {"int64Value": "20"}}]},
        {"metric": {"labels": {"response_code_class": "5xx"}}, "points": [{"value": {"int64Value": "10"}}]},
    ]
    assert parse_request_counts(counts) == (1000, 10)
    options = {"exponentialBuckets": {"numFiniteBuckets": 3, "growthFactor": 2, "scale": 100}}
    latencies = [{"points": [{"value": {"distributionValue": {"bucketOptions": options, "bucketCounts": ["5", "3"]}}}]}]
    assert parse_distributions(latencies) == [Distribution((5, 3), (100.0, 200.0))]
    assert parse_distributions([{"points": [{"value": {"distributionValue": {}}}]}]) == []


def test_request_stats_describe_themselves() -> None:
    assert str(RequestStats(200, 3, 250.0)) == "200 requests, 3 5xx (1.50%), p99 250 ms"
    assert str(RequestStats(0, 0, None)) == "0 requests, 0 5xx (0.00%), p99 n/a"
    assert str(WINDOW) == "09:02:00-09:07:00Z"


def test_gates_pass_a_healthy_candidate_and_ignore_a_stable_revision_with_too_little_traffic() -> None:
    assert judge(RequestStats(100, 0, 200), RequestStats(100, 0, 200), Thresholds()) == []
    assert judge(RequestStats(100, 0, 900), RequestStats(5, 0, 10), Thresholds()) == []
    assert judge(RequestStats(100, 1, 900), None, Thresholds()) == []


def test_the_service_status_is_read_as_gcloud_prints_it() -> None:
    document = {
        "status": {
            "traffic": [
                {"revisionName": "svc-old", "percent": 90},
                {"revisionName": "svc-new", "percent": 10, "tag": "c-new", "url": "https://c-new---svc-x.a.run.app"},
                {"revisionName": "svc-bad", "tag": "failed-bad", "url": "https://failed-bad---svc-x.a.run.app"},
            ],
        }
    }
    state = parse_service(document)
    assert state.split() == {"svc-old": 90, "svc-new": 10}
    assert state.tag_url("c-new") == "https://c-new---svc-x.a.run.app"
    assert state.tag_url("nope") is None
    assert state.tag_url("failed-bad") == "https://failed-bad---svc-x.a.run.app"


def test_the_gcloud_adapter_runs_the_commands_it_prints() -> None:
    ran: list[list[str]] = []

    def runner(command: list[str]) -> str:
        ran.append(command)
        return json.dumps({"status": {"traffic": [{"revisionName": "svc-a", "percent": 100}]}})

    cloud_run = GcloudCloudRun("p", "europe-west1", "svc", runner)
    assert cloud_run.describe().split() == {"svc-a": 100}
    cloud_run.set_traffic({"svc-b": 10, "svc-a": 90})
    cloud_run.retag({}, [])
    cloud_run.retag({"failed-b": "svc-b"}, ["c-b"])
    assert ran[1][-1] == "--to-revisions=svc-a=90,svc-b=10"
    assert ran[2][-2:] == ["--update-tags=failed-b=svc-b", "--remove-tags=c-b"]
    assert len(ran) == 3, "a retag with nothing to do calls nothing"


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


REQUIRED = [
    "--project=p",
    "--region=europe-west1",
    "--service=birthday-api",
    "--commit=0123456789",
    "--attempt=b1d2",
    "--service-account=rt@p.iam.gserviceaccount.com",
    "--lock-bucket=bucket",
    "--bootstrap-revision=birthday-api-bootstrap",
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


def test_the_dry_run_prints_the_plan_and_touches_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*REQUIRED, "--image=registry/app@sha256:ab", "--steps=25,100", "--dwell-seconds=60", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "gcloud run deploy birthday-api" in out
    assert "--to-revisions=STABLE=75,birthday-api-0123456-b1d2=25" in out
    assert "--to-revisions=birthday-api-0123456-b1d2=100" in out
    assert "'--set-env-vars=" in out, "quoted for a shell: (default) has parentheses"
    assert f"over the {timedelta(seconds=60)} that start" in out


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
        "points": [{"value": {"int64Value": str(count)}}],
    }


def test_the_monitoring_adapter_pages_through_answers_and_sends_its_token() -> None:
    ScriptedMonitoring.seen.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedMonitoring)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = f"http://127.0.0.1:{server.server_address[1]}/v3"
        metrics = MonitoringMetrics("p", "birthday-api", endpoint=MonitoringEndpoint(api, lambda: "t0ken"))
        stats = metrics.request_stats("birthday-api-abc", WINDOW)
    finally:
        server.shutdown()
        server.server_close()
    # 980 under 100 ms, 15 under 200 ms: the 990th is in the 100-200 ms bucket.
    assert stats == RequestStats(total=1000, server_errors=100, p99_ms=200.0)
    paths = {path for path, _, _ in ScriptedMonitoring.seen}
    assert paths == {"/v3/projects/p/timeSeries"}
    assert [query.get("pageToken") for _, query, _ in ScriptedMonitoring.seen] == [None, ["page-2"], None]
    assert {authorization for _, _, authorization in ScriptedMonitoring.seen} == {"Bearer t0ken"}
    assert all('revision_name="birthday-api-abc"' in query["filter"][0] for _, query, _ in ScriptedMonitoring.seen)


def test_the_monitoring_endpoint_is_the_one_gcloud_is_configured_with() -> None:
    default = MonitoringEndpoint.from_gcloud_config({"core": {"project": "p"}})
    assert default == MonitoringEndpoint("https://monitoring.googleapis.com/v3", gcloud_access_token)
    local = MonitoringEndpoint.from_gcloud_config(
        {"api_endpoint_overrides": {"monitoring": "http://127.0.0.1:9090/"}, "auth": {"disable_credentials": "true"}}
    )
    assert local == MonitoringEndpoint("http://127.0.0.1:9090/v3", None)


def test_gcloud_reports_its_endpoint_override_and_disabled_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING", "http://127.0.0.1:9090/")
    monkeypatch.setenv("CLOUDSDK_AUTH_DISABLE_CREDENTIALS", "true")
    assert MonitoringEndpoint.from_gcloud() == MonitoringEndpoint("http://127.0.0.1:9090/v3", None)
