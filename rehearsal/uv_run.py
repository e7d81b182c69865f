"""`uv` as the rehearsal's Cloud Build steps see it: `uv run [OPTIONS] COMMAND...` runs COMMAND in this tree's
already-synced environment (`python` being this interpreter), and nothing else.

The toolbox image syncs its environment with uv; here that environment is `.venv`, synced before the
rehearsal starts, and must never be re-synced by a step (a `--only-group deploy` sync would strip the test
dependencies from under the running tests). Any other uv command is refused, naming it.
"""

import os
import sys

EXTRA_OPTIONS = "REHEARSAL_ROLLOUT_OPTIONS"
"""Options this `uv` adds to `python -m deploy`, space-separated, each unless the step passed it (pipeline.py)."""
# uv run's options that take a value (uv 0.13 `uv run --help`); every other option is a flag.
VALUED = {
    "--with", "--with-editable", "--with-requirements", "--extra", "--group", "--only-group", "--no-group",
    "--package", "--python", "-p", "--directory", "--project", "--env-file", "--index", "--default-index",
    "--index-url", "--extra-index-url", "--find-links", "-f", "--index-strategy", "--keyring-provider",
    "--resolution", "--prerelease", "--link-mode", "--cache-dir", "--config-file", "--color",
    "--allow-insecure-host", "--python-platform", "--refresh-package", "--reinstall-package",
    "--no-binary-package", "--no-build-package", "--upgrade-package", "-P", "--exclude-newer",
    "--config-setting", "-C", "--no-build-isolation-package",
}  # fmt: skip


def command_of(arguments: list[str]) -> list[str]:
    if not arguments or arguments[0] != "run":
        raise SystemExit(f"rehearsal uv: only `uv run ... COMMAND` is modelled, not `uv {' '.join(arguments)}`")
    rest = arguments[1:]
    index = 0
    while index < len(rest) and rest[index].startswith("-"):
        option = rest[index]
        if option == "--":
            index += 1
            break
        index += 2 if option in VALUED else 1
    command = rest[index:]
    if not command:
        raise SystemExit("rehearsal uv: `uv run` without a command")
    if command[0] in ("python", "python3"):
        command[0] = sys.executable
        if command[1:3] == ["-m", "deploy"]:
            given = {argument.split("=", 1)[0] for argument in command}
            command += [
                option for option in os.environ.get(EXTRA_OPTIONS, "").split() if option.split("=", 1)[0] not in given
            ]
    return command


def main() -> None:
    command = command_of(sys.argv[1:])
    os.execvp(command[0], command)  # noqa: S606 (the step's own command, as uv would run it)


if __name__ == "__main__":
    main()
