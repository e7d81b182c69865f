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
def help_text(command_path: str) -> str | None:
    """`gcloud <command_path> --help` without its formatting, or None when gcloud has no such command or group.

    A trailing positional argument still prints the command's help, so the NAME section must name the path itself.
    """
    result = subprocess.run(
        [gcloud(), *command_path.split(), "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
    )
    text = _ANSI.sub("", result.stdout)
    return text if result.returncode == 0 and f"gcloud {command_path} - " in text else None


@functools.cache
def flags_of(command_path: str) -> frozenset[str]:
    """Every flag of `gcloud <command_path>`, global ones included; `--[no-]x` stands for --x and --no-x."""
    text = help_text(command_path)
    if text is None:
        raise LookupError(f"`gcloud {command_path}` is not a command")
    names: set[str] = set()
    for flag in _FLAG.findall(text):
        if flag.startswith("--[no-]"):
            names |= {"--" + flag[7:], "--no-" + flag[7:]}
        else:
            names.add(flag)
    if global_flags := _GLOBAL_FLAGS.search(text):
        names |= {name.strip() for name in global_flags.group(1).split(",")}
    return frozenset(names)


def command_path(words: list[str]) -> str:
    """The longest run of leading words after `gcloud` that gcloud knows as a command (placeholders end the run)."""
    leading = []
    for word in words[1:]:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
            break
        leading.append(word)
    for end in range(len(leading), 0, -1):
        text = help_text(" ".join(leading[:end]))
        if text is None:
            continue
        # A group followed by more words means a subcommand it does not have, not a positional argument.
        if end < len(leading) and re.search(r"^(GROUPS|COMMANDS)$", text, re.MULTILINE):
            break
        return " ".join(leading[:end])
    raise LookupError(f"no gcloud command in {shlex.join(words)}")


def unknown_flags(command: str) -> tuple[str, list[str]]:
    """The gcloud command a `gcloud ...` line runs, and the flags it uses that the command does not have."""
    words = shlex.split(command)
    if words[0] != "gcloud":
        raise ValueError(f"not a gcloud command: {command}")
    path = command_path(words)
    used = {word.split("=", 1)[0] for word in words if word.startswith("--")}
    return path, sorted(used - flags_of(path))
