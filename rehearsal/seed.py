"""The state a scenario starts from, made the way Terraform makes it (terraform/gcp): the service with its first
revision from deploy/revision.yaml and the placeholder image, all traffic on the latest revision, the lock
bucket, and the substitutions the deploy trigger passes (locals.tf, deploy_substitutions).

A scenario that needs a release already serving gets one more revision from the same file, named as the
rollout names its candidates, as an earlier pipeline run would have left it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rehearsal.api import Json
from rehearsal.faults import HELLO_IMAGE
from rehearsal.knative import API_VERSION

REVISION_FILE = Path(__file__).resolve().parents[1] / "deploy" / "revision.yaml"


@dataclass(frozen=True)
class Project:
    """One scenario's project: its own Cloud Run namespace, Firestore data and lock bucket."""

    id: str
    service: str = "birthday-api"

    @property
    def bootstrap_revision(self) -> str:
        return f"{self.service}-bootstrap"

    @property
    def lock_bucket(self) -> str:
        return f"{self.id}-{self.service}-rollout"

    @property
    def runtime_service_account(self) -> str:
        return f"{self.service}-runtime@{self.id}.iam.gserviceaccount.com"

    def trigger_substitutions(self) -> dict[str, str]:
        """What the deploy trigger passes; the rest come from the Cloud Build file's defaults."""
        return {
            "PROJECT_ID": self.id,
            "_SERVICE": self.service,
            "_BOOTSTRAP_REVISION": self.bootstrap_revision,
            "_LOCK_BUCKET": self.lock_bucket,
            "_RUNTIME_SERVICE_ACCOUNT": self.runtime_service_account,
        }


def template(revision_name: str, image: str, service_account: str, path: Path = REVISION_FILE) -> Json:
    """A Knative revision template with everything deploy/revision.yaml says."""
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    probes, resources = document["probes"], document["resources"]

    def probe(spec: dict[str, Any]) -> Json:
        return {
            "httpGet": {"path": spec["path"]},
            "periodSeconds": spec["period_seconds"],
            "timeoutSeconds": spec["timeout_seconds"],
            "failureThreshold": spec["failure_threshold"],
        }

    return {
        "metadata": {
            "name": revision_name,
            "annotations": {
                "autoscaling.knative.dev/maxScale": str(document["scaling"]["max_instances"]),
                "run.googleapis.com/execution-environment": document["execution_environment"],
                "run.googleapis.com/startup-cpu-boost": str(resources["cpu_boost"]).lower(),
                "run.googleapis.com/cpu-throttling": str(resources["cpu_idle"]).lower(),
            },
        },
        "spec": {
            "containerConcurrency": document["concurrency"],
            "timeoutSeconds": document["timeout_seconds"],
            "serviceAccountName": service_account,
            "containers": [
                {
                    "image": image,
                    "ports": [{"name": "http1", "containerPort": document["container_port"]}],
                    "env": [{"name": name, "value": str(value)} for name, value in document["env"].items()],
                    "resources": {"limits": {"cpu": str(resources["cpu"]), "memory": resources["memory"]}},
                    "startupProbe": probe(probes["startup"]),
                    "livenessProbe": probe(probes["liveness"]),
                }
            ],
        },
    }


def service_body(project: Project, revision_name: str, image: str) -> Json:
    return {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": {
            "name": project.service,
            "namespace": project.id,
            "annotations": {"run.googleapis.com/ingress": "all", "run.googleapis.com/minScale": "1"},
        },
        "spec": {
            "template": template(revision_name, image, project.runtime_service_account),
            "traffic": [{"latestRevision": True, "percent": 100}],
        },
    }


def bootstrap_body(project: Project) -> Json:
    return service_body(project, project.bootstrap_revision, HELLO_IMAGE)
