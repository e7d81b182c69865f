"""How the rollout runs gcloud: every call is one argv (and, for a few, a document on stdin), bounded in time.

The adapters (deploy/cloud_run.py, deploy/lock.py, deploy/metrics.py) build the argv; a Runner runs it. The
production runner is a subprocess that never outlives the rollout's deadline; the dry run's runner prints.
"""

import subprocess
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol


class GcloudError(Exception):
    """gcloud exited non-zero (or did not finish in time); the message is its stderr."""

    def __init__(self, command: Sequence[str], stderr: str) -> None:
        super().__init__(f"{' '.join(command[:4])}: {stderr.strip() or 'failed with no message'}")
        self.command = list(command)
        self.stderr = stderr


class Runner(Protocol):
    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str:
        """gcloud's stdout; raises GcloudError when it fails."""


class GcloudRunner:
    """gcloud as a child process, each call cut off at its limit and never past `deadline`.

    `longer` gives some commands a limit of their own, keyed by their leading words (for example "run deploy").
    """

    def __init__(
        self,
        now: Callable[[], datetime],
        deadline: datetime,
        call_limit: timedelta,
        longer: Mapping[str, timedelta] | None = None,
    ) -> None:
        self._now = now
        self._deadline = deadline
        self._call_limit = call_limit
        self._longer = dict(longer or {})

    def limit(self, command: Sequence[str]) -> timedelta:
        words = " ".join(command[1:])
        return next((limit for key, limit in self._longer.items() if words.startswith(key)), self._call_limit)

    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str:
        budget = min(self.limit(command), self._deadline - self._now()).total_seconds()
        if budget <= 0:
            raise GcloudError(command, "not started: the rollout's deadline has passed")
        try:
            result = subprocess.run(
                list(command), input=stdin, capture_output=True, text=True, check=False, timeout=budget
            )
        except subprocess.TimeoutExpired:
            raise GcloudError(command, f"did not finish within {budget:.0f} s and was stopped") from None
        if result.returncode != 0:
            raise GcloudError(command, result.stderr)
        return result.stdout


def run_gcloud(command: Sequence[str], stdin: str | None = None) -> str:
    """gcloud with no limit of its own, for tools run by hand."""
    result = subprocess.run(list(command), input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GcloudError(command, result.stderr)
    return result.stdout
