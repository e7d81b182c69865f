"""The README is part of the contract: its examples run as written and its settings table is complete."""

import argparse
import re
import shlex
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings, environment_variable

README = (Path(__file__).parents[1] / "README.md").read_text()


def console_examples() -> list[tuple[str, list[str]]]:
    """Each `$ curl ...` line of the README's console blocks, with the lines it shows as output."""
    examples: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.DOTALL):
        for command, output in re.findall(r"^\$ (curl .*)\n((?:(?!\$ ).*\n)*)", block, flags=re.MULTILINE):
            examples.append((command, output.splitlines()))
    return examples


def curl_arguments(command: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="curl", add_help=False)
    parser.add_argument("url")
    parser.add_argument("-i", dest="include", action="store_true")
    parser.add_argument("-X", dest="method", default="GET")
    parser.add_argument("-H", dest="headers", action="append", default=[])
    parser.add_argument("-d", dest="data")
    return parser.parse_args(shlex.split(command)[1:])


def test_the_readme_has_curl_examples() -> None:
    assert len(console_examples()) >= 4


def test_curl_examples_answer_as_shown(client: TestClient) -> None:
    # The examples run in order against one service, on the fixed day the README was written for (TODAY).
    for command, shown in console_examples():
        arguments = curl_arguments(command)
        headers = dict(header.split(": ", 1) for header in arguments.headers)
        path = re.sub(r"^http://127\.0\.0\.1:8080", "", arguments.url)
        response = client.request(arguments.method, path, headers=headers, content=arguments.data)
        expected = [line for line in shown if line]
        if arguments.include:
            assert expected[0] == f"HTTP/1.1 {response.status_code} {response.reason_phrase}", command
            expected = expected[1:]
        assert expected == ([response.text] if response.content else []), command


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(field: str) -> None:
    assert f"| `{environment_variable(field)}` |" in README
