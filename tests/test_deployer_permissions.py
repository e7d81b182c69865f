"""The deployer holds exactly what the rollout build uses: derived here from its gcloud commands and REST calls.

Each gcloud command is mapped to the Cloud IAM permissions of the API calls it makes, as gcloud 528's own source
makes them and as the public permission references name them, and so is each Admin API call the rollout makes
itself:
- Cloud Run: `gcloud run deploy` and `services update-traffic` GET the service, then replaceService it
  (command_lib/run/serverless_operations.py: _UpdateOrCreateService), then poll
  projects/{project}/locations/{region}/operations/{id} when the answer names an operation (WaitService);
  `services describe` GETs the service. The rollout's own calls are namespaces.services get (its reads, and its
  polls until a write is applied) and replaceService (its traffic writes), which polls nothing else.
  Permissions: https://cloud.google.com/run/docs/reference/iam/permissions (run.services.get "View services",
  run.services.update "Update existing services", run.operations.get) and acting as the revision's service
  account, iam.serviceAccounts.actAs (https://cloud.google.com/run/docs/securing/service-identity).
- Cloud Storage (https://cloud.google.com/storage/docs/access-control/iam-json): objects.insert needs
  storage.objects.create (and storage.objects.delete to overwrite an object), objects.get (metadata and media)
  storage.objects.get, objects.delete storage.objects.delete.
- Cloud Build: builds.get needs cloudbuild.builds.get; a build's own log in Cloud Logging needs
  logging.logEntries.create (https://cloud.google.com/build/docs/iam-roles-permissions).
- Cloud Monitoring: projects.timeSeries.list needs monitoring.timeSeries.list.
A command missing from the table fails the test, so a new command cannot slip in without its permissions.
"""

import re
import shlex
import urllib.parse
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.gcloud_help import command_path
from tests.support.pipeline import ROLLOUT, load, rollout_api_calls, rollout_gcloud_commands
from tests.support.terraform import STACK
from tests.support.terraform import load as load_module

REPO = Path(__file__).resolve().parents[1]
ROLES_FILE = STACK / "iam_roles.tf"

# Where each permission is granted: the narrowest resource whose IAM policy can hold it.
SCOPE = {
    "run.services": "service",
    "run.operations": "project",
    "iam.serviceAccounts": "runtime_account",
    "storage.objects": "lock_bucket",
    "cloudbuild.builds": "project",
    "logging.logEntries": "project",
    "monitoring.timeSeries": "project",
}

PERMISSIONS_BY_COMMAND: dict[str, set[str]] = {
    "run services describe": {"run.services.get"},
    "run deploy": {"run.services.get", "run.services.update", "run.operations.get", "iam.serviceAccounts.actAs"},
    "run services update-traffic": {"run.services.get", "run.services.update", "run.operations.get"},
    "run revisions describe": {"run.revisions.get"},
    # cp writes the lock only if absent, but the release record over its previous version: that needs delete too.
    "storage cp": {"storage.objects.create", "storage.objects.delete"},
    "storage objects describe": {"storage.objects.get"},
    "storage cat": {"storage.objects.get"},
    "storage rm": {"storage.objects.delete"},
    "builds describe": {"cloudbuild.builds.get"},
    # Local only: print the caller's token, read gcloud's own configuration.
    "auth print-access-token": set(),
    "config list": set(),
}

# REST calls the rollout makes without gcloud, found by the path they call.
PERMISSIONS_BY_REST_PATH = {"/timeSeries": {"monitoring.timeSeries.list"}}
# The Admin API calls of the rollout's Cloud Run adapter, by method and path.
KNATIVE_SERVICE = r"/apis/serving\.knative\.dev/v1/namespaces/[^/]+/services/[^/]+"
PERMISSIONS_BY_API_CALL = {
    ("GET", KNATIVE_SERVICE): {"run.services.get"},  # namespaces.services.get
    ("PUT", KNATIVE_SERVICE): {"run.services.update"},  # namespaces.services.replaceService
}


def scope(permission: str) -> str:
    return SCOPE[permission.rsplit(".", 1)[0]]


def needed_permissions() -> dict[str, set[str]]:
    needed: dict[str, set[str]] = defaultdict(set)

    def add(permissions: set[str]) -> None:
        for permission in permissions:
            needed[scope(permission)].add(permission)

    for command in rollout_gcloud_commands():
        path = command_path(shlex.split(command))
        assert path in PERMISSIONS_BY_COMMAND, f"gcloud {path}: which permissions does it need? ({command})"
        add(PERMISSIONS_BY_COMMAND[path])
    for method, url in rollout_api_calls():
        path = urllib.parse.urlsplit(url).path
        found = [
            need
            for (verb, pattern), need in PERMISSIONS_BY_API_CALL.items()
            if verb == method and re.fullmatch(pattern, path)
        ]
        assert found, f"{method} {path}: which permissions does it need?"
        add(found[0])
    rest_source = "\n".join(path.read_text() for path in (REPO / "deploy").glob("*.py"))
    for rest_path, permissions in PERMISSIONS_BY_REST_PATH.items():
        if rest_path in rest_source:
            add(permissions)
    if load(ROLLOUT)["options"]["logging"] == "CLOUD_LOGGING_ONLY":
        add({"logging.logEntries.create"})
    return dict(needed)


def granted_permissions() -> dict[str, set[str]]:
    return {name: set(permissions) for name, permissions in load_module(STACK).locals["deployer_permissions"].items()}


def test_the_deployer_roles_hold_exactly_the_permissions_the_rollout_build_uses() -> None:
    needed, granted = needed_permissions(), granted_permissions()
    for where in sorted(set(needed) | set(granted)):
        missing = needed.get(where, set()) - granted.get(where, set())
        unused = granted.get(where, set()) - needed.get(where, set())
        assert not missing, f"the rollout build needs {sorted(missing)} on the {where}, and is not granted them"
        assert not unused, f"the deployer holds {sorted(unused)} on the {where}, which nothing uses"


def test_no_deployer_role_could_delete_the_service_or_change_who_may_call_it() -> None:
    granted = set().union(*granted_permissions().values())
    dangerous = {"run.services.delete", "run.services.setIamPolicy", "run.services.create", "run.revisions.delete"}
    assert not granted & dangerous


def test_every_permission_says_what_uses_it() -> None:
    text = ROLES_FILE.read_text()
    for permission in set().union(*granted_permissions().values()):
        line = next(line for line in text.splitlines() if f'"{permission}"' in line)
        assert re.search(r'",\s*# \S', line), f"{permission} has no comment naming what uses it"


def test_a_new_command_without_an_entry_fails_rather_than_being_granted_by_guess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands = [*rollout_gcloud_commands(), "gcloud run services delete birthday-api --region=r --quiet"]
    monkeypatch.setattr("tests.test_deployer_permissions.rollout_gcloud_commands", lambda: commands)
    with pytest.raises(AssertionError, match="gcloud run services delete: which permissions"):
        needed_permissions()


def test_a_new_api_call_without_an_entry_fails_rather_than_being_granted_by_guess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = [
        *rollout_api_calls(),
        ("DELETE", "https://europe-west1-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/p/services/s"),
    ]
    monkeypatch.setattr("tests.test_deployer_permissions.rollout_api_calls", lambda: calls)
    with pytest.raises(AssertionError, match=r"DELETE /apis/serving\.knative\.dev/v1/namespaces/p/services/s: which"):
        needed_permissions()
