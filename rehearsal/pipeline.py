"""The rollout step of the Cloud Build config, run here as Cloud Build would run it.

The step is whichever step of a `cloudbuild*.yaml` runs `python -m deploy` (today cloudbuild.yaml's, after the
pipeline split cloudbuild-rollout.yaml's). Its arguments get Cloud Build's substitutions: the file's defaults,
then the trigger's values and the scenario's own, `$$` left to the shell as a `$`. It then runs as its
container would: its entrypoint and arguments, its `env` and the build's `options.env`, with the build's
working directory `/workspace` mapped to a scratch directory that holds the source (links to this tree) and
what earlier steps wrote there (the image digest). The toolbox's environment is already this tree's `.venv`:
a `uv` on PATH runs `uv run ... COMMAND` as COMMAND in it, so the rehearsal never re-syncs the environment.

Time is compressed through the rollout's own options: each `--…-seconds` option of `python -m deploy` gets its
default divided by the compression factor, through the step's substitution for it where there is one. An option
the step does not pass yet is added to the rollout's command line by the rehearsal's `uv` (EXTRA_OPTIONS), the
one change the rehearsal makes to the step: the step should pass it when its substitution is set.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
ROLLOUT = "python -m deploy"
WORKSPACE = "/workspace"
# A $ that Cloud Build substitutes: $NAME or ${NAME}; $$ is an escaped dollar, for the shell.
REFERENCE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|\{[^}]*\})")


class PipelineError(Exception):
    """The Cloud Build config is not one the rehearsal can run as written."""


def strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return []


@dataclass(frozen=True)
class RolloutStep:
    config: Path
    document: dict[str, Any]
    step: dict[str, Any]

    @property
    def defaults(self) -> dict[str, str]:
        return {name: str(value) for name, value in (self.document.get("substitutions") or {}).items()}


def find_rollout_step(repository: Path = REPOSITORY) -> RolloutStep:
    """The one step, in any cloudbuild*.yaml, that runs the rollout."""
    found = []
    for config in sorted(repository.glob("cloudbuild*.yaml")):
        document = yaml.safe_load(config.read_text())
        found += [
            RolloutStep(config, document, step)
            for step in document.get("steps", [])
            if ROLLOUT in " ".join(strings(step))
        ]
    if len(found) != 1:
        where = ", ".join(f"{one.config.name}:{one.step.get('id')}" for one in found) or "none"
        raise PipelineError(f"expected exactly one Cloud Build step that runs `{ROLLOUT}`, found {where}")
    return found[0]


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Cloud Build's substitution of one string; `$$` becomes `$`."""

    def replace(found: re.Match[str]) -> str:
        if found[1] == "$":
            return "$"
        name = found[2] or found[3]
        if name is None:
            raise PipelineError(f"substitution {found[0]!r} uses an expansion the rehearsal does not model")
        if name not in values:
            raise PipelineError(f"substitution ${name} has no value (not declared, not built in, not given)")
        return values[name]

    return REFERENCE.sub(replace, text)


def references(text: str) -> set[str]:
    """The substitutions a string refers to ($NAME, ${NAME}; not $$NAME, which is the shell's)."""
    return {found[2] or found[3] for found in REFERENCE.finditer(text) if found[2] or found[3]}


def resolve(defaults: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """Every substitution's value: given ones win; defaults may refer to others (dynamicSubstitutions)."""
    values = {**defaults, **given}
    for _ in range(len(values) + 1):
        expanded = {name: substitute(value, values) if name not in given else value for name, value in values.items()}
        if expanded == values:
            return values
        values = expanded
    raise PipelineError("substitutions refer to each other in a cycle")


@dataclass(frozen=True)
class Compression:
    """The rollout's time options at a compressed clock: through the step's substitutions where it has one, else
    added to the rollout's command line (EXTRA_OPTIONS), until the step passes them itself."""

    substitutions: dict[str, str]
    extra_options: list[str]


def tool_time_defaults() -> dict[str, int]:
    """The rollout's own `--…-seconds` options and their defaults, as `python -m deploy --help` states them."""
    shown = subprocess.run(
        [sys.executable, "-m", "deploy", "--help"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "10000"},
    ).stdout
    return {
        option: int(default)
        for option, default in re.findall(r"^\s+(--[a-z-]+-seconds) [A-Z_]+\s.*\((\d+)\)$", shown, re.M)
    }


def compressed(step: RolloutStep, factor: float, defaults: Mapping[str, int]) -> Compression:
    """Every time option of the rollout divided by `factor`, but those the step computes itself (its deadline)."""
    text = " ".join(strings(step.step))
    substitutions, extra = {}, []
    for option, seconds in defaults.items():
        value = str(max(1, round(seconds / factor)))
        name = "_" + option.removeprefix("--").replace("-", "_").upper()
        if name in step.defaults:
            substitutions[name] = value
        elif f"{option}=" not in text:
            extra.append(f"{option}={value}")
    return Compression(substitutions, extra)


def workspace(directory: Path, files: Mapping[str, str], repository: Path = REPOSITORY) -> Path:
    """Cloud Build's /workspace: the source, and the files earlier steps left there."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in repository.iterdir():
        if entry.name == "build" or (directory / entry.name).exists():
            continue
        (directory / entry.name).symlink_to(entry)
    for name, content in files.items():
        (directory / name).write_text(content)
    tools = directory / ".rehearsal-bin"
    tools.mkdir(exist_ok=True)
    uv = tools / "uv"
    uv.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).with_name("uv_run.py")}" "$@"\n')
    uv.chmod(0o755)
    return directory


@dataclass
class Running:
    """The step's process group, as a cancelled or timed-out build would see it stopped."""

    process: subprocess.Popen[bytes]
    log: Path

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
            raise

    def signal(self, number: int) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, number)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(
    step: RolloutStep, values: Mapping[str, str], directory: Path, environment: Mapping[str, str], log: Path
) -> Running:
    """Run the step with these substitutions, in `directory` as /workspace."""
    definition = step.step
    if unknown := sorted(set(definition) - {"id", "name", "entrypoint", "args", "env", "waitFor", "dir", "timeout"}):
        raise PipelineError(f"step fields the rehearsal does not model: {unknown}")

    def mapped(text: str) -> str:
        return substitute(text, values).replace(WORKSPACE, str(directory))

    entrypoint = definition.get("entrypoint")
    arguments = [mapped(argument) for argument in definition.get("args", [])]
    command = [entrypoint, *arguments] if entrypoint else arguments
    env = dict(environment)
    for entry in [*step.document.get("options", {}).get("env", []), *definition.get("env", [])]:
        name, _, value = mapped(entry).partition("=")
        env[name] = value
    env["PATH"] = f"{directory / '.rehearsal-bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=directory / definition.get("dir", ""),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(process, log)
