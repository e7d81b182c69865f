"""The Google Cloud stack (terraform/gcp) and the revision file keep the promises of the infrastructure issue.

No provider can be downloaded where these run, so they read the HCL itself (python-hcl2) and check what it says:
least-privilege grants, protected data, the ownership split with the pipeline, and a revision file that matches
the app's real settings and routes. `terraform fmt` and tfcheck run here too.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute

from app.health import LIVENESS_PATH, READINESS_PATH
from app.main import create_app
from app.settings import Settings, environment_variable
from tests.support.terraform import BOOTSTRAP, STACK, Block, Module, load

REPO = Path(__file__).resolve().parents[1]
REVISION_FILE = REPO / "deploy" / "revision.yaml"

BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PIPELINE_OWNED_FIELDS = {"template", "client", "client_version", "traffic"}


def stack() -> Module:
    return load(STACK)


def one(blocks: list[Block]) -> Block:
    """The body of a nested block that may appear once."""
    assert len(blocks) == 1, f"expected one block, found {len(blocks)}"
    return blocks[0]


def reference(expression: str) -> str:
    """`google_x.y.attr` from "${google_x.y.attr}"."""
    match = re.fullmatch(r"\$\{([^{}]+)\}", expression)
    assert match, f"{expression!r} is not a plain reference"
    return match.group(1)


def string_list(expression: Any) -> list[str]:
    """A list literal, whether python-hcl2 gave it as a list or as the text of `toset([...])`."""
    if isinstance(expression, list):
        return [str(item) for item in expression]
    match = re.fullmatch(r"\$\{toset\(\[(.*)\]\)\}", str(expression), flags=re.DOTALL)
    assert match, f"{expression!r} is not a list"
    return re.findall(r'"([^"]*)"', match.group(1))


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"{duration!r} is not a duration in seconds"
    return int(match.group(1))


@dataclass(frozen=True)
class Grant:
    grantee: str  # the service account resource name ("runtime", "deployer", ...) or a special principal
    role: str
    kind: str  # the IAM resource type: where the grant is made


def grants(module: Module) -> Iterator[Grant]:
    """Every role every IAM member resource of the module grants, with for_each over a local list expanded."""
    for (kind, _), body in module.resources.items():
        if not kind.endswith(("_iam_member", "_iam_binding", "_iam_policy")):
            continue
        assert kind.endswith("_iam_member"), f"{kind} is authoritative and would remove grants made elsewhere"
        member = body["member"]
        account = re.fullmatch(r"\$\{google_service_account\.(\w+)\.member\}", member)
        grantee = account.group(1) if account else member
        role = body["role"]
        if custom := re.fullmatch(r'\$\{google_project_iam_custom_role\.(\w+)\["(\w+)"\]\.name\}', role):
            roles = [f"custom:{custom.group(1)}.{custom.group(2)}"]
        elif role == "${each.value}":
            source = re.fullmatch(r"(?:toset\()?local\.(\w+)\)?", reference(body["for_each"]))
            assert source, f"{kind}: roles must come from a local list, not {body['for_each']}"
            roles = string_list(module.locals[source.group(1)])
        else:
            roles = [role]
        for granted in roles:
            yield Grant(grantee, granted, kind)


def defaults(module: Module) -> dict[str, Any]:
    return {name: body.get("default") for _, name, body in module.variables}


def grants_to(grantee: str) -> set[tuple[str, str]]:
    return {(grant.role, grant.kind) for grant in grants(stack()) if grant.grantee == grantee}


@cache
def revision() -> dict[str, Any]:
    loaded = yaml.safe_load(REVISION_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


# --- identities and grants ------------------------------------------------------------------------------------


def test_the_runtime_account_can_use_its_firestore_database_and_nothing_else() -> None:
    assert grants_to("runtime") == {("roles/datastore.user", "google_project_iam_member")}
    condition = one(stack().resource("google_project_iam_member", "runtime_firestore")["condition"])
    database = stack().locals["firestore_database_name"]
    assert database == "projects/${var.project_id}/databases/${google_firestore_database.main.name}"
    assert condition["expression"] == (
        'resource.name == "${local.firestore_database_name}" || '
        'resource.name.startsWith("${local.firestore_database_name}/")'
    ), "the grant reaches this database (and its documents) and no other"


def test_the_builder_can_push_to_this_repository_and_write_its_log_and_cannot_deploy() -> None:
    assert grants_to("builder") == {
        ("roles/artifactregistry.writer", "google_artifact_registry_repository_iam_member"),
        ("roles/logging.logWriter", "google_project_iam_member"),
    }
    repository = stack().resource("google_artifact_registry_repository_iam_member", "builder")
    assert repository["repository"] == "${google_artifact_registry_repository.main.name}"


def test_the_deployer_holds_only_its_custom_roles_each_on_the_narrowest_resource() -> None:
    assert grants_to("deployer") == {
        ("custom:deployer.project", "google_project_iam_member"),
        ("custom:deployer.service", "google_cloud_run_v2_service_iam_member"),
        ("custom:deployer.runtime_account", "google_service_account_iam_member"),
        ("custom:deployer.lock_bucket", "google_storage_bucket_iam_member"),
    }
    roles = stack().resource("google_project_iam_custom_role", "deployer")
    assert roles["for_each"] == "${local.deployer_permissions}"
    assert roles["permissions"] == "${each.value}"
    assert set(stack().locals["deployer_permissions"]) == {"project", "service", "runtime_account", "lock_bucket"}


def test_the_deployer_grants_name_this_service_the_runtime_account_and_the_lock_bucket() -> None:
    module = stack()
    targets = {
        kind: body
        for (kind, _), body in module.resources.items()
        if kind.endswith("_iam_member") and body["member"] == "${google_service_account.deployer.member}"
    }
    assert targets["google_cloud_run_v2_service_iam_member"]["name"] == "${google_cloud_run_v2_service.main.name}"
    assert (
        targets["google_service_account_iam_member"]["service_account_id"] == "${google_service_account.runtime.name}"
    )
    assert targets["google_storage_bucket_iam_member"]["bucket"] == "${google_storage_bucket.rollout_lock.name}"
    assert "google_artifact_registry_repository_iam_member" not in targets, "the deployer pushes nothing"


def test_pull_requests_run_as_an_account_that_can_only_write_its_log() -> None:
    assert grants_to("pr_checks") == {("roles/logging.logWriter", "google_project_iam_member")}


def test_only_the_public_invoker_grant_goes_to_anyone_outside_the_stack() -> None:
    identities = {"runtime", "builder", "deployer", "pr_checks"}
    outsiders = {grant for grant in grants(stack()) if grant.grantee not in identities}
    assert outsiders == {Grant("allUsers", "roles/run.invoker", "google_cloud_run_v2_service_iam_member")}


@pytest.mark.parametrize("directory", [STACK, BOOTSTRAP], ids=["stack", "bootstrap"])
def test_no_basic_role_no_key_and_no_default_service_account_anywhere(directory: Path) -> None:
    module = load(directory)
    assert not {grant.role for grant in grants(module)} & BASIC_ROLES
    assert not re.findall(r"roles/(owner|editor|viewer)\b", module.text)
    assert not module.of_type("google_service_account_key")
    for default_account in ("-compute@developer.gserviceaccount.com", "@cloudbuild.gserviceaccount.com", "@appspot."):
        assert default_account not in module.text


# --- APIs -----------------------------------------------------------------------------------------------------


def test_every_api_the_stack_uses_is_enabled_and_never_disabled_on_destroy() -> None:
    module = stack()
    services = module.of_type("google_project_service")
    assert services, "no google_project_service"
    for name, body in services.items():
        assert body["disable_on_destroy"] is False, name
    main = module.resource("google_project_service", "main")
    assert main["for_each"] == "${toset(local.apis)}"
    assert {
        "run.googleapis.com",
        "firestore.googleapis.com",
        "artifactregistry.googleapis.com",
        "cloudbuild.googleapis.com",
        "iam.googleapis.com",
        "monitoring.googleapis.com",
        "logging.googleapis.com",
        "containerscanning.googleapis.com",
        "binaryauthorization.googleapis.com",
        "pubsub.googleapis.com",
    } <= set(string_list(module.locals["apis"]))


# --- Firestore ------------------------------------------------------------------------------------------------


def test_firestore_is_native_recoverable_and_protected_from_deletion() -> None:
    database = stack().resource("google_firestore_database", "main")
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["point_in_time_recovery_enablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert database["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    assert database["deletion_policy"] == "ABANDON"
    assert database["location_id"] == "${var.firestore_location}"


def test_the_database_terraform_creates_is_the_one_the_revision_tells_the_app_to_use() -> None:
    module = stack()
    assert module.resource("google_firestore_database", "main")["name"] == "${local.firestore_database}"
    setting = environment_variable("firestore_database")
    assert module.locals["firestore_database"] == f"${{local.revision.env.{setting}}}"
    assert setting in revision()["env"]


def test_backups_run_daily_and_weekly_with_the_weekly_ones_kept_longer() -> None:
    schedules = stack().of_type("google_firestore_backup_schedule")
    daily = [body for body in schedules.values() if "daily_recurrence" in body]
    weekly = [body for body in schedules.values() if "weekly_recurrence" in body]
    assert len(daily) == 1
    assert len(weekly) == 1
    for schedule in (*daily, *weekly):
        assert schedule["database"] == "${google_firestore_database.main.name}"
    daily_retention, weekly_retention = seconds(daily[0]["retention"]), seconds(weekly[0]["retention"])
    # Firestore's limits: 7 days for daily schedules, 14 weeks for weekly ones.
    assert 0 < daily_retention <= 7 * 86400
    assert daily_retention < weekly_retention <= 14 * 7 * 86400


# --- Artifact Registry ----------------------------------------------------------------------------------------


def test_the_image_repository_has_immutable_tags_scanning_and_keeps_the_rollback_window() -> None:
    module = stack()
    repository = module.resource("google_artifact_registry_repository", "main")
    assert repository["format"] == "DOCKER"
    assert one(repository["docker_config"])["immutable_tags"] is True
    assert one(repository["vulnerability_scanning_config"])["enablement_config"] == "INHERITED"
    assert repository["cleanup_policy_dry_run"] is False
    policies = repository["cleanup_policies"]
    keep = [policy for policy in policies if policy["action"] == "KEEP"]
    assert [one(policy["most_recent_versions"])["keep_count"] for policy in keep] == ["${var.images_to_keep}"]
    assert defaults(module)["images_to_keep"] >= 10
    untagged = [
        policy
        for policy in policies
        if policy["action"] == "DELETE" and one(policy["condition"])["tag_state"] == "UNTAGGED"
    ]
    assert len(untagged) == 1


# --- Cloud Run ------------------------------------------------------------------------------------------------


def test_after_creation_the_pipeline_owns_exactly_the_template_client_fields_and_traffic() -> None:
    service = stack().resource("google_cloud_run_v2_service", "main")
    ignored = one(service["lifecycle"])["ignore_changes"]
    assert sorted(ignored) == sorted(PIPELINE_OWNED_FIELDS)


def test_the_service_is_public_protected_from_deletion_and_runs_as_the_runtime_account() -> None:
    service = stack().resource("google_cloud_run_v2_service", "main")
    assert service["name"] == "${var.service_name}"
    assert service["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert service["deletion_protection"] is True
    assert one(service["template"])["service_account"] == "${google_service_account.runtime.email}"
    assert one(one(service["template"])["containers"])["image"] == "${var.bootstrap_image}"


# --- Binary Authorization -------------------------------------------------------------------------------------


def test_only_images_cloud_build_attested_here_can_run_and_the_placeholder_by_an_explicit_pattern() -> None:
    module = stack()
    service = module.resource("google_cloud_run_v2_service", "main")
    assert one(service["binary_authorization"]) == {"use_default": True}
    policy = module.resource("google_binary_authorization_policy", "main")
    rule = one(policy["default_admission_rule"])
    assert rule["evaluation_mode"] == "REQUIRE_ATTESTATION"
    assert rule["enforcement_mode"] == "ENFORCED_BLOCK_AND_AUDIT_LOG"
    assert rule["require_attestations_by"] == ["projects/${var.project_id}/attestors/built-by-cloud-build"]
    assert [pattern["name_pattern"] for pattern in policy["admission_whitelist_patterns"]] == [
        "${var.bootstrap_image}*"
    ], "nothing but the placeholder of the first revision is exempt"
    assert "cluster_admission_rules" not in policy


@pytest.mark.parametrize(
    ("image", "valid"),
    [
        ("us-docker.pkg.dev/cloudrun/container/hello", True),
        ("europe-docker.pkg.dev/p/r/placeholder", True),
        ("us-docker.pkg.dev/cloudrun/container/hello:latest", False),
        ("us-docker.pkg.dev/cloudrun/container/hello@sha256:" + "0" * 64, False),
        ("hello", False),
    ],
)
def test_the_placeholder_image_is_a_name_the_allowlist_pattern_can_extend(image: str, valid: bool) -> None:
    body = next(body for _, name, body in stack().variables if name == "bootstrap_image")
    condition = one(body["validation"])["condition"]
    pattern = re.fullmatch(r'\$\{can\(regex\("(.+)", var\.bootstrap_image\)\)\}', condition)
    assert pattern, condition
    assert bool(re.fullmatch(pattern.group(1).replace("\\\\", "\\"), image)) is valid
    assert bool(re.fullmatch(pattern.group(1).replace("\\\\", "\\"), body["default"])) is True


def test_the_first_revision_is_built_from_the_revision_file() -> None:
    module = stack()
    decoded = re.fullmatch(r'\$\{yamldecode\(file\("\$\{path\.module\}/(.+)"\)\)\}', module.locals["revision"])
    assert decoded, module.locals["revision"]
    assert (STACK / decoded.group(1)).resolve() == REVISION_FILE

    template = one(module.resource("google_cloud_run_v2_service", "main")["template"])
    container = one(template["containers"])
    assert "env" not in container, "env comes from the revision file only"
    assert one(container["dynamic"])["env"]["for_each"] == "${local.revision.env}"
    assert template["max_instance_request_concurrency"] == "${local.revision.concurrency}"
    assert template["timeout"] == "${local.revision.timeout_seconds}s"
    assert one(template["scaling"]) == {
        "min_instance_count": 0,
        "max_instance_count": "${local.revision.scaling.max_instances}",
    }, "no revision minimum: a tagged revision without traffic must not keep a billed idle instance"
    service = module.resource("google_cloud_run_v2_service", "main")
    assert one(service["scaling"]) == {"min_instance_count": "${local.revision.scaling.min_instances}"}
    assert one(container["ports"])["container_port"] == "${local.revision.container_port}"
    for probe, key in (("startup_probe", "startup"), ("liveness_probe", "liveness")):
        assert one(one(container[probe])["http_get"])["path"] == f"${{local.revision.probes.{key}.path}}"
    resources = one(container["resources"])
    assert resources["limits"] == {
        "cpu": "${local.revision.resources.cpu}",
        "memory": "${local.revision.resources.memory}",
    }
    assert resources["startup_cpu_boost"] == "${local.revision.resources.cpu_boost}"
    assert resources["cpu_idle"] == "${local.revision.resources.cpu_idle}"
    assert template["execution_environment"] == "EXECUTION_ENVIRONMENT_${upper(local.revision.execution_environment)}"


def test_the_placeholder_revision_has_the_fixed_name_the_pipeline_is_told_is_no_baseline() -> None:
    module = stack()
    template = one(module.resource("google_cloud_run_v2_service", "main")["template"])
    assert template["revision"] == "${local.bootstrap_revision}"
    assert module.locals["rollout_substitutions"]["_BOOTSTRAP_REVISION"] == "${local.bootstrap_revision}"


# --- the revision file ----------------------------------------------------------------------------------------


def served_get_paths() -> set[str]:
    app = create_app(Settings(store="memory"))
    return {route.path for route in app.routes if isinstance(route, APIRoute) and "GET" in (route.methods or set())}


def test_the_probes_use_the_app_health_routes() -> None:
    probes = revision()["probes"]
    assert probes["startup"]["path"] == READINESS_PATH
    assert probes["liveness"]["path"] == LIVENESS_PATH
    assert {READINESS_PATH, LIVENESS_PATH} <= served_get_paths()


def test_probe_timeouts_fit_their_periods_and_outlast_the_readiness_timeout() -> None:
    probes = revision()["probes"]
    for probe in probes.values():
        assert 0 < probe["timeout_seconds"] <= probe["period_seconds"]
        assert probe["failure_threshold"] >= 1
    readiness_timeout = float(revision()["env"][environment_variable("readiness_timeout_seconds")])
    assert probes["startup"]["timeout_seconds"] > readiness_timeout


def test_every_env_var_is_a_setting_the_app_reads_and_port_is_left_to_cloud_run() -> None:
    env = revision()["env"]
    settings = {environment_variable(field) for field in Settings.model_fields}
    assert set(env) <= settings
    assert environment_variable("port") not in env
    assert all(isinstance(value, str) for value in env.values()), "Cloud Run env values are strings"


def test_the_revision_env_is_valid_for_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Settings.model_fields:
        monkeypatch.delenv(environment_variable(field), raising=False)
    for name, value in revision()["env"].items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.store == "firestore"


def test_scaling_concurrency_port_and_timeout_match_the_app() -> None:
    spec = revision()
    assert spec["scaling"]["min_instances"] >= 1
    assert spec["scaling"]["max_instances"] >= spec["scaling"]["min_instances"]
    # One uvicorn worker per instance, sized for 80 requests in flight.
    assert spec["concurrency"] == 80
    assert spec["container_port"] == Settings.model_fields["port"].default
    deadline = float(spec["env"].get(environment_variable("request_deadline_seconds"), 0))
    assert spec["timeout_seconds"] > deadline
    resources = spec["resources"]
    assert resources["cpu_boost"] is True
    assert {"cpu", "memory"} <= set(resources)


# --- Cloud Build ----------------------------------------------------------------------------------------------


def test_the_build_trigger_builds_every_push_to_the_branch_as_the_builder() -> None:
    module = stack()
    trigger = module.resource("google_cloudbuild_trigger", "build")
    assert trigger["filename"] == "cloudbuild.yaml"
    assert trigger["service_account"] == "${google_service_account.builder.id}"
    assert trigger["substitutions"] == "${local.build_substitutions}"
    event = one(trigger["repository_event_config"])
    assert event["repository"] == "${google_cloudbuildv2_repository.main.id}"
    assert one(event["push"])["branch"] == "^${var.github_branch}$"
    assert module.locals["build_substitutions"]["_SERVICE"] == "${google_cloud_run_v2_service.main.name}"


def test_a_successful_build_of_the_build_trigger_starts_the_rollout_as_the_deployer() -> None:
    module = stack()
    trigger = module.resource("google_cloudbuild_trigger", "rollout")
    assert trigger["service_account"] == "${google_service_account.deployer.id}"
    assert one(trigger["pubsub_config"])["topic"] == "${google_pubsub_topic.cloud_builds.id}"
    assert module.resource("google_pubsub_topic", "cloud_builds")["name"] == "cloud-builds"
    assert trigger["filter"] == (
        '_SOURCE_STATUS == "SUCCESS" && _SOURCE_TRIGGER == "${google_cloudbuild_trigger.build.trigger_id}"'
    )
    assert trigger["substitutions"] == "${merge(local.rollout_substitutions, local.build_notice_bindings)}"
    assert module.locals["build_notice_bindings"] == {
        "_SOURCE_BUILD": "$(body.message.data.id)",
        "_SOURCE_STATUS": "$(body.message.data.status)",
        "_SOURCE_TRIGGER": "$(body.message.data.buildTriggerId)",
    }
    assert (
        module.locals["rollout_substitutions"]["_BUILD_TRIGGER_ID"] == "${google_cloudbuild_trigger.build.trigger_id}"
    )


@pytest.mark.parametrize("name", ["rollout", "rollout_manual"])
def test_both_rollout_triggers_run_the_rollout_config_from_the_branch(name: str) -> None:
    trigger = stack().resource("google_cloudbuild_trigger", name)
    assert trigger["service_account"] == "${google_service_account.deployer.id}"
    source = one(trigger["source_to_build"])
    config = one(trigger["git_file_source"])
    for block in (source, config):
        assert block["repository"] == "${google_cloudbuildv2_repository.main.id}"
        assert block["repo_type"] == "GITHUB"
    assert source["ref"] == config["revision"] == "refs/heads/${var.github_branch}"
    assert config["path"] == "cloudbuild-rollout.yaml"


def test_the_manual_rollout_trigger_starts_only_when_someone_runs_it() -> None:
    trigger = stack().resource("google_cloudbuild_trigger", "rollout_manual")
    assert not {"pubsub_config", "repository_event_config", "webhook_config", "github"} & set(trigger)
    assert trigger["substitutions"] == "${local.rollout_substitutions}"


def test_the_pull_request_trigger_runs_the_tests_only_as_the_pr_checks_account() -> None:
    trigger = stack().resource("google_cloudbuild_trigger", "pull_request")
    assert trigger["filename"] == "cloudbuild-pr.yaml"
    assert trigger["service_account"] == "${google_service_account.pr_checks.id}"
    assert "substitutions" not in trigger
    pull_request = one(one(trigger["repository_event_config"])["pull_request"])
    assert pull_request["comment_control"] == "COMMENTS_ENABLED_FOR_EXTERNAL_CONTRIBUTORS_ONLY"


def test_the_rollout_lock_bucket_is_private() -> None:
    bucket = stack().resource("google_storage_bucket", "rollout_lock")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["force_destroy"] is False


# --- monitoring -----------------------------------------------------------------------------------------------


def test_the_uptime_check_probes_readiness_over_https() -> None:
    check = stack().resource("google_monitoring_uptime_check_config", "ready")
    http = one(check["http_check"])
    assert http["path"] == "${local.revision.probes.startup.path}"
    assert revision()["probes"]["startup"]["path"] == READINESS_PATH
    assert http["use_ssl"] is True
    assert one(check["monitored_resource"])["type"] == "uptime_url"


def test_the_slos_measure_cloud_run_requests_over_28_days() -> None:
    module = stack()
    availability = module.resource("google_monitoring_slo", "availability")
    ratio = one(one(availability["request_based_sli"])["good_total_ratio"])
    assert "run.googleapis.com/request_count" in ratio["total_service_filter"]
    assert 'response_code_class=\\"5xx\\"' in ratio["bad_service_filter"]
    latency = module.resource("google_monitoring_slo", "latency")
    cut = one(one(latency["request_based_sli"])["distribution_cut"])
    assert "run.googleapis.com/request_latencies" in cut["distribution_filter"]
    assert one(cut["range"])["max"] == "${var.latency_threshold_ms}"
    for slo in (availability, latency):
        assert slo["rolling_period_days"] == 28
        assert slo["service"] == "${google_monitoring_custom_service.main.service_id}"
    assert defaults(module)["availability_goal"] == 0.999


def test_burn_rate_alerts_are_multi_window_fast_and_slow_and_never_mql() -> None:
    module = stack()
    windows = module.locals["burn_rate_alerts"]
    assert (seconds(windows["fast"]["long"]), windows["fast"]["threshold"]) == (3600, 14.4)
    assert (seconds(windows["slow"]["long"]), windows["slow"]["threshold"]) == (21600, 6)
    for window in windows.values():
        assert seconds(window["short"]) < seconds(window["long"])
    policy = module.resource("google_monitoring_alert_policy", "slo_burn_rate")
    assert policy["combiner"] == "AND"
    filters = [one(condition["condition_threshold"])["filter"] for condition in policy["conditions"]]
    assert filters == [
        'select_slo_burn_rate("${each.value.name}", "${each.value.long}")',
        'select_slo_burn_rate("${each.value.name}", "${each.value.short}")',
    ]
    assert "condition_monitoring_query_language" not in module.text


def test_every_alert_policy_notifies_the_email_channel() -> None:
    module = stack()
    assert module.resource("google_monitoring_notification_channel", "email")["type"] == "email"
    policies = module.of_type("google_monitoring_alert_policy")
    assert set(policies) == {"uptime", "slo_burn_rate"}
    for body in policies.values():
        assert body["notification_channels"] == ["${google_monitoring_notification_channel.email.name}"]


# --- variables, outputs, versions -----------------------------------------------------------------------------


@pytest.mark.parametrize("directory", [STACK, BOOTSTRAP], ids=["stack", "bootstrap"])
def test_variables_live_in_variables_tf_alphabetically_each_typed_and_described(directory: Path) -> None:
    variables = load(directory).variables
    assert variables
    assert {file for file, _, _ in variables} == {"variables.tf"}
    names = [name for _, name, _ in variables]
    assert names == sorted(names)
    for name, body in ((name, body) for _, name, body in variables):
        assert body.get("type"), f"variable {name} has no type"
        assert body.get("description", "").strip(), f"variable {name} has no description"


def test_inputs_that_are_easy_to_get_wrong_are_validated() -> None:
    validated = {name for _, name, body in stack().variables if body.get("validation")}
    assert {"project_id", "region", "service_name", "firestore_location", "alert_email"} <= validated


@pytest.mark.parametrize("directory", [STACK, BOOTSTRAP], ids=["stack", "bootstrap"])
def test_every_output_is_described(directory: Path) -> None:
    outputs = load(directory).outputs
    assert outputs
    for name, body in outputs:
        assert body.get("description", "").strip(), f"output {name} has no description"


def test_the_stack_outputs_what_operators_and_the_pipeline_need() -> None:
    assert {
        "service_url",
        "runtime_service_account_email",
        "deployer_service_account_email",
        "builder_service_account_email",
        "artifact_registry_url",
        "build_trigger_id",
        "rollout_trigger_id",
        "rollout_manual_trigger_name",
        "pull_request_trigger_id",
    } <= {name for name, _ in stack().outputs}


@pytest.mark.parametrize("directory", [STACK, BOOTSTRAP], ids=["stack", "bootstrap"])
def test_terraform_and_the_google_provider_are_pinned_below_the_next_major(directory: Path) -> None:
    settings = load(directory).terraform
    required_version = next(block["required_version"] for block in settings if "required_version" in block)
    assert "< 2.0.0" in required_version
    providers = next(block["required_providers"] for block in settings if "required_providers" in block)
    google = one(providers)["google"]
    assert google["source"] == "hashicorp/google"
    assert ">= 7.0.0" in google["version"]
    assert "< 8.0.0" in google["version"]


def test_state_lives_in_gcs_with_the_bucket_given_at_init() -> None:
    backends = [block["backend"] for block in stack().terraform if "backend" in block]
    assert backends == [[{"gcs": {}}]]


def test_the_state_bucket_is_versioned_private_kept_and_its_reads_audited() -> None:
    bootstrap = load(BOOTSTRAP)
    bucket = bootstrap.resource("google_storage_bucket", "state")
    assert one(bucket["versioning"])["enabled"] is True
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["force_destroy"] is False
    assert one(bucket["lifecycle"])["prevent_destroy"] is True
    audit = bootstrap.resource("google_project_iam_audit_config", "storage")
    assert audit["service"] == "storage.googleapis.com"
    assert {config["log_type"] for config in audit["audit_log_config"]} == {"DATA_READ", "DATA_WRITE"}


def test_real_state_variables_and_plans_stay_out_of_git() -> None:
    ignored = (STACK / ".gitignore").read_text().split()
    assert {".terraform/", "*.tfstate", "*.tfstate.*", "*.tfplan", "*.tfvars", "!*.tfvars.example"} <= set(ignored)
    assert (STACK / "terraform.tfvars.example").is_file()
