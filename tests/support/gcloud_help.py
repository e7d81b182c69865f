"""What the installed gcloud accepts, read from its offline `--help`: command paths and flag names."""

import functools
import os
import re
import shlex
import shutil
import subprocess

import pytest

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FLAG = re.compile(r"^\s+(--(?:\[no-\])?[a-z0-9-]+)", re.MULTILINE)
_GLOBAL_FLAGS = re.compile(r"These flags are available to all commands:(.*?)\.\n", re.DOTALL)


def gcloud() -> str:
    found = shutil.which("gcloud")
    if found is None:
        pytest.fail("gcloud is not on PATH: the commands the pipeline and the docs use are checked against its --help")
    return found


@functools.cache
def flags_of(command_path: str) -> frozenset[str]:
    """Every flag of `gcloud <command_path>`, global ones included; `--[no-]x` stands for --x and --no-x."""
    result = subprocess.run(
        [gcloud(), *command_path.split(), "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
    )
    if result.returncode != 0:
        raise LookupError(f"`gcloud {command_path}` is not a command: {result.stderr.strip()[:300]}")
    text = _ANSI.sub("", result.stdout)
    names: set[str] = set()
    for flag in _FLAG.findall(text):
        if flag.startswith("--[no-]"):
            names |= {"--" + flag[7:], "--no-" + flag[7:]}
        else:
            names.add(flag)
    if global_flags := _GLOBAL_FLAGS.search(text):
        names |= {name.strip() for name in global_flags.group(1).split(",")}
    return frozenset(names)


def unknown_flags(command: str, command_paths: set[str]) -> tuple[str, list[str]]:
    """The command path a `gcloud ...` line uses (the longest known one it starts with) and its unknown flags."""
    words = shlex.split(command)
    if words[0] != "gcloud":
        raise ValueError(f"not a gcloud command: {command}")
    rest = " ".join(words[1:])
    path = max(
        (known for known in command_paths if rest == known or rest.startswith(known + " ")), key=len, default=None
    )
    if path is None:
        raise LookupError(f"uses a gcloud command outside the known set {sorted(command_paths)}: {command}")
    used = {word.split("=", 1)[0] for word in words if word.startswith("--")}
    return path, sorted(used - flags_of(path))
