"""A stand-in for the `gcloud storage` commands the rollout lock uses: in process (FakeBucket, a Runner), or as
`gcloud` on PATH (python -m tests.support.fake_gcloud_storage, state in FAKE_GCS_ROOT).

It models what the lock relies on, as Cloud Storage and gcloud 528 behave: generations that grow with every
write; the generation preconditions of cp and rm (HTTP 412); and how gcloud words each failure
(googlecloudsdk/api_lib/storage/errors.py, command_lib/storage/name_expansion.py): a missing object is
"gs://... not found: 404." for `objects describe` and "matched no objects or files" for cat and rm. Any command
can be made to fail the way a denied permission (403) or an outage (503) does, which says nothing about
whether the object exists.
"""

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.gcloud import GcloudError

FAILURES = {
    403: "HTTPError 403: deployer@p.iam.gserviceaccount.com does not have storage.objects.get access to the Google "
    "Cloud Storage object. Permission 'storage.objects.get' denied on resource (or it may not exist).",
    503: "HTTPError 503: We encountered an internal error. Please try again.",
}
PRECONDITION = "At least one of the pre-conditions you specified did not hold."


@dataclass
class FakeBucket:
    objects: dict[str, tuple[str, int]] = field(default_factory=dict)
    """gs:// URL (without generation) to content and generation."""
    generation: int = 1_700_000_000_000_000
    failures: dict[str, int] = field(default_factory=dict)
    """Command words after "storage" (e.g. "objects describe", "cp", "rm") to the HTTP status it fails with;
    "objects describe@locks/" fails only for URLs that contain "locks/"."""
    times: dict[str, int] = field(default_factory=dict)
    """How many more times each failure happens; a failure not named here always does."""
    calls: list[str] = field(default_factory=list)

    def _failure(self, verb: str, url: str) -> int | None:
        for key, status in self.failures.items():
            name, _, part = key.partition("@")
            if name == verb and part in url and self.times.get(key, 1) > 0:
                if key in self.times:
                    self.times[key] -= 1
                return status
        return None

    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str:
        words = [word for word in command[1:] if not word.startswith(("-", "gs://"))]
        verb = " ".join(words[1:])
        self.calls.append(verb)
        url, pinned = _url(next(word for word in command if word.startswith("gs://")))
        where = f"gcloud.storage.{verb.replace(' ', '.')}"

        def fail(message: str) -> GcloudError:
            return GcloudError(command, f"ERROR: ({where}) {message}\n")

        if (status := self._failure(verb, url)) is not None:
            raise fail(FAILURES[status])
        held = self.objects.get(url)
        expected = next((int(w.split("=", 1)[1]) for w in command if w.startswith("--if-generation-match=")), None)
        if verb == "cp":
            if expected is not None and (held[1] if held else 0) != expected:
                raise fail(PRECONDITION)
            self.generation += 1
            self.objects[url] = (stdin or "", self.generation)
            return ""
        if held is None or (pinned is not None and pinned != held[1]):
            missing = f"{url} not found: 404." if verb == "objects describe" else "The following URLs matched no "
            raise fail(missing if verb == "objects describe" else f"{missing}objects or files:\n{url}")
        if verb == "objects describe":
            return f"{held[1]}\n"
        if verb == "cat":
            return held[0]
        if verb == "rm":
            if expected is not None and held[1] != expected:
                raise fail(PRECONDITION)
            del self.objects[url]
            return ""
        raise fail(f"the fake does not model {verb}")


def _url(text: str) -> tuple[str, int | None]:
    found = re.fullmatch(r"(gs://[^/]+/[^#]+)(?:#(\d+))?", text)
    if found is None:
        raise ValueError(f"bad URL {text}")
    return found.group(1), int(found.group(2)) if found.group(2) else None


def main(arguments: list[str]) -> int:
    """As `gcloud`: the bucket's state is kept in FAKE_GCS_ROOT; FAKE_GCS_FAIL="cp=503,rm=403" injects failures."""
    state = Path(os.environ["FAKE_GCS_ROOT"]) / "state.json"
    saved: dict[str, Any] = json.loads(state.read_text()) if state.exists() else {"objects": {}, "generation": 0}
    failures = dict(pair.split("=") for pair in os.environ.get("FAKE_GCS_FAIL", "").split(",") if pair)
    bucket = FakeBucket(
        {url: (content, generation) for url, (content, generation) in saved["objects"].items()},
        saved["generation"] or FakeBucket.generation,
        {verb: int(status) for verb, status in failures.items()},
    )
    stdin = sys.stdin.read() if "-" in arguments else None
    try:
        sys.stdout.write(bucket(["gcloud", *arguments], stdin))
    except GcloudError as error:
        sys.stderr.write(error.stderr)
        return 1
    finally:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"objects": bucket.objects, "generation": bucket.generation}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
