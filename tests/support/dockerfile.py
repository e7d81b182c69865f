"""Just enough of a Dockerfile parser for the tests to read the file instead of copying from it."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        words = json.loads(self.arguments)
        assert isinstance(words, list), f"{self.keyword} is not in exec form: {self.arguments}"
        return [str(word) for word in words]


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for name, value in re.findall(r'(\w+)=("[^"]*"|\S+)', instruction.arguments):
                values[name] = value.strip('"')
        return values


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults, and the stages with their FROM image resolved against them and earlier stages."""
    text = re.sub(r"\\\n", " ", path.read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), re.sub(r"\s+", " ", arguments.strip())
        if keyword == "FROM":
            image, _, name = arguments.partition(" AS ")
            resolved = re.sub(r"\$\{(\w+)\}", lambda match: global_args[match[1]], image)
            # FROM <earlier stage> means that stage's image.
            resolved = next((stage.image for stage in stages if stage.name == resolved), resolved)
            stages.append(Stage(resolved, name or None))
        elif keyword == "ARG" and not stages:
            name, _, default = arguments.partition("=")
            global_args[name] = default
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return global_args, stages
