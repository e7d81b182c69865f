"""deploy/revision.yaml, the one description of what every revision runs with, as gcloud deploy flags."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REVISION_FILE = Path(__file__).with_name("revision.yaml")


@dataclass(frozen=True)
class Probe:
    path: str
    period_seconds: int
    timeout_seconds: int
    failure_threshold: int

    def flag_value(self) -> str:
        return (
            f"httpGet.path={self.path},periodSeconds={self.period_seconds},"
            f"timeoutSeconds={self.timeout_seconds},failureThreshold={self.failure_threshold}"
        )


@dataclass(frozen=True)
class RevisionTemplate:
    container_port: int
    env: dict[str, str]
    startup_probe: Probe
    liveness_probe: Probe
    min_instances: int
    max_instances: int
    execution_environment: str
    concurrency: int
    timeout_seconds: int
    cpu: str
    memory: str
    cpu_boost: bool
    cpu_idle: bool

    @classmethod
    def load(cls, path: Path = REVISION_FILE) -> "RevisionTemplate":
        document: dict[str, Any] = yaml.safe_load(path.read_text())
        env = {str(name): str(value) for name, value in document["env"].items()}
        # gcloud splits --set-env-vars on commas; a value with one would be cut silently.
        if bad := sorted(name for name, value in env.items() if "," in value):
            raise ValueError(f"{path}: env values must not contain a comma: {', '.join(bad)}")
        probes, scaling, resources = document["probes"], document["scaling"], document["resources"]
        return cls(
            container_port=int(document["container_port"]),
            env=env,
            startup_probe=Probe(**probes["startup"]),
            liveness_probe=Probe(**probes["liveness"]),
            min_instances=int(scaling["min_instances"]),
            max_instances=int(scaling["max_instances"]),
            execution_environment=str(document["execution_environment"]),
            concurrency=int(document["concurrency"]),
            timeout_seconds=int(document["timeout_seconds"]),
            cpu=str(resources["cpu"]),
            memory=str(resources["memory"]),
            cpu_boost=bool(resources["cpu_boost"]),
            cpu_idle=bool(resources["cpu_idle"]),
        )

    def deploy_flags(self) -> list[str]:
        """Every field of the template, so a deploy never inherits a setting from the revision before it."""
        env = ",".join(f"{name}={value}" for name, value in self.env.items())
        return [
            f"--port={self.container_port}",
            f"--set-env-vars={env}",
            f"--startup-probe={self.startup_probe.flag_value()}",
            f"--liveness-probe={self.liveness_probe.flag_value()}",
            # The minimum is the service's (see revision.yaml); the revision itself keeps no idle instance.
            f"--min={self.min_instances}",
            "--min-instances=0",
            f"--max-instances={self.max_instances}",
            f"--concurrency={self.concurrency}",
            f"--timeout={self.timeout_seconds}s",
            f"--cpu={self.cpu}",
            f"--memory={self.memory}",
            "--cpu-boost" if self.cpu_boost else "--no-cpu-boost",
            # cpu_idle means CPU only during requests, which gcloud calls CPU throttling.
            "--cpu-throttling" if self.cpu_idle else "--no-cpu-throttling",
            f"--execution-environment={self.execution_environment}",
        ]
