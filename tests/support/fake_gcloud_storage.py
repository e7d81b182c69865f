"""A stand-in for the `gcloud storage` commands the rollout lock uses, over a directory (FAKE_GCS_ROOT).

It models what the lock relies on: generations that grow with every write, and the generation
preconditions of cp and rm. Installed as `gcloud` on PATH by tests/test_lock_storage.py.
"""

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(os.environ["FAKE_GCS_ROOT"])


def object_file(url: str) -> tuple[Path, int | None]:
    found = re.fullmatch(r"gs://([^/]+)/([^#]+)(?:#(\d+))?", url)
    if found is None:
        sys.exit(f"ERROR: bad URL {url}")
    bucket, name, generation = found.groups()
    return ROOT / bucket / name.replace("/", "%2F"), int(generation) if generation else None


def stored(path: Path) -> dict[str, object] | None:
    return json.loads(path.read_text()) if path.exists() else None


def precondition(arguments: list[str]) -> int | None:
    values = [int(argument.split("=", 1)[1]) for argument in arguments if argument.startswith("--if-generation-match=")]
    return values[0] if values else None


def next_generation() -> int:
    counter = ROOT / "generation"
    value = int(counter.read_text()) + 1 if counter.exists() else 1_700_000_000_000_001
    counter.write_text(str(value))
    return value


def fail(message: str) -> None:
    sys.stderr.write(f"ERROR: {message}\n")
    raise SystemExit(1)


def main(arguments: list[str]) -> None:
    command, rest = " ".join(arguments[:3]), arguments[2:]
    path, pinned = object_file(next(argument for argument in rest if argument.startswith("gs://")))
    current = stored(path)
    generation = None if current is None else current["generation"]
    expected = precondition(rest)
    if command.startswith("storage cp"):
        if expected is not None and (generation or 0) != expected:
            fail("HTTPError 412: At least one of the pre-conditions you specified did not hold.")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"content": sys.stdin.read(), "generation": next_generation()}))
    elif current is None or (pinned is not None and pinned != generation):
        fail("NotFoundError: 404")
    elif command == "storage objects describe":
        sys.stdout.write(f"{generation}\n")
    elif command.startswith("storage cat"):
        sys.stdout.write(str(current["content"]))
    elif command.startswith("storage rm"):
        if expected is not None and generation != expected:
            fail("HTTPError 412: precondition failed")
        path.unlink()
    else:
        fail(f"unsupported {arguments}")


if __name__ == "__main__":
    main(sys.argv[1:])
