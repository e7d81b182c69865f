"""Every command the documentation tells a person to run exists: make targets in the Makefile, gcloud
commands and their flags in the installed gcloud."""

import re
import shlex
from pathlib import Path

import pytest

from tests.support.gcloud_help import unknown_flags

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "terraform" / "gcp" / "README.md"]
FENCED = re.compile(r"```(console|sh)\n(.*?)```", re.DOTALL)
INLINE = re.compile(r"`((?:gcloud|make) [^`]+)`")


def documented_commands() -> list[tuple[str, str]]:
    """(document, command) for every gcloud or make command in a console or sh block or in inline code."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for kind, block in FENCED.findall(text):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.removeprefix("$ ") if kind == "console" else line
                if kind == "console" and not line.startswith("$ "):
                    continue
                command = command.split(" | ")[-1] if "| gcloud" in command else command
                if command.startswith(("gcloud ", "make ")):
                    found.append((document.name, command.strip()))
        found += [(document.name, " ".join(command.split())) for command in INLINE.findall(text)]
    return found


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.MULTILINE))


def test_the_documents_hold_commands_to_check() -> None:
    commands = documented_commands()
    assert sum(command.startswith("gcloud ") for _, command in commands) >= 15
    assert sum(command.startswith("make ") for _, command in commands) >= 5


@pytest.mark.parametrize(("document", "command"), documented_commands())
def test_every_documented_command_exists(document: str, command: str) -> None:
    words = shlex.split(command)
    if words[0] == "make":
        targets = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        assert set(targets) <= make_targets(), f"{document}: {command}"
        return
    path, unknown = unknown_flags(command)
    assert unknown == [], f"{document}: gcloud {path} has no {unknown}"


def test_a_misspelled_command_or_flag_is_caught() -> None:
    assert unknown_flags("gcloud run services update-traffic $SERVICE --to-revison=a=1") == (
        "run services update-traffic",
        ["--to-revison"],
    )
    assert unknown_flags("gcloud run services describe birthday-api --region=x") == ("run services describe", [])
    with pytest.raises(LookupError, match="no gcloud command"):
        unknown_flags("gcloud run servces describe birthday-api")
