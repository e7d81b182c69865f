"""A user's clone has nothing beside it: `make test` must need nothing outside the repository.

The one exception is the team's tfcheck, which lives beside our own checkout (../shared): where it is
missing, `make test` says in one line that it skipped it, and goes on.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OPTIONAL_TFCHECK = "../shared/tools/tfcheck/tfcheck.py"
# A path a shell command names: relative with a climb out (../), or absolute.
PATH_TOKEN = re.compile(r"(?<![\w.$/-])(\.\./[\w./-]*|/[\w./-]+)")
GUARD = re.compile(r'if \[ -f "?' + re.escape(OPTIONAL_TFCHECK) + r'"? \]; then')


@pytest.fixture(scope="module")
def lone_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a clone holds (tracked files, and new ones not ignored), in a folder with nothing beside it."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    clone = tmp_path_factory.mktemp("alone") / "birthday-api"
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    assert not (clone.parent / "shared").exists()
    return clone


def make(clone: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", *arguments], cwd=clone, capture_output=True, text=True, check=False, timeout=60)


def test_the_test_targets_name_no_path_outside_the_repository_but_a_guarded_tfcheck(lone_clone: Path) -> None:
    planned = make(lone_clone, "--dry-run", "test")
    assert planned.returncode == 0, planned.stderr
    outside: dict[str, list[str]] = {}
    for command in planned.stdout.replace("\\\n", " ").splitlines():
        for token in PATH_TOKEN.findall(command):
            resolved = (lone_clone / token).resolve()
            if token != "/dev/null" and not resolved.is_relative_to(lone_clone):
                outside.setdefault(token, []).append(command)
    assert set(outside) <= {OPTIONAL_TFCHECK}, f"make test reaches outside the repository: {sorted(outside)}"
    for command in outside.get(OPTIONAL_TFCHECK, []):
        assert GUARD.search(command), f"tfcheck is used without checking that it is there: {command}"


def test_without_tfcheck_beside_it_the_check_says_in_one_line_that_it_skipped(lone_clone: Path) -> None:
    # -o install: the skip needs no dependencies, so the test does not install a second environment.
    skipped = make(lone_clone, "--no-print-directory", "-o", "install", "tfcheck")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert skipped.stdout.splitlines() == [
        f"tfcheck skipped: {OPTIONAL_TFCHECK} is not beside this clone (the team's offline schema check); "
        "make validate checks against the real provider"
    ]
